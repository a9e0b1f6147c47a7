"""Tests for kdteach.losses.

Each loss is checked three ways: against a number worked out by hand, against a
second, independent formulation (explicit Python loops with ``math``, or numpy),
and for the properties the course relies on (gradients, no gradient into the
teacher, the T^2 factor, clear errors on bad inputs). The last section states
properties for every input in the documented range, checked with Hypothesis.
"""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kdteach import losses
from kdteach.losses import (
    at_loss,
    attention_map,
    dml_loss,
    hint_loss,
    kd_loss,
    generalized_jsd,
    label_smoothing_loss,
    reverse_kl,
    rkd_angle_loss,
    rkd_distance_loss,
    softmax_t,
    sp_loss,
)

LN2, LN3 = math.log(2.0), math.log(3.0)


def randn(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def close(actual, expected, tol=1e-9):
    """Compare tensors, arrays or Python numbers to within ``tol`` (relative and absolute)."""
    as_array = lambda x: x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    np.testing.assert_allclose(as_array(actual), as_array(expected), rtol=tol, atol=tol)


# ---------------------------------------------------------------------------
# Reference implementations written with plain Python loops and the math module
# ---------------------------------------------------------------------------

def py_softmax(row, T=1.0):
    m = max(row)
    e = [math.exp((z - m) / T) for z in row]
    total = sum(e)
    return [v / total for v in e]


def py_kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def py_ce(row, y):
    return -math.log(py_softmax(row)[y])


def py_huber(x):
    return 0.5 * x * x if abs(x) <= 1 else abs(x) - 0.5


def py_norm(v):
    return math.sqrt(sum(x * x for x in v))


def py_sub(a, b):
    return [x - y for x, y in zip(a, b)]


def py_kd(s, t, y, T, alpha):
    B = len(s)
    soft = T * T * sum(py_kl(py_softmax(t[b], T), py_softmax(s[b], T)) for b in range(B)) / B
    if y is None:
        return soft
    hard = sum(py_ce(s[b], y[b]) for b in range(B)) / B
    return alpha * hard + (1 - alpha) * soft


def py_reverse_kl(s, t, T):
    """T^2 * mean over rows of KL(p_s || p_t), with Python loops."""
    N = len(s)
    return T * T * sum(py_kl(py_softmax(s[n], T), py_softmax(t[n], T)) for n in range(N)) / N


def py_jsd(s, t, beta, T):
    """T^2 * mean over rows of beta KL(p_t || m) + (1 - beta) KL(p_s || m), m = beta p_t + (1 - beta) p_s.

    The formula as written, endpoints included: at beta = 0 or 1 it gives 0."""
    total = 0.0
    for s_row, t_row in zip(s, t):
        p_s, p_t = py_softmax(s_row, T), py_softmax(t_row, T)
        m = [beta * a + (1 - beta) * b for a, b in zip(p_t, p_s)]
        total += beta * py_kl(p_t, m) + (1 - beta) * py_kl(p_s, m)
    return T * T * total / len(s)


def py_binary_entropy(beta):
    return -sum(w * math.log(w) for w in (beta, 1 - beta) if w > 0)


def torch_probs(z, T):
    """softmax(z / T) the long way: exp over the sum, in float64 (no log_softmax anywhere)."""
    e = torch.exp((z - z.max(dim=1, keepdim=True).values) / T)
    return e / e.sum(dim=1, keepdim=True)


def entropy_form_jsd(s, t, beta, T):
    """A second formulation, in torch so autograd can differentiate it:
    JSD_beta = H(m) - beta H(p_t) - (1 - beta) H(p_s), with H(p) = -sum p log p.
    The endpoints are the two KLs, written as cross-entropy minus entropy."""
    p_s, p_t = torch_probs(s, T), torch_probs(t, T)

    def plogq(p, q):  # sum_v p_v log q_v, with 0 log(anything) = 0
        return torch.where(p > 0, p * torch.log(torch.where(p > 0, q, 1.0)), 0.0).sum(dim=1)

    if beta == 0:
        per_row = plogq(p_t, p_t) - plogq(p_t, p_s)
    elif beta == 1:
        per_row = plogq(p_s, p_s) - plogq(p_s, p_t)
    else:
        m = beta * p_t + (1 - beta) * p_s
        per_row = -plogq(m, m) + beta * plogq(p_t, p_t) + (1 - beta) * plogq(p_s, p_s)
    return T**2 * per_row.mean()


def py_rkd_distance(s, t):
    def psi(e):
        B = len(e)
        d = [[py_norm(py_sub(e[i], e[j])) for j in range(B)] for i in range(B)]
        mu = sum(d[i][j] for i in range(B) for j in range(B) if i != j) / (B * (B - 1))
        return [[d[i][j] / mu for j in range(B)] for i in range(B)]

    ps, pt = psi(s), psi(t)
    B = len(s)
    return sum(py_huber(ps[i][j] - pt[i][j]) for i in range(B) for j in range(B)) / B**2


def py_cos_angle(e, i, j, k):
    """cos of the angle at e_j in the triangle (e_i, e_j, e_k); 0 for a degenerate triplet."""
    if i == j or k == j:
        return 0.0
    a, b = py_sub(e[i], e[j]), py_sub(e[k], e[j])
    return sum(x * y for x, y in zip(a, b)) / (py_norm(a) * py_norm(b))


def py_rkd_angle(s, t):
    B = len(s)
    total = 0.0
    for i, j, k in itertools.product(range(B), repeat=3):
        total += py_huber(py_cos_angle(s, i, j, k) - py_cos_angle(t, i, j, k))
    return total / B**3


def py_sp(s, t, row_norm=py_norm):
    def gram(f):
        B = len(f)
        g = [[sum(x * y for x, y in zip(f[i], f[j])) for j in range(B)] for i in range(B)]
        return [[v / row_norm(row) for v in row] for row in g]

    gs, gt = gram(s), gram(t)
    B = len(s)
    return sum((gs[i][j] - gt[i][j]) ** 2 for i in range(B) for j in range(B)) / B**2


def rows(x):
    """A (B, ...) tensor as a list of flat Python lists."""
    return x.detach().reshape(len(x), -1).tolist()


# ---------------------------------------------------------------------------
# softmax_t
# ---------------------------------------------------------------------------

def test_softmax_t_hand_values():
    close(softmax_t(torch.tensor([0.0, LN2, LN3], dtype=torch.float64)), [1 / 6, 2 / 6, 3 / 6])
    # At T = 2, logits (0, 2 ln 2) become (0, ln 2): probabilities (1/3, 2/3).
    close(softmax_t(torch.tensor([[0.0, 2 * LN2]], dtype=torch.float64), T=2.0), [[1 / 3, 2 / 3]])


def test_softmax_t_matches_python_loops():
    z = randn(4, 6, seed=1) * 3
    expected = [py_softmax(row, T=2.5) for row in z.tolist()]
    close(softmax_t(z, T=2.5), expected)


def test_softmax_t_limits():
    z = torch.tensor([[1.0, 3.0, 2.0]])
    close(softmax_t(z, T=0.01), [[0.0, 1.0, 0.0]], tol=1e-6)  # T -> 0: one-hot argmax
    close(softmax_t(z, T=1e4), [[1 / 3, 1 / 3, 1 / 3]], tol=1e-3)  # T -> inf: uniform
    entropies = [-(p * p.log()).sum().item() for p in (softmax_t(z, T) for T in (0.5, 1, 2, 4, 8))]
    assert entropies == sorted(entropies)  # softer and softer


def test_softmax_t_no_overflow_for_huge_logits():
    p = softmax_t(torch.tensor([[1000.0, 0.0, -1000.0]]))
    assert torch.isfinite(p).all()
    close(p, [[1.0, 0.0, 0.0]], tol=1e-7)
    s = torch.tensor([[1000.0, -1000.0, 0.0], [0.0, 1000.0, 0.0]])
    t = torch.tensor([[-1000.0, 1000.0, 0.0], [0.0, 1000.0, 0.0]])
    loss = kd_loss(s, t, torch.tensor([0, 1]), T=1.0)
    assert torch.isfinite(loss)


def test_softmax_t_half_input_is_computed_in_float32():
    assert softmax_t(torch.zeros(2, 3, dtype=torch.float16)).dtype == torch.float32


# ---------------------------------------------------------------------------
# kd_loss
# ---------------------------------------------------------------------------

def test_kd_loss_hand_value():
    # Student logits (0, 0): q = (1/2, 1/2). Teacher logits (0, 2 ln 3) at T = 2:
    # p = (1/4, 3/4). KL(p || q) = 1/4 ln(1/2) + 3/4 ln(3/2), times T^2 = 4:
    # soft = 3 ln 3 - 4 ln 2. Hard CE with label 1 = ln 2.
    s = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 2 * LN3]], dtype=torch.float64)
    soft = 3 * LN3 - 4 * LN2
    close(kd_loss(s, t, T=2.0), soft)
    close(kd_loss(s, t, torch.tensor([1]), T=2.0, alpha=0.5), 0.5 * LN2 + 0.5 * soft)
    close(kd_loss(s, t, torch.tensor([1]), T=2.0, alpha=0.25), 0.25 * LN2 + 0.75 * soft)


def test_kd_loss_matches_python_loops():
    s, t = randn(5, 4, seed=2) * 2, randn(5, 4, seed=3) * 2
    y = [3, 0, 1, 1, 2]
    expected = py_kd(s.tolist(), t.tolist(), y, T=3.0, alpha=0.3)
    close(kd_loss(s, t, torch.tensor(y), T=3.0, alpha=0.3), expected)


