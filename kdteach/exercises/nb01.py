"""Self-checks for notebook 01, softmax and temperature: a numerically stable softmax at
temperature T, the temperature that gives a runner-up a set probability, and distances
between probability vectors.
"""
from __future__ import annotations

import math

import torch

from .feedback import as_float64, close, feedback, is_unanswered, known_mistake, not_attempted


def check_stable_softmax(fn) -> bool:
    """Exercise 1.1: ``fn(z, T)`` is a numerically stable softmax of ``z / T`` over the last axis."""
    if is_unanswered(fn):
        return not_attempted("define `softmax_T(z, T)` and set `answer = softmax_T` (the function itself).")
    if not callable(fn):
        return feedback(False, "Pass the function itself (`answer = softmax_T`, no parentheses), "
                        "not a result.")
    z = torch.tensor([[2.0, 1.0, 0.1, -1.0], [0.5, 0.5, 3.0, 0.0]], dtype=torch.float64)
    big = torch.tensor([[1000.0, 999.0, 990.0, 0.0], [-1000.0, -1001.0, -1010.0, -2000.0]],
                       dtype=torch.float64)

    def call(x, T):
        return as_float64(fn(x.clone(), T))

    try:
        out = call(z, 2.0)
    except Exception as err:  # the learner's code: report, never raise
        return feedback(False, f"softmax_T(z, T) raised {type(err).__name__}: {err}. It receives a "
                        "torch tensor z of shape (B, K) and a number T, and returns a (B, K) tensor.")
    if out.shape != z.shape:
        return feedback(False, f"softmax_T returned shape {tuple(out.shape)} for input {tuple(z.shape)}; "
                        "it must return one probability per logit (same shape).")
    if not close(out, torch.softmax(z / 2.0, dim=-1)):
        wrong = [
            (torch.softmax(z, dim=-1), "T is ignored: divide the logits by T before exponentiating."),
            (torch.softmax(z * 2.0, dim=-1), "You multiply the logits by T; divide them: softmax(z / T)."),
            (torch.softmax(z, dim=-1) / 2.0, "You divide the probabilities by T; T divides the logits, "
             "before the exponential (the result must still sum to 1)."),
            (torch.softmax(z / 2.0, dim=0), "Each column sums to 1: normalise over the last axis "
             "(dim=-1, one distribution per row)."),
            (torch.log_softmax(z / 2.0, dim=-1), "These are log-probabilities; return probabilities "
             "(exponentiate)."),
        ]
        hint = known_mistake(out, wrong)
        if hint:
            return feedback(False, hint)
        return feedback(False, "The values are not softmax(z / T): exp(z_i / T) / sum_j exp(z_j / T), "
                        "row by row. Compare with torch.softmax(z / T, dim=-1).")
    try:
        out_big = call(big, 1.0)
        rows_ok = all(torch.isfinite(call(big[i:i + 1], 1.0)).all() for i in range(len(big)))
    except Exception as err:
        return feedback(False, f"softmax_T raised {type(err).__name__} on large logits: {err}")
    if not torch.isfinite(out_big).all():
        if rows_ok:
            return feedback(False, "Each row alone works but the batch gives NaN: you subtract one "
                            "maximum for the whole batch. Subtract each row's own maximum "
                            "(z.max(dim=-1, keepdim=True).values).")
        return feedback(False, "NaN or inf for logits like 1000: exp(1000) overflows. Subtract each "
                        "row's maximum first; softmax does not change when every logit of a row "
                        "moves by the same amount.")
    if not close(out_big, torch.softmax(big, dim=-1)):
        return feedback(False, "Finite but wrong on large logits; subtract each row's maximum "
                        "(keepdim=True so it broadcasts), then exponentiate and normalise.")
    return feedback(True, "Right: T divides the logits, each row sums to 1, and logits in the "
                    "thousands neither overflow nor underflow to 0/0.")


