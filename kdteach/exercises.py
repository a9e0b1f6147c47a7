"""Self-checks for the notebooks' exercises.

Each ``check_*`` function takes the learner's answer, prints what is right or — more
usefully — what is wrong and why, and returns ``True`` or ``False``. It never raises for a
wrong answer, so a learner can try again; an unanswered exercise (``None`` or ``...``)
prints a reminder. The hidden solution cells call ``assert check_…(solution)``.
"""
from __future__ import annotations

import torch


def _unanswered(answer) -> bool:
    return answer is None or answer is Ellipsis


def feedback(ok: bool, message: str) -> bool:
    """Print ``message`` marked as a pass or a hint; return ``ok``."""
    print(("✓ " if ok else "✗ ") + message)
    return ok


def not_attempted(what: str) -> bool:
    return feedback(False, f"Not answered yet: {what}")


def close(answer, expected, *, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Whether ``answer`` matches ``expected`` (numbers or tensors) within tolerance."""
    a = torch.as_tensor(answer, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    return a.shape == e.shape and bool(torch.allclose(a, e, rtol=rtol, atol=atol))


# --- 00 Welcome --------------------------------------------------------------------------

def check_parameter_ratio(ratio) -> bool:
    """Exercise 0.1: teacher / student parameter count of Hinton's MNIST pair."""
    from .models import count_parameters, hinton_student, hinton_teacher

    if _unanswered(ratio):
        return not_attempted("set `ratio` to teacher parameters / student parameters.")
    expected = count_parameters(hinton_teacher()) / count_parameters(hinton_student())
    weights_only = (784 * 1200 + 1200 * 1200 + 1200 * 10) / (784 * 800 + 800 * 800 + 800 * 10)
    if close(ratio, expected, rtol=1e-3):
        return feedback(True, f"Right: the teacher has {expected:.2f}× the student's parameters.")
    if close(ratio, 1 / expected, rtol=1e-3):
        return feedback(False, "That is student / teacher; the question asks teacher / student.")
    if close(ratio, weights_only, rtol=1e-3):
        return feedback(False, "Close — you counted the weights but forgot the biases (one per output).")
    return feedback(False, f"{ratio} is off. Sum inputs × outputs + outputs over the three layers "
                    "of each network, then divide.")

# --- 01 Softmax and temperature ----------------------------------------------------------

# --- 02 Teachers and students ------------------------------------------------------------

# --- 03 Hinton KD ------------------------------------------------------------------------

# --- 04 Dark-knowledge experiments -------------------------------------------------------

# --- 05 FitNets hints --------------------------------------------------------------------

# --- 06 Attention transfer ---------------------------------------------------------------

# --- 07 Relational KD --------------------------------------------------------------------

# --- 08 Online and self-distillation -----------------------------------------------------

# --- 09 Capstone -------------------------------------------------------------------------