def test_kd_soft_term_equals_cross_entropy_minus_entropy():
    # KL(p || q) = H(p, q) - H(p), computed here with numpy.
    s, t, T = randn(6, 5, seed=4) * 2, randn(6, 5, seed=5) * 2, 2.5
    zs, zt = s.numpy() / T, t.numpy() / T
    q = np.exp(zs - zs.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    p = np.exp(zt - zt.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    cross_entropy = -(p * np.log(q)).sum(1)
    entropy = -(p * np.log(p)).sum(1)
    close(kd_loss(s, t, T=T), T**2 * (cross_entropy - entropy).mean())


def test_kd_targets_none_and_alpha_extremes():
    s, t = randn(4, 3, seed=6), randn(4, 3, seed=7)
    y = torch.tensor([0, 2, 1, 2])
    soft = kd_loss(s, t, T=3.0)
    close(soft, py_kd(s.tolist(), t.tolist(), None, T=3.0, alpha=None))
    close(kd_loss(s, t, T=3.0, alpha=0.9), soft)  # alpha plays no part without targets
    close(kd_loss(s, t, y, T=3.0, alpha=0.0), soft)  # alpha = 0: T^2 * KL only
    hard = sum(py_ce(row, c) for row, c in zip(s.tolist(), y.tolist())) / 4
    close(kd_loss(s, t, y, T=3.0, alpha=1.0), hard)  # alpha = 1: plain cross-entropy


def test_kd_loss_is_zero_when_student_equals_teacher():
    s = randn(3, 4, seed=8)
    close(kd_loss(s, s.clone(), T=5.0), 0.0, tol=1e-12)


def test_kd_loss_gradient_matches_analytic_formula():
    # d/ds [alpha CE + (1-alpha) T^2 KL] = alpha (softmax(s) - onehot) / B
    #                                     + (1-alpha) T (softmax(s/T) - softmax(t/T)) / B
    B, K, T, alpha = 5, 4, 3.0, 0.3
    s = randn(B, K, seed=9).requires_grad_(True)
    t = randn(B, K, seed=10) * 2
    y = torch.tensor([0, 3, 2, 1, 1])
    kd_loss(s, t, y, T=T, alpha=alpha).backward()

    sm = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    sn, tn = s.detach().numpy(), t.numpy()
    onehot = np.eye(K)[y.numpy()]
    expected = alpha * (sm(sn) - onehot) / B + (1 - alpha) * T * (sm(sn / T) - sm(tn / T)) / B
    assert s.grad.dtype == torch.float64
    close(s.grad, expected, tol=1e-12)


def test_kd_t_squared_keeps_soft_gradients_the_same_size():
    s = (randn(8, 10, seed=11) * 0.5).requires_grad_(True)
    t = randn(8, 10, seed=12) * 0.5

    def grad_norm(T, scale=1.0):
        s.grad = None
        (kd_loss(s, t, T=T) * scale).backward()
        return s.grad.norm().item()

    g10, g20 = grad_norm(10.0), grad_norm(20.0)
    assert abs(g20 / g10 - 1) < 0.01  # with T^2: about independent of T
    # Without the T^2 factor the gradient shrinks like 1/T^2: a quarter from T=10 to T=20.
    r = grad_norm(20.0, scale=1 / 20**2) / grad_norm(10.0, scale=1 / 10**2)
    assert abs(r - 0.25) < 0.01


def test_kd_loss_sends_no_gradient_to_the_teacher():
    s = randn(4, 3, seed=13).requires_grad_(True)
    t = randn(4, 3, seed=14).requires_grad_(True)
    kd_loss(s, t, torch.tensor([0, 1, 2, 0])).backward()
    assert s.grad is not None and t.grad is None


def test_kd_loss_is_float32_for_half_inputs_and_under_autocast():
    s, t = randn(4, 5, seed=15, dtype=torch.float32), randn(4, 5, seed=16, dtype=torch.float32)
    y = torch.tensor([0, 1, 2, 3])
    out = kd_loss(s.half(), t.bfloat16(), y)
    assert out.dim() == 0 and out.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert kd_loss(s, t, y).dtype == torch.float32


# ---------------------------------------------------------------------------
# reverse_kl and generalized_jsd (per-position divergences for language models)
# ---------------------------------------------------------------------------
# Two-class rows used by hand: logits (0, 0) give (1/2, 1/2); (0, ln 3) give (1/4, 3/4).
HALF = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
QUARTER = torch.tensor([[0.0, LN3]], dtype=torch.float64)


def test_reverse_kl_hand_value():
    # KL(p_s || p_t) with p_s = (1/2, 1/2), p_t = (1/4, 3/4): 1/2 ln 2 + 1/2 ln(2/3) = ln 2 - 1/2 ln 3.
    close(reverse_kl(HALF, QUARTER), LN2 - 0.5 * LN3)
    # The forward KL of the same pair is a different number: 1/4 ln(1/2) + 3/4 ln(3/2).
    forward = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    close(kd_loss(HALF, QUARTER, T=1.0), forward)
    assert abs(forward - (LN2 - 0.5 * LN3)) > 0.01
    # At T = 2 the teacher needs logits (0, 2 ln 3) for the same p_t, and the value is times T^2 = 4.
    close(reverse_kl(HALF, 2 * QUARTER, T=2.0), 4 * (LN2 - 0.5 * LN3))


def test_reverse_kl_matches_python_loops_and_is_kd_loss_with_the_roles_swapped():
    s, t = randn(5, 4, seed=60) * 2, randn(5, 4, seed=61) * 2
    close(reverse_kl(s, t, T=3.0), py_reverse_kl(s.tolist(), t.tolist(), T=3.0))
    assert torch.equal(reverse_kl(s, t, T=3.0), kd_loss(t, s, T=3.0))  # KL(p_s || p_t) either way


def test_reverse_kl_gradient_matches_analytic_formula():
    # d/ds_j [T^2 KL(p_s || p_t)] per row = T p_s,j (log p_s,j - log p_t,j - KL(p_s || p_t)), over N rows.
    N, T = 6, 2.5
    s = randn(N, 5, seed=62).requires_grad_(True)
    t = randn(N, 5, seed=63) * 2
    reverse_kl(s, t, T=T).backward()
    log_ps, log_pt = torch.log(torch_probs(s.detach(), T)), torch.log(torch_probs(t, T))
    kl = (log_ps.exp() * (log_ps - log_pt)).sum(dim=1, keepdim=True)
    close(s.grad, T * log_ps.exp() * (log_ps - log_pt - kl) / N, tol=1e-12)


def test_generalized_jsd_hand_values():
    # p_s = (1/2, 1/2), p_t = (1/4, 3/4). beta = 1/2: m = (3/8, 5/8);
    # KL(p_t || m) = 1/4 ln(2/3) + 3/4 ln(6/5), KL(p_s || m) = 1/2 ln(4/3) + 1/2 ln(4/5).
    kl_t = 0.25 * math.log(2 / 3) + 0.75 * math.log(6 / 5)
    kl_s = 0.5 * math.log(4 / 3) + 0.5 * math.log(4 / 5)
    close(generalized_jsd(HALF, QUARTER), 0.5 * kl_t + 0.5 * kl_s)
    # beta = 1/4: m = (7/16, 9/16).
    kl_t = 0.25 * math.log(4 / 7) + 0.75 * math.log(4 / 3)
    kl_s = 0.5 * math.log(8 / 7) + 0.5 * math.log(8 / 9)
    close(generalized_jsd(HALF, QUARTER, beta=0.25), 0.25 * kl_t + 0.75 * kl_s)
    close(generalized_jsd(HALF, 2 * QUARTER, beta=0.25, T=2.0), 4 * (0.25 * kl_t + 0.75 * kl_s))


@pytest.mark.parametrize("beta", [0.5, 0.25, 0.1, 1e-3])
def test_generalized_jsd_of_disjoint_distributions_is_the_binary_entropy_of_beta(beta):
    # p_s = (1, 0), p_t = (0, 1) exactly (e^-10000 underflows to 0): m = (1 - beta, beta), so
    # KL(p_t || m) = -ln beta and KL(p_s || m) = -ln(1 - beta): JSD = H(beta), its largest value.
    s = torch.tensor([[0.0, -1e4]], dtype=torch.float64)
    t = torch.tensor([[-1e4, 0.0]], dtype=torch.float64)
    h = -beta * math.log(beta) - (1 - beta) * math.log(1 - beta)
    close(generalized_jsd(s, t, beta=beta), h)
    close(generalized_jsd(s, t, beta=beta, T=2.0), 4 * h)
    assert h <= LN2 + 1e-15


def test_a_token_the_student_gives_probability_zero_adds_zero():
    # p_s = (1, 0) exactly, p_t = (1/2, 1/2): KL(p_s || p_t) = ln 2 (the 0 log 0 term is 0, not NaN).
    s = torch.tensor([[0.0, -1e4]], dtype=torch.float64, requires_grad=True)
    t = torch.zeros(1, 2, dtype=torch.float64)
    loss = reverse_kl(s, t)
    close(loss, LN2)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    # beta = 1/2: m = (3/4, 1/4); KL(p_t || m) = 1/2 ln(2/3) + 1/2 ln 2, KL(p_s || m) = ln(4/3).
    s.grad = None
    loss = generalized_jsd(s, t)
    close(loss, 0.5 * (0.5 * math.log(2 / 3) + 0.5 * LN2) + 0.5 * math.log(4 / 3))
    loss.backward()
    assert torch.isfinite(s.grad).all()


@pytest.mark.parametrize("beta", [0.5, 0.2, 0.9, 1e-3, 1 - 1e-3])
@pytest.mark.parametrize("T", [1.0, 3.0])
def test_generalized_jsd_matches_python_loops_and_the_entropy_form(beta, T):
    s, t = randn(6, 5, seed=64) * 2, randn(6, 5, seed=65) * 2
    got = generalized_jsd(s, t, beta=beta, T=T)
    close(got, py_jsd(s.tolist(), t.tolist(), beta, T), tol=1e-10)
    close(got, entropy_form_jsd(s, t, beta, T), tol=1e-10)


def test_generalized_jsd_endpoints_are_exactly_the_forward_and_the_reverse_kl():
    s, t = randn(5, 7, seed=66) * 2, randn(5, 7, seed=67) * 2
    for T in (1.0, 4.0):
        for zero in (0, 0.0, np.float64(0.0)):
            assert torch.equal(generalized_jsd(s, t, beta=zero, T=T), kd_loss(s, t, T=T))  # KL(p_t || p_s)
        for one in (1, 1.0, np.float32(1.0)):
            assert torch.equal(generalized_jsd(s, t, beta=one, T=T), reverse_kl(s, t, T=T))  # KL(p_s || p_t)
        close(generalized_jsd(s, t, beta=0, T=T), py_kd(s.tolist(), t.tolist(), None, T, None))
        close(generalized_jsd(s, t, beta=1, T=T), py_reverse_kl(s.tolist(), t.tolist(), T))
    # The formula itself gives 0 at both ends: the endpoints are special cases, not its values.
    assert py_jsd(s.tolist(), t.tolist(), 0.0, 1.0) == 0.0
    assert py_jsd(s.tolist(), t.tolist(), 1.0, 1.0) == 0.0


# The limit beta -> 0. With m = p_s + beta d, d = p_t - p_s, and log(1 + x) = x - x^2/2 + O(x^3):
#   KL(p_t || m) = KL(p_t || p_s) - beta chi2 + O(beta^2),     chi2 = chi^2(p_t || p_s) = sum d^2 / p_s
#   KL(p_s || m) = -sum p_s log(1 + beta d / p_s) = (beta^2 / 2) chi2 + O(beta^3)   (sum d = 0)
# so   JSD_beta / beta = KL(p_t || p_s) - (beta / 2) chi2 + O(beta^2)  ->  KL(p_t || p_s),
# the forward KL that beta = 0 returns; mirror-wise JSD_beta / (1 - beta) -> KL(p_s || p_t) as beta -> 1.

def forward_kl_and_chi2(s, t, T=1.0):
    """Row means of KL(p_t || p_s) and chi^2(p_t || p_s), the long way in float64."""
    p_s, p_t = torch_probs(s, T), torch_probs(t, T)
    kl = (p_t * torch.log(p_t / p_s)).sum(dim=1).mean().item()
    chi2 = ((p_t - p_s) ** 2 / p_s).sum(dim=1).mean().item()
    return kl, chi2


@pytest.mark.parametrize("beta", [1e-4, 1e-5, 1e-6])
def test_generalized_jsd_over_beta_tends_to_the_forward_kl_as_beta_goes_to_0(beta):
    s, t = randn(4, 6, seed=68), randn(4, 6, seed=69)  # moderate: beta * max(p_t / p_s) << 1
    kl, chi2 = forward_kl_and_chi2(s, t)
    ratio = generalized_jsd(s, t, beta=beta).item() / beta
    assert abs(ratio - kl) <= beta * chi2  # it approaches the forward KL ...
    # ... at the rate the expansion says; the next term is O(beta) relative to this one
    # (the floor of 1e-4 leaves room for rounding, which grows like 1 / beta^2 here).
    rate = (ratio - kl) / beta
    assert abs(rate / (-chi2 / 2) - 1) <= 100 * beta + 1e-4, (rate, -chi2 / 2)
    # And the mirror image: reverse KL as beta -> 1, with chi^2(p_s || p_t).
    rkl, chi2_back = forward_kl_and_chi2(t, s)
    ratio = generalized_jsd(s, t, beta=1 - beta).item() / beta
    assert abs(ratio - rkl) <= beta * chi2_back
    rate = (ratio - rkl) / beta
    assert abs(rate / (-chi2_back / 2) - 1) <= 100 * beta + 1e-4, (rate, -chi2_back / 2)


def test_generalized_jsd_jumps_in_size_at_beta_0():
    # Documented behaviour: beta = 1e-9 gives ~1e-9 times what beta = 0 gives.
    s, t = randn(4, 6, seed=70), randn(4, 6, seed=71)
    close(generalized_jsd(s, t, beta=1e-9) / generalized_jsd(s, t, beta=0), 1e-9, tol=1e-11)


def test_generalized_jsd_gradient_over_beta_tends_to_the_forward_kl_gradient():
    # d/ds [T^2 KL(p_t || p_s)] = T (p_s - p_t) / N, the forward KL's gradient.
    N, T, beta = 4, 2.0, 1e-6
    s = randn(N, 5, seed=72).requires_grad_(True)
    t = randn(N, 5, seed=73)
    generalized_jsd(s, t, beta=beta, T=T).backward()
    forward = T * (torch_probs(s.detach(), T) - torch_probs(t, T)) / N
    close(s.grad / beta, forward, tol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 1e-3, 0.3, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("T", [1.0, 2.5])
def test_generalized_jsd_gradient_matches_autograd_of_the_entropy_form(beta, T):
    s = randn(5, 6, seed=74).requires_grad_(True)
    t = randn(5, 6, seed=75) * 2
    generalized_jsd(s, t, beta=beta, T=T).backward()
    ours, s.grad = s.grad, None
    entropy_form_jsd(s, t, beta, T).backward()
    close(ours, s.grad, tol=1e-10)


def test_generalized_jsd_gradient_matches_analytic_formula():
    # dJSD/dp_s,v = (1 - beta) log(p_s,v / m_v); through the softmax of s / T, times T^2, over N rows:
    # grad = T (1 - beta) p_s (r - sum_v p_s,v r_v) / N with r = log(p_s / m).
    N, T, beta = 5, 1.5, 0.3
    s = randn(N, 4, seed=76).requires_grad_(True)
    t = randn(N, 4, seed=77) * 2
    generalized_jsd(s, t, beta=beta, T=T).backward()
    p_s, p_t = torch_probs(s.detach(), T), torch_probs(t, T)
    r = torch.log(p_s / (beta * p_t + (1 - beta) * p_s))
    close(s.grad, T * (1 - beta) * p_s * (r - (p_s * r).sum(dim=1, keepdim=True)) / N, tol=1e-12)


@pytest.mark.parametrize("loss", [lambda s, t: reverse_kl(s, t, T=2.0)]
                         + [lambda s, t, b=b: generalized_jsd(s, t, beta=b, T=2.0) for b in (0.0, 0.3, 1.0)],
                         ids=["reverse_kl", "jsd_beta_0", "jsd_beta_0.3", "jsd_beta_1"])
def test_per_position_losses_pass_gradcheck(loss):
    s = randn(3, 5, seed=78).requires_grad_(True)
    t = randn(3, 5, seed=79)
    assert torch.autograd.gradcheck(lambda x: loss(x, t), (s,), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("loss", [reverse_kl, generalized_jsd])
def test_per_position_losses_carry_the_T_squared_factor(loss):
    s, t = randn(6, 8, seed=80) * 3, randn(6, 8, seed=81) * 3
    for T in (0.5, 2.0, 7.0):
        close(loss(s, t, T=T), T**2 * loss(s / T, t / T, T=1.0).item(), tol=1e-12)
    # With the factor, the gradient keeps about the same size from T = 10 to T = 20.
    s = (s[:, :] * 0.2).requires_grad_(True)

    def grad_norm(T):
        s.grad = None
        loss(s, t * 0.2, T=T).backward()
        return s.grad.norm().item()

    assert abs(grad_norm(20.0) / grad_norm(10.0) - 1) < 0.01


@pytest.mark.parametrize("call", [lambda s, t: reverse_kl(s, t, T=2.0)]
                         + [lambda s, t, b=b: generalized_jsd(s, t, beta=b) for b in (0, 0.5, 1)],
                         ids=["reverse_kl", "jsd_beta_0", "jsd_beta_0.5", "jsd_beta_1"])
def test_per_position_losses_send_no_gradient_to_the_teacher(call):
    s = randn(4, 3, seed=82).requires_grad_(True)
    t = randn(4, 3, seed=83).requires_grad_(True)
    call(s, t).backward()
    assert s.grad is not None and t.grad is None


def test_per_position_losses_average_over_the_selected_positions():
    # The way a notebook calls them: (B, L, V) logits, flattened, a mask picking positions.
    # The loss is the mean of the per-position losses over the selected positions only.
    s, t = randn(2, 5, 7, seed=84), randn(2, 5, 7, seed=85)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    flat_s, flat_t = s.flatten(0, 1)[mask.flatten()], t.flatten(0, 1)[mask.flatten()]
    rows = [(b, i) for b in range(2) for i in range(5) if mask[b, i]]
    for loss in (reverse_kl, lambda a, b: generalized_jsd(a, b, beta=0.3)):
        per_position = [loss(s[b, i][None], t[b, i][None]).item() for b, i in rows]
        close(loss(flat_s, flat_t), sum(per_position) / len(rows), tol=1e-12)


def test_per_position_losses_are_float32_for_half_inputs_and_under_autocast():
    s, t = randn(4, 5, seed=86, dtype=torch.float32), randn(4, 5, seed=87, dtype=torch.float32)
    for loss in (reverse_kl, generalized_jsd):
        out = loss(s.half(), t.bfloat16())
        assert out.dim() == 0 and out.dtype == torch.float32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under = loss(s, t)
        assert under.dtype == torch.float32
        close(under, loss(s, t).item(), tol=1e-6)


def test_beta_and_T_are_keyword_only():
    s, t = randn(2, 3, seed=88), randn(2, 3, seed=89)
    with pytest.raises(TypeError):
        generalized_jsd(s, t, 0.5)  # beta and T cannot be swapped by position
    with pytest.raises(TypeError):
        reverse_kl(s, t, 2.0)


# ---------------------------------------------------------------------------
# hint_loss
# ---------------------------------------------------------------------------

def test_hint_loss_hand_value():
    s = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    close(hint_loss(s, torch.zeros(2, 2)), (1 + 4 + 9 + 16) / 4)


def test_hint_loss_matches_numpy_and_its_gradient():
    s = randn(2, 3, 4, 4, seed=17).requires_grad_(True)
    t = randn(2, 3, 4, 4, seed=18).requires_grad_(True)
    loss = hint_loss(s, t)
    diff = s.detach().numpy() - t.detach().numpy()
    close(loss, (diff**2).mean())
    loss.backward()
    close(s.grad, 2 * diff / diff.size)
    assert t.grad is None


# ---------------------------------------------------------------------------
# attention_map and at_loss
# ---------------------------------------------------------------------------

def hand_feat():
    # One sample, two channels, a 1x2 map: channel 0 = (1, 2), channel 1 = (-3, 0).
    return torch.tensor([[[[1.0, 2.0]], [[-3.0, 0.0]]]], dtype=torch.float64)


def test_attention_map_hand_values():
    # p = 2: mean over channels of squares = ((1 + 9)/2, (4 + 0)/2) = (5, 2); norm sqrt(29).
    close(attention_map(hand_feat()), [[5 / math.sqrt(29), 2 / math.sqrt(29)]])
    # p = 1: mean of absolute values = (2, 1); norm sqrt(5).
    close(attention_map(hand_feat(), p=1), [[2 / math.sqrt(5), 1 / math.sqrt(5)]])


def test_attention_map_matches_numpy():
    f = randn(2, 3, 4, 5, seed=19)
    a = (np.abs(f.numpy()) ** 3).mean(axis=1).reshape(2, -1)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    got = attention_map(f, p=3)
    assert got.shape == (2, 20)
    close(got, a)
    close(got.norm(dim=1), [1.0, 1.0])
    close(attention_map(7.5 * f, p=3), a)  # the overall scale of the features does not matter


def test_at_loss_hand_value_with_different_channel_counts():
    student = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)  # one channel: map (1, 0)
    # ((1 - 5/sqrt 29)^2 + (2/sqrt 29)^2) / 2 = 1 - 5/sqrt(29)
    close(at_loss(student, hand_feat()), 1 - 5 / math.sqrt(29))


def test_at_loss_matches_numpy_and_spares_the_teacher():
    s = randn(3, 2, 4, 4, seed=20).requires_grad_(True)
    t = randn(3, 6, 4, 4, seed=21).requires_grad_(True)

    def amap(x):
        a = (x.detach().numpy() ** 2).mean(axis=1).reshape(3, -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    loss = at_loss(s, t)
    close(loss, ((amap(s) - amap(t)) ** 2).mean())
    loss.backward()
    assert s.grad is not None and t.grad is None
    close(at_loss(s, 3 * s.detach()), 0.0, tol=1e-12)


# ---------------------------------------------------------------------------
# RKD distance and angle
# ---------------------------------------------------------------------------

def test_rkd_distance_hand_value():
    # Student: 1-D points 0, 1, 3 -> distances 1, 3, 2, mean 2 -> normalised 0.5, 1.5, 1.
    # Teacher: equilateral triangle in 2-D -> every normalised distance is 1.
    # Differences 0.5, 0.5, 0 (each twice) -> Huber 0.125 + 0.125 + 0, twice = 0.5, over 9 entries.
    s = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]], dtype=torch.float64)
    close(rkd_distance_loss(s, t), 1 / 18)


def test_rkd_distance_matches_python_loops_in_both_huber_branches():
    # Clusters placed so that some normalised distances differ by about 2 (the linear branch).
    s = torch.tensor([[0.0], [0.01], [0.02], [100.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.0], [100.0, 1.0], [100.01, 1.0], [100.0, 1.02]], dtype=torch.float64)
    close(rkd_distance_loss(s, t), py_rkd_distance(rows(s), rows(t)))
    s, t = randn(5, 3, seed=22), randn(5, 7, seed=23)
    close(rkd_distance_loss(s, t), py_rkd_distance(rows(s), rows(t)))


def test_rkd_distance_ignores_scale_and_flattens_features():
    s, t = randn(4, 2, 3, 3, seed=24), randn(4, 5, seed=25)
    close(rkd_distance_loss(s, t), rkd_distance_loss(s.flatten(1), t))
    close(rkd_distance_loss(10 * s, t), rkd_distance_loss(s, t))


def test_rkd_distance_gradients_stay_finite_with_duplicate_embeddings():
    s = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 5.0]], dtype=torch.float64, requires_grad=True)
    t = randn(3, 4, seed=26).requires_grad_(True)
    rkd_distance_loss(s, t).backward()
    assert torch.isfinite(s.grad).all() and t.grad is None


