"""Profiles, device choice and seeding: the few global settings of the course.

One switch, ``KDTEACH_PROFILE``, picks the scale of every experiment:

* ``quick`` — CPU-sized subsets and a few epochs, so each notebook runs in about a minute
  on a laptop (and in CI);
* ``full`` — paper-scale data and epochs, meant for a GPU; opt in with
  ``KDTEACH_PROFILE=full``.

Unset, it is ``quick`` on every device: a learner on a rented GPU gets the tested minute
per notebook, not hours they did not ask for.

``KDTEACH_SEED`` (default 0) moves every notebook's seeds, so a check cell can be tried
on other seeds without editing it: ``KDTEACH_SEED=3 make test``.
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PROFILES = ("quick", "full")


@dataclass(frozen=True)
class Profile:
    """The sizes one profile uses. Notebooks read these instead of hard-coding sizes."""

    name: str
    train_size: int | None  # examples per training set; None = the whole set
    test_size: int | None  # examples per test set; None = the whole set
    teacher_epochs: int
    student_epochs: int
    batch_size: int
    seeds: int  # repetitions for mean ± std tables


QUICK = Profile("quick", train_size=10_000, test_size=10_000, teacher_epochs=8,
                student_epochs=5, batch_size=128, seeds=2)
FULL = Profile("full", train_size=None, test_size=None, teacher_epochs=60,
               student_epochs=60, batch_size=128, seeds=3)


def profile_name() -> str:
    """The active profile's name: ``KDTEACH_PROFILE`` if set, else ``quick``."""
    name = os.environ.get("KDTEACH_PROFILE", "").strip().lower()
    if not name:
        return "quick"
    if name not in PROFILES:
        raise ValueError(
            f"KDTEACH_PROFILE={name!r} is not a profile; set it to one of {PROFILES} "
            "(or unset it for quick)."
        )
    return name


def profile() -> Profile:
    """The active :class:`Profile` (re-read from the environment on every call)."""
    return QUICK if profile_name() == "quick" else FULL


def device() -> torch.device:
    """The fastest available device: CUDA, then Apple's MPS, then the CPU.

    ``KDTEACH_DEVICE`` (e.g. ``cpu``) overrides the choice.
    """
    forced = os.environ.get("KDTEACH_DEVICE", "").strip().lower()
    if forced:
        return _forced_device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _forced_device(name: str) -> torch.device:
    """``KDTEACH_DEVICE``'s device, or an error that names the variable and the choices."""
    fix = "set KDTEACH_DEVICE to cpu, cuda, cuda:N or mps, or unset it to choose by hardware"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"KDTEACH_DEVICE={name!r} is not a device; {fix}.") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"KDTEACH_DEVICE={name!r} but torch finds no CUDA GPU here; {fix}.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"KDTEACH_DEVICE={name!r} but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s); {fix}.")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"KDTEACH_DEVICE={name!r} but Apple's MPS is not available; {fix}.")
    elif dev.type != "cpu":
        raise ValueError(f"KDTEACH_DEVICE={name!r} is not a device the course runs on; {fix}.")
    return dev


def _env_path(variable: str) -> Path | None:
    """The folder a path variable names; ``None`` when unset or empty (an empty value would
    otherwise mean the current folder, and files would land wherever a notebook runs)."""
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser() if value else None


def base_seed() -> int:
    """The first seed a notebook uses: ``KDTEACH_SEED`` if set, else 0.

    Notebooks write ``SEED = config.base_seed()`` and, where they compare over seeds,
    ``config.seeds(n)``; setting the variable reruns the whole course on other seeds.
    """
    value = os.environ.get("KDTEACH_SEED", "").strip()
    if not value:
        return 0
    try:
        seed = int(value)
    except ValueError:
        raise ValueError(f"KDTEACH_SEED={value!r} is not an integer; set it to e.g. 3, "
                         "or unset it for seed 0.") from None
    if seed < 0:
        raise ValueError(f"KDTEACH_SEED={value!r} is negative; set it to 0 or more.")
    return seed


def seeds(n: int) -> list[int]:
    """``n`` consecutive seeds starting at :func:`base_seed` (the paired comparisons' seeds)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer number of seeds, got {n!r}")
    start = base_seed()
    return list(range(start, start + n))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def project_root() -> Path:
    """The repository root (the folder holding ``data/`` and ``notebooks/``)."""
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Where the datasets live: ``KDTEACH_DATA`` or the repository's ``data/``."""
    return _env_path("KDTEACH_DATA") or project_root() / "data"


def cache_dir() -> Path:
    """Where trained teachers are cached: ``KDTEACH_CACHE`` or ``~/.cache/kdteach``."""
    return _env_path("KDTEACH_CACHE") or (_env_path("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdteach"


def results_dir() -> Path:
    """Where measured results files are committed: ``notebooks/results`` (notebooks read them)."""
    return project_root() / "notebooks" / "results"


@contextlib.contextmanager
def temporary_env(**values: str | None):
    """Set environment variables for the block, then restore them (also on error).

    A value of ``None`` leaves that variable as it is. Used where a run must record, or
    hand to a child process (a notebook kernel), the profile and device it ran with.
    """
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
