"""Extreme but well-formed arguments to the losses: each gives a finite, correct answer or a
ValueError that names the argument and its valid range, never a NaN, an inf or a bare
OverflowError. One test per defect found; each failed on the code before the fix."""
from __future__ import annotations

import pytest
import torch

import math

from kdteach.losses import (
    at_loss,
    attention_map,
    generalized_jsd,
    hint_loss,
    kd_loss,
    reverse_kl,
    rkd_angle_loss,
    rkd_distance_loss,
    softmax_t,
    sp_loss,
)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


S, T = randn(4, 5, seed=1), randn(4, 5, seed=2)
Y = torch.tensor([0, 1, 2, 3])
RELATIONAL = [rkd_distance_loss, rkd_angle_loss, sp_loss]


def finite_with_finite_grad(loss_fn, student, *rest, **kwargs):
    student = student.clone().requires_grad_(True)
    loss = loss_fn(student, *rest, **kwargs)
    loss.backward()
    return bool(torch.isfinite(loss)) and bool(torch.isfinite(student.grad).all())


# -- temperature: T = 1e-40 and T = 1e20 gave NaN, T = 1e200 an OverflowError ------------

def test_softmax_t_at_T_1e_minus_40_is_refused_instead_of_nan():
    with pytest.raises(ValueError, match=r"T must be between 0\.001 and 10000, got 1e-40"):
        softmax_t(S, T=1e-40)


def test_kd_loss_at_T_1e_minus_40_is_refused_instead_of_nan():
    with pytest.raises(ValueError, match=r"T must be between 0\.001 and 10000, got 1e-40"):
        kd_loss(S, T, Y, T=1e-40)


def test_kd_loss_at_T_1e20_is_refused_instead_of_nan():
    with pytest.raises(ValueError, match=r"T must be between 0\.001 and 10000, got 1e\+20"):
        kd_loss(S, T, T=1e20)


def test_kd_loss_at_T_1e200_raises_value_error_not_overflow_error():
    with pytest.raises(ValueError, match=r"T must be between 0\.001 and 10000, got 1e\+200"):
        kd_loss(S, T, Y, T=1e200)


# -- attention: p = 200 gave NaN (|F|^p overflowed / underflowed), so did features of 1e30 ----

def test_attention_map_at_p_200_is_finite_with_unit_rows():
    amap = attention_map(randn(2, 3, 4, 4, seed=3) * 10, p=200)
    assert torch.isfinite(amap).all()
    torch.testing.assert_close(amap.norm(dim=1), torch.ones(2))


def test_at_loss_at_p_200_is_finite_and_so_is_its_gradient():
    assert finite_with_finite_grad(at_loss, randn(2, 3, 4, 4, seed=4) * 10, randn(2, 5, 4, 4, seed=5), p=200)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_attention_map_of_features_at_1e30_or_1e_minus_30_matches_scale_1(scale):
    feat = randn(2, 3, 4, 4, seed=6)
    torch.testing.assert_close(attention_map(feat * scale), attention_map(feat))


def test_attention_power_below_1_is_refused_instead_of_a_nan_gradient():
    # |A|^0.5 has an infinite slope at 0: a ReLU feature map gave NaN gradients.
    with pytest.raises(ValueError, match=r"p must be between 1 and 1000, got 0\.5"):
        at_loss(torch.relu(randn(2, 3, 4, 4, seed=7)), randn(2, 3, 4, 4, seed=8), p=0.5)


# -- zero-width features gave NaN (hint, attention) or a meaningless number (RKD, SP) --------

def test_hint_loss_with_zero_width_features_is_refused_instead_of_nan():
    with pytest.raises(ValueError, match=r"student_feat has no features \(shape \(4, 0\)\)"):
        hint_loss(torch.zeros(4, 0), torch.zeros(4, 0))


def test_attention_with_zero_channels_is_refused_instead_of_nan():
    with pytest.raises(ValueError, match=r"feat has no features \(shape \(2, 0, 4, 4\)\)"):
        attention_map(torch.zeros(2, 0, 4, 4))
    with pytest.raises(ValueError, match=r"student_feat has no features \(shape \(2, 0, 4, 4\)\)"):
        at_loss(torch.zeros(2, 0, 4, 4), randn(2, 3, 4, 4))


def test_at_loss_with_zero_spatial_size_is_refused_instead_of_nan():
    with pytest.raises(ValueError, match=r"student_feat has no features \(shape \(2, 3, 0, 4\)\)"):
        at_loss(torch.zeros(2, 3, 0, 4), torch.zeros(2, 3, 0, 4))


@pytest.mark.parametrize("loss_fn", RELATIONAL)
def test_relational_losses_with_zero_width_embeddings_are_refused(loss_fn):
    with pytest.raises(ValueError, match=r"(student_emb|student_feat) has no features \(shape \(4, 0\)\)"):
        loss_fn(torch.zeros(4, 0), randn(4, 3))


# -- relational losses: inputs near 1e30 gave NaN (RKD distance, SP) or a wrong number (angle),
# -- and so did inputs near 1e-30 (squares underflowed to 0) ---------------------------------

