"""Self-checks of notebook 09 (the capstone): right answers pass, the usual mistakes get their
hint."""
from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from kdteach import evidence, models
from kdteach.exercises import nb09 as exercises


# --- 9.1 a paired interval by hand ---------------------------------------------------------

KD = np.array([0.812, 0.805, 0.821, 0.809, 0.815])
SCRATCH = np.array([0.806, 0.801, 0.809, 0.807, 0.806])


def _interval(half_width_from):
    d = 100 * (KD - SCRATCH)
    half = half_width_from(d)
    return (d.mean() - half, d.mean() + half)


def _t(df):
    return evidence.t_quantile(0.975, df)


def test_paired_interval_right(says):
    right = _interval(lambda d: _t(4) * d.std(ddof=1) / np.sqrt(5))
    says(exercises.check_paired_interval(right, KD, SCRATCH), True, "right", "4 degrees")
    c = evidence.paired(KD, SCRATCH)
    says(exercises.check_paired_interval((c.low, c.high), KD, SCRATCH), True, "right")
    says(exercises.check_paired_interval(list(map(float, right)), list(KD), list(SCRATCH)), True)


@pytest.mark.parametrize("mistake, hint", [
    ("fraction", "percentage points"), ("sign", "wrong sign"), ("swapped", "swapped"),
    ("ddof0", "ddof=1"), ("normal", "1.96"), ("df_n", "n − 1 = 4"), ("no_sqrt_n", "√n"),
    ("unpaired", "unpaired"), ("unpaired_df", "unpaired"), ("width", "width is off"),
    ("centre", "is off"),
])
def test_paired_interval_mistakes(says, mistake, hint):
    a, b = 100 * KD, 100 * SCRATCH
    right = _interval(lambda d: _t(4) * d.std(ddof=1) / np.sqrt(5))
    pooled = np.sqrt((a.std(ddof=1) ** 2 + b.std(ddof=1) ** 2) / 5)
    answer = {
        "fraction": (right[0] / 100, right[1] / 100),
        "sign": (-right[1], -right[0]),
        "swapped": (right[1], right[0]),
        "ddof0": _interval(lambda d: _t(4) * d.std(ddof=0) / np.sqrt(5)),
        "normal": _interval(lambda d: 1.96 * d.std(ddof=1) / np.sqrt(5)),
        "df_n": _interval(lambda d: _t(5) * d.std(ddof=1) / np.sqrt(5)),
        "no_sqrt_n": _interval(lambda d: _t(4) * d.std(ddof=1)),
        "unpaired": _interval(lambda d: _t(4) * pooled),
        "unpaired_df": _interval(lambda d: _t(8) * pooled),
        "width": _interval(lambda d: 2 * _t(4) * d.std(ddof=1) / np.sqrt(5)),
        "centre": (right[0] + 0.5, right[1] + 0.5),
    }[mistake]
    says(exercises.check_paired_interval(answer, KD, SCRATCH), False, hint)


def test_paired_interval_bad_answers(says):
    says(exercises.check_paired_interval(None, KD, SCRATCH), False, "not answered")
    says(exercises.check_paired_interval(0.5, KD, SCRATCH), False, "pair")
    says(exercises.check_paired_interval("ab", KD, SCRATCH), False, "pair")
    says(exercises.check_paired_interval((0.1, "x"), KD, SCRATCH), False, "one number")
    with pytest.raises(ValueError, match="one accuracy per seed"):
        exercises.check_paired_interval((0.0, 1.0), KD, SCRATCH[:3])


# --- 9.2 quantised size ratio ---------------------------------------------------------------

def test_quantized_ratio(says):
    model = models.cnn_student()
    linear = sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear)
                 for p in m.parameters())
    f = linear / sum(p.numel() for p in model.parameters())
    right = 1 / (f / 4 + 1 - f)
    says(exercises.check_quantized_ratio(right, model), True, "right")
    for answer, hint in [(4.0, "every parameter"), (1 / right, "float / quantised"),
                         (f, "fraction"), (1 / (f + (1 - f) / 4), "wrong part"),
                         (2.0, "is off"), (None, "not answered")]:
        says(exercises.check_quantized_ratio(answer, model), False, hint)
