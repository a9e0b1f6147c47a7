"""Self-checks for notebook 00, the welcome to the course: how much larger Hinton's MNIST
teacher is than its student.
"""
from __future__ import annotations

from .. import metrics
from ..models import hinton_student, hinton_teacher
from .feedback import close, feedback, is_unanswered, not_attempted


def check_parameter_ratio(ratio) -> bool:
    """Exercise 0.1: teacher / student parameter count of Hinton's MNIST pair."""
    if is_unanswered(ratio):
        return not_attempted("set `ratio` to teacher parameters / student parameters.")
    expected = (metrics.parameters(hinton_teacher(), trainable_only=True)
                / metrics.parameters(hinton_student(), trainable_only=True))
    weights_only = (784 * 1200 + 1200 * 1200 + 1200 * 10) / (784 * 800 + 800 * 800 + 800 * 10)
    if close(ratio, expected, rtol=1e-3):
        return feedback(True, f"Right: the teacher has {expected:.2f}× the student's parameters.")
    if close(ratio, 1 / expected, rtol=1e-3):
        return feedback(False, "That is student / teacher; the question asks teacher / student.")
    if close(ratio, weights_only, rtol=1e-3):
        return feedback(False, "Close — you counted the weights but forgot the biases (one per output).")
    return feedback(False, f"{ratio} is off. Sum inputs × outputs + outputs over the three layers "
                    "of each network, then divide.")
