"""Self-checks of notebook 01 (softmax and temperature): a right answer passes, each known
mistake gets its own hint."""
from __future__ import annotations

import math

import pytest
import torch

from kdteach.exercises import nb01 as exercises


# --- 01: stable softmax ---------------------------------------------------------------------

def good_softmax(z, T):
    z = z / T
    z = z - z.max(dim=-1, keepdim=True).values
    e = z.exp()
    return e / e.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("fn, fragment", [
    (None, "Not answered"),
    (good_softmax(torch.zeros(1, 3), 1.0), "function itself"),
    (lambda z, T: torch.softmax(z, -1), "T is ignored"),
    (lambda z, T: torch.softmax(z * T, -1), "multiply the logits by T"),
    (lambda z, T: torch.softmax(z, -1) / T, "divide the probabilities by T"),
    (lambda z, T: torch.softmax(z / T, 0), "last axis"),
    (lambda z, T: torch.log_softmax(z / T, -1), "log-probabilities"),
    (lambda z, T: (z / T).exp() / (z / T).exp().sum(-1, keepdim=True), "overflows"),
    (lambda z, T: ((z - z.max()) / T).exp() / ((z - z.max()) / T).exp().sum(-1, keepdim=True),
     "one maximum for the whole batch"),
    (lambda z, T: 1 / 0, "ZeroDivisionError"),
    (lambda z, T: torch.softmax(z / T, -1)[:, :2], "same shape"),
])
def test_stable_softmax_mistakes(verdict, fn, fragment):
    verdict(False, fragment, exercises.check_stable_softmax(fn))


def test_stable_softmax_right(verdict):
    verdict(True, "Right", exercises.check_stable_softmax(good_softmax))
    numpy_version = lambda z, T: good_softmax(z, T).numpy()  # noqa: E731 - arrays are accepted too
    verdict(True, "Right", exercises.check_stable_softmax(numpy_version))


# --- 01: temperature for a quarter -----------------------------------------------------------

GAP = 6.0


@pytest.mark.parametrize("answer, fragment", [
    (None, "Not answered"),
    ("warm", "must be a number"),
    (GAP / math.log(4), "ratio"),
    (GAP / math.log10(3), "natural log"),
    (GAP * math.log(3), "inverted"),
    (-1.0, "positive"),
    (2.0, "is off"),
])
def test_pair_temperature_mistakes(verdict, answer, fragment):
    verdict(False, fragment, exercises.check_pair_temperature(answer, GAP))


def test_pair_temperature_right(verdict):
    T = GAP / math.log(3)
    verdict(True, "Right", exercises.check_pair_temperature(T, GAP))
    assert 1 / (1 + math.exp(GAP / T)) == pytest.approx(0.25)


# --- 01: distances ---------------------------------------------------------------------------

P = torch.tensor([0.1, 0.6, 0.3])
Q = torch.tensor([0.0, 0.0, 1.0])  # one-hot: the largest difference, -0.7, is negative
D = P - Q
L1, L2, LINF = float(D.abs().sum()), float(D.norm()), float(D.abs().max())


@pytest.mark.parametrize("answer, fragment", [
    (None, "Not answered"),
    (3.0, "three numbers"),
    ((L1, L2), "give three"),
    ((LINF, L2, L1), "wrong order"),
    ((float(D.sum()), L2, LINF), "cancel"),
    ((L1, L2**2, LINF), "squared norm"),
    ((L1, L2, float(D.max())), "absolute"),
    ((L1, 0.5, LINF), "sqrt(sum"),
])
def test_distances_mistakes(verdict, answer, fragment):
    verdict(False, fragment, exercises.check_distances(answer, P, Q))


def test_distances_right(verdict):
    verdict(True, "Right", exercises.check_distances((L1, L2, LINF), P, Q))
    verdict(True, "Right", exercises.check_distances(torch.tensor([L1, L2, LINF]), P, Q))
