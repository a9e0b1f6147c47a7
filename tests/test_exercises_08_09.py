"""Self-checks of notebooks 08 and 09: right answers pass, the usual mistakes get their hint."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdteach import exercises, losses, models


def _says(capsys, ok, expected_ok, *needles):
    out = capsys.readouterr().out
    assert ok is expected_ok, out
    assert out.startswith("✓" if expected_ok else "✗"), out
    for needle in needles:
        assert needle.lower() in out.lower(), out


# --- 8.1 DML loss ---------------------------------------------------------------------------

@pytest.fixture
def cohort():
    g = torch.Generator().manual_seed(0)
    return 2 * torch.randn(3, 6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)


def _kl(p_logits, q_logits):  # KL(softmax(p) || softmax(q)), batchmean
    return F.kl_div(F.log_softmax(q_logits, -1), F.log_softmax(p_logits, -1), log_target=True,
                    reduction="batchmean")


def test_dml_loss_right(cohort, capsys):
    z, y = cohort
    answer = losses.dml_loss(z[0], [z[1], z[2]], y)
    _says(capsys, exercises.check_dml_loss(answer, z, y), True, "right")
    _says(capsys, exercises.check_dml_loss(float(answer), z, y), True)


@pytest.mark.parametrize("mistake, hint", [
    ("reversed", "wrong way"), ("summed", "averages"), ("over_k", "K - 1"),
    ("no_ce", "add CE"), ("only_ce", "mean KL"), ("class_mean", "batchmean"),
])
def test_dml_loss_mistakes(cohort, capsys, mistake, hint):
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
    _says(capsys, exercises.check_dml_loss(answer, z, y), False, hint)


def test_dml_loss_unanswered_and_bad_types(cohort, capsys):
    z, y = cohort
    _says(capsys, exercises.check_dml_loss(None, z, y), False, "not answered")
    _says(capsys, exercises.check_dml_loss("1.0", z, y), False, "one number")
    _says(capsys, exercises.check_dml_loss(123.0, z, y), False, "is off")


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


def test_bane_right(generations, capsys):
    z, y = generations
    answer = _acc(F.softmax(z, -1).mean(0), y)
    _says(capsys, exercises.check_bane_accuracy(answer, z, y), True, "right")


def test_bane_mistakes(generations, capsys):
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
        _says(capsys, exercises.check_bane_accuracy(answer, z, y), False, hint)
    _says(capsys, exercises.check_bane_accuracy(None, z, y), False, "not answered")


# --- 9.1 best method -------------------------------------------------------------------------

TABLE = {"scratch": [0.80, 0.82], "KD": [0.83, 0.83], "AT": [0.79, 0.85], "SP": [0.81, 0.81]}


def test_best_method_right(capsys):
    _says(capsys, exercises.check_best_method(("KD", 2.0), TABLE), True, "KD")


@pytest.mark.parametrize("answer, hint", [
    (("AT", 1.0), "single seed"), (("SP", 0.0), "not the best"), (("scratch", 0.0), "baseline"),
    (("FitNets", 1.0), "not a row"), (("KD", 0.02), "percentage points"), (("KD", -2.0), "sign"),
    (("KD", 1.5), "is off"), (("KD", "two"), "one number"), ("KD", "pair"),
])
def test_best_method_mistakes(capsys, answer, hint):
    _says(capsys, exercises.check_best_method(answer, TABLE), False, hint)


def test_best_method_compares_means_not_best_seeds(capsys):
    table = {"scratch": [0.79, 0.85], "KD": [0.83, 0.83]}
    _says(capsys, exercises.check_best_method(("KD", -2.0), table), False, "best seeds")
    _says(capsys, exercises.check_best_method(None, table), False, "not answered")


# --- 9.2 quantised size ratio ---------------------------------------------------------------

def test_quantized_ratio(capsys):
    model = models.cnn_student()
    linear = sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear)
                 for p in m.parameters())
    f = linear / sum(p.numel() for p in model.parameters())
    right = 1 / (f / 4 + 1 - f)
    _says(capsys, exercises.check_quantized_ratio(right, model), True, "right")
    for answer, hint in [(4.0, "every parameter"), (1 / right, "float / quantised"),
                         (f, "fraction"), (1 / (f + (1 - f) / 4), "wrong part"),
                         (2.0, "is off"), (None, "not answered")]:
        _says(capsys, exercises.check_quantized_ratio(answer, model), False, hint)
