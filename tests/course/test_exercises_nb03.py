"""Self-checks of notebook 03 (Hinton's knowledge distillation): a right answer passes, each
known mistake gets its own hint."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import losses
from kdteach.exercises import nb03 as exercises


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


def test_kd_loss_right(verdict):
    verdict(True, "Right", exercises.check_kd_loss(kd))
    verdict(True, "Right", exercises.check_kd_loss(
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
def test_kd_loss_mistakes(verdict, mistake, fragment):
    def fn(s, t, y, T, alpha):
        return kd(s, t, y, T, alpha, **mistake)
    verdict(False, fragment, exercises.check_kd_loss(fn))


@pytest.mark.parametrize("fn, fragment", [
    (None, "Not answered"),
    (kd(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 2.0, 0.5), "function itself"),
    (lambda s, t, y, T, alpha: float(kd(s, t, y, T, alpha).detach()), "0-d torch tensor"),
    (lambda s, t, y, T, alpha: kd(s, t, y, T, alpha).detach(), "backward() failed"),
    (lambda s, t, y, T, alpha: s.sum() * 0 + 1.0, "expected"),
    (lambda s, t, y: 0, "TypeError"),
])
def test_kd_loss_other_answers(verdict, fn, fragment):
    verdict(False, fragment, exercises.check_kd_loss(fn))


# --- 03: the soft gradient by hand -----------------------------------------------------------

@pytest.fixture
def logits():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(6, 10, generator=gen) * 3, torch.randn(6, 10, generator=gen) * 5


def test_soft_gradient_right_and_matches_autograd(verdict, logits):
    s, t = logits
    T, B = 4.0, len(s)
    grad = T * (torch.softmax(s / T, -1) - torch.softmax(t / T, -1)) / B
    verdict(True, "Right", exercises.check_soft_gradient(grad, s, t, T))
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
def test_soft_gradient_mistakes(verdict, logits, transform, fragment):
    s, t = logits
    T, B = 4.0, len(s)
    d = torch.softmax(s / T, -1) - torch.softmax(t / T, -1)
    answer = transform(T * d / B, d, T, B, s, t)
    verdict(False, fragment, exercises.check_soft_gradient(answer, s, t, T))
