"""Self-checks for notebook 09, the capstone comparing every method on one pair: a paired t
interval by hand, and the size ratio dynamic quantisation can reach.
"""
from __future__ import annotations

import math

import torch

from ..evidence import t_quantile
from ..quantize import predicted_ratio, quantized_fraction
from .feedback import as_number, close, feedback, is_unanswered, known_mistake, not_attempted


def check_paired_interval(answer, a, b) -> bool:
    """Exercise 9.1: the paired 95 % t interval of ``a − b`` in percentage points, ``(low,
    high)``, from per-seed accuracies ``a`` and ``b`` (fractions; ``a[i]`` and ``b[i]`` share
    seed ``i``): ``mean(d) ± t_{0.975, n-1} · s / sqrt(n)`` with ``d = 100 (a − b)`` and ``s``
    the sample standard deviation (``ddof=1``) — what :func:`kdteach.evidence.paired` computes.
    """
    if is_unanswered(answer):
        return not_attempted("set `answer = (low, high)`, the interval in percentage points.")
    if isinstance(answer, str) or not hasattr(answer, "__len__") or len(answer) != 2:
        return feedback(False, "answer must be a pair (low, high) of numbers.")
    low, high = (as_number(v, "low" if i == 0 else "high") for i, v in enumerate(answer))
    if low is None or high is None:
        return False
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if a.shape != b.shape or len(a) < 2:
        raise ValueError(f"a and b must hold one accuracy per seed for the same >= 2 seeds, got "
                         f"{len(a)} and {len(b)}")
    n = len(a)
    d = 100 * (a - b)
    mean, s = float(d.mean()), float(d.std(correction=1))
    t = t_quantile(0.975, n - 1)

    def around(centre, half):
        return (centre - half, centre + half)

    def same(p, q):
        return all(math.isclose(x, y, rel_tol=1e-3, abs_tol=1e-4) for x, y in zip(p, q))

    def is_(pair):
        return same((low, high), pair)

    expected = around(mean, t * s / math.sqrt(n))
    if is_(expected):
        return feedback(True, f"Right: {mean:+.2f} ± {t * s / math.sqrt(n):.2f} points, "
                        f"t = {t:.3f} with {n - 1} degrees of freedom.")
    s0 = float(d.std(correction=0))
    sa, sb = float((100 * a).std(correction=1)), float((100 * b).std(correction=1))
    wrong = [
        ((expected[0] / 100, expected[1] / 100),
         "That is in fractions; the question asks for percentage points (× 100)."),
        ((-expected[1], -expected[0]), "Wrong sign: the differences are a − b (KD − scratch), not b − a."),
        ((expected[1], expected[0]), "low and high are swapped: give (low, high)."),
        (around(mean, t * s0 / math.sqrt(n)),
         "You used the population standard deviation (ddof=0); the sample standard deviation "
         "divides by n − 1 (ddof=1)."),
        (around(mean, 1.96 * s / math.sqrt(n)),
         f"1.96 is the normal quantile; with {n} seeds use Student's t with {n - 1} degrees of "
         f"freedom ({t:.3f}): the interval must be wider, because s is itself estimated."),
        (around(mean, t_quantile(0.975, n) * s / math.sqrt(n)),
         f"Use n − 1 = {n - 1} degrees of freedom, not n."),
        (around(mean, t * s), "You forgot to divide by √n: the interval is for the mean "
         "difference, not for one seed's difference."),
        (around(mean, t * math.sqrt((sa ** 2 + sb ** 2) / n)),
         "That is the unpaired interval, from the two columns' own spreads. Each seed starts "
         "both methods from the same weights and batches: take the per-seed differences first "
         "— the noise the seeds share cancels in them."),
        (around(mean, t_quantile(0.975, 2 * n - 2) * math.sqrt((sa ** 2 + sb ** 2) / n)),
         "That is the unpaired interval, from the two columns' own spreads. Each seed starts "
         "both methods from the same weights and batches: take the per-seed differences first "
         "— the noise the seeds share cancels in them."),
    ]
    for pair, hint in wrong:  # a mistake is named only where it gives another interval
        if is_(pair) and not same(pair, expected):
            return feedback(False, hint)
    if math.isclose((low + high) / 2, mean, rel_tol=1e-3, abs_tol=1e-4):
        return feedback(False, f"The centre {mean:+.3f} is right but the width is off: the half-"
                        "width is t_{0.975, n-1} · s / √n with s from the differences (ddof=1).")
    return feedback(False, f"({low:.3f}, {high:.3f}) is off: the interval is centred on the mean "
                    f"of d = 100 (a − b), here {mean:+.3f} points.")


def check_quantized_ratio(answer, model) -> bool:
    """Exercise 9.2: the float / int8 size ratio dynamic quantisation can reach on ``model``
    when only its ``nn.Linear`` parameters go from 4 bytes to 1: ``1 / (f/4 + (1 - f))``."""
    if is_unanswered(answer):
        return not_attempted("set `ratio` to the predicted float size / quantised size.")
    value = as_number(answer, "ratio")
    if value is None:
        return False
    f, expected = quantized_fraction(model), predicted_ratio(model)
    if close(value, expected, rtol=2e-3):
        return feedback(True, f"Right: {100 * f:.1f}% of the parameters are in Linear layers, so "
                        f"at best {expected:.2f}× smaller — the float part caps the gain.")
    wrong = [
        (4.0, "4× holds only if every parameter is quantised; dynamic quantisation leaves the "
         "convolutions and batch norm in float32."),
        (1 / expected, "That is quantised / float; the question asks float / quantised (> 1)."),
        (f, "That is the fraction f of parameters in Linear layers; turn it into a size ratio: "
         "1 / (f/4 + (1 − f))."),
        (1 / (f + (1 - f) / 4), "You quantised the wrong part: the Linear fraction f goes to "
         "f/4, the rest (convolutions, batch norm) stays at full size."),
    ]
    hint = known_mistake(value, wrong, rtol=2e-3)
    if hint:
        return feedback(False, hint)
    return feedback(False, f"{value:.3f} is off. Count the parameters inside nn.Linear modules, "
                    "divide by all parameters to get f, then 1 / (f/4 + (1 − f)).")
