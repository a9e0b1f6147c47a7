"""Self-checks of notebook 08 (online and self-distillation): right answers pass, the usual
mistakes get their hint."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import losses
from kdteach.exercises import nb08 as exercises


# --- 8.1 DML loss ---------------------------------------------------------------------------

@pytest.fixture
def cohort():
    g = torch.Generator().manual_seed(0)
    return 2 * torch.randn(3, 6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)


def _kl(p_logits, q_logits):  # KL(softmax(p) || softmax(q)), batchmean
    return F.kl_div(F.log_softmax(q_logits, -1), F.log_softmax(p_logits, -1), log_target=True,
                    reduction="batchmean")


def test_dml_loss_right(cohort, says):
    z, y = cohort
    answer = losses.dml_loss(z[0], [z[1], z[2]], y)
    says(exercises.check_dml_loss(answer, z, y), True, "right")
    says(exercises.check_dml_loss(float(answer), z, y), True)


@pytest.mark.parametrize("mistake, hint", [
    ("reversed", "wrong way"), ("summed", "averages"), ("over_k", "K - 1"),
    ("no_ce", "add CE"), ("only_ce", "mean KL"), ("class_mean", "batchmean"),
])
def test_dml_loss_mistakes(cohort, says, mistake, hint):
    z, y = cohort
    ce = F.cross_entropy(z[0], y)
    kls = [_kl(z[l], z[0]) for l in (1, 2)]
    answer = {
        "reversed": ce + (_kl(z[0], z[1]) + _kl(z[0], z[2])) / 2,
        "summed": ce + sum(kls),
        "over_k": ce + sum(kls) / 3,
        "no_ce": sum(kls) / 2,
        "only_ce": ce,
        "class_mean": ce + sum(kls) / 2 / 5,
    }[mistake]
    says(exercises.check_dml_loss(answer, z, y), False, hint)


def test_dml_loss_unanswered_and_bad_types(cohort, says):
    z, y = cohort
    says(exercises.check_dml_loss(None, z, y), False, "not answered")
    says(exercises.check_dml_loss("1.0", z, y), False, "one number")
    says(exercises.check_dml_loss(123.0, z, y), False, "is off")


# --- 8.2 born-again ensemble accuracy --------------------------------------------------------

@pytest.fixture
def generations():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (400,), generator=g)
    # three noisy "generations" that lean towards the labels
    z = torch.randn(3, 400, 4, generator=g) * torch.tensor([0.5, 3.0, 1.0])[:, None, None]
    z = z + 0.8 * F.one_hot(labels, 4)
    return z, labels


def _acc(scores, labels):
    return float((scores.argmax(-1) == labels).float().mean())


def test_bane_right(generations, says):
    z, y = generations
    answer = _acc(F.softmax(z, -1).mean(0), y)
    says(exercises.check_bane_accuracy(answer, z, y), True, "right")


def test_bane_mistakes(generations, says):
    z, y = generations
    right = _acc(F.softmax(z, -1).mean(0), y)
    cases = [
        (100 * right, "percentage"),
        (_acc(z.mean(0), y), "logits"),
        (sum(_acc(g, y) for g in z) / 3, "mean of the generations"),
        (_acc(z[-1], y), "last generation"),
    ]
    distinct = [(a, h) for a, h in cases if abs(a - right) > 1e-6]
    assert len(distinct) >= 3  # the fixture separates the candidates
    for answer, hint in distinct:
        says(exercises.check_bane_accuracy(answer, z, y), False, hint)
    says(exercises.check_bane_accuracy(None, z, y), False, "not answered")
