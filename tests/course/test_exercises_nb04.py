"""Self-checks of notebook 04 (dark-knowledge experiments): a right answer passes, each known
mistake gets its own hint."""
from __future__ import annotations

import pytest
import torch

from kdteach.exercises import nb04 as exercises


# --- 04: label smoothing matched to the teacher ------------------------------------------------------

def _teacher_case():
    gen = torch.Generator().manual_seed(4)
    logits = 3 * torch.randn(50, 10, generator=gen)
    labels = torch.randint(0, 10, (50,), generator=gen)
    logits[torch.arange(50), labels] += 8  # a teacher that is mostly right
    return logits, labels


def _moved(logits, labels, T, use_max=False):
    q = torch.softmax(logits.double() / T, 1)
    kept = q.max(1).values if use_max else q[torch.arange(len(labels)), labels]
    return float(1 - kept.mean())


def test_matched_smoothing_right(verdict):
    logits, labels = _teacher_case()
    eps = _moved(logits, labels, 4.0) * 10 / 9
    verdict(True, "Right", exercises.check_matched_smoothing(eps, logits, labels, 4.0))
    verdict(True, "Right",
            exercises.check_matched_smoothing(torch.tensor(eps), logits, labels, 4.0))


def test_matched_smoothing_mistakes(verdict):
    logits, labels = _teacher_case()
    T = 4.0
    mass = _moved(logits, labels, T)
    cases = [
        (None, "Not answered"),
        (torch.ones(3), "one number"),
        (mass, "solve eps·(K−1)/K"),
        (1 - mass, "*on* the true class"),
        (_moved(logits, labels, 1.0) * 10 / 9, "at T=1"),
        (_moved(logits, labels, 1.0), "Two slips"),
        (_moved(logits, labels, T, use_max=True) * 10 / 9, "largest probability"),
        (100 * mass * 10 / 9, "percentage"),
        (1.5, "not in [0, 1]"),
        (0.01, "is off"),
    ]
    for answer, fragment in cases:
        verdict(False, fragment, exercises.check_matched_smoothing(answer, logits, labels, T))


# --- 04: ensemble soft targets -----------------------------------------------------------------------

def _members():
    return 2 * torch.randn(3, 6, 10, generator=torch.Generator().manual_seed(7))


def test_ensemble_soft_targets_right(verdict):
    z, T = _members(), 3.0
    answer = torch.stack([torch.softmax(m / T, -1) for m in z]).mean(0)
    verdict(True, "Right", exercises.check_ensemble_soft_targets(answer, z, T))


@pytest.mark.parametrize("make, fragment", [
    (lambda z, T: None, "Not answered"),
    (lambda z, T: [0.1] * 10, "torch tensor"),
    (lambda z, T: torch.softmax(z / T, -1), "members' axis"),
    (lambda z, T: torch.softmax(z / T, -1).mean(1), "averaged over the examples"),
    (lambda z, T: torch.softmax(z / T, -1).mean(0)[:, :5], "Expected shape"),
    (lambda z, T: torch.softmax(z.mean(0) / T, -1), "averaged logits"),
    (lambda z, T: torch.softmax(z, -1).mean(0), "at T=1"),
    (lambda z, T: torch.softmax(z * T, -1).mean(0), "multiplied the logits by T"),
    (lambda z, T: torch.softmax(z / T, -1).sum(0), "summed over the members"),
    (lambda z, T: z.mean(0), "not probabilities"),
    (lambda z, T: z.mean(0) / T, "divided by T"),
    (lambda z, T: torch.log_softmax(z / T, -1).mean(0), "log-probabilities"),
    (lambda z, T: torch.softmax(z / T, 1).mean(0), "do not sum to 1"),
    (lambda z, T: torch.softmax(z / (T + 1), -1).mean(0), "not the average"),
])
def test_ensemble_soft_targets_mistakes(verdict, make, fragment):
    z, T = _members(), 3.0
    verdict(False, fragment, exercises.check_ensemble_soft_targets(make(z, T), z, T))
