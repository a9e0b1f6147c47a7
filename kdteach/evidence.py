"""Comparisons over seeds: paired differences and a 95 % interval.

One run says little: two students trained from different random weights, or on the same
data in a different order, differ by a few tenths of a point on their own. The course
therefore compares methods the way an experiment should:

* **paired** — for each seed, both arms start from the *same* initial weights and see the
  data in the *same* order (seed the run, build the student, train; seed again, build,
  train), so the noise the arms share cancels in the difference ``a − b``;
* **several seeds** — the differences ``d_1 … d_n`` are the sample; their mean estimates
  the effect;
* **an interval** — Student's t interval on the differences,
  ``mean ± t_{n−1}(0.975) · s / √n`` with ``s`` the sample standard deviation
  (``ddof = 1``) (Student 1908). It assumes the differences are roughly normal; with a
  handful of seeds that is an assumption, and the interval is wide on purpose.

A claim "A beats B" is then asserted as ``comparison.low > 0``: the whole interval is
above zero. When it straddles zero the honest sentence is "no difference shown at this
budget", and :attr:`Paired.verdict` says exactly that.

    from kdteach import evidence
    acc = evidence.over_seeds(run_both_arms, seeds=range(5))   # {"KD": array, "scratch": array}
    kd_vs_scratch = evidence.paired(acc["KD"], acc["scratch"], label="KD − scratch")
    print(kd_vs_scratch)   # KD − scratch: +0.84 ± 0.41 points over 5 seeds (95 % t interval)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df`` degrees of freedom.

    The finite series of Abramowitz & Stegun (1964), 26.7.3 (odd ``df``) and 26.7.4 (even
    ``df``), in ``θ = atan(t / √df)``; exact for integer ``df``, no special functions needed.
    """
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:  # 26.7.3: (2/π)[θ + sinθ cosθ (1 + (2/3)cos²θ + (2·4)/(3·5)cos⁴θ + …)]
        if df == 1:
            return 2 * theta / math.pi
        term, series = 1.0, 1.0
        for k in range(1, (df - 3) // 2 + 1):
            term *= (2 * k) / (2 * k + 1) * c2
            series += term
        return 2 / math.pi * (theta + s * math.cos(theta) * series)
    # 26.7.4: sinθ (1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + …), df/2 terms
    term, series = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= (2 * k - 1) / (2 * k) * c2
        series += term
    return s * series


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom.

    For the upper quantiles an interval needs (``probability`` in (0.5, 1)), found by
    bisection on the exact distribution function; e.g. ``t_quantile(0.975, 4) ≈ 2.776``.
    """
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise ValueError(f"df must be a positive integer (number of seeds − 1), got {df!r}")
    probability = float(probability)
    if not 0.5 < probability < 1:
        raise ValueError(f"probability must be in (0.5, 1), e.g. 0.975 for a 95 % interval; "
                         f"got {probability!r}")
    target = 2 * probability - 1  # P(|T| < t) for the two-sided interval
    low, high = 0.0, 1.0
    while _t_two_sided_mass(high, int(df)) < target:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if _t_two_sided_mass(mid, int(df)) < target:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * high:
            break
    return (low + high) / 2


@dataclass(frozen=True)
class Paired:
    """The paired comparison of two arms over seeds (``a − b`` per seed), in display units."""

    label: str
    differences: tuple[float, ...]  # a − b per seed, already multiplied by scale
    mean: float
    half_width: float  # of the interval; nan for one seed
    confidence: float
    unit: str

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def positive(self) -> bool:
        """The whole interval is above zero: ``a`` beats ``b`` at this confidence."""
        return self.low > 0

    @property
    def negative(self) -> bool:
        """The whole interval is below zero: ``b`` beats ``a``."""
        return self.high < 0

    @property
    def verdict(self) -> str:
        if self.positive:
            return "first ahead"
        if self.negative:
            return "second ahead"
        return "no difference shown"

    def __str__(self) -> str:
        seeds = f"{self.n} seed{'s' if self.n != 1 else ''}"
        unit = f" {self.unit}" if self.unit else ""
        if self.n < 2:
            return f"{self.label}: {self.mean:+.2f}{unit} from {seeds} (no interval from one seed)"
        return (f"{self.label}: {self.mean:+.2f} ± {self.half_width:.2f}{unit} over {seeds} "
                f"({100 * self.confidence:g} % t interval {self.low:+.2f} … {self.high:+.2f})")

    def as_dict(self) -> dict:
        return {"label": self.label, "mean": self.mean, "half_width": self.half_width,
                "low": self.low, "high": self.high, "n": self.n, "unit": self.unit,
                "confidence": self.confidence, "differences": list(self.differences)}


def _as_vector(values, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers (one per seed), "
                        f"got {type(values).__name__}") from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, one number per seed; "
                         f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds a NaN or infinity ({array.tolist()}); a run diverged — "
                         "find it before comparing")
    return array


def paired(a, b, *, label: str = "A − B", scale: float = 100.0, unit: str = "points",
           confidence: float = 0.95) -> Paired:
    """Compare arm ``a`` with arm ``b`` seed by seed: ``a[i]`` and ``b[i]`` share seed ``i``.

    ``scale`` and ``unit`` say how to show the numbers: the default turns accuracies in
    [0, 1] into percentage points; use ``scale=1, unit="bits/char"`` for bits per character,
    ``unit="errors"`` for error counts.
    """
    a, b = _as_vector(a, "a"), _as_vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must hold one number per seed for the same seeds; got "
                         f"{a.size} and {b.size} values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}")
    d = (a - b) * float(scale)
    n = d.size
    half = (t_quantile(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)
            if n > 1 else math.nan)
    return Paired(label=label, differences=tuple(float(x) for x in d), mean=float(d.mean()),
                  half_width=float(half), confidence=confidence, unit=unit)


def over_seeds(run: Callable[[int], Mapping[str, float]], seeds: Iterable[int]) -> dict[str, np.ndarray]:
    """Call ``run(seed)`` for each seed; gather its ``{arm: number}`` results per arm.

    ``run`` trains every arm for that one seed (each from the same seeded start) and
    returns their scores; the result maps each arm to an array with one entry per seed, in
    the order of ``seeds`` — ready for :func:`paired`.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; pass e.g. range(5)")
    rows = []
    for seed in seeds:
        row = run(seed)
        if not isinstance(row, Mapping) or not row:
            raise TypeError(f"run({seed}) must return a dict {{arm name: number}}, "
                            f"got {type(row).__name__}")
        if rows and set(row) != set(rows[0]):
            raise ValueError(f"run({seed}) returned arms {sorted(row)} but run({seeds[0]}) "
                             f"returned {sorted(rows[0])}; every seed must run the same arms")
        rows.append(row)
    return {arm: np.array([float(r[arm]) for r in rows]) for arm in rows[0]}
