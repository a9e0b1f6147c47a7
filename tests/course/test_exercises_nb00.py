"""Self-checks of notebook 00 (the welcome): a right answer passes, each known mistake gets its
own hint."""
from __future__ import annotations

import pytest

from kdteach import metrics, models
from kdteach.exercises import nb00 as exercises

# Hinton's MNIST pair: 784-1200-1200-10 teacher, 784-800-800-10 student, weights + biases.
TEACHER = 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
STUDENT = 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10


def test_parameter_ratio_right_matches_metrics(verdict):
    assert metrics.parameters(models.hinton_teacher(), trainable_only=True) == TEACHER
    assert metrics.parameters(models.hinton_student(), trainable_only=True) == STUDENT
    verdict(True, "Right", exercises.check_parameter_ratio(TEACHER / STUDENT))
    verdict(True, "Right", exercises.check_parameter_ratio(round(TEACHER / STUDENT, 4)))


@pytest.mark.parametrize("answer, fragment", [
    (None, "Not answered"),
    (..., "Not answered"),
    (STUDENT / TEACHER, "student / teacher"),
    (2.0, "is off"),
])
def test_parameter_ratio_mistakes(verdict, answer, fragment):
    verdict(False, fragment, exercises.check_parameter_ratio(answer))