def test_rkd_angle_hand_value():
    # Student: right angle at A of the triangle A=(0,0), B=(1,0), C=(0,1): cosines 0 at A,
    # 1/sqrt 2 at B and C. Teacher: collinear 0, 1, 2: cosines 1, -1, 1.
    # Huber of the differences: 0.5 + (1/sqrt 2 + 1 - 0.5) + 0.5 (1 - 1/sqrt 2)^2 = 1.75,
    # each for two ordered triplets; all other triplets differ by 0 -> 3.5 / 27.
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    close(rkd_angle_loss(s, t), 7 / 54)


def test_rkd_angle_matches_python_triple_loop():
    s, t = randn(5, 3, seed=27), randn(5, 6, seed=28)
    close(rkd_angle_loss(s, t), py_rkd_angle(rows(s), rows(t)))


def test_rkd_angle_ignores_scale_and_translation_and_spares_the_teacher():
    s = randn(4, 3, seed=29).requires_grad_(True)
    t = randn(4, 8, seed=30).requires_grad_(True)
    close(rkd_angle_loss(s, 3 * t.detach() + 1), rkd_angle_loss(s, t))
    rkd_angle_loss(s, t).backward()
    assert s.grad is not None and t.grad is None


# ---------------------------------------------------------------------------
# sp_loss
# ---------------------------------------------------------------------------

