"""Self-checks for notebook 10, distilling a language model token by token: the
next-character loss of (B, L, V) logits (exercise 10.1), token-level distillation with
padding masked out (10.2) and the direction of the KL in a few lines of code (10.3).

Each check calls the learner's function on fixed float64 tensors (no training), compares
with the right value, and names the mistake when the value matches a known wrong one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .feedback import close, feedback, gradient_problem, is_unanswered, known_mistake, not_attempted

_RTOL, _ATOL = 1e-6, 1e-9


def _call(fn, name: str, *args):
    """``(value, None)`` from the learner's function, or ``(None, printed hint)``."""
    if not callable(fn):
        return None, feedback(False, f"Pass the function itself (`answer = {name}`), not its value.")
    try:
        value = fn(*args)
    except Exception as err:  # the learner's code: report, never raise
        return None, feedback(False, f"{name} raised {type(err).__name__}: {err}")
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        return None, feedback(False, f"{name} must return a single-number tensor (a 0-d torch "
                              "tensor), so that .backward() works; do not call .item().")
    return value, None


# --- Exercise 10.1: the next-character loss of (B, L, V) logits ----------------------------------

def _ce_case():
    """Logits (B, L, V) of a model that read ids[:, :-1], and the windows ids (B, L + 1)."""
    gen = torch.Generator().manual_seed(10)
    B, L, V = 3, 6, 7
    logits = 2 * torch.randn(B, L, V, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, V, (B, L + 1), generator=gen)
    return logits, ids


def check_next_char_loss(fn) -> bool:
    """Exercise 10.1: ``fn(logits, ids)`` is the mean next-character cross-entropy, in nats,
    over every position of every window: ``logits`` (B, L, V) were computed from
    ``ids[:, :-1]``, so position ``t`` predicts ``ids[:, t + 1]``."""
    if is_unanswered(fn):
        return not_attempted("define `next_char_loss(logits, ids)` and set "
                             "`answer = next_char_loss`.")
    logits, ids = _ce_case()
    B, L, V = logits.shape
    z = logits.clone().requires_grad_(True)
    value, hint = _call(fn, "next_char_loss", z, ids.clone())
    if hint is not None:
        return hint
    got = float(value.detach())

    def ce(lg, y, reduction="mean"):
        return float(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), y.reshape(-1), reduction=reduction))

    targets = ids[:, 1:]
    expected = ce(logits, targets)
    if not close(got, expected, rtol=_RTOL, atol=_ATOL):
        per_window_sum = float(F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                               reduction="none").view(B, L).sum(1).mean())
        wrong = [
            (expected / math.log(2),
             "That is in bits (divided by ln 2). The training loss is in nats, as F.cross_entropy "
             "returns it; bits per character is only how we report it."),
            (ce(logits, ids[:, :-1]), "The targets are the characters the model read, ids[:, :-1]: "
             "it would learn to copy its input. Position t predicts the *next* character, "
             "ids[:, t + 1], so the targets are ids[:, 1:]."),
            (ce(logits[:, :-1], ids[:, 2:]), "Shifted twice: the logits were computed from "
             "ids[:, :-1] already, so logits[:, t] lines up with ids[:, t + 1]; use all L positions "
             "of the logits with ids[:, 1:]."),
            (ce(logits[:, 1:], ids[:, 1:-1]), "Shifted the wrong way: logits[:, t] predicts "
             "ids[:, t + 1]; pair all the logits with ids[:, 1:]."),
            (ce(logits.transpose(0, 1), targets), "The rows of logits and targets are paired with "
             "different positions: logits.transpose(0, 1) flattens position-major while "
             "targets.flatten() is window-major. Flatten both the same way: logits.flatten(0, 1) "
             "(or .reshape(-1, V)) with targets.flatten()."),
            (ce(logits, targets, "sum"), "Summed over all B·L positions: the loss (and with SGD the "
             "step size) grows with the batch and the sequence length. Average: the mean over "
             "positions."),
            (per_window_sum, "Summed over each window's L positions (then averaged over windows): the "
             "loss grows with the length L. Average over every position instead."),
            (ce(logits[:, -1], targets[:, -1]), "Only the last position counts here. A language "
             "model predicts a next character at *every* position: use all L of them."),
            (ce(torch.softmax(logits, -1), targets), "Softmax applied before F.cross_entropy, which "
             "applies log_softmax itself: pass the logits."),
            (ce(logits, ids[:, 1:].flip(1)), "The targets run backwards: use ids[:, 1:]."),
        ]
        hint = known_mistake(got, wrong, rtol=_RTOL, atol=_ATOL)
        if hint:
            return feedback(False, hint)
        return feedback(False, f"Value {got:.6f}, expected {expected:.6f}: "
                        "F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).")
    problem = gradient_problem(value, z)
    if problem:
        return feedback(False, problem)
    return feedback(True, "Right: one row per position — logits.flatten(0, 1) (B·L, V) against "
                    "ids[:, 1:].flatten() (B·L,) — averaged over all B·L predictions.")


