"""Self-checks for notebook 11, sequence-level and on-policy distillation: the two ends of the
generalized JSD, the KL direction of a line of code, and which positions an on-policy loss
may count.
"""
from __future__ import annotations

import torch

from .feedback import feedback, is_unanswered, not_attempted

_NAMES = ("forward", "reverse", "zero")


def check_jsd_endpoints(answer) -> bool:
    """Exercise 11.1: what ``losses.generalized_jsd(s, t, beta=b)`` returns at ``b = 0`` and at
    ``b = 1``, each one of ``"forward"`` (KL(p_t ‖ p_s)), ``"reverse"`` (KL(p_s ‖ p_t)) or
    ``"zero"``: ``answer = (at_0, at_1)``."""
    if is_unanswered(answer):
        return not_attempted("set `answer = (at_beta_0, at_beta_1)`, e.g. ('forward', 'zero').")
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return feedback(False, "answer must be a pair: (what beta=0 gives, what beta=1 gives).")
    at0, at1 = (str(a).strip().lower() for a in answer)
    bad = [a for a in (at0, at1) if a not in _NAMES]
    if bad:
        return feedback(False, f"{bad[0]!r} is not one of {_NAMES}.")
    if (at0, at1) == ("forward", "reverse"):
        return feedback(True, "Right: β = 0 is the forward KL(p_t ‖ p_s), kd_loss's soft term "
                        "(mode-covering); β = 1 the reverse KL(p_s ‖ p_t) (mode-seeking).")
    if (at0, at1) == ("reverse", "forward"):
        return feedback(False, "Swapped. β weights the teacher in the mixture m = β·p_t + "
                        "(1 − β)·p_s; near β = 0, m ≈ p_s and JSD/β → KL(p_t ‖ p_s), the forward "
                        "KL. β = 1 is the reverse end.")
    if "zero" in (at0, at1):
        return feedback(False, "The formula itself is 0 at both ends (m equals one of the two "
                        "distributions, and its weight in front is 0), but a loss that is always "
                        "0 teaches nothing: the endpoints are defined as the limits of JSD/β and "
                        "JSD/(1 − β) — two KLs. Which ones?")
    return feedback(False, "The two ends are different divergences: one is the forward KL, the "
                    "other the reverse KL.")


#: Exercise 11.2's snippets: ``s`` and ``t`` are the student's and teacher's logits (N, V).
SNIPPETS = {
    "a": "F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction='batchmean')",
    "b": "F.kl_div(F.log_softmax(t, -1), F.softmax(s, -1), reduction='batchmean')",
    "c": "(F.softmax(s, -1) * (F.log_softmax(s, -1) - F.log_softmax(t, -1))).sum(-1).mean()",
    "d": "F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), reduction='batchmean', "
         "log_target=True)",
}
_DIRECTIONS = {"a": "forward", "b": "reverse", "c": "reverse", "d": "forward"}