def test_sp_loss_hand_value():
    # Student G = I (already unit rows). Teacher features (1), (1): G = all ones,
    # rows normalised to 1/sqrt 2. ||G_s - G_t||^2 = 2 (1 - 1/sqrt 2)^2 + 2 (1/2) = 4 - 2 sqrt 2,
    # divided by b^2 = 4.
    s = torch.eye(2, dtype=torch.float64)
    t = torch.ones(2, 1, dtype=torch.float64)
    close(sp_loss(s, t), 1 - math.sqrt(2) / 2)


def test_sp_loss_matches_python_loops_and_uses_the_l2_row_norm():
    s, t = randn(4, 2, 3, 3, seed=31), randn(4, 5, seed=32)
    close(sp_loss(s, t), py_sp(rows(s), rows(t)))
    # torchdistill's normalize(G, 1) is an L1 row norm: a different number.
    l1 = py_sp(rows(s), rows(t), row_norm=lambda r: sum(abs(v) for v in r))
    assert abs(sp_loss(s, t).item() - l1) > 1e-3


def test_sp_loss_spares_the_teacher_and_stays_float32_under_autocast():
    s = randn(6, 16, seed=33, dtype=torch.float32).requires_grad_(True)
    t = randn(6, 8, seed=34, dtype=torch.float32).requires_grad_(True)
    plain = sp_loss(s, t)
    plain.backward()
    assert s.grad is not None and t.grad is None
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 matmul would be off by ~1e-3
        under = sp_loss(s, t)
        angle = rkd_angle_loss(s, t)
    assert under.dtype == torch.float32
    close(under, plain.item(), tol=1e-6)
    close(angle, rkd_angle_loss(s, t).item(), tol=1e-6)


# ---------------------------------------------------------------------------
# dml_loss
# ---------------------------------------------------------------------------

def test_dml_loss_hand_value():
    # Network: logits (0, 0), label 0 -> CE ln 2. Peers (0, ln 3) and (ln 3, 0): each KL to the
    # uniform prediction is 1/4 ln(1/2) + 3/4 ln(3/2); their mean is the same.
    z = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    peers = [torch.tensor([[0.0, LN3]], dtype=torch.float64), torch.tensor([[LN3, 0.0]], dtype=torch.float64)]
    expected = LN2 + 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    close(dml_loss(z, peers, torch.tensor([0])), expected)


def test_dml_loss_matches_python_loops():
    z = randn(4, 5, seed=35)
    peers = [randn(4, 5, seed=36 + k) for k in range(3)]
    y = [4, 0, 2, 2]
    ce = sum(py_ce(row, c) for row, c in zip(z.tolist(), y)) / 4
    kl = sum(py_kl(py_softmax(p[b]), py_softmax(z.tolist()[b])) for p in (q.tolist() for q in peers)
             for b in range(4)) / (4 * 3)
    close(dml_loss(z, peers, torch.tensor(y)), ce + kl)


def test_dml_loss_accepts_one_tensor_or_a_tuple():
    z, peer, y = randn(3, 4, seed=40), randn(3, 4, seed=41), torch.tensor([1, 2, 3])
    close(dml_loss(z, peer, y), dml_loss(z, [peer], y).item())
    close(dml_loss(z, (peer, peer), y), dml_loss(z, [peer], y).item())


def test_dml_loss_gradient_and_no_gradient_to_peers():
    # d/dz [CE + mean_l KL(p_l || p)] = (softmax(z) - onehot) / B + (softmax(z) - mean_l p_l) / B
    B, K = 3, 4
    z = randn(B, K, seed=42).requires_grad_(True)
    peers = [randn(B, K, seed=43 + k).requires_grad_(True) for k in range(2)]
    y = torch.tensor([0, 3, 1])
    dml_loss(z, peers, y).backward()
    p = torch.softmax(z.detach(), 1).numpy()
    mean_peer = np.mean([torch.softmax(q.detach(), 1).numpy() for q in peers], axis=0)
    close(z.grad, ((p - np.eye(K)[y.numpy()]) + (p - mean_peer)) / B, tol=1e-12)
    assert all(q.grad is None for q in peers)


# ---------------------------------------------------------------------------
# label_smoothing_loss
# ---------------------------------------------------------------------------

def test_label_smoothing_hand_value():
    # p = (1/4, 3/4); eps = 0.2, K = 2, label 1 -> q' = (0.1, 0.9).
    z = torch.tensor([[0.0, LN3]], dtype=torch.float64)
    close(label_smoothing_loss(z, torch.tensor([1]), smoothing=0.2),
          -(0.1 * math.log(0.25) + 0.9 * math.log(0.75)))


def test_label_smoothing_matches_torch_and_plain_ce():
    z, y = randn(6, 5, seed=45), torch.tensor([0, 1, 2, 3, 4, 0])
    close(label_smoothing_loss(z, y, smoothing=0.15), F.cross_entropy(z, y, label_smoothing=0.15).item())
    close(label_smoothing_loss(z, y, smoothing=0.0), sum(py_ce(r, c) for r, c in zip(z.tolist(), y.tolist())) / 6)


# ---------------------------------------------------------------------------
# Bad inputs: every error names the argument at fault
# ---------------------------------------------------------------------------

S, TT = torch.randn(4, 5), torch.randn(4, 5)
Y = torch.tensor([0, 1, 2, 3])
FEAT_S, FEAT_T = torch.randn(4, 3, 5, 5), torch.randn(4, 6, 5, 5)
EMB_S, EMB_T = torch.randn(4, 8), torch.randn(4, 16)
NAN = torch.tensor([[float("nan"), 0.0, 0.0, 0.0, 0.0]] * 4)
INF = torch.tensor([[float("inf"), 0.0, 0.0, 0.0, 0.0]] * 4)