# --- Exercise 10.2: token-level KD with padding masked out ---------------------------------------

def _kd_case():
    """Student and teacher logits (B, L, V) and a mask (B, L): True at real tokens, the rest
    padding at the end of each window (different lengths)."""
    gen = torch.Generator().manual_seed(11)
    B, L, V = 4, 7, 9
    s = 2 * torch.randn(B, L, V, generator=gen, dtype=torch.float64)
    t = 3 * torch.randn(B, L, V, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 5, 3])
    mask = torch.arange(L)[None, :] < lengths[:, None]  # (B, L)
    return s, t, mask


def _kl_rows(p_logits, q_logits):
    """KL(softmax(p) || softmax(q)) per row, summed over the last dimension."""
    log_p, log_q = F.log_softmax(p_logits, -1), F.log_softmax(q_logits, -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def reference_masked_kd(student_logits, teacher_logits, mask):
    """The mean over real tokens of KL(p_t ‖ p_s): only the rows where ``mask`` is True
    count, each once (exercise 10.2's reference)."""
    s = student_logits.flatten(0, 1)[mask.flatten()]  # (N, V): the real positions only
    t = teacher_logits.detach().flatten(0, 1)[mask.flatten()]
    return _kl_rows(t, s).mean()


def check_masked_kd(fn) -> bool:
    """Exercise 10.2: ``fn(student_logits, teacher_logits, mask)`` with (B, L, V) logits and a
    (B, L) boolean ``mask`` (True at real tokens) is the mean over real tokens of the forward
    KL(p_t ‖ p_s) at T = 1; no gradient reaches the teacher."""
    if is_unanswered(fn):
        return not_attempted("define `masked_kd(student_logits, teacher_logits, mask)` and set "
                             "`answer = masked_kd`.")
    s, t, mask = _kd_case()
    s_req, t_req = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
    value, hint = _call(fn, "masked_kd", s_req, t_req, mask.clone())
    if hint is not None:
        return hint
    got = float(value.detach())
    expected = float(reference_masked_kd(s, t, mask))
    if not close(got, expected, rtol=_RTOL, atol=_ATOL):
        forward, reverse = _kl_rows(t, s), _kl_rows(s, t)  # (B, L) each
        m = mask.double()
        n_real, n_all, V = m.sum(), mask.numel(), s.shape[-1]
        wrong = [
            (forward.mean(), "Every position is averaged, padding included: the padded rows add "
             "divergences on characters that are not there, and the loss depends on how much "
             "padding the batch has. Keep only the rows where mask is True."),
            ((forward * m).sum() / n_all, "The padding is left out of the sum but not of the count: "
             "you divided by all B·L positions. Divide by the number of real tokens, mask.sum()."),
            ((forward * m).sum(), "Summed over the real tokens: the loss grows with the number of "
             "tokens in the batch. Divide by mask.sum()."),
            (((forward * m).sum(1) / m.sum(1)).mean(), "Averaged within each window, then over "
             "windows: a token of a short window weighs more than one of a long window. Average "
             "over the real tokens themselves: sum over them, divide by mask.sum()."),
            ((forward * m).sum(1).mean(), "Summed over each window's real tokens, then averaged "
             "over windows: the loss grows with the length. Divide the total by mask.sum()."),
            ((forward * ~mask).sum() / (~mask).sum(), "The mask is the wrong way round: it is True "
             "at real tokens, so this averages over the padding only."),
            ((reverse * m).sum() / n_real, "The KL is the reverse one, KL(p_s ‖ p_t), weighted by the "
             "student's probabilities. Token-level KD uses the forward KL(p_t ‖ p_s): in "
             "F.kl_div(input, target) the target is the teacher, the input the student's log-probs."),
            ((forward * m).sum() / (n_real * V), 'Also divided by the vocabulary size V: '
             'F.kl_div(..., reduction="mean") averages over every element. Use reduction="sum" '
             "over the real rows and divide by mask.sum() (or \"batchmean\" over the kept rows)."),
            (reverse.mean(), "Two mistakes: the reverse KL, KL(p_s ‖ p_t), and padding counted."),
            ((-(torch.softmax(t, -1) * F.log_softmax(s, -1)).sum(-1) * m).sum() / n_real,
             "That is the cross-entropy with the teacher's probabilities: same gradient, but its "
             "value exceeds the KL by the teacher's entropy. Use the KL (0 when the student "
             "matches the teacher)."),
        ]
        hint = known_mistake(got, wrong, rtol=_RTOL, atol=_ATOL)
        if hint:
            return feedback(False, hint)
        return feedback(False, f"Value {got:.6f}, expected {expected:.6f}. Keep the real rows "
                        "(logits.flatten(0, 1)[mask.flatten()]) and average KL(p_t ‖ p_s) over them.")
    problem = gradient_problem(value, s_req, t_req)
    if problem:
        return feedback(False, problem)
    return feedback(True, "Right: the forward KL averaged over the real tokens only; the padding "
                    "gets neither weight nor gradient, and the teacher no gradient.")


# --- Exercise 10.3: which KL does this code compute? ---------------------------------------------

#: Lines of code seen in distillation scripts. ``s`` and ``t`` are the student's and the
#: teacher's (N, V) logits; ``log_p_s``/``log_p_t`` their log_softmax, ``p_s``/``p_t`` their softmax.
SNIPPETS = {
    "a": 'F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean")',
    "b": 'F.kl_div(F.log_softmax(t, -1), F.softmax(s, -1), reduction="batchmean")',
    "c": "(p_s * (log_p_s - log_p_t)).sum(-1).mean()",
    "d": "-(p_t * log_p_s).sum(-1).mean()",
    "e": 'F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)',
    "f": "losses.generalized_jsd(s, t, beta=1.0)",
}

_DIRECTION = {"a": "forward", "b": "reverse", "c": "reverse", "d": "forward", "e": "forward",
              "f": "reverse"}

_WHY = {
    "a": "F.kl_div(input, target) computes KL(target ‖ input) = Σ target·(log target − input): "
         "the teacher is the target, so this is KL(p_t ‖ p_s), the forward KL of Hinton's KD.",
    "b": "F.kl_div(input, target) computes KL(target ‖ input); here the student's probabilities "
         "are the target, so this is KL(p_s ‖ p_t), the reverse KL (and since the teacher's "
         "log-probabilities are the input, watch that they are detached).",
    "c": "The expectation runs over the student's probabilities p_s: Σ p_s (log p_s − log p_t) "
         "is KL(p_s ‖ p_t), the reverse KL.",
    "d": "−Σ p_t log p_s is the cross-entropy of the student under the teacher's distribution: "
         "the forward KL plus the teacher's entropy, a constant. Same gradient as the forward KL.",
    "e": "With log_target=True the target is given as log-probabilities; it is still the target: "
         "KL(p_t ‖ p_s), forward.",
    "f": "In GKD's convention (and kdteach's), beta = 1 is exactly the reverse KL(p_s ‖ p_t); "
         "beta = 0 is the forward one.",
}


def check_kl_directions(answer) -> bool:
    """Exercise 10.3: ``answer`` maps each key of :data:`SNIPPETS` to ``"forward"``
    (KL(p_t ‖ p_s), up to a constant) or ``"reverse"`` (KL(p_s ‖ p_t))."""
    if is_unanswered(answer):
        return not_attempted('set `answer` to a dict such as {"a": "forward", "b": ..., ...}, '
                             f"one entry per snippet ({', '.join(SNIPPETS)}).")
    if not isinstance(answer, dict):
        return feedback(False, f"answer must be a dict from snippet letter to \"forward\" or "
                        f"\"reverse\", got {type(answer).__name__}.")
    missing = [k for k in SNIPPETS if k not in answer]
    extra = [k for k in answer if k not in SNIPPETS]
    if missing or extra:
        return feedback(False, f"answer needs exactly the keys {list(SNIPPETS)}; missing "
                        f"{missing}, unknown {extra}.")
    bad = {k: v for k, v in answer.items()
           if not isinstance(v, str) or v.strip().lower() not in ("forward", "reverse")}
    if bad:
        return feedback(False, f"each value must be \"forward\" or \"reverse\"; got {bad}.")
    wrong = [k for k in SNIPPETS if answer[k].strip().lower() != _DIRECTION[k]]
    if wrong:
        return feedback(False, f"{len(wrong)} of {len(SNIPPETS)} wrong. "
                        + " ".join(f"({k}) {SNIPPETS[k]} is {_DIRECTION[k]}: {_WHY[k]}"
                                   for k in wrong[:2])
                        + (" Look again at the others you marked." if len(wrong) > 2 else ""))
    return feedback(True, "Right: all six. The distribution the expectation runs over comes first "
                    "in KL(· ‖ ·); in F.kl_div(input, target) that is the target.")