def check_kl_direction(answer) -> bool:
    """Exercise 11.2: for each snippet of :data:`SNIPPETS`, ``"forward"`` (KL(p_t ‖ p_s)) or
    ``"reverse"`` (KL(p_s ‖ p_t)): ``answer = {"a": ..., "b": ..., "c": ..., "d": ...}``."""
    if is_unanswered(answer):
        return not_attempted("set `answer = {'a': 'forward' or 'reverse', 'b': ..., 'c': ..., "
                             "'d': ...}`.")
    if not isinstance(answer, dict) or set(answer) != set(SNIPPETS):
        return feedback(False, f"answer must be a dict with one entry per snippet: keys "
                        f"{sorted(SNIPPETS)}.")
    given = {k: str(v).strip().lower() for k, v in answer.items()}
    bad = [k for k, v in given.items() if v not in ("forward", "reverse")]
    if bad:
        return feedback(False, f"snippet {bad[0]}: answer 'forward' or 'reverse', got "
                        f"{answer[bad[0]]!r}.")
    wrong = sorted(k for k in SNIPPETS if given[k] != _DIRECTIONS[k])
    if not wrong:
        return feedback(True, "Right: F.kl_div(input, target) is KL(target ‖ exp(input)) — the "
                        "average is taken under the *target*; the explicit sum in (c) is taken "
                        "under p_s, so it is the reverse KL.")
    if wrong == ["c"]:
        return feedback(False, "Snippet c: the sum is weighted by p_s (the student's "
                        "probabilities) — an average under the student, KL(p_s ‖ p_t).")
    if set(wrong) <= {"a", "b", "d"} and set(wrong) & {"a", "b"}:
        return feedback(False, f"Snippet(s) {', '.join(wrong)}: F.kl_div's first argument is the "
                        "log of the distribution *inside* the log (the one measured), the second "
                        "is the one the average is taken under: F.kl_div(log q, p) = KL(p ‖ q).")
    return feedback(False, f"Snippet(s) {', '.join(wrong)} are wrong. With log_target=True the "
                    "target is a log-probability too, but it is still the distribution the "
                    "average is taken under.")


def check_prompt_mask(select, prompt_len: int = 4) -> bool:
    """Exercise 11.3: ``select(logits, prompt_len)`` takes a student's logits (B, L, V) on
    sequences that are ``prompt_len`` prompt characters followed by a continuation (the
    logits at position i predict character i + 1), and returns (N, V): the rows at exactly
    the positions that predict a continuation character, batch-major."""
    if is_unanswered(select):
        return not_attempted("define `select(logits, prompt_len)` returning (N, V) rows.")
    if not callable(select):
        return feedback(False, "select must be a function select(logits, prompt_len).")
    b, length, v = 3, 10, 5
    logits = torch.arange(b * length, dtype=torch.float32).view(b, length, 1).repeat(1, 1, v)
    logits[..., 1] = torch.arange(length, dtype=torch.float32)  # column 1: the position
    try:
        rows = select(logits.clone(), prompt_len)
    except Exception as err:  # noqa: BLE001 — a learner's bug is reported, not raised
        return feedback(False, f"select raised {type(err).__name__}: {err}")
    if not isinstance(rows, torch.Tensor) or rows.dim() != 2 or rows.shape[1] != v:
        shape = tuple(rows.shape) if isinstance(rows, torch.Tensor) else type(rows).__name__
        return feedback(False, f"select must return a 2-D tensor (N, V) = (N, {v}), got {shape}; "
                        "flatten batch and position: logits[:, a:b].flatten(0, 1).")
    right = logits[:, prompt_len - 1:].flatten(0, 1)
    if rows.shape == right.shape and torch.equal(rows, right):
        return feedback(True, f"Right: positions {prompt_len - 1} … {length - 1} — the last "
                        "prompt position already predicts the first continuation character.")
    positions = sorted(set(rows[:, 1].long().tolist())) if rows.numel() else []
    if len(rows) == b * length:
        return feedback(False, "Every position is counted: the prompt came from the data, not "
                        "from the student — its positions must be masked out of the loss.")
    if positions and positions[0] == prompt_len:
        return feedback(False, f"Off by one: logits at position {prompt_len - 1} (the last "
                        "prompt character) predict the first continuation character; start "
                        "there.")
    if positions and positions[0] == prompt_len - 2:
        return feedback(False, f"Off by one: position {prompt_len - 2} predicts the last *prompt* "
                        "character, which is data; start one later.")
    if positions and positions[-1] < prompt_len:
        return feedback(False, "Those are the prompt's positions — the ones to leave out.")
    if len(rows) == len(right) and torch.equal(rows.sort(0).values, right.sort(0).values):
        return feedback(False, "The right rows in the wrong order: keep the batch first "
                        "(logits[:, a:].flatten(0, 1)), so row n pairs with the teacher's row n.")
    return feedback(False, f"Expected the rows at positions {prompt_len - 1} … {length - 1} of "
                    "every sequence, flattened batch-major.")
