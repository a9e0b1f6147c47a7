"""Self-checks for notebook 09, the capstone comparing every method on one pair: the best
method's gain over scratch, and the size ratio dynamic quantisation can reach.
"""
from __future__ import annotations

from ..quantize import predicted_ratio, quantized_fraction
from .feedback import as_number, close, feedback, is_unanswered, known_mistake, not_attempted


def check_best_method(answer, table) -> bool:
    """Exercise 9.1: from ``table`` ({method: [test accuracy per seed]}), the distillation
    method (any row but ``"scratch"``) with the highest *mean* accuracy, and its gain over
    ``"scratch"`` in percentage points (negative if it trails): ``(method, gain_pp)``."""
    if is_unanswered(answer):
        return not_attempted("set `answer = (method, gain_pp)`, e.g. ('KD', 0.8).")
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return feedback(False, "answer must be a pair (method name, gain in percentage points).")
    method, gain = answer
    gain = as_number(gain, "gain_pp")
    if gain is None:
        return False
    mean = {m: sum(v) / len(v) for m, v in table.items()}
    methods = [m for m in table if m != "scratch"]
    best = max(methods, key=lambda m: mean[m])
    if method not in table:
        return feedback(False, f"{method!r} is not a row of the table; the rows are {list(table)}.")
    if method == "scratch":
        return feedback(False, "scratch is the baseline, not a distillation method; pick the best "
                        "of the other rows.")
    by_single_seed = max(methods, key=lambda m: max(table[m]))
    if method != best:
        if method == by_single_seed:
            return feedback(False, f"{method} has the best single seed, but one lucky seed is not "
                            "a result: rank by the mean over seeds.")
        return feedback(False, f"{method} is not the best by mean accuracy; compare the means of "
                        "every row except scratch.")
    expected = 100 * (mean[best] - mean["scratch"])
    if close(gain, expected, rtol=1e-3, atol=1e-6):
        return feedback(True, f"Right: {best}, {expected:+.2f} points over scratch (mean of "
                        f"{len(table[best])} seeds each).")
    if close(gain, expected / 100, rtol=1e-3, atol=1e-8):
        return feedback(False, "That is a fraction; the question asks for percentage points "
                        "(multiply by 100).")
    if close(gain, -expected, rtol=1e-3, atol=1e-6):
        return feedback(False, "Wrong sign: the gain is best − scratch.")
    if close(gain, 100 * (max(table[best]) - max(table["scratch"])), rtol=1e-3, atol=1e-6):
        return feedback(False, "You compared the best seeds; compare the means over seeds.")
    return feedback(False, f"The method is right but {gain:.3f} points is off: 100 × (mean of "
                    f"{best}'s accuracies − mean of scratch's).")


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
