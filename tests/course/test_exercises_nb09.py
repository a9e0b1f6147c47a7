"""Self-checks of notebook 09 (the capstone): right answers pass, the usual mistakes get their
hint."""
from __future__ import annotations

import pytest
from torch import nn

from kdteach import models
from kdteach.exercises import nb09 as exercises


# --- 9.1 best method -------------------------------------------------------------------------

TABLE = {"scratch": [0.80, 0.82], "KD": [0.83, 0.83], "AT": [0.79, 0.85], "SP": [0.81, 0.81]}


def test_best_method_right(says):
    says(exercises.check_best_method(("KD", 2.0), TABLE), True, "KD")


@pytest.mark.parametrize("answer, hint", [
    (("AT", 1.0), "single seed"), (("SP", 0.0), "not the best"), (("scratch", 0.0), "baseline"),
    (("FitNets", 1.0), "not a row"), (("KD", 0.02), "percentage points"), (("KD", -2.0), "sign"),
    (("KD", 1.5), "is off"), (("KD", "two"), "one number"), ("KD", "pair"),
])
def test_best_method_mistakes(says, answer, hint):
    says(exercises.check_best_method(answer, TABLE), False, hint)


def test_best_method_compares_means_not_best_seeds(says):
    table = {"scratch": [0.79, 0.85], "KD": [0.83, 0.83]}
    says(exercises.check_best_method(("KD", -2.0), table), False, "best seeds")
    says(exercises.check_best_method(None, table), False, "not answered")


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
