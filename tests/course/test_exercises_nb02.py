"""Self-checks of notebook 02 (teachers and students): a right answer passes, each known mistake
gets its own hint."""
from __future__ import annotations

import pytest
import torch

from kdteach import metrics, models
from kdteach.exercises import nb02 as exercises


# --- 02: FLOPs of the MLP student ----------------------------------------------------------------

STUDENT_MACS = 784 * 800 + 800 * 800 + 800 * 10
STUDENT_BIASES = 800 + 800 + 10
TEACHER_MACS = 784 * 1200 + 1200 * 1200 + 1200 * 10


def test_student_flops_right_matches_metrics(verdict):
    measured = metrics.flops(models.hinton_student(), torch.zeros(3, 1, 28, 28)) / 3
    assert measured == 2 * STUDENT_MACS
    verdict(True, "Right", exercises.check_student_flops(measured))
    verdict(True, "Right", exercises.check_student_flops(torch.tensor(2.0 * STUDENT_MACS)))


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
def test_student_flops_mistakes(verdict, answer, fragment):
    verdict(False, fragment, exercises.check_student_flops(answer))


# --- 02: FLOPs of the CNN student's first convolution ---------------------------------------------

CONV_MACS = 1 * 3 * 3 * 8 * 28 * 28


def test_conv_flops_right_matches_metrics(verdict):
    conv = models.cnn_student().stage1[0]
    measured = metrics.flops(conv, torch.zeros(2, 1, 28, 28)) / 2
    assert measured == 2 * CONV_MACS
    verdict(True, "Right", exercises.check_conv_flops(measured))


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
def test_conv_flops_mistakes(verdict, answer, fragment):
    verdict(False, fragment, exercises.check_conv_flops(answer))


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


def test_teacher_only_right_right(verdict):
    verdict(True, "Right", exercises.check_teacher_only_right(3, TEACHER, STUDENT, LABELS))
    verdict(True, "Right",
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
def test_teacher_only_right_mistakes(verdict, answer, fragment):
    verdict(False, fragment, exercises.check_teacher_only_right(answer, TEACHER, STUDENT, LABELS))


def test_teacher_only_right_all_student_errors(verdict):
    labels = torch.tensor([0, 0, 0, 0])
    teacher = _predictions_to_logits([0, 0, 1, 1], 2)  # right on 0, 1
    student = _predictions_to_logits([1, 1, 1, 0], 2)  # right on 3
    # right answer 2; student errors 3; exactly one right 3 (hinted first); differ 3
    verdict(True, "Right", exercises.check_teacher_only_right(2, teacher, student, labels))
    teacher = _predictions_to_logits([0, 0, 1, 0], 2)  # right on 0, 1, 3
    student = _predictions_to_logits([1, 1, 1, 1], 2)  # right on none
    # right 2; other direction 0; exactly one right 2 ... right wins; student errors 4
    # error difference: 4 - 1 = 3; predictions differ: 0, 1, 3 -> 3 (hinted before "all errors")
    verdict(False, "all the student's errors",
            exercises.check_teacher_only_right(4, teacher, student, labels))


def test_student_flops_rounded(verdict):
    verdict(True, "Right", exercises.check_student_flops(2.55e6))
    verdict(False, "multiply-adds (MACs)", exercises.check_student_flops(1.275e6))
