"""Environment variables: every error names the variable and the valid values; empty means unset."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdteach import config


@pytest.mark.parametrize("value", ["nonsense", "gpu", "meta"])
def test_a_device_that_is_not_one_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("KDTEACH_DEVICE", value)
    with pytest.raises(ValueError, match=rf"KDTEACH_DEVICE='{value}'.*cpu, cuda, cuda:N or mps"):
        config.device()


def test_upper_case_device_is_accepted_like_the_profile(monkeypatch):
    monkeypatch.setenv("KDTEACH_DEVICE", " CPU ")
    assert config.device() == torch.device("cpu")


def test_cuda_without_a_gpu_names_the_variable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("KDTEACH_DEVICE", "cuda")
    with pytest.raises(ValueError, match="KDTEACH_DEVICE='cuda' but torch finds no CUDA GPU"):
        config.device()


@pytest.mark.parametrize("variable, function", [("KDTEACH_CACHE", config.cache_dir),
                                                ("KDTEACH_DATA", config.data_dir)])
@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_folder_variable_means_unset_not_the_current_folder(monkeypatch, variable,
                                                                     function, empty):
    monkeypatch.delenv(variable, raising=False)
    default = function()
    monkeypatch.setenv(variable, empty)
    assert function() == default
    assert function() != Path(empty) and function().is_absolute()
