"""Self-checks of notebooks 01 and 03: a right answer passes, each known mistake gets its own hint."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdteach import exercises, losses


def verdict(capsys, ok_expected, fragment, result):
    out = capsys.readouterr().out
    assert result is ok_expected, out
    assert out.startswith("✓" if ok_expected else "✗"), out
    assert fragment in out, out


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
def test_stable_softmax_mistakes(capsys, fn, fragment):
    verdict(capsys, False, fragment, exercises.check_stable_softmax(fn))


def test_stable_softmax_right(capsys):
    verdict(capsys, True, "Right", exercises.check_stable_softmax(good_softmax))
    numpy_version = lambda z, T: good_softmax(z, T).numpy()  # noqa: E731 - arrays are accepted too
    verdict(capsys, True, "Right", exercises.check_stable_softmax(numpy_version))


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
def test_pair_temperature_mistakes(capsys, answer, fragment):
    verdict(capsys, False, fragment, exercises.check_pair_temperature(answer, GAP))


def test_pair_temperature_right(capsys):
    T = GAP / math.log(3)
    verdict(capsys, True, "Right", exercises.check_pair_temperature(T, GAP))
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
def test_distances_mistakes(capsys, answer, fragment):
    verdict(capsys, False, fragment, exercises.check_distances(answer, P, Q))


def test_distances_right(capsys):
    verdict(capsys, True, "Right", exercises.check_distances((L1, L2, LINF), P, Q))
    verdict(capsys, True, "Right", exercises.check_distances(torch.tensor([L1, L2, LINF]), P, Q))


# --- 03: the KD loss -------------------------------------------------------------------------

def kd(s, t, y, T, alpha, *, reduction="batchmean", t2=True, probs=False, swap=False,
       reverse=False, student_T=True, twice=False, cross_entropy=False, hard=True, detach=True):
    """A KD loss with switchable mistakes."""
    t = t.detach() if detach else t
    log_qs = F.log_softmax(s / T if student_T else s, -1)
    qt = torch.softmax((torch.softmax(t, -1) if twice else t) / T, -1)
    if reverse:
        soft = F.kl_div(F.log_softmax(t / T, -1), log_qs.exp(), reduction=reduction)
    else:
        soft = F.kl_div(log_qs.exp() if probs else log_qs, qt, reduction=reduction)
    if cross_entropy:
        soft = -(qt * log_qs).sum(-1).mean()
    soft = soft * (T**2 if t2 else 1)
    if not hard:
        return soft
    ce = F.cross_entropy(s, y)
    return (1 - alpha) * ce + alpha * soft if swap else alpha * ce + (1 - alpha) * soft


def test_kd_loss_right(capsys):
    verdict(capsys, True, "Right", exercises.check_kd_loss(kd))
    verdict(capsys, True, "Right", exercises.check_kd_loss(
        lambda s, t, y, T, alpha: losses.kd_loss(s, t, y, T=T, alpha=alpha)))


@pytest.mark.parametrize("mistake, fragment", [
    ({"reduction": "mean"}, "batchmean"),
    ({"t2": False}, "T²"),
    ({"t2": False, "reduction": "mean"}, "Two mistakes"),
    ({"swap": True}, "swapped"),
    ({"reverse": True}, "reversed"),
    ({"probs": True}, "*log*-probabilities"),
    ({"student_T": False}, "divided by T too"),
    ({"twice": True}, "Softmax applied twice"),
    ({"cross_entropy": True}, "teacher's entropy"),
    ({"hard": False}, "hard-label term"),
    ({"detach": False}, "Detach them"),
])
@pytest.mark.filterwarnings("ignore:reduction. .mean. divides:UserWarning")
def test_kd_loss_mistakes(capsys, mistake, fragment):
    def fn(s, t, y, T, alpha):
        return kd(s, t, y, T, alpha, **mistake)
    verdict(capsys, False, fragment, exercises.check_kd_loss(fn))


@pytest.mark.parametrize("fn, fragment", [
    (None, "Not answered"),
    (kd(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 2.0, 0.5), "function itself"),
    (lambda s, t, y, T, alpha: float(kd(s, t, y, T, alpha).detach()), "0-d torch tensor"),
    (lambda s, t, y, T, alpha: kd(s, t, y, T, alpha).detach(), "backward() failed"),
    (lambda s, t, y, T, alpha: s.sum() * 0 + 1.0, "expected"),
    (lambda s, t, y: 0, "TypeError"),
])
def test_kd_loss_other_answers(capsys, fn, fragment):
    verdict(capsys, False, fragment, exercises.check_kd_loss(fn))


# --- 03: the soft gradient by hand -----------------------------------------------------------

@pytest.fixture
def logits():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(6, 10, generator=gen) * 3, torch.randn(6, 10, generator=gen) * 5


def test_soft_gradient_right_and_matches_autograd(capsys, logits):
    s, t = logits
    T, B = 4.0, len(s)
    grad = T * (torch.softmax(s / T, -1) - torch.softmax(t / T, -1)) / B
    verdict(capsys, True, "Right", exercises.check_soft_gradient(grad, s, t, T))
    z = s.clone().requires_grad_(True)
    losses.kd_loss(z, t, T=T).backward()
    torch.testing.assert_close(z.grad, grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("transform, fragment", [
    (lambda g, d, T, B, s, t: -g, "Wrong sign"),
    (lambda g, d, T, B, s, t: g * B, "divide by B"),
    (lambda g, d, T, B, s, t: d / (T * B), "multiply by T²"),
    (lambda g, d, T, B, s, t: T**2 * d / B, "chain rule"),
    (lambda g, d, T, B, s, t: T * (torch.softmax(s, -1) - torch.softmax(t, -1)) / B, "not at T = 1"),
    (lambda g, d, T, B, s, t: d / B, "Missing the factor T"),
    (lambda g, d, T, B, s, t: g[:3], "one entry per student"),
    (lambda g, d, T, B, s, t: g + 1, "Not the gradient"),
    (lambda g, d, T, B, s, t: None, "Not answered"),
])
def test_soft_gradient_mistakes(capsys, logits, transform, fragment):
    s, t = logits
    T, B = 4.0, len(s)
    d = torch.softmax(s / T, -1) - torch.softmax(t / T, -1)
    answer = transform(T * d / B, d, T, B, s, t)
    verdict(capsys, False, fragment, exercises.check_soft_gradient(answer, s, t, T))
