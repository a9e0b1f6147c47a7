"""kdteach.evidence: Student's t quantile and paired comparisons over seeds."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kdteach import evidence


# -- t quantile: printed tables, closed forms, a numerical integral, properties ----------

@pytest.mark.parametrize("df, expected", [  # two-sided 95 % critical values, any t table
    (1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (9, 2.262), (30, 2.042)])
def test_t_quantile_matches_printed_tables(df, expected):
    assert evidence.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)


@given(p=st.floats(0.51, 0.999))
def test_t_quantile_closed_forms_for_one_and_two_degrees_of_freedom(p):
    # df = 1 is the Cauchy distribution: F^-1(p) = tan(π (p − 1/2));
    # df = 2 has F^-1(p) = (2p − 1) / sqrt(2 p (1 − p)).
    assert evidence.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert evidence.t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)),
                                                      rel=1e-9)


def _t_density(x, df):
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    return c * (1 + x * x / df) ** (-(df + 1) / 2)


@pytest.mark.parametrize("df", [3, 4, 7, 12])
def test_t_quantile_against_integrating_the_density(df):
    # A second formulation: ∫_0^q f(x) dx must be 0.475 at the 0.975 quantile.
    q = evidence.t_quantile(0.975, df)
    x = np.linspace(0.0, q, 200_001)
    mass = np.trapezoid(_t_density(x, df), x) if hasattr(np, "trapezoid") else np.trapz(_t_density(x, df), x)
    assert mass == pytest.approx(0.475, abs=1e-7)


@given(p=st.floats(0.55, 0.995), df=st.integers(1, 60))
@settings(max_examples=60)
def test_t_quantile_falls_with_df_towards_the_normal(p, df):
    z = statistics.NormalDist().inv_cdf(p)
    assert evidence.t_quantile(p, df) >= evidence.t_quantile(p, df + 1) >= z - 1e-9


def test_t_quantile_approaches_the_normal_for_many_degrees_of_freedom():
    assert evidence.t_quantile(0.975, 100_000) == pytest.approx(1.959964, abs=1e-4)


@pytest.mark.parametrize("p", [0.5, 1.0, 0.2, float("nan")])
def test_t_quantile_rejects_probabilities_outside_the_upper_half(p):
    with pytest.raises(ValueError, match="probability"):
        evidence.t_quantile(p, 3)


@pytest.mark.parametrize("df", [0, -1, 2.5, True])
def test_t_quantile_rejects_bad_df(df):
    with pytest.raises(ValueError, match="df"):
        evidence.t_quantile(0.975, df)


# -- paired ----------------------------------------------------------------------------

def test_paired_by_hand():
    # differences 1, 2, 3 points: mean 2, s = 1, half width = t(0.975, 2) · 1 / √3 = 2.484
    c = evidence.paired([0.91, 0.92, 0.93], [0.90, 0.90, 0.90], label="A − B")
    assert c.differences == pytest.approx((1.0, 2.0, 3.0))
    assert c.mean == pytest.approx(2.0)
    assert c.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert c.n == 3 and not c.positive and not c.negative and c.verdict == "no difference shown"
    assert str(c).startswith("A − B: +2.00 ± 2.48 points over 3 seeds (95 % t interval")


def test_pairing_cancels_the_noise_the_arms_share():
    # Seed-to-seed swings of several points, a constant 0.5-point gain: the paired interval
    # sees the gain, an unpaired look at the two arms' spreads could not.
    rng = np.random.default_rng(0)
    shared = rng.normal(0.9, 0.03, size=5)
    gain = 0.005 + rng.normal(0, 0.0005, size=5)
    c = evidence.paired(shared + gain, shared)
    assert c.positive and c.verdict == "first ahead"
    assert np.std(shared, ddof=1) * 100 > c.mean  # the raw spread exceeds the effect


def test_paired_is_antisymmetric_and_scales():
    a, b = [3.1, 2.9, 3.4, 3.0], [3.3, 3.2, 3.5, 3.4]
    ab = evidence.paired(a, b, scale=1, unit="bits/char")
    ba = evidence.paired(b, a, scale=1, unit="bits/char")
    assert ab.mean == pytest.approx(-ba.mean) and ab.half_width == pytest.approx(ba.half_width)
    assert ab.negative and ba.positive
    assert "bits/char" in str(ab)
    assert evidence.paired(a, b, scale=10).mean == pytest.approx(10 * ab.mean)


@given(st.lists(st.floats(-1, 1), min_size=2, max_size=12), st.floats(0.5, 0.99))
def test_interval_contains_the_mean_and_widens_with_confidence(diffs, conf):
    zeros = [0.0] * len(diffs)
    narrow = evidence.paired(diffs, zeros, confidence=conf)
    wide = evidence.paired(diffs, zeros, confidence=min(0.999, conf + 0.005))
    assert narrow.low <= narrow.mean <= narrow.high
    assert wide.half_width >= narrow.half_width - 1e-12


def test_interval_coverage_is_about_95_percent():
    # The claim the interval makes, checked: over many simulated 5-seed experiments with a
    # true effect of 1, about 95 % of the intervals contain it.
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(4000):
        d = rng.normal(1.0, 2.0, size=5)
        c = evidence.paired(d, np.zeros(5), scale=1)
        hits += c.low <= 1.0 <= c.high
    assert 0.935 < hits / 4000 < 0.965


def test_one_seed_gives_no_interval():
    c = evidence.paired([0.9], [0.8])
    assert math.isnan(c.half_width) and not c.positive and "no interval" in str(c)


def test_as_dict_is_plain_numbers():
    d = evidence.paired([1, 2, 3], [0, 0, 0], scale=1).as_dict()
    assert d["n"] == 3 and d["low"] < d["mean"] < d["high"] and d["differences"] == [1, 2, 3]


@pytest.mark.parametrize("a, b, match", [
    ([1, 2], [1, 2, 3], "same seeds"),
    ([], [], "non-empty"),
    ([[1, 2]], [[1, 2]], "1-D"),
    ([1, float("nan")], [1, 2], "NaN"),
])
def test_paired_rejects_bad_arms(a, b, match):
    with pytest.raises(ValueError, match=match):
        evidence.paired(a, b)


def test_paired_rejects_non_numbers_and_bad_confidence():
    with pytest.raises(TypeError, match="a must be"):
        evidence.paired(["x", "y"], [1, 2])
    with pytest.raises(ValueError, match="confidence"):
        evidence.paired([1, 2], [0, 1], confidence=95)


# -- over_seeds ------------------------------------------------------------------------

def test_over_seeds_gathers_one_entry_per_seed_per_arm():
    got = evidence.over_seeds(lambda s: {"KD": s / 10, "scratch": s / 20}, [0, 1, 2])
    assert set(got) == {"KD", "scratch"}
    np.testing.assert_allclose(got["KD"], [0, 0.1, 0.2])
    np.testing.assert_allclose(got["scratch"], [0, 0.05, 0.1])


def test_over_seeds_rejects_changing_arms_and_bad_returns():
    with pytest.raises(ValueError, match="same arms"):
        evidence.over_seeds(lambda s: {"KD": 1.0} if s == 0 else {"AT": 1.0}, [0, 1])
    with pytest.raises(TypeError, match="dict"):
        evidence.over_seeds(lambda s: 0.9, [0])
    with pytest.raises(ValueError, match="seeds is empty"):
        evidence.over_seeds(lambda s: {"KD": 1.0}, [])
