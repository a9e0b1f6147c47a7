"""kdteach.checks: argument checks that name the argument and the fix."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from kdteach import checks


def test_model_accepts_modules_only():
    layer = nn.Linear(2, 2)
    assert checks.model(layer, "teacher") is layer
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module, got str"):
        checks.model("resnet", "teacher")


@pytest.mark.parametrize("value", [0, -3, 1.5, "4", None, True, False])
def test_positive_int_rejects(value):
    with pytest.raises(ValueError, match=r"epochs must be a positive int \(passes\)"):
        checks.positive_int(value, "epochs", "passes")


def test_positive_int_accepts_numpy_integers_as_int():
    got = checks.positive_int(np.int64(7), "batch_size")
    assert got == 7 and type(got) is int


@given(st.integers(min_value=1, max_value=10**12))
def test_positive_int_returns_every_positive_int(n):
    assert checks.positive_int(n, "n") == n


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_positive_number_accepts_exactly_the_finite_positive_floats(x):
    if math.isfinite(x) and x > 0:
        assert checks.positive_number(x, "lr") == x
    else:
        with pytest.raises(ValueError, match=r"lr must be a finite number > 0.*lr=2\.0"):
            checks.positive_number(x, "lr")


@pytest.mark.parametrize("value", [True, "1e-3", None, 1j])
def test_positive_number_rejects_non_numbers_with_type_error(value):
    with pytest.raises(TypeError, match="T must be a real number.*T=4.0"):
        checks.positive_number(value, "T", example="T=4.0")


def test_positive_number_accepts_numpy_floats():
    assert checks.positive_number(np.float32(0.5), "lr") == 0.5


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_fraction_accepts_exactly_0_to_1(x):
    if 0 <= x <= 1:
        assert checks.fraction(x, "alpha") == x
    else:
        with pytest.raises(ValueError, match="alpha must be in"):
            checks.fraction(x, "alpha")


def test_fraction_rejects_bools():
    with pytest.raises(TypeError, match="alpha must be a real number"):
        checks.fraction(True, "alpha")
