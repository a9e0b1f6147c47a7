"""kdteach.config: the profile switch, device choice, seeding and paths."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from kdteach import config


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


# -- profiles ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, name", [("quick", "quick"), ("full", "full"),
                                         (" QUICK ", "quick"), ("Full", "full")])
def test_profile_from_env(monkeypatch, value, name):
    monkeypatch.setenv("KDTEACH_PROFILE", value)
    assert config.profile_name() == name
    assert config.profile() is (config.QUICK if name == "quick" else config.FULL)
    assert config.profile().name == name


@pytest.mark.parametrize("value", ["fast", "quik", "medium", "0"])
def test_invalid_profile_raises_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("KDTEACH_PROFILE", value)
    with pytest.raises(ValueError, match="KDTEACH_PROFILE") as info:
        config.profile()
    assert repr(value) in str(info.value) and "quick" in str(info.value)


def test_default_profile_is_quick_without_cuda(monkeypatch, no_cuda):
    monkeypatch.delenv("KDTEACH_PROFILE", raising=False)
    assert config.profile_name() == "quick"
    assert config.profile() is config.QUICK


def test_default_profile_is_quick_with_cuda_too(monkeypatch, with_cuda):
    # full is opt-in: a GPU alone must not start hours of paper-scale runs
    monkeypatch.setenv("KDTEACH_PROFILE", "   ")  # blank counts as unset
    assert config.profile_name() == "quick"
    assert config.profile() is config.QUICK


@pytest.mark.parametrize("value, first", [(None, 0), ("", 0), ("3", 3), (" 12 ", 12)])
def test_seeds_start_at_kdteach_seed(monkeypatch, value, first):
    if value is None:
        monkeypatch.delenv("KDTEACH_SEED", raising=False)
    else:
        monkeypatch.setenv("KDTEACH_SEED", value)
    assert config.base_seed() == first
    assert config.seeds(3) == [first, first + 1, first + 2]


@pytest.mark.parametrize("value", ["three", "1.5", "-1"])
def test_bad_kdteach_seed_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("KDTEACH_SEED", value)
    with pytest.raises(ValueError, match="KDTEACH_SEED"):
        config.base_seed()


@pytest.mark.parametrize("n", [0, -2, 1.5, True, "3"])
def test_seeds_needs_a_positive_count(n):
    with pytest.raises(ValueError, match="n must be"):
        config.seeds(n)


def test_profile_is_reread_on_every_call(monkeypatch):
    monkeypatch.setenv("KDTEACH_PROFILE", "quick")
    assert config.profile().name == "quick"
    monkeypatch.setenv("KDTEACH_PROFILE", "full")
    assert config.profile().name == "full"


def test_profiles_are_sane():
    quick, full = config.QUICK, config.FULL
    assert full.train_size is None and full.test_size is None  # the whole sets
    assert 0 < quick.train_size <= 60_000 and 0 < quick.test_size <= 10_000
    assert quick.teacher_epochs <= full.teacher_epochs
    assert quick.student_epochs <= full.student_epochs
    assert min(quick.batch_size, full.batch_size, quick.seeds, full.seeds) >= 1
    with pytest.raises(AttributeError):  # frozen
        quick.train_size = 5  # type: ignore[misc]


# -- device -------------------------------------------------------------------------------

def test_device_override(monkeypatch, with_cuda):
    monkeypatch.setenv("KDTEACH_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")
    monkeypatch.setenv("KDTEACH_DEVICE", " cuda:1 ")
    assert config.device() == torch.device("cuda", 1)


def test_device_prefers_cuda(monkeypatch, with_cuda):
    monkeypatch.delenv("KDTEACH_DEVICE", raising=False)
    assert config.device() == torch.device("cuda")


def test_device_falls_back_to_mps_then_cpu(monkeypatch, no_cuda):
    monkeypatch.delenv("KDTEACH_DEVICE", raising=False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert config.device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert config.device() == torch.device("mps")


# -- seeding ------------------------------------------------------------------------------

def _draws(gen: torch.Generator):
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist(),
            torch.rand(3, generator=gen).tolist())


def test_seed_everything_is_reproducible():
    first = _draws(config.seed_everything(123))
    second = _draws(config.seed_everything(123))
    other = _draws(config.seed_everything(124))
    assert first == second
    assert all(a != b for a, b in zip(first, other))  # every source is reseeded


def test_seed_everything_returns_a_cpu_generator():
    gen = config.seed_everything(7)
    assert isinstance(gen, torch.Generator) and gen.device == torch.device("cpu")
    assert gen.initial_seed() == 7


def test_seed_everything_accepts_large_and_negative_ints():
    config.seed_everything(2**40)
    config.seed_everything(-1)


@pytest.mark.parametrize("seed", [1.0, "1", None, True, np.float64(3)])
def test_seed_everything_rejects_non_ints(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        config.seed_everything(seed)


# -- paths --------------------------------------------------------------------------------

def test_paths(monkeypatch, tmp_path):
    root = config.project_root()
    assert (root / "kdteach" / "config.py").is_file()
    monkeypatch.delenv("KDTEACH_DATA", raising=False)
    assert config.data_dir() == root / "data"
    monkeypatch.setenv("KDTEACH_DATA", str(tmp_path))
    assert config.data_dir() == tmp_path
    monkeypatch.setenv("KDTEACH_CACHE", str(tmp_path / "c"))
    assert config.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("KDTEACH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.cache_dir() == tmp_path / "xdg" / "kdteach"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert config.cache_dir() == Path.home() / ".cache" / "kdteach"
    assert config.results_dir() == root / "notebooks" / "results"


def test_environment_sets_and_restores_even_on_error(monkeypatch):
    monkeypatch.setenv("KDTEACH_PROFILE", "full")
    monkeypatch.delenv("KDTEACH_DEVICE", raising=False)
    with pytest.raises(RuntimeError):
        with config.temporary_env(KDTEACH_PROFILE="quick", KDTEACH_DEVICE="cpu", KDTEACH_DATA=None):
            assert os.environ["KDTEACH_PROFILE"] == "quick" and os.environ["KDTEACH_DEVICE"] == "cpu"
            raise RuntimeError("inside")
    assert os.environ["KDTEACH_PROFILE"] == "full"
    assert "KDTEACH_DEVICE" not in os.environ
