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


# --- 8.2 born-again ensemble -----------------------------------------------------------------

@pytest.fixture
def generations():
    """Generation 0 and two students of different confidence (logit scales 1, 3 and 0.4):
    averaging logits and averaging probabilities then give different predictions."""
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (400,), generator=g)
    z = torch.randn(3, 400, 4, generator=g) + 0.8 * F.one_hot(labels, 4)
    z = z * torch.tensor([1.0, 3.0, 0.4])[:, None, None]
    return z, labels


def _bane(z):
    return F.softmax(z[1:], -1).mean(0)


def test_bane_right(generations, says):
    z, y = generations
    says(exercises.check_bane_probs(_bane(z), z, y), True, "right", "accuracy")
    says(exercises.check_bane_probs(_bane(z).float().numpy(), z), True, "right")


@pytest.mark.parametrize("mistake, hint", [
    ("with_generation_0", "generation 0"), ("logits_averaged", "geometric mean"),
    ("both", "two slips"), ("mean_log_probs", "log-probabilities"), ("log_of_mean", "exp"),
    ("raw_logits", "apply softmax"), ("last_only", "last generation"), ("vote", "vote"),
    ("class_softmax_wrong_dim", "sum to 1"), ("not_reduced", "dim 0"), ("classes", "argmax"),
    ("one_number", "one number"), ("scaled", "off"),
])
def test_bane_mistakes(generations, says, mistake, hint):
    z, y = generations
    answer = {
        "with_generation_0": F.softmax(z, -1).mean(0),
        "logits_averaged": F.softmax(z[1:].mean(0), -1),
        "both": F.softmax(z.mean(0), -1),
        "mean_log_probs": F.log_softmax(z[1:], -1).mean(0),
        "log_of_mean": _bane(z).log(),
        "raw_logits": z[1:].mean(0),
        "last_only": F.softmax(z[-1], -1),
        "vote": F.one_hot(z[1:].argmax(-1), 4).float().mean(0),
        "class_softmax_wrong_dim": F.softmax(z[1:], 0).mean(0),
        "not_reduced": F.softmax(z[1:], -1),
        "classes": _bane(z).argmax(-1),
        "one_number": torch.tensor(0.7),
        "scaled": 0.5 * _bane(z) + 0.5 / 4,
    }[mistake]
    says(exercises.check_bane_probs(answer, z, y), False, hint)


def test_bane_tells_the_averages_apart_when_accuracies_tie(says):
    """The two students agree on every example's class but not on how sure they are: logit
    and probability averaging then have the same accuracy, and the check must still name
    the logit average (a check on the accuracy could not)."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(200, 5, generator=g)
    top = base.argmax(-1)
    boost = 4 * F.one_hot(top, 5)
    z = torch.stack([torch.randn(200, 5, generator=g), 3 * base + boost, 0.5 * base + boost])
    probs, logit_avg = _bane(z), F.softmax(z[1:].mean(0), -1)
    assert torch.equal(probs.argmax(-1), logit_avg.argmax(-1))  # same classes, same accuracy
    assert (probs - logit_avg).abs().max() > 1e-2                 # different probabilities
    says(exercises.check_bane_probs(logit_avg, z, top), False, "geometric mean")
    says(exercises.check_bane_probs(probs, z, top), True, "right")


def test_bane_unanswered_and_bad_input(generations, says):
    z, _ = generations
    says(exercises.check_bane_probs(None, z), False, "not answered")
    says(exercises.check_bane_probs("probs", z), False, "tensor or an array")
    with pytest.raises(ValueError, match="generation_logits"):
        exercises.check_bane_probs(_bane(z), z[0])
