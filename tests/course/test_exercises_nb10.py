"""Self-checks of notebook 10 (token-level distillation of a language model): a right answer
passes, each known mistake gets its own hint."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdteach import losses
from kdteach.exercises import nb10 as exercises


# --- 10.1: the next-character loss of (B, L, V) logits ---------------------------------------------

def ce(logits, targets, reduction="mean"):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)


@pytest.mark.parametrize("fn", [
    lambda logits, ids: F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()),
    lambda logits, ids: F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)),
    lambda logits, ids: F.cross_entropy(logits.permute(0, 2, 1), ids[:, 1:]),  # class dim second
    lambda logits, ids: F.cross_entropy(logits.transpose(0, 1).flatten(0, 1), ids[:, 1:].t().flatten()),
    lambda logits, ids: -F.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).mean(),
])
def test_next_char_loss_right(verdict, fn):
    verdict(True, "Right", exercises.check_next_char_loss(fn))


@pytest.mark.parametrize("fn, fragment", [
    (lambda z, ids: ce(z, ids[:, 1:]) / math.log(2), "in bits"),
    (lambda z, ids: ce(z, ids[:, :-1]), "copy its input"),
    (lambda z, ids: ce(z[:, :-1], ids[:, 2:]), "Shifted twice"),
    (lambda z, ids: ce(z[:, 1:], ids[:, 1:-1]), "wrong way"),
    (lambda z, ids: ce(z.transpose(0, 1), ids[:, 1:]), "different positions"),
    (lambda z, ids: ce(z, ids[:, 1:], "sum"), "Summed over all B·L"),
    (lambda z, ids: ce(z, ids[:, 1:], "none").view(ids.shape[0], -1).sum(1).mean(), "each window's L"),
    (lambda z, ids: F.cross_entropy(z[:, -1], ids[:, -1]), "Only the last position"),
    (lambda z, ids: ce(torch.softmax(z, -1), ids[:, 1:]), "Softmax applied before"),
    (lambda z, ids: ce(z, ids[:, 1:].flip(1)), "backwards"),
    (lambda z, ids: ce(z, ids[:, 1:]) * 1.1, "expected"),
    (lambda z, ids: ce(z, ids[:, 1:]).detach(), "backward() failed"),
    (lambda z, ids: float(ce(z, ids[:, 1:]).detach()), "0-d torch tensor"),
    (lambda z: 0, "TypeError"),
    (3.0, "function itself"),
    (None, "Not answered"),
    (..., "Not answered"),
])
def test_next_char_loss_mistakes(verdict, fn, fragment):
    verdict(False, fragment, exercises.check_next_char_loss(fn))


# --- 10.2: token-level KD with padding masked out ---------------------------------------------------

def kl_rows(p, q):
    log_p, log_q = F.log_softmax(p, -1), F.log_softmax(q, -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@pytest.mark.parametrize("fn", [
    exercises.reference_masked_kd,
    lambda s, t, m: losses.kd_loss(s.flatten(0, 1)[m.flatten()], t.flatten(0, 1)[m.flatten()], T=1.0),
    lambda s, t, m: (kl_rows(t.detach(), s) * m).sum() / m.sum(),
    lambda s, t, m: F.kl_div(F.log_softmax(s[m], -1), F.softmax(t[m], -1).detach(), reduction="batchmean"),
    lambda s, t, m: losses.generalized_jsd(s[m], t[m], beta=0.0),
])
def test_masked_kd_right(verdict, fn):
    verdict(True, "Right", exercises.check_masked_kd(fn))


def fwd(s, t):
    return kl_rows(t.detach(), s)


@pytest.mark.parametrize("fn, fragment", [
    (lambda s, t, m: fwd(s, t).mean(), "padding included"),
    (lambda s, t, m: (fwd(s, t) * m).sum() / m.numel(), "not of the count"),
    (lambda s, t, m: (fwd(s, t) * m).sum(), "Summed over the real tokens"),
    (lambda s, t, m: ((fwd(s, t) * m).sum(1) / m.sum(1)).mean(), "within each window"),
    (lambda s, t, m: (fwd(s, t) * m).sum(1).mean(), "Summed over each window"),
    (lambda s, t, m: (fwd(s, t) * ~m).sum() / (~m).sum(), "wrong way round"),
    (lambda s, t, m: losses.reverse_kl(s[m], t[m]), "reverse one"),
    (lambda s, t, m: F.kl_div(F.log_softmax(s[m], -1), F.softmax(t[m], -1), reduction="mean"),
     "vocabulary size"),
    (lambda s, t, m: kl_rows(s, t.detach()).mean(), "Two mistakes"),
    (lambda s, t, m: -(torch.softmax(t[m].detach(), -1) * F.log_softmax(s[m], -1)).sum(-1).mean(),
     "teacher's entropy"),
    (lambda s, t, m: (kl_rows(t, s) * m).sum() / m.sum(), "flows into the teacher"),
    (lambda s, t, m: fwd(s, t).mean() * 0.5, "expected"),
    (lambda s, t, m: fwd(s.detach(), t)[m].mean(), "backward() failed"),
    (lambda s, t: 0, "TypeError"),
    (None, "Not answered"),
])
@pytest.mark.filterwarnings("ignore:reduction. .mean. divides:UserWarning")
def test_masked_kd_mistakes(verdict, fn, fragment):
    verdict(False, fragment, exercises.check_masked_kd(fn))


# --- 10.3: the direction of the KL in a line of code -----------------------------------------------

RIGHT = {"a": "forward", "b": "reverse", "c": "reverse", "d": "forward", "e": "forward", "f": "reverse"}


def test_kl_directions_right(verdict):
    verdict(True, "Right", exercises.check_kl_directions(dict(RIGHT)))
    verdict(True, "Right", exercises.check_kl_directions({k: v.upper() for k, v in RIGHT.items()}))


def test_the_answer_key_matches_what_the_snippets_compute():
    """Evaluate each snippet on random logits: "forward" ones equal KL(p_t ‖ p_s) up to a
    constant in the student (same gradient), "reverse" ones KL(p_s ‖ p_t)."""
    gen = torch.Generator().manual_seed(0)
    s0, t = torch.randn(5, 8, generator=gen, dtype=torch.float64), torch.randn(5, 8, generator=gen, dtype=torch.float64)
    for key, code in exercises.SNIPPETS.items():
        s = s0.clone().requires_grad_(True)
        log_p_s, log_p_t = F.log_softmax(s, -1), F.log_softmax(t, -1)
        env = {"F": F, "losses": losses, "s": s, "t": t, "log_p_s": log_p_s, "log_p_t": log_p_t,
               "p_s": log_p_s.exp(), "p_t": log_p_t.exp()}
        value = eval(code, env)  # noqa: S307 - the module's own fixed snippets
        grad, = torch.autograd.grad(value, s)
        ref_s = s0.clone().requires_grad_(True)
        ref = (kl_rows(t, ref_s) if RIGHT[key] == "forward" else kl_rows(ref_s, t)).mean()
        ref_grad, = torch.autograd.grad(ref, ref_s)
        torch.testing.assert_close(grad, ref_grad, msg=f"snippet {key}")


@pytest.mark.parametrize("answer, fragment", [
    ({**RIGHT, "a": "reverse"}, "(a)"),
    ({**RIGHT, "b": "forward"}, "KL(p_s ‖ p_t), the reverse KL"),
    ({**RIGHT, "d": "reverse"}, "teacher's entropy, a constant"),
    ({**RIGHT, "e": "reverse"}, "log_target=True"),
    ({**RIGHT, "f": "forward"}, "beta = 1 is exactly the reverse"),
    ({k: "forward" for k in RIGHT}, "3 of 6 wrong"),
    ({k: "reverse" for k in RIGHT}, "Look again at the others"),
    ({**RIGHT, "c": "backward"}, '"forward" or "reverse"'),
    ({k: v for k, v in RIGHT.items() if k != "f"}, "missing ['f']"),
    ({**RIGHT, "g": "forward"}, "unknown ['g']"),
    (["forward"] * 6, "must be a dict"),
    (None, "Not answered"),
])
def test_kl_directions_mistakes(verdict, answer, fragment):
    verdict(False, fragment, exercises.check_kl_directions(answer))
