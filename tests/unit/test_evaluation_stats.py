"""evaluation/stats.py against independent references: published Wilson intervals, the score
test they invert, the exact bootstrap distribution, a normal approximation, and Python's own
statistics.correlation."""

from __future__ import annotations

import math
import statistics

import pytest

from llmpost.evaluation.stats import bootstrap_interval, mean_or_none, pearson, wilson_interval

# The worked examples of Newcombe (1998), "Two-sided confidence intervals for the single
# proportion", Stat. Med. 17:857-872: the score interval without continuity correction.
NEWCOMBE = [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)]


@pytest.mark.parametrize("k,n,low,high", NEWCOMBE)
def test_wilson_interval_matches_the_published_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


@pytest.mark.parametrize("k,n", [(7, 10), (3, 50), (199, 200), (50, 100)])
def test_wilson_bounds_are_where_the_score_test_reaches_1_96(k, n):
    """Each bound p solves |k/n - p| = z * sqrt(p(1-p)/n): the rates a 5% score test just rejects."""
    z = statistics.NormalDist().inv_cdf(0.975)
    for p in wilson_interval(k, n):
        assert abs(k / n - p) == pytest.approx(z * math.sqrt(p * (1 - p) / n), abs=1e-12)


def test_wilson_interval_stays_in_bounds_and_needs_items():
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    assert 0 < wilson_interval(0, 5)[1] < 1  # no zero-width interval at 0 of 5
    assert wilson_interval(0, 0) is None


def exact_bootstrap_cdf(differences: list[int]) -> dict[float, float]:
    """P(resampled mean <= m) for every possible m: the sum of n draws is an n-fold convolution."""
    n = len(differences)
    values = {v: differences.count(v) / n for v in set(differences)}
    sums = {0: 1.0}
    for _ in range(n):
        step: dict[int, float] = {}
        for total, p in sums.items():
            for v, q in values.items():
                step[total + v] = step.get(total + v, 0.0) + p * q
        sums = step
    cdf, running = {}, 0.0
    for total in sorted(sums):
        running += sums[total]
        cdf[total / n] = running
    return cdf


def test_paired_bootstrap_bounds_are_quantiles_of_the_exact_bootstrap_distribution():
    differences = [1, 1, 1, 0, 0, 0, 0, 0, -1, -1]
    cdf = exact_bootstrap_cdf(differences)

    def below(m: float) -> float:
        return max((p for value, p in cdf.items() if value < m), default=0.0)

    low, high = bootstrap_interval(differences, resamples=20000)
    tol = 0.005  # Monte Carlo error of 20000 resamples is ~0.0011 at 2.5%
    assert below(low) <= 0.025 + tol and cdf[low] >= 0.025 - tol  # low: the 2.5% quantile
    assert below(high) <= 0.975 + tol and cdf[high] >= 0.975 - tol  # high: the 97.5% quantile


def test_paired_bootstrap_is_near_the_normal_interval_on_many_items():
    differences = [1] * 60 + [-1] * 20 + [0] * 120  # mean 0.2, sd 0.6
    low, high = bootstrap_interval(differences)
    se = statistics.pstdev(differences) / math.sqrt(len(differences))
    assert low == pytest.approx(0.2 - 1.96 * se, abs=0.015)
    assert high == pytest.approx(0.2 + 1.96 * se, abs=0.015)


def test_paired_bootstrap_is_reproducible_and_degenerate_only_without_change():
    differences = [1, 0, 0, -1, 1, 0, 1]
    assert bootstrap_interval(differences) == bootstrap_interval(differences)
    low, high = bootstrap_interval(differences)
    assert low < sum(differences) / len(differences) < high
    assert bootstrap_interval([0] * 30) == (0.0, 0.0)  # no item changed: no spread to resample
    assert bootstrap_interval([]) is None


def test_mean_or_none_skips_what_is_not_a_number():
    assert mean_or_none([1.0, None, math.nan, 3.0]) == 2.0
    assert mean_or_none([None, math.nan]) is None and mean_or_none([]) is None
    assert mean_or_none([True, False, True, True]) == 0.75


def test_pearson_agrees_with_the_standard_library():
    xs, ys = [0.1, 0.4, 0.35, 0.8, 0.9], [0, 0, 1, 1, 1]
    assert pearson(xs, ys) == pytest.approx(statistics.correlation(xs, ys))
    assert pearson([1.0, 2.0, 3.0], [5, 5, 5]) is None  # a constant side has no correlation
    assert pearson([1.0], [1.0]) is None