BAD_INPUTS = {
    # kd_loss
    "T zero": (lambda: kd_loss(S, TT, Y, T=0), ValueError, r"\bT must be"),
    "T negative": (lambda: kd_loss(S, TT, T=-1.0), ValueError, r"\bT must be"),
    "T nan": (lambda: kd_loss(S, TT, T=float("nan")), ValueError, r"\bT must be"),
    "T inf": (lambda: kd_loss(S, TT, T=float("inf")), ValueError, r"\bT must be"),
    "T string": (lambda: kd_loss(S, TT, T="4"), TypeError, r"\bT must be a real number"),
    "T None": (lambda: kd_loss(S, TT, T=None), TypeError, r"\bT must be a real number"),
    "T bool": (lambda: kd_loss(S, TT, T=True), TypeError, r"\bT must be a real number"),
    "alpha high": (lambda: kd_loss(S, TT, Y, alpha=1.5), ValueError, "alpha must be in"),
    "alpha low": (lambda: kd_loss(S, TT, Y, alpha=-0.1), ValueError, "alpha must be in"),
    "alpha string": (lambda: kd_loss(S, TT, Y, alpha="0.5"), TypeError, "alpha must be a real"),
    "batch mismatch": (lambda: kd_loss(S, TT[:3]), ValueError, "student_logits and teacher_logits must have the same batch"),
    "class mismatch": (lambda: kd_loss(S, torch.randn(4, 6)), ValueError, "teacher_logits must have the same number of classes"),
    "student nan": (lambda: kd_loss(NAN, TT), ValueError, "student_logits contains NaN"),
    "teacher inf": (lambda: kd_loss(S, INF), ValueError, "teacher_logits contains NaN or infinite"),
    "student 1-D": (lambda: kd_loss(S[0], TT[0]), ValueError, "student_logits must be 2-D"),
    "teacher 3-D": (lambda: kd_loss(S, TT[None]), ValueError, "teacher_logits must be 2-D"),
    "student empty": (lambda: kd_loss(S[:0], TT[:0]), ValueError, "student_logits is empty"),
    "student list": (lambda: kd_loss(S.tolist(), TT), TypeError, "student_logits must be a torch.Tensor"),
    "student int": (lambda: kd_loss(S.long(), TT), TypeError, "student_logits must be a floating-point"),
    "targets length": (lambda: kd_loss(S, TT, Y[:3]), ValueError, "targets must be 1-D"),
    "targets 2-D": (lambda: kd_loss(S, TT, Y[:, None]), ValueError, "targets must be 1-D"),
    "targets float": (lambda: kd_loss(S, TT, Y.float()), TypeError, "targets must hold integer"),
    "targets list": (lambda: kd_loss(S, TT, [0, 1, 2, 3]), TypeError, "targets must be a torch.Tensor"),
    "targets range": (lambda: kd_loss(S, TT, torch.tensor([0, 1, 2, 5])), ValueError, r"targets must be class indices in \[0, 5\)"),
    # softmax_t
    "softmax T": (lambda: softmax_t(S, T=0.0), ValueError, r"\bT must be"),
    "softmax logits list": (lambda: softmax_t([1.0, 2.0]), TypeError, "logits must be a torch.Tensor"),
    "softmax logits nan": (lambda: softmax_t(NAN), ValueError, "logits contains NaN"),
    # hint_loss
    "hint shape": (lambda: hint_loss(FEAT_S, FEAT_T), ValueError, "student_feat and teacher_feat must have the same shape"),
    "hint teacher nan": (lambda: hint_loss(NAN, INF), ValueError, "student_feat contains NaN"),
    "hint teacher type": (lambda: hint_loss(S, None), TypeError, "teacher_feat must be a torch.Tensor"),
    # attention
    "attention p zero": (lambda: attention_map(FEAT_S, p=0), ValueError, "p must be a finite number > 0"),
    "attention p negative": (lambda: at_loss(FEAT_S, FEAT_T, p=-2), ValueError, "p must be a finite number > 0"),
    "attention p string": (lambda: attention_map(FEAT_S, p="2"), TypeError, "p must be a real number"),
    "attention 3-D": (lambda: attention_map(FEAT_S[0]), ValueError, "feat must be 4-D"),
    "at student 2-D": (lambda: at_loss(S, FEAT_T), ValueError, "student_feat must be 4-D"),
    "at spatial": (lambda: at_loss(FEAT_S, FEAT_T[..., :4]), ValueError, "same spatial size"),
    "at batch": (lambda: at_loss(FEAT_S, FEAT_T[:2]), ValueError, "student_feat and teacher_feat must have the same batch"),
    "at teacher nan": (lambda: at_loss(FEAT_S, FEAT_T * float("nan")), ValueError, "teacher_feat contains NaN"),
    # RKD
    "rkd distance batch": (lambda: rkd_distance_loss(EMB_S[:1], EMB_T[:1]), ValueError, "student_emb needs a batch of at least 2"),
    "rkd angle batch": (lambda: rkd_angle_loss(EMB_S[:2], EMB_T[:2]), ValueError, "student_emb needs a batch of at least 3"),
    "rkd batch mismatch": (lambda: rkd_distance_loss(EMB_S, EMB_T[:3]), ValueError, "student_emb and teacher_emb must have the same batch"),
    "rkd 1-D": (lambda: rkd_angle_loss(EMB_S[0], EMB_T), ValueError, "student_emb must have at least 2"),
    "rkd teacher type": (lambda: rkd_angle_loss(EMB_S, "x"), TypeError, "teacher_emb must be a torch.Tensor"),
    "rkd teacher inf": (lambda: rkd_distance_loss(EMB_S, EMB_T / 0), ValueError, "teacher_emb contains NaN or infinite"),
    # SP
    "sp batch": (lambda: sp_loss(FEAT_S[:1], FEAT_T[:1]), ValueError, "student_feat needs a batch of at least 2"),
    "sp batch mismatch": (lambda: sp_loss(FEAT_S, FEAT_T[:3]), ValueError, "student_feat and teacher_feat must have the same batch"),
    # DML
    "dml empty peers": (lambda: dml_loss(S, [], Y), ValueError, "peer_logits is empty"),
    "dml peers type": (lambda: dml_loss(S, 5, Y), TypeError, "peer_logits must be a tensor or a list"),
    "dml peer classes": (lambda: dml_loss(S, [TT, torch.randn(4, 6)], Y), ValueError, r"peer_logits\[1\] must have the same number of classes"),
    "dml peer nan": (lambda: dml_loss(S, [NAN], Y), ValueError, r"peer_logits\[0\] contains NaN"),
    "dml targets": (lambda: dml_loss(S, [TT], Y[:2]), ValueError, "targets must be 1-D"),
    "dml targets missing": (lambda: dml_loss(S, [TT], None), TypeError, "targets must be a torch.Tensor"),
    # label smoothing
    "smoothing high": (lambda: label_smoothing_loss(S, Y, smoothing=1.5), ValueError, "smoothing must be in"),
    "smoothing type": (lambda: label_smoothing_loss(S, Y, smoothing="a"), TypeError, "smoothing must be a real"),
    "smoothing logits 1-D": (lambda: label_smoothing_loss(S[0], Y), ValueError, "logits must be 2-D"),
    # reverse_kl
    "rkl T zero": (lambda: reverse_kl(S, TT, T=0), ValueError, r"\bT must be"),
    "rkl T too high": (lambda: reverse_kl(S, TT, T=1e5), ValueError, r"T must be between 0\.001 and 10000"),
    "rkl T string": (lambda: reverse_kl(S, TT, T="1"), TypeError, r"\bT must be a real number"),
    "rkl T bool": (lambda: reverse_kl(S, TT, T=True), TypeError, r"\bT must be a real number"),
    "rkl batch mismatch": (lambda: reverse_kl(S, TT[:3]), ValueError,
                           r"student_logits and teacher_logits must have the same shape .*\(4, 5\) and \(3, 5\)"),
    "rkl vocab mismatch": (lambda: reverse_kl(S, torch.randn(4, 6)), ValueError, "share one vocabulary"),
    "rkl student 3-D": (lambda: reverse_kl(S[None], TT[None]), ValueError,
                        r"student_logits must be 2-D \(positions, vocabulary\).*\.flatten\(0, 1\)"),
    "rkl teacher 1-D": (lambda: reverse_kl(S, TT[0]), ValueError, "teacher_logits must be 2-D"),
    "rkl student 0-D": (lambda: reverse_kl(S[0, 0], TT), ValueError, "student_logits must be 2-D"),
    "rkl no positions": (lambda: reverse_kl(S[:0], TT[:0]), ValueError, "student_logits has no rows.*no position was selected"),
    "rkl no vocabulary": (lambda: reverse_kl(S[:, :0], TT[:, :0]), ValueError, "student_logits has no vocabulary"),
    "rkl student int": (lambda: reverse_kl(S.long(), TT), TypeError, "student_logits must be a floating-point"),
    "rkl teacher list": (lambda: reverse_kl(S, TT.tolist()), TypeError, "teacher_logits must be a torch.Tensor"),
    "rkl student nan": (lambda: reverse_kl(NAN, TT), ValueError, "student_logits contains NaN"),
    "rkl teacher inf": (lambda: reverse_kl(S, INF), ValueError, "teacher_logits contains NaN or infinite"),
    # generalized_jsd
    "jsd beta high": (lambda: generalized_jsd(S, TT, beta=1.5), ValueError, r"beta must be a number in \[0, 1\], got 1\.5"),
    "jsd beta negative": (lambda: generalized_jsd(S, TT, beta=-0.1), ValueError, r"beta must be a number in \[0, 1\]"),
    "jsd beta nan": (lambda: generalized_jsd(S, TT, beta=float("nan")), ValueError, r"beta must be a number in \[0, 1\], got nan"),
    "jsd beta inf": (lambda: generalized_jsd(S, TT, beta=float("inf")), ValueError, r"beta must be a number in \[0, 1\]"),
    "jsd beta string": (lambda: generalized_jsd(S, TT, beta="0.5"), TypeError, "beta must be a real number"),
    "jsd beta bool": (lambda: generalized_jsd(S, TT, beta=True), TypeError, "beta must be a real number"),
    "jsd beta None": (lambda: generalized_jsd(S, TT, beta=None), TypeError, "beta must be a real number"),
    "jsd beta tensor": (lambda: generalized_jsd(S, TT, beta=torch.tensor(0.5)), TypeError, "beta must be a real number"),
    "jsd T low": (lambda: generalized_jsd(S, TT, T=1e-4), ValueError, r"T must be between 0\.001 and 10000"),
    "jsd T nan": (lambda: generalized_jsd(S, TT, T=float("nan")), ValueError, r"\bT must be"),
    "jsd T bool": (lambda: generalized_jsd(S, TT, T=False), TypeError, r"\bT must be a real number"),
    "jsd shape": (lambda: generalized_jsd(S, TT[:, :4]), ValueError, "student_logits and teacher_logits must have the same shape"),
    "jsd teacher 3-D": (lambda: generalized_jsd(S, TT[None]), ValueError, r"teacher_logits must be 2-D.*\.flatten\(0, 1\)"),
    "jsd student bool": (lambda: generalized_jsd(S > 0, TT), TypeError, "student_logits must be a floating-point"),
    "jsd student nan": (lambda: generalized_jsd(NAN, TT, beta=0.3), ValueError, "student_logits contains NaN"),
    "jsd teacher nan at beta 0": (lambda: generalized_jsd(S, NAN, beta=0), ValueError, "teacher_logits contains NaN"),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs_raise_errors_that_name_the_argument(case):
    call, error, message = case
    with pytest.raises(error, match=message):
        call()


def test_value_checks_can_be_switched_off_for_a_block():
    with losses.value_checks(False):
        assert not losses.value_checks_enabled()
        assert torch.isnan(kd_loss(NAN, TT))  # no error: NaN propagates
        with pytest.raises(ValueError, match="student_logits must be 2-D"):  # shape checks stay
            kd_loss(S[0], TT[0])
    assert losses.value_checks_enabled()  # restored when the block ends
    with pytest.raises(ValueError, match="NaN"):
        kd_loss(NAN, TT)


def test_value_checks_switch_off_the_nan_check_of_the_per_position_losses_too():
    with losses.value_checks(False):
        assert torch.isnan(reverse_kl(NAN, TT))
        assert torch.isnan(generalized_jsd(S, NAN, beta=0.3))
        with pytest.raises(ValueError, match="student_logits must be 2-D"):  # shape checks stay
            generalized_jsd(S[None], TT[None])
        with pytest.raises(ValueError, match="beta must be"):  # so do argument checks
            generalized_jsd(S, TT, beta=2.0)
    with pytest.raises(ValueError, match="teacher_logits contains NaN"):
        generalized_jsd(S, NAN, beta=0.3)


def test_value_checks_are_restored_after_an_error_and_nest():
    with pytest.raises(RuntimeError):
        with losses.value_checks(False):
            raise RuntimeError("boom")
    assert losses.value_checks_enabled()
    with losses.value_checks(False):
        with losses.value_checks(True):
            with pytest.raises(ValueError, match="NaN"):
                kd_loss(NAN, TT)
        assert torch.isnan(kd_loss(NAN, TT))
    with pytest.raises(TypeError, match="enabled"):
        with losses.value_checks(0):
            pass


def test_value_checks_belong_to_one_thread():
    import threading

    inside, release, seen = threading.Event(), threading.Event(), {}

    def other_thread():
        with losses.value_checks(False):
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=other_thread)
    worker.start()
    assert inside.wait(5)
    seen["main"] = losses.value_checks_enabled()
    with pytest.raises(ValueError, match="NaN"):  # this thread's loss is still checked
        kd_loss(NAN, TT)
    release.set()
    worker.join(5)
    assert seen["main"] is True


