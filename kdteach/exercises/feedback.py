"""What every notebook's self-checks share: the ✓/✗ verdict, the "not answered yet" reminder,
close-enough comparison of numbers and tensors, the lookup of a known mistake's hint, and
turning an answer into a float64 tensor or a single number.

A ``check_*`` function prints one verdict line, through :func:`feedback` (or
:func:`not_attempted`), and returns its ``True``/``False``; it never raises for a wrong
answer.
"""
from __future__ import annotations

import torch

__all__ = ["as_float64", "as_number", "close", "feedback", "gradient_problem", "is_unanswered",
           "known_mistake", "not_attempted"]


def is_unanswered(answer) -> bool:
    """Whether the learner has not answered yet: the answer is still ``None`` or ``...``."""
    return answer is None or answer is Ellipsis


def feedback(ok: bool, message: str) -> bool:
    """Print ``message`` marked as a pass or a hint; return ``ok``."""
    print(("✓ " if ok else "✗ ") + message)
    return ok


def not_attempted(what: str) -> bool:
    """Print the "Not answered yet" reminder, ``what`` saying what to set; return ``False``."""
    return feedback(False, f"Not answered yet: {what}")


def close(answer, expected, *, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Whether ``answer`` matches ``expected`` (numbers or tensors) within tolerance."""
    a = torch.as_tensor(answer, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    return a.shape == e.shape and bool(torch.allclose(a, e, rtol=rtol, atol=atol))


def known_mistake(answer, mistakes, **tolerance) -> str | None:
    """The hint of the first ``(wrong value, hint)`` in ``mistakes`` that ``answer`` matches
    (by :func:`close`, with ``tolerance``), or ``None`` if it matches none of them."""
    return next((hint for wrong, hint in mistakes if close(answer, wrong, **tolerance)), None)


def as_float64(x) -> torch.Tensor:
    """``x`` (a tensor, array, list or number) as a float64 tensor, detached from any graph."""
    return torch.as_tensor(x.detach() if isinstance(x, torch.Tensor) else x, dtype=torch.float64)


def as_number(answer, what: str):
    """``answer`` as a float, or ``None`` after printing why it is not one number."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        feedback(False, f"{what} must be one number, got {type(answer).__name__}; convert a 0-d "
                 "tensor with float(...).")
        return None
    return float(answer)


def gradient_problem(value: torch.Tensor, student: torch.Tensor,
                     teacher: torch.Tensor | None = None) -> str | None:
    """Run ``value.backward()`` for a loss whose value is already right and say what is wrong
    with its gradients, or ``None``: ``student`` (a leaf that requires grad) must get one,
    ``teacher`` (a leaf that requires grad, or ``None``) must get none — the teacher is fixed."""
    try:
        value.backward()
    except RuntimeError as err:
        return (f"The value is right but backward() failed ({err}); keep the student's logits in "
                "the graph (no .detach(), no .item()).")
    if teacher is not None and teacher.grad is not None and float(teacher.grad.abs().max()) > 0:
        return ("The value is right, but gradient flows into the teacher's logits. Detach them "
                "(teacher_logits.detach()): the teacher is fixed.")
    if student.grad is None or float(student.grad.abs().sum()) == 0:
        return "The value is right but no gradient reaches the student's logits."
    return None
