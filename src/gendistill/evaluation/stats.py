"""Statistics over training seeds: a mean with its 95 % confidence interval, and the difference between two sets
(a distilled set and its random real subset) with its interval, paired by seed where the seeds pair.

The interval of a mean is Student's t: mean +- t(0.975, n - 1) x s / sqrt(n), with s the sample standard deviation
(ddof=1). The std printed beside a mean stays the population std (ddof=0), as the dataset-distillation
literature reports it (evaluation/table.py). A difference between two sets trained with the same seeds is paired:
the interval of the mean of the per-seed differences (seed s of both sets shares its initialisation and batch
order). Otherwise it is Welch's interval (unequal variances, Welch-Satterthwaite degrees of freedom). A
difference whose interval contains 0 is "not distinguishable": the seeds run do not tell the two sets apart.
One seed gives a mean and no interval (NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
NOT_DISTINGUISHABLE = "not distinguishable"


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz). Written here
    rather than taken from SciPy: a compute node's offline wheelhouse would carry SciPy (tens of MB) for this alone."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below this point: use the symmetry
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f / a


def t_coverage(q: float, df: float) -> float:
    """P(|T| <= q) for Student's t with `df` (any positive real, as Welch's are) degrees of freedom."""
    return 1.0 - _incomplete_beta(df / 2.0, 0.5, df / (df + q * q))


def t_quantile(df: float, level: float = LEVEL) -> float:
    """The two-sided Student t quantile: P(|T| <= q) = level with `df` degrees of freedom (bisection on
    t_coverage, to float precision)."""
    if not df > 0 or not 0 < level < 1:
        raise ValueError(f"t_quantile needs df > 0 and 0 < level < 1, got df={df}, level={level}")
    lo, hi = 0.0, 1.0
    while t_coverage(hi, df) < level:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_coverage(mid, df) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2.0


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its confidence interval; `std` is the population std (ddof=0)."""

    mean: float
    low: float
    high: float
    n: int
    std: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _finite(values) -> np.ndarray:
    x = np.asarray(list(values), dtype=float)
    return x[np.isfinite(x)]


def mean_interval(values, level: float = LEVEL) -> Interval:
    """Mean, population std and the t interval of the mean of `values` (NaN entries are dropped)."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    mean, std = float(x.mean()), float(x.std())
    if n < 2:
        return Interval(mean, math.nan, math.nan, 1, std)
    half = t_quantile(n - 1, level) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, std)


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with its interval; `paired`: computed from per-seed differences."""

    mean: float
    low: float
    high: float
    n: int  # pairs (paired) or the smaller of the two sample sizes (Welch)
    paired: bool
    df: float

    @property
    def distinguishable(self) -> bool | None:
        """Whether the interval excludes 0 (None without an interval)."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return None
        return not (self.low <= 0.0 <= self.high)

    @property
    def verdict(self) -> str:
        """'higher' / 'lower' (the interval excludes 0), 'not distinguishable', or 'no interval' (too few seeds)."""
        d = self.distinguishable
        if d is None:
            return "no interval"
        if not d:
            return NOT_DISTINGUISHABLE
        return "higher" if self.mean > 0 else "lower"


def difference(a: dict, b: dict, level: float = LEVEL) -> Difference:
    """mean(a) - mean(b) for per-seed values {seed: value}. Paired by seed when both hold the same seeds (two or
    more), else Welch's unpaired interval."""
    a = {k: float(v) for k, v in a.items() if math.isfinite(float(v))}
    b = {k: float(v) for k, v in b.items() if math.isfinite(float(v))}
    if a and set(a) == set(b):
        seeds = sorted(a)
        d = mean_interval([a[s] - b[s] for s in seeds], level)
        return Difference(d.mean, d.low, d.high, d.n, True, float(d.n - 1))
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    if len(xa) == 0 or len(xb) == 0:
        return Difference(math.nan, math.nan, math.nan, 0, False, math.nan)
    mean = float(xa.mean() - xb.mean())
    n = min(len(xa), len(xb))
    if n < 2:
        return Difference(mean, math.nan, math.nan, n, False, math.nan)
    va, vb = float(xa.var(ddof=1)) / len(xa), float(xb.var(ddof=1)) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(mean, mean, mean, n, False, math.inf)
    df = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
    half = t_quantile(df, level) * se
    return Difference(mean, mean - half, mean + half, n, False, df)