# ---------------------------------------------------------------------------
# Properties (Hypothesis): what must hold for every input in the documented range
# ---------------------------------------------------------------------------
# The algebraic properties are checked in float64, where rounding stays far below the
# tolerances; the finiteness properties in float32, the precision the course trains in.

PROPERTY = settings(max_examples=100, deadline=None)
WHOLE_RANGE = settings(max_examples=200, deadline=None)  # the finiteness checks: more corners to visit


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run torch on one thread: the tensors here are tiny, and on a busy machine waking the
    other threads costs ~10 ms per op (log_softmax), a hundred times the work itself."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


property_test = pytest.mark.usefixtures("one_torch_thread")


def logit_arrays(min_rows=1, max_rows=6, max_classes=6):
    """(B, K) float64 logits in [-30, 30], B in [min_rows, max_rows], K in [2, max_classes]."""
    shapes = st.tuples(st.integers(min_rows, max_rows), st.integers(2, max_classes))
    return shapes.flatmap(lambda shape: hnp.arrays(np.float64, shape, elements=st.floats(-30, 30)))


# Temperatures spread evenly in log T over the supported range, ends included.
temperatures = st.one_of(st.sampled_from([losses.T_MIN, losses.T_MAX]),
                         st.floats(math.log10(losses.T_MIN), math.log10(losses.T_MAX)).map(lambda e: 10.0**e))


def soft(s, t, T):
    return kd_loss(torch.from_numpy(s), torch.from_numpy(t), T=T).item()


@property_test
@PROPERTY
@given(logit_arrays(), st.data(), temperatures)
def test_property_kl_is_never_negative(s, data, T):
    """KL >= 0: the soft term T^2 * KL(p_t || p_s) is never below 0 (up to rounding)."""
    t = data.draw(hnp.arrays(np.float64, s.shape, elements=st.floats(-30, 30)))
    assert soft(s, t, T) >= -1e-12 * max(1.0, T**2)


@property_test
@PROPERTY
@given(logit_arrays(), st.data(), temperatures)
def test_property_kl_is_zero_exactly_when_the_distributions_agree(s, data, T):
    """KL = 0 iff p_s = p_t: zero when t = s + a constant per row, positive when the
    softened distributions differ."""
    shifts = data.draw(hnp.arrays(np.float64, (len(s), 1), elements=st.floats(-100, 100)))
    assert abs(soft(s, s + shifts, T)) <= 1e-9 * max(1.0, T**2)

    t = data.draw(hnp.arrays(np.float64, s.shape, elements=st.floats(-30, 30)))
    p_s, p_t = softmax_t(torch.from_numpy(s), T=T), softmax_t(torch.from_numpy(t), T=T)
    if (p_s - p_t).abs().max() > 1e-4:
        assert soft(s, t, T) > 0


@property_test
@PROPERTY
@given(logit_arrays(), st.data(), temperatures, st.floats(0, 1))
def test_property_kd_loss_ignores_a_constant_added_to_a_row(s, data, T, alpha):
    """Softmax, hence kd_loss (both terms), is unchanged when a row of the student's or the
    teacher's logits is shifted by a constant."""
    t = data.draw(hnp.arrays(np.float64, s.shape, elements=st.floats(-30, 30)))
    y = torch.tensor(data.draw(st.lists(st.integers(0, s.shape[1] - 1), min_size=len(s), max_size=len(s))))
    a, b = (data.draw(hnp.arrays(np.float64, (len(s), 1), elements=st.floats(-100, 100))) for _ in "ab")
    s, t = torch.from_numpy(s), torch.from_numpy(t)
    base = kd_loss(s, t, y, T=T, alpha=alpha).item()
    shifted = kd_loss(s + torch.from_numpy(a), t + torch.from_numpy(b), y, T=T, alpha=alpha).item()
    assert shifted == pytest.approx(base, rel=1e-9, abs=1e-10 * max(1.0, T**2))


@property_test
@PROPERTY
@given(logit_arrays(), st.data(), temperatures, st.floats(0, 1))
def test_property_kd_loss_gradient_is_the_analytic_one(s, data, T, alpha):
    """d kd_loss / d s = alpha (softmax(s) - onehot(y)) / B + (1 - alpha) T (softmax(s/T) - softmax(t/T)) / B."""
    t = torch.from_numpy(data.draw(hnp.arrays(np.float64, s.shape, elements=st.floats(-30, 30))))
    y = torch.tensor(data.draw(st.lists(st.integers(0, s.shape[1] - 1), min_size=len(s), max_size=len(s))))
    s = torch.from_numpy(s).requires_grad_(True)
    kd_loss(s, t, y, T=T, alpha=alpha).backward()
    B, z = len(s), s.detach()
    onehot = F.one_hot(y, s.shape[1]).double()
    expected = (alpha * (torch.softmax(z, 1) - onehot) / B
                + (1 - alpha) * T * (torch.softmax(z / T, 1) - torch.softmax(t / T, 1)) / B)
    close(s.grad, expected, tol=1e-9)


@property_test
@PROPERTY
@given(logit_arrays(min_rows=2, max_rows=8), st.data(), temperatures, st.floats(0, 1))
def test_property_kd_loss_of_a_split_batch_is_the_size_weighted_mean(s, data, T, alpha):
    """Batchmean: the loss of a batch is the size-weighted mean of the losses of its two parts."""
    t = torch.from_numpy(data.draw(hnp.arrays(np.float64, s.shape, elements=st.floats(-30, 30))))
    y = torch.tensor(data.draw(st.lists(st.integers(0, s.shape[1] - 1), min_size=len(s), max_size=len(s))))
    s, B = torch.from_numpy(s), len(s)
    k = data.draw(st.integers(1, B - 1))  # the first part's size
    for targets in (None, y):
        whole = kd_loss(s, t, targets, T=T, alpha=alpha).item()
        first = kd_loss(s[:k], t[:k], None if targets is None else targets[:k], T=T, alpha=alpha).item()
        second = kd_loss(s[k:], t[k:], None if targets is None else targets[k:], T=T, alpha=alpha).item()
        assert whole == pytest.approx((k * first + (B - k) * second) / B, rel=1e-9, abs=1e-12 * max(1.0, T**2))


# beta on a grid of k / 2^20: 1 - beta is then exact, so JSD_beta and JSD_{1 - beta} meet the
# same two numbers, and the ends 0 and 1 come up as often as Hypothesis likes.
BETA_STEPS = 2**20
betas = st.integers(0, BETA_STEPS).map(lambda k: k / BETA_STEPS)
inner_betas = st.integers(1, BETA_STEPS - 1).map(lambda k: k / BETA_STEPS)


def teacher_like(data, s):
    return torch.from_numpy(data.draw(hnp.arrays(np.float64, s.shape, elements=st.floats(-30, 30))))


def binary_entropy(beta):
    return -sum(w * math.log(w) for w in (beta, 1 - beta) if w > 0)


@property_test
@PROPERTY
@given(logit_arrays(), st.data(), temperatures, betas)
def test_property_per_position_losses_are_never_negative_and_jsd_is_bounded(s, data, T, beta):
    """KL >= 0 and JSD_beta >= 0; inside (0, 1), JSD_beta <= H(beta) = -beta ln beta - (1 - beta) ln(1 - beta)
    (each KL to the mixture is at most -ln of its weight), times T^2."""
    t, s = teacher_like(data, s), torch.from_numpy(s)
    tol = 1e-12 * max(1.0, T**2)
    assert reverse_kl(s, t, T=T).item() >= -tol
    jsd = generalized_jsd(s, t, beta=beta, T=T).item()
    assert jsd >= -tol
    if 0 < beta < 1:
        assert jsd <= T**2 * binary_entropy(beta) * (1 + 1e-12) + tol


@property_test
@PROPERTY
@given(logit_arrays(), st.data(), temperatures, betas)
def test_property_per_position_losses_are_zero_exactly_when_the_distributions_agree(s, data, T, beta):
    """Zero when t = s + a constant per row (p_t = p_s), positive when the softened distributions differ."""
    shifts = data.draw(hnp.arrays(np.float64, (len(s), 1), elements=st.floats(-100, 100)))
    s_t, same = torch.from_numpy(s), torch.from_numpy(s + shifts)
    tol = 1e-9 * max(1.0, T**2)
    assert abs(reverse_kl(s_t, same, T=T).item()) <= tol
    assert abs(generalized_jsd(s_t, same, beta=beta, T=T).item()) <= tol

    t = teacher_like(data, s)
    if (softmax_t(s_t, T=T) - softmax_t(t, T=T)).abs().max() > 1e-4:
        assert reverse_kl(s_t, t, T=T).item() > 0
        assert generalized_jsd(s_t, t, beta=beta, T=T).item() > 0


