"""Self-checks of notebook 06 (attention transfer): right answers pass, common mistakes get a
specific hint."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import losses
from kdteach.exercises import nb06 as exercises


def test_beta_sum_convention(run_check):
    assert run_check(exercises.check_beta_sum_convention, 1000 / 49)[0]
    assert run_check(exercises.check_beta_sum_convention, 20.408)[0]
    for wrong, words in [(49000, "Inverted"), (1000 / 49 / 128, "batch"), (500 / 49, "½"),
                         (1000 / 196, "7×7"), (1000 / 7, "49"), (1, "off")]:
        ok, out = run_check(exercises.check_beta_sum_convention, wrong)
        assert not ok and words in out, (wrong, out)
    assert not run_check(exercises.check_beta_sum_convention, None)[0]


@pytest.fixture
def preact():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(3, 5, 7, 7, generator=gen)


def test_attention_map_p1(run_check, preact):
    right = F.normalize(preact.abs().mean(1).flatten(1), dim=1)
    assert run_check(exercises.check_attention_map_p1, right, preact)[0]
    assert run_check(exercises.check_attention_map_p1, F.normalize(preact.abs().sum(1).flatten(1)), preact)[0]
    cases = [
        (F.normalize(preact.mean(1).flatten(1), dim=1), "absolute value"),
        (preact.abs().mean(1).flatten(1), "unit L2"),
        (preact.abs().sum(1).flatten(1), "unit L2"),
        (F.normalize(preact.abs().mean(1).flatten(1), p=1, dim=1), "L1"),
        (losses.attention_map(preact, p=2), "p = 2"),
        (right.view(3, 7, 7), "Flatten"),
        (right[:, :10], "Expected shape"),
        (right + 1, "Not the p = 1"),
        ([1, 2], "tensor"),
    ]
    for wrong, words in cases:
        ok, out = run_check(exercises.check_attention_map_p1, wrong, preact)
        assert not ok and words in out, (words, out)
    assert not run_check(exercises.check_attention_map_p1, None, preact)[0]