@pytest.mark.parametrize("loss_fn", [rkd_distance_loss, sp_loss])
@pytest.mark.parametrize("scale", [1e20, 1e30])
def test_rkd_distance_and_sp_near_1e30_are_finite_with_finite_gradients(loss_fn, scale):
    assert finite_with_finite_grad(loss_fn, randn(5, 4, seed=9) * scale, randn(5, 6, seed=10) * scale)


@pytest.mark.parametrize("loss_fn", RELATIONAL)
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_relational_losses_at_1e30_or_1e_minus_30_match_scale_1(loss_fn, scale):
    s, t = randn(5, 4, seed=11), randn(5, 6, seed=12)
    torch.testing.assert_close(loss_fn(s * scale, t), loss_fn(s, t))


# -- relational losses: an all-zero or a repeated sample gave gradients of ~1e10 ------------

def test_sp_loss_gradient_for_an_all_zero_sample_stays_small():
    s = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]], requires_grad=True)
    sp_loss(s, randn(3, 4, seed=13)).backward()
    assert s.grad.abs().max() < 10  # F.normalize's eps of 1e-12 made it ~1e10


def test_rkd_angle_loss_gradient_for_a_repeated_sample_stays_small():
    s = torch.tensor([[1.0, 1.0], [1.0, 1.0], [2.0, -1.0], [0.0, 3.0]], requires_grad=True)
    rkd_angle_loss(s, randn(4, 4, seed=14)).backward()
    assert s.grad.abs().max() < 10


# -- per-position losses (reverse_kl, generalized_jsd): what a plain implementation gets wrong --

@pytest.mark.parametrize("beta", [1e-6, 1e-5, 1 - 1e-5, 1 - 1e-6])
def test_generalized_jsd_near_beta_0_or_1_keeps_its_digits_in_float32(beta):
    # Computing log m - log p_s as a difference of two float32 logarithms of size ~1 leaves an
    # error of ~1e-7 in a number of size ~beta: at these betas the loss came out 0.06-0.2 % off.
    s, t = randn(64, 65, seed=15) * 2, randn(64, 65, seed=16) * 2
    exact = generalized_jsd(s.double(), t.double(), beta=beta).item()
    assert generalized_jsd(s, t, beta=beta).item() == pytest.approx(exact, rel=1e-4)


def test_per_position_losses_where_the_students_probability_underflows_to_0():
    # p_s = (1, 0) in float32 (logits 1e30 apart), p_t = (1/2, 1/2): no log(0), no 0 * inf.
    s = torch.tensor([[1e30, 0.0]])
    t = torch.zeros(1, 2)
    assert reverse_kl(s, t).item() == pytest.approx(math.log(2), rel=1e-6)
    # beta = 1/2: m = (3/4, 1/4); 1/2 KL(p_t || m) + 1/2 KL(p_s || m).
    expected = 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2)) + 0.5 * math.log(4 / 3)
    assert generalized_jsd(s, t).item() == pytest.approx(expected, rel=1e-6)
    for beta in (0.0, 0.5, 1.0):
        assert finite_with_finite_grad(generalized_jsd, s, t, beta=beta)
    assert finite_with_finite_grad(reverse_kl, s, t)


def test_language_model_logits_of_shape_B_L_V_are_refused_with_the_flatten_hint():
    with pytest.raises(ValueError, match=r"student_logits must be 2-D.*got shape \(2, 3, 5\).*\.flatten\(0, 1\)"):
        reverse_kl(randn(2, 3, 5), randn(2, 3, 5))


def test_per_position_losses_refuse_an_empty_selection_of_positions():
    # A mask that selects nothing gives (0, V) logits; the mean over no rows would be NaN.
    mask = torch.zeros(2, 3, dtype=torch.bool)
    s, t = randn(2, 3, 5).flatten(0, 1)[mask.flatten()], randn(2, 3, 5).flatten(0, 1)[mask.flatten()]
    with pytest.raises(ValueError, match="student_logits has no rows.*no position was selected"):
        generalized_jsd(s, t)


def test_per_position_losses_refuse_an_empty_vocabulary_instead_of_returning_0():
    with pytest.raises(ValueError, match=r"student_logits has no vocabulary \(shape \(4, 0\)\)"):
        reverse_kl(torch.zeros(4, 0), torch.zeros(4, 0))


@pytest.mark.parametrize("beta", [float("nan"), float("inf"), -1e-12, 1 + 1e-12])
def test_generalized_jsd_refuses_beta_outside_0_1_instead_of_a_nan(beta):
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\]"):
        generalized_jsd(S, T, beta=beta)


@pytest.mark.parametrize("temperature", [1e-40, 1e20, 1e200])
def test_per_position_losses_refuse_temperatures_outside_the_range(temperature):
    for loss in (reverse_kl, generalized_jsd):
        with pytest.raises(ValueError, match=r"T must be between 0\.001 and 10000"):
            loss(S, T, T=temperature)