@property_test
@PROPERTY
@given(logit_arrays(), st.data(), temperatures, betas)
def test_property_jsd_with_the_roles_swapped_is_jsd_with_one_minus_beta(s, data, T, beta):
    """JSD_beta(student s, teacher t) = JSD_{1 - beta}(student t, teacher s): m, and the two weighted
    KLs, are the same ones; at the ends, forward KL(p_t || p_s) = reverse KL with the roles swapped."""
    t, s = teacher_like(data, s), torch.from_numpy(s)
    swapped = generalized_jsd(t, s, beta=1 - beta, T=T).item()
    assert generalized_jsd(s, t, beta=beta, T=T).item() == pytest.approx(swapped, rel=1e-9, abs=1e-12 * max(1.0, T**2))


@property_test
@PROPERTY
@given(logit_arrays(), st.data(), temperatures, inner_betas)
def test_property_jsd_matches_the_entropy_form_and_its_gradient(s, data, T, beta):
    """Inside (0, 1), value and gradient agree with H(m) - beta H(p_t) - (1 - beta) H(p_s) computed
    from plain softmax probabilities and differentiated by autograd."""
    t = teacher_like(data, s)
    s = torch.from_numpy(s).requires_grad_(True)
    ours = generalized_jsd(s, t, beta=beta, T=T)
    ours.backward()
    ours_grad, s.grad = s.grad, None
    theirs = entropy_form_jsd(s, t, beta, T)
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-7, abs=1e-12 * max(1.0, T**2))
    np.testing.assert_allclose(ours_grad.numpy(), s.grad.numpy(), rtol=1e-6, atol=1e-10 * max(1.0, T))


@property_test
@PROPERTY
@given(logit_arrays(min_rows=2, max_rows=8), st.data(), temperatures, betas)
def test_property_per_position_losses_of_a_split_batch_are_the_size_weighted_mean(s, data, T, beta):
    """Averaged over rows (positions): the loss of N rows is the size-weighted mean of the losses of
    two parts, so a sequence's loss does not grow with its length."""
    t, s, N = teacher_like(data, s), torch.from_numpy(s), len(s)
    k = data.draw(st.integers(1, N - 1))
    for loss in (lambda a, b: reverse_kl(a, b, T=T), lambda a, b: generalized_jsd(a, b, beta=beta, T=T)):
        whole, first, second = loss(s, t).item(), loss(s[:k], t[:k]).item(), loss(s[k:], t[k:]).item()
        assert whole == pytest.approx((k * first + (N - k) * second) / N, rel=1e-9, abs=1e-12 * max(1.0, T**2))


def embedding_pairs(min_batch):
    """Student (B, D) and teacher (B, D') float64 embeddings in [-10, 10], B in [min_batch, 6]."""
    return st.tuples(st.integers(min_batch, 6), st.integers(1, 5), st.integers(1, 5)).flatmap(
        lambda bdd: st.tuples(hnp.arrays(np.float64, bdd[:2], elements=st.floats(-10, 10)),
                              hnp.arrays(np.float64, (bdd[0], bdd[2]), elements=st.floats(-10, 10))))


@property_test
@PROPERTY
@given(st.sampled_from([rkd_distance_loss, rkd_angle_loss, sp_loss]), st.data())
def test_property_relational_losses_ignore_the_order_of_the_batch(loss_fn, data):
    """RKD and SP compare every pair (or triplet) of samples: permuting the batch the same way
    for student and teacher leaves the loss unchanged."""
    s, t = map(torch.from_numpy, data.draw(embedding_pairs(3)))
    order = torch.tensor(data.draw(st.permutations(range(len(s)))))
    close(loss_fn(s[order], t[order]), loss_fn(s, t).item(), tol=1e-9)


@property_test
@PROPERTY
@given(st.data(), st.sampled_from([1, 2, 3, 4]))
def test_property_attention_maps_ignore_the_order_of_the_channels(data, p):
    """F^p_sum(A) = sum_c |A_c|^p does not depend on the order of the channels: neither does
    attention_map, nor at_loss when student and teacher channels are permuted."""
    B, H, W = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    s = torch.from_numpy(data.draw(hnp.arrays(np.float64, (B, data.draw(st.integers(1, 4)), H, W),
                                              elements=st.floats(-10, 10))))
    t = torch.from_numpy(data.draw(hnp.arrays(np.float64, (B, data.draw(st.integers(1, 4)), H, W),
                                              elements=st.floats(-10, 10))))
    ps = torch.tensor(data.draw(st.permutations(range(s.shape[1]))))
    pt = torch.tensor(data.draw(st.permutations(range(t.shape[1]))))
    close(attention_map(s[:, ps], p), attention_map(s, p), tol=1e-12)
    close(at_loss(s[:, ps], t[:, pt], p), at_loss(s, t, p).item(), tol=1e-12)


# Finite values and gradients over the whole documented range, in float32. Feature values:
# 0, or of size 1e-30 to 1e30, either at one common scale or mixed within a tensor.
signed_mantissas = st.one_of(st.just(0.0), st.builds(lambda sign, m: sign * m, st.sampled_from([-1.0, 1.0]),
                                                     st.floats(1.0, 9.99)))


def wide_arrays(shape, max_exponent=29):
    """float32 tensors whose nonzero values have sizes from 1e-30 to 10**(max_exponent + 1)."""
    exponents = st.integers(-30, max_exponent)
    common = st.tuples(hnp.arrays(np.float64, shape, elements=signed_mantissas), exponents).map(
        lambda ak: ak[0] * 10.0 ** ak[1])
    mixed = hnp.arrays(np.float64, shape, elements=st.builds(lambda m, e: m * 10.0**e, signed_mantissas, exponents))
    return st.one_of(common, mixed).map(lambda a: torch.tensor(a, dtype=torch.float32))


def finite_value_and_gradient(loss_fn, student, *rest, **kwargs):
    student = student.clone().requires_grad_(True)
    loss = loss_fn(student, *rest, **kwargs)
    loss.backward()
    return bool(torch.isfinite(loss)) and bool(torch.isfinite(student.grad).all())


@property_test
@WHOLE_RANGE
@given(st.data(), temperatures, st.floats(0, 1), st.booleans())
def test_property_kd_loss_and_softmax_t_are_finite_over_the_supported_range(data, T, alpha, with_targets):
    """For 1e-3 <= T <= 1e4 and logits up to 1e30 in size: finite loss, finite gradient,
    and softmax_t rows that sum to 1 (and finite dml_loss and label_smoothing_loss)."""
    B, K = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 5))
    s, t = data.draw(wide_arrays((B, K))), data.draw(wide_arrays((B, K)))
    y = torch.tensor(data.draw(st.lists(st.integers(0, K - 1), min_size=B, max_size=B)))
    assert finite_value_and_gradient(kd_loss, s, t, y if with_targets else None, T=T, alpha=alpha)
    close(softmax_t(s, T=T).sum(dim=1), np.ones(B), tol=1e-5)
    assert finite_value_and_gradient(dml_loss, s, [t], y)
    assert finite_value_and_gradient(label_smoothing_loss, s, y, smoothing=alpha)


@property_test
@WHOLE_RANGE
@given(st.data(), temperatures, st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)))
def test_property_per_position_losses_are_finite_over_the_supported_range(data, T, beta):
    """For 1e-3 <= T <= 1e4, 0 <= beta <= 1 and float32 logits up to 1e30 in size (tokens whose
    probability underflows to 0 included): finite reverse_kl and generalized_jsd, finite gradients."""
    N, V = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 5))
    s, t = data.draw(wide_arrays((N, V))), data.draw(wide_arrays((N, V)))
    assert finite_value_and_gradient(reverse_kl, s, t, T=T)
    assert finite_value_and_gradient(generalized_jsd, s, t, beta=beta, T=T)


attention_powers = st.one_of(st.sampled_from([1, 2, 4, losses.P_MAX]), st.floats(losses.P_MIN, losses.P_MAX))


@property_test
@WHOLE_RANGE
@given(st.data(), attention_powers)
@example(None, 1).via("an all-zero student sample at p = 1")
def test_property_attention_is_finite_over_the_supported_range(data, p):
    """For 1 <= p <= 1000 and features of size 1e-30 to 1e30 (zeros included): unit or zero
    map rows, a finite at_loss and a finite gradient."""
    if data is None:
        s, t = torch.zeros(1, 1, 1, 1), -torch.ones(1, 1, 1, 1)
    else:
        B, H, W = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
        s = data.draw(wide_arrays((B, data.draw(st.integers(1, 3)), H, W)))
        t = data.draw(wide_arrays((B, data.draw(st.integers(1, 3)), H, W)))
    norms = attention_map(s, p).norm(dim=1)
    assert (((norms - 1).abs() < 1e-5) | (norms == 0)).all()
    assert finite_value_and_gradient(at_loss, s, t, p=p)


ZERO_SAMPLE_AND_REPEATS = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, -1.0]])


@property_test
@WHOLE_RANGE
@given(st.sampled_from([rkd_distance_loss, rkd_angle_loss, sp_loss]), st.data())
@example(rkd_angle_loss, None).via("an all-zero sample and a repeated one, at 1e-30")
@example(sp_loss, None).via("an all-zero sample and a repeated one, at 1e-30")
def test_property_relational_losses_are_finite_over_the_supported_range(loss_fn, data):
    """For embeddings of size 1e-30 to 1e30 (zeros and repeated samples included): finite
    loss and finite gradient."""
    if data is None:
        s, t = ZERO_SAMPLE_AND_REPEATS * 1e-30, torch.ones(4, 3).cumsum(0)
    else:
        B = data.draw(st.integers(3, 5))
        s = data.draw(wide_arrays((B, data.draw(st.integers(1, 4)))))
        t = data.draw(wide_arrays((B, data.draw(st.integers(1, 4)))))
    assert finite_value_and_gradient(loss_fn, s, t)


@property_test
@WHOLE_RANGE
@given(st.data())
def test_property_hint_loss_is_finite_over_the_supported_range(data):
    """For features up to 1e15 in size (its squares, summed, fit in float32): finite MSE and gradient."""
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=4, max_side=4))
    s, t = data.draw(wide_arrays(shape, max_exponent=14)), data.draw(wide_arrays(shape, max_exponent=14))
    assert finite_value_and_gradient(hint_loss, s, t)


@property_test
@PROPERTY
@given(hnp.array_shapes(min_dims=2, max_dims=4, min_side=0, max_side=3).filter(
    lambda shape: shape[0] > 0 and 0 in shape[1:]))
