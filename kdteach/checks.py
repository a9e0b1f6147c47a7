"""Argument checks shared by the course's functions.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (wrong value)
with a message that names the argument and says what to pass instead, and returns the
value in the form the caller should use (a NumPy integer becomes an ``int``, and so on).
"""
from __future__ import annotations

import math
import numbers

from torch import nn


def is_real(value) -> bool:
    """A real number that is not a bool (``True`` must not pass as 1)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def model(value, name: str) -> nn.Module:
    """``value`` must be a ``torch.nn.Module``."""
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}.")
    return value


def positive_int(value, name: str, what: str = "") -> int:
    """``value`` must be a whole number >= 1 (a Python or NumPy integer, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        what = f" ({what})" if what else ""
        raise ValueError(f"{name} must be a positive int{what}, got {value!r}.")
    return int(value)


def positive_number(value, name: str, example: str | None = None) -> float:
    """``value`` must be a finite real number > 0."""
    example = example or f"{name}=2.0"
    if not is_real(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}; "
                        f"pass e.g. {example}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}; "
                         f"pass a positive value such as {example}")
    return float(value)


def fraction(value, name: str) -> float:
    """``value`` must be a real number in [0, 1] (a weight)."""
    if not is_real(value):
        raise TypeError(f"{name} must be a real number in [0, 1], got {type(value).__name__}")
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}; pick a weight between 0 and 1")
    return float(value)
