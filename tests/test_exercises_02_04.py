"""Self-checks of notebooks 02 and 04: a right answer passes, each known mistake gets its own hint."""
from __future__ import annotations

import pytest
import torch

from kdteach import exercises, metrics, models


def verdict(capsys, ok_expected, fragment, result):
    out = capsys.readouterr().out
    assert result is ok_expected, out
    assert out.startswith("✓" if ok_expected else "✗"), out
    assert fragment in out, out


# --- 02: FLOPs of the MLP student ----------------------------------------------------------------

STUDENT_MACS = 784 * 800 + 800 * 800 + 800 * 10
STUDENT_BIASES = 800 + 800 + 10
TEACHER_MACS = 784 * 1200 + 1200 * 1200 + 1200 * 10


def test_student_flops_right_matches_metrics(capsys):
    measured = metrics.flops(models.hinton_student(), torch.zeros(3, 1, 28, 28)) / 3
    assert measured == 2 * STUDENT_MACS
    verdict(capsys, True, "Right", exercises.check_student_flops(measured))
    verdict(capsys, True, "Right", exercises.check_student_flops(torch.tensor(2.0 * STUDENT_MACS)))


@pytest.mark.parametrize("answer, fragment", [
    (None, "Not answered"),
    ("2.5M", "single number"),
    (True, "single number"),
    (STUDENT_MACS, "multiply-adds (MACs)"),
    (STUDENT_MACS + STUDENT_BIASES, "number of parameters"),
    (2 * STUDENT_MACS + STUDENT_BIASES, "leave out the bias additions"),
    (2 * STUDENT_MACS + 2 * STUDENT_BIASES, "leave out the biases"),
    (2 * 784 * 800, "first layer only"),
    (2 * TEACHER_MACS, "That is the teacher"),
    (TEACHER_MACS, "teacher's multiply-adds"),
    (12345, "is off"),
])
def test_student_flops_mistakes(capsys, answer, fragment):
    verdict(capsys, False, fragment, exercises.check_student_flops(answer))


# --- 02: FLOPs of the CNN student's first convolution ---------------------------------------------

CONV_MACS = 1 * 3 * 3 * 8 * 28 * 28


def test_conv_flops_right_matches_metrics(capsys):
    conv = models.cnn_student().stage1[0]
    measured = metrics.flops(conv, torch.zeros(2, 1, 28, 28)) / 2
    assert measured == 2 * CONV_MACS
    verdict(capsys, True, "Right", exercises.check_conv_flops(measured))


@pytest.mark.parametrize("answer, fragment", [
    (None, "Not answered"),
    ([1, 2], "single number"),
    (CONV_MACS, "number of multiply-adds"),
    (2 * 9 * 8 * 14 * 14, "14 × 14 size after max-pooling"),
    (9 * 8 * 14 * 14, "Two slips"),
    (2 * 9 * 8 * 26 * 26, "without padding"),
    (2 * 8 * 28 * 28, "left out the kernel"),
    (9 * 8, "number of weights"),
    (2 * 9 * 8, "one output position only"),
    (1.0, "is off"),
])
def test_conv_flops_mistakes(capsys, answer, fragment):
    verdict(capsys, False, fragment, exercises.check_conv_flops(answer))


# --- 02: images the teacher gets right and the student wrong ---------------------------------------

def _predictions_to_logits(pred, k=4):
    return torch.nn.functional.one_hot(torch.tensor(pred), k).float() * 5


# labels, teacher and student predictions chosen so that every wrong count differs from the right one
LABELS = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2])
TEACHER = _predictions_to_logits([0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3])  # right on 0..6, wrong on 7..10
STUDENT = _predictions_to_logits([1, 2, 3, 3, 0, 1, 2, 3, 2, 1, 3])  # right on 3..7 and 9
# teacher right & student wrong: 0, 1, 2 -> 3; student right & teacher wrong: 7, 9 -> 2
# exactly one right: 5; error difference: 5 - 4 = 1; predictions differ: 0,1,2,7,8,9 -> 6;
# student errors: 0, 1, 2, 8, 10 -> 5 (the same as "exactly one right", so that hint comes first)


def test_teacher_only_right_right(capsys):
    verdict(capsys, True, "Right", exercises.check_teacher_only_right(3, TEACHER, STUDENT, LABELS))
    verdict(capsys, True, "Right",
            exercises.check_teacher_only_right(torch.tensor(3), TEACHER, STUDENT, LABELS))


@pytest.mark.parametrize("answer, fragment", [
    (None, "Not answered"),
    ("three", "single number"),
    (2, "other direction"),
    (5, "both directions"),
    (1, "difference of the error counts"),
    (6, "predictions differ"),
    (9, "is off"),
])
def test_teacher_only_right_mistakes(capsys, answer, fragment):
    verdict(capsys, False, fragment, exercises.check_teacher_only_right(answer, TEACHER, STUDENT, LABELS))


def test_teacher_only_right_all_student_errors(capsys):
    labels = torch.tensor([0, 0, 0, 0])
    teacher = _predictions_to_logits([0, 0, 1, 1], 2)  # right on 0, 1
    student = _predictions_to_logits([1, 1, 1, 0], 2)  # right on 3
    # right answer 2; student errors 3; exactly one right 3 (hinted first); differ 3
    verdict(capsys, True, "Right", exercises.check_teacher_only_right(2, teacher, student, labels))
    teacher = _predictions_to_logits([0, 0, 1, 0], 2)  # right on 0, 1, 3
    student = _predictions_to_logits([1, 1, 1, 1], 2)  # right on none
    # right 2; other direction 0; exactly one right 2 ... right wins; student errors 4
    # error difference: 4 - 1 = 3; predictions differ: 0, 1, 3 -> 3 (hinted before "all errors")
    verdict(capsys, False, "all the student's errors",
            exercises.check_teacher_only_right(4, teacher, student, labels))


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


def test_matched_smoothing_right(capsys):
    logits, labels = _teacher_case()
    eps = _moved(logits, labels, 4.0) * 10 / 9
    verdict(capsys, True, "Right", exercises.check_matched_smoothing(eps, logits, labels, 4.0))
    verdict(capsys, True, "Right",
            exercises.check_matched_smoothing(torch.tensor(eps), logits, labels, 4.0))


def test_matched_smoothing_mistakes(capsys):
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
        verdict(capsys, False, fragment, exercises.check_matched_smoothing(answer, logits, labels, T))


# --- 04: ensemble soft targets -----------------------------------------------------------------------

def _members():
    return 2 * torch.randn(3, 6, 10, generator=torch.Generator().manual_seed(7))


def test_ensemble_soft_targets_right(capsys):
    z, T = _members(), 3.0
    answer = torch.stack([torch.softmax(m / T, -1) for m in z]).mean(0)
    verdict(capsys, True, "Right", exercises.check_ensemble_soft_targets(answer, z, T))


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
def test_ensemble_soft_targets_mistakes(capsys, make, fragment):
    z, T = _members(), 3.0
    verdict(capsys, False, fragment, exercises.check_ensemble_soft_targets(make(z, T), z, T))


def test_student_flops_rounded(capsys):
    verdict(capsys, True, "Right", exercises.check_student_flops(2.55e6))
    verdict(capsys, False, "multiply-adds (MACs)", exercises.check_student_flops(1.275e6))