def test_property_zero_width_features_are_refused_by_every_feature_loss(shape):
    """A feature tensor with no values per sample, (B, 0), (B, 0, H, W), (B, C, 0, W), ...,
    is refused with a ValueError that names it, by every loss that takes features."""
    empty = torch.zeros(shape)
    message = rf"student_(feat|emb) has no features \(shape \({', '.join(map(str, shape))},?\)\)"
    calls = [lambda: hint_loss(empty, empty)] + [lambda f=f: f(empty, torch.ones(shape[0], 2))
                                                 for f in (rkd_distance_loss, rkd_angle_loss, sp_loss)]
    if len(shape) == 4:
        calls.append(lambda: at_loss(empty, empty))
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()


# ---------------------------------------------------------------------------
# topk_kd_loss: a teacher known by its top k classes (the rest spread evenly)
# ---------------------------------------------------------------------------

from kdteach.losses import topk_kd_loss  # noqa: E402


def topk_of(t, k):
    """The top k log-probabilities (T = 1) of teacher logits t, and their classes."""
    return torch.log_softmax(t, dim=1).topk(k, dim=1)


def completed_teacher(t, k):
    """The teacher topk_kd_loss assumes, written out with Python loops: the top k
    probabilities as they are, the rest 1 - sum spread evenly over the V - k others."""
    rows = []
    for row in t.tolist():
        p = py_softmax(row)
        top = sorted(range(len(p)), key=lambda i: -p[i])[:k]
        rest = (1 - sum(p[i] for i in top)) / (len(p) - k) if k < len(p) else 0.0
        rows.append([p[i] if i in top else rest for i in range(len(p))])
    return rows


def py_topk_kd(s, t, k, T):
    """T^2 * mean over rows of KL(p_T || softmax(s / T)), p_T proportional to p^(1/T)."""
    total = 0.0
    for s_row, p in zip(s.tolist(), completed_teacher(t, k)):
        w = [v ** (1 / T) for v in p]
        pt = [v / sum(w) for v in w]
        q = py_softmax(s_row, T)
        total += sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, q) if a > 0)
    return T**2 * total / len(s)


def test_topk_kd_loss_hand_values():
    """V = 3, the teacher's top class has p = 1/2; the other two get 1/4 each. Against a
    uniform student, at T = 1: KL = 1/2 ln(3/2) + 2 * 1/4 ln(3/4) = 1/2 ln(9/8). At T = 2 the
    completed teacher is proportional to sqrt(1/2, 1/4, 1/4) = (√2, 1, 1) / 2."""
    s, lp, idx = torch.zeros(1, 3, dtype=torch.float64), torch.tensor([[math.log(0.5)]], dtype=torch.float64), torch.tensor([[0]])
    close(topk_kd_loss(s, lp, idx, T=1.0), 0.5 * math.log(9 / 8))
    z = math.sqrt(2) + 2
    p = [math.sqrt(2) / z, 1 / z, 1 / z]
    close(topk_kd_loss(s, lp, idx, T=2.0), 4 * sum(v * math.log(3 * v) for v in p))


def test_topk_kd_loss_matches_python_loops_for_every_k():
    s, t = randn(5, 7, seed=1), randn(5, 7, seed=2) * 3
    for k in range(1, 8):
        for T in (0.5, 1.0, 4.0):
            close(topk_kd_loss(s, *topk_of(t, k), T=T), py_topk_kd(s, t, k, T), tol=1e-9)


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0, 20.0])
def test_topk_kd_loss_with_k_equal_to_v_is_kd_loss_soft_term(T):
    s, t = randn(6, 10, seed=3), randn(6, 10, seed=4) * 4
    close(topk_kd_loss(s, *topk_of(t, 10), T=T), kd_loss(s, t, T=T), tol=1e-12)


def test_topk_kd_loss_ignores_the_order_of_the_top_k():
    s, t = randn(4, 9, seed=5), randn(4, 9, seed=6)
    lp, idx = topk_of(t, 4)
    perm = torch.tensor([2, 0, 3, 1])
    close(topk_kd_loss(s, lp[:, perm], idx[:, perm], T=3.0), topk_kd_loss(s, lp, idx, T=3.0), tol=1e-12)


def test_topk_kd_loss_is_zero_when_the_student_is_the_completed_teacher():
    t = randn(4, 6, seed=7)
    s = torch.tensor(completed_teacher(t, 2), dtype=torch.float64).log()
    close(topk_kd_loss(s, *topk_of(t, 2), T=2.5), 0.0, tol=1e-12)


def test_topk_kd_loss_with_no_mass_left_adds_nothing_and_keeps_a_finite_gradient():
    """A one-hot teacher (r = 0): the other classes get probability 0 and add 0."""
    s = randn(2, 4, seed=8, dtype=torch.float32).requires_grad_(True)
    lp, idx = torch.zeros(2, 1), torch.tensor([[1], [3]])
    loss = topk_kd_loss(s, lp, idx, T=1.0)
    loss.backward()
    close(loss, F.cross_entropy(s.detach(), idx[:, 0]), tol=1e-6)
    assert torch.isfinite(s.grad).all()


def test_topk_kd_loss_reads_a_half_precision_cache_and_spares_the_teacher():
    s = randn(3, 10, seed=9, dtype=torch.float32).requires_grad_(True)
    lp, idx = topk_of(randn(3, 10, seed=10, dtype=torch.float32), 5)
    lp = lp.half().requires_grad_(True)
    loss = topk_kd_loss(s, lp, idx.int(), T=4.0)
    assert loss.dtype == torch.float32
    loss.backward()
    assert lp.grad is None and torch.isfinite(s.grad).all()
    close(loss, topk_kd_loss(s.detach(), lp.detach().float(), idx, T=4.0), tol=1e-6)


def test_topk_kd_loss_gradient_matches_autograd_of_the_written_out_loss():
    s, t = randn(3, 6, seed=11).requires_grad_(True), randn(3, 6, seed=12)
    full = torch.tensor(completed_teacher(t, 3), dtype=torch.float64)
    topk_kd_loss(s, *topk_of(t, 3), T=2.0).backward()
    # d/ds of T^2 KL(p_T || softmax(s/T)) / B = T (softmax(s/T) - p_T) / B
    p_T = full ** 0.5 / (full ** 0.5).sum(1, keepdim=True)
    close(s.grad, 2.0 * (torch.softmax(s.detach() / 2.0, 1) - p_T) / 3, tol=1e-9)


LP3, IDX3 = topk_of(TT, 3)
TOPK_BAD = {
    "T zero": (lambda: topk_kd_loss(S, LP3, IDX3, T=0), ValueError, r"\bT must be"),
    "student 3-D": (lambda: topk_kd_loss(S[None], LP3, IDX3), ValueError, "student_logits must be 2-D"),
    "logprobs 1-D": (lambda: topk_kd_loss(S, LP3[0], IDX3), ValueError, "topk_logprobs must be 2-D"),
    "logprobs int": (lambda: topk_kd_loss(S, LP3.long(), IDX3), TypeError, "topk_logprobs must be a floating-point"),
    "logprobs nan": (lambda: topk_kd_loss(S, LP3 * float("nan"), IDX3), ValueError, "topk_logprobs contains NaN"),
    "logprobs are logits": (lambda: topk_kd_loss(S, LP3 + 5, IDX3), ValueError, "topk_logprobs must be log-probabilities"),
    "indices float": (lambda: topk_kd_loss(S, LP3, IDX3.float()), TypeError, "topk_indices must hold integer"),
    "indices list": (lambda: topk_kd_loss(S, LP3, IDX3.tolist()), TypeError, "topk_indices must be a torch.Tensor"),
    "indices shape": (lambda: topk_kd_loss(S, LP3, IDX3[:, :2]), ValueError, "topk_indices must have the shape of topk_logprobs"),
    "rows": (lambda: topk_kd_loss(S[:2], LP3, IDX3), ValueError, "student_logits has 2"),
    "k > V": (lambda: topk_kd_loss(S[:, :2], LP3, IDX3), ValueError, "k must be between 1 and 2"),
    "k = 0": (lambda: topk_kd_loss(S, LP3[:, :0], IDX3[:, :0]), ValueError, "k = 0"),
    "index range": (lambda: topk_kd_loss(S, LP3, IDX3 + 5), ValueError, r"topk_indices must be class indices in \[0, 5\)"),
    "repeated class": (lambda: topk_kd_loss(S, LP3, IDX3[:, [0, 0, 1]]), ValueError, "repeats a class"),
}


@pytest.mark.parametrize("case", TOPK_BAD.values(), ids=TOPK_BAD.keys())
def test_topk_kd_loss_bad_inputs_name_the_argument(case):
    call, error, message = case
    with pytest.raises(error, match=message):
        call()


@property_test
@PROPERTY
@given(logit_arrays(), st.data(), temperatures)
def test_property_topk_kd_loss_is_never_negative_and_is_kd_loss_at_k_equal_v(s, data, T):
    t = teacher_like(data, s)
    s = torch.from_numpy(s)
    V = s.shape[1]
    k = data.draw(st.integers(1, V))
    assert topk_kd_loss(s, *topk_of(t, k), T=T).item() >= -1e-12 * max(1.0, T**2)
    full = topk_kd_loss(s, *topk_of(t, V), T=T).item()
    assert full == pytest.approx(kd_loss(s, t, T=T).item(), rel=1e-7, abs=1e-10 * max(1.0, T**2))


@property_test
@PROPERTY
@given(logit_arrays(min_rows=2), st.data(), temperatures)
def test_property_topk_kd_loss_of_a_split_batch_is_the_size_weighted_mean(s, data, T):
    """Batchmean, as kd_loss: what makes the ranks' mean losses average to the batch's."""
    t, s = teacher_like(data, s), torch.from_numpy(s)
    B, k = len(s), data.draw(st.integers(1, s.shape[1]))
    lp, idx = topk_of(t, k)
    m = data.draw(st.integers(1, B - 1))
    whole = topk_kd_loss(s, lp, idx, T=T).item()
    parts = (m * topk_kd_loss(s[:m], lp[:m], idx[:m], T=T).item()
             + (B - m) * topk_kd_loss(s[m:], lp[m:], idx[m:], T=T).item()) / B
    assert whole == pytest.approx(parts, rel=1e-9, abs=1e-12 * max(1.0, T**2))


@property_test
@WHOLE_RANGE
@given(logit_arrays(), st.data(), temperatures)
def test_property_topk_kd_loss_and_its_gradient_are_finite_in_float32(s, data, T):
    t = teacher_like(data, s).float()
    s = torch.from_numpy(s).float().requires_grad_(True)
    lp, idx = topk_of(t, data.draw(st.integers(1, s.shape[1])))
    loss = topk_kd_loss(s, lp.half(), idx, T=T)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
