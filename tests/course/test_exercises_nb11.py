"""Self-checks of notebook 11 (sequence-level and on-policy distillation): right answers pass,
the usual mistakes get their hint."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import losses
from kdteach.exercises import nb11 as exercises


# --- 11.1 the ends of the generalized JSD ------------------------------------------------------

def test_jsd_endpoints_right(says):
    says(exercises.check_jsd_endpoints(("forward", "reverse")), True, "forward", "reverse")


@pytest.mark.parametrize("answer, hint", [
    (("reverse", "forward"), "swapped"), (("zero", "zero"), "limits"),
    (("forward", "zero"), "limits"), (("forward", "forward"), "different"),
    (("forward", "sideways"), "not one of"), ("forward", "pair"), (None, "not answered"),
])
def test_jsd_endpoints_mistakes(says, answer, hint):
    says(exercises.check_jsd_endpoints(answer), False, hint)


def test_jsd_endpoints_answer_matches_the_library():
    torch.manual_seed(0)
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    forward = F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean")
    assert torch.allclose(losses.generalized_jsd(s, t, beta=0.0), forward)
    assert torch.allclose(losses.generalized_jsd(s, t, beta=1.0), losses.reverse_kl(s, t))


# --- 11.2 the direction of a snippet ----------------------------------------------------------

RIGHT = {"a": "forward", "b": "reverse", "c": "reverse", "d": "forward"}


def test_kl_direction_right(says):
    says(exercises.check_kl_direction(dict(RIGHT)), True, "target")


def test_kl_direction_snippets_compute_what_the_check_says():
    torch.manual_seed(1)
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    env = {"F": F, "s": s, "t": t}
    for key, code in exercises.SNIPPETS.items():
        value = eval(code, env)  # noqa: S307 — the module's own fixed snippets
        expected = (losses.generalized_jsd(s, t, beta=0.0) if RIGHT[key] == "forward"
                    else losses.reverse_kl(s, t))
        assert torch.allclose(value, expected, atol=1e-6), key


@pytest.mark.parametrize("change, hint", [
    ({"c": "forward"}, "weighted by p_s"), ({"a": "reverse"}, "first argument"),
    ({"a": "reverse", "b": "forward"}, "first argument"), ({"d": "reverse"}, "log_target"),
    ({"a": "up"}, "'forward' or 'reverse'"),
])
def test_kl_direction_mistakes(says, change, hint):
    says(exercises.check_kl_direction({**RIGHT, **change}), False, hint)


def test_kl_direction_wrong_shape(says):
    says(exercises.check_kl_direction({"a": "forward"}), False, "one entry per snippet")
    says(exercises.check_kl_direction(None), False, "not answered")


# --- 11.3 masking the prompt ------------------------------------------------------------------

def test_prompt_mask_right(says):
    says(exercises.check_prompt_mask(lambda z, p: z[:, p - 1:].flatten(0, 1)), True, "right")


@pytest.mark.parametrize("select, hint", [
    (lambda z, p: z.flatten(0, 1), "every position"),
    (lambda z, p: z[:, p:].flatten(0, 1), "off by one"),
    (lambda z, p: z[:, p - 2:].flatten(0, 1), "off by one"),
    (lambda z, p: z[:, :p].flatten(0, 1), "prompt's positions"),
    (lambda z, p: z[:, p - 1:].transpose(0, 1).flatten(0, 1), "wrong order"),
    (lambda z, p: z[:, p - 1:], "2-D"),
    (lambda z, p: 1 / 0, "ZeroDivisionError"),
    (lambda z, p: z[:1, p - 1:].flatten(0, 1), "expected the rows"),
    (42, "function"), (None, "not answered"),
])
def test_prompt_mask_mistakes(says, select, hint):
    says(exercises.check_prompt_mask(select), False, hint)