def check_pair_temperature(T, gap) -> bool:
    """Exercise 1.2: the temperature at which the runner-up of two classes whose logits
    differ by ``gap`` gets probability 0.25: ``1 / (1 + exp(gap / T)) = 1/4``, so
    ``T = gap / ln 3``."""
    if is_unanswered(T):
        return not_attempted("set `T_quarter` to the temperature (a positive number).")
    try:
        T = float(T)
    except (TypeError, ValueError):
        return feedback(False, f"T_quarter must be a number, got {type(T).__name__}.")
    gap = float(gap)
    expected = gap / math.log(3)
    if close(T, expected, rtol=1e-3):
        return feedback(True, f"Right: T = gap / ln 3 = {expected:.3f}. At that temperature the "
                        "teacher gives the runner-up odds of 1 to 3.")
    if close(T, gap / math.log(4), rtol=1e-3):
        return feedback(False, "You set the *ratio* q_runner-up / q_top to 1/4. A probability of "
                        "1/4 out of two classes means the other has 3/4: a ratio of 1/3.")
    if close(T, gap / math.log10(3), rtol=1e-3) or close(T, gap / math.log2(3), rtol=1e-3):
        return feedback(False, "Wrong logarithm: softmax uses exp, so take the natural log (math.log).")
    if close(T, gap * math.log(3), rtol=1e-3) or close(T, math.log(3) / gap, rtol=1e-3):
        return feedback(False, "The ratio is exp(-gap / T) = 1/3, so gap / T = ln 3: solve for T "
                        "(you inverted a fraction).")
    if T <= 0:
        return feedback(False, "A temperature must be positive.")
    return feedback(False, f"{T:.4g} is off. With two classes, q_runner-up = 1 / (1 + exp(gap / T)); "
                    "set it to 1/4 and solve for T.")


def check_distances(answer, p, q) -> bool:
    """Exercise 1.3: ``(L1, L2, L∞)`` norms of the difference ``p - q`` of two vectors."""
    if is_unanswered(answer):
        return not_attempted("set `answer = (l1, l2, linf)`, three numbers.")
    try:
        values = [float(v) for v in answer]
    except (TypeError, ValueError):
        return feedback(False, "answer must be three numbers (l1, l2, linf), e.g. a tuple of floats.")
    if len(values) != 3:
        return feedback(False, f"answer has {len(values)} numbers; give three: (l1, l2, linf).")
    d = as_float64(p).flatten() - as_float64(q).flatten()
    expected = [float(d.abs().sum()), float(d.pow(2).sum().sqrt()), float(d.abs().max())]
    ok = [close(a, e, rtol=1e-3, atol=1e-6) for a, e in zip(values, expected)]
    if all(ok):
        return feedback(True, "Right: L1 {:.3f} ≥ L2 {:.3f} ≥ L∞ {:.3f}, as it must be."
                        .format(*expected))
    if all(close(a, e, rtol=1e-3, atol=1e-6) for a, e in zip(sorted(values), sorted(expected))):
        return feedback(False, "The three numbers are right but in the wrong order: (l1, l2, linf).")
    msgs = []
    if not ok[0]:
        if close(values[0], float(d.sum()), rtol=1e-3, atol=1e-6):
            msgs.append("L1 is the sum of |p_i - q_i|: without the absolute value the differences "
                        "of two probability vectors cancel (both sum to 1), giving 0.")
        else:
            msgs.append("L1 should be sum |p_i - q_i|.")
    if not ok[1]:
        if close(values[1], expected[1] ** 2, rtol=1e-3, atol=1e-9):
            msgs.append("L2 is the square root of the sum of squares; you gave the squared norm.")
        else:
            msgs.append("L2 should be sqrt(sum (p_i - q_i)^2).")
    if not ok[2]:
        if close(values[2], float(d.max()), rtol=1e-3, atol=1e-6):
            msgs.append("L∞ is the largest *absolute* difference, max |p_i - q_i|; the largest "
                        "difference in size here is a negative one.")
        else:
            msgs.append("L∞ should be max |p_i - q_i|.")
    return feedback(False, " ".join(msgs))
