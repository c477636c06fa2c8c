"""The few statistics held-out reports need, in plain Python: a mean, intervals, a correlation.

- `wilson_interval`: a 95% interval for a rate (k of n). Unlike p ± 1.96·se it stays inside
  [0, 1] and is not zero-width at 0/n or n/n, where a small held-out set often lands.
- `bootstrap_interval`: a 95% interval for a mean over items. Given each item's after -
  before, it is the paired comparison: resampling items keeps each item's two answers
  together, so an item both models get right adds no noise, and the interval is narrower,
  and truer, than one from the two rates' separate intervals. Percentile method, fixed
  seed: the same items give the same interval on every run. When no item changed, every
  resample agrees and the interval is the single point 0: these items hold no evidence of
  a difference either way.
- `pearson`: a correlation (with 0/1 on one side it is the point-biserial correlation).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from statistics import NormalDist

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are numbers (None and NaN are left out); None when none is."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


def z_score(confidence: float = CONFIDENCE) -> float:
    """The two-sided normal quantile: 1.96 for 95%."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval for a rate of `successes` in `n`; None when n is 0.

    The set of true rates p a score test would not reject: |k/n - p| <= z·sqrt(p(1-p)/n),
    solved for p (Wilson 1927).
    """
    if n <= 0:
        return None
    z = z_score(confidence)
    p = successes / n
    scale = 1 + z * z / n
    center = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def bootstrap_interval(values: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED,
                       confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile bootstrap interval for the mean of per-item `values`; None when there are none.

    For a paired comparison, pass each item's after - before. Each resample draws
    len(values) items with replacement; the interval holds the middle `confidence` share
    of the resampled means.
    """
    n = len(values)
    if n == 0:
        return None
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    cut = round((1 - confidence) / 2 * resamples)  # resampled means left out in each tail
    return means[cut], means[resamples - 1 - cut]


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation of paired values; None with fewer than two pairs or when a side is constant."""
    if len(xs) != len(ys):
        raise ValueError(f"pearson needs pairs: {len(xs)} x values, {len(ys)} y values")
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)
