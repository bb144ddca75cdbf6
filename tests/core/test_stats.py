"""collab_harness.stats: intervals by the nature of a metric's values, and paired comparisons.

Exact values are checked against published tables (cited at each use) or against an independent computation done
here (binomial tail sums, the defining equation of an interval), never against numbers produced by the module.
"""

from __future__ import annotations

import json
import math
import random
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collab_harness.stats import (
    Interval,
    beta_quantile,
    bootstrap_mean_interval,
    paired_difference,
    proportion_interval,
    regularized_beta,
    summarize,
    t_interval,
    t_quantile,
    t_quantile_975,
)

Z975 = NormalDist().inv_cdf(0.975)
LEVELS = st.sampled_from([0.8, 0.9, 0.95, 0.99])


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed term by term (independent of the module's incomplete beta)."""
    return math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


# ------------------------------------------------------------------------------------------- proportions


# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven methods",
# Stat Med 17:857-872, Table II: method 3 (Wilson score) and method 5 (Clopper-Pearson exact), 95%.
NEWCOMBE_1998 = [
    (81, 263, (0.2553, 0.3662), (0.2527, 0.3676)),
    (15, 148, (0.0624, 0.1605), (0.0578, 0.1617)),
    (0, 20, (0.0000, 0.1611), (0.0000, 0.1684)),
    (1, 29, (0.0061, 0.1718), (0.0009, 0.1776)),
]


@pytest.mark.parametrize(("k", "n", "wilson", "exact"), NEWCOMBE_1998)
def test_published_wilson_and_clopper_pearson(k: int, n: int, wilson: tuple, exact: tuple) -> None:
    w = proportion_interval(k, n)
    cp = proportion_interval(k, n, method="clopper-pearson")
    assert (round(w.low, 4), round(w.high, 4)) == wilson
    assert (round(cp.low, 4), round(cp.high, 4)) == exact
    assert w.method == "wilson 95%" and cp.method == "clopper-pearson 95%"


def test_zero_of_three_is_not_certainty() -> None:
    # Wilson 0/n upper bound = z^2 / (n + z^2); 0/3 at 95%: 3.8415 / 6.8415 = 0.5615.
    w = proportion_interval(0, 3)
    assert w.low == 0.0 and w.high == pytest.approx(Z975**2 / (3 + Z975**2), abs=1e-12)
    assert round(w.high, 4) == 0.5615
    # Clopper-Pearson 0/n upper bound = 1 - (alpha/2)^(1/n); 0/3: 1 - 0.025^(1/3) = 0.7076.
    cp = proportion_interval(0, 3, method="clopper-pearson")
    assert cp.low == 0.0 and cp.high == pytest.approx(1 - 0.025 ** (1 / 3), abs=1e-10)
    assert round(cp.high, 4) == 0.7076
    # n/n mirrors 0/n.
    assert proportion_interval(3, 3).low == pytest.approx(1 - w.high, abs=1e-12)
    assert proportion_interval(3, 3, method="clopper-pearson").low == pytest.approx(0.025 ** (1 / 3), abs=1e-10)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 400), data=st.data(), level=LEVELS, method=st.sampled_from(["wilson", "clopper-pearson"]))
def test_proportion_interval_in_unit_range_positive_width_contains_estimate(
    n: int, data: st.DataObject, level: float, method: str
) -> None:
    k = data.draw(st.integers(0, n))
    iv = proportion_interval(k, n, method=method, level=level)  # type: ignore[arg-type]
    assert 0.0 <= iv.low <= k / n <= iv.high <= 1.0
    assert iv.high - iv.low > 0.0


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 60), data=st.data(), level=LEVELS)
def test_clopper_pearson_solves_the_binomial_tail_equations(n: int, data: st.DataObject, level: float) -> None:
    # Definition (Clopper & Pearson 1934): P(X >= k | p_low) = alpha/2 and P(X <= k | p_high) = alpha/2.
    k = data.draw(st.integers(0, n))
    alpha = 1 - level
    iv = proportion_interval(k, n, method="clopper-pearson", level=level)
    if k > 0:
        assert 1 - _binom_cdf(k - 1, n, iv.low) == pytest.approx(alpha / 2, abs=1e-9)
    if k < n:
        assert _binom_cdf(k, n, iv.high) == pytest.approx(alpha / 2, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 500), data=st.data(), level=LEVELS)
def test_wilson_bounds_solve_the_score_equation(n: int, data: st.DataObject, level: float) -> None:
    # Definition (Wilson 1927): the bounds are the p with |k/n - p| = z * sqrt(p (1 - p) / n).
    k = data.draw(st.integers(0, n))
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    iv = proportion_interval(k, n, level=level)
    for p in (iv.low, iv.high):
        if 0.0 < p < 1.0:
            assert abs(k / n - p) == pytest.approx(z * math.sqrt(p * (1 - p) / n), abs=1e-9)


def test_proportion_interval_rejects_bad_input() -> None:
    for k, n in ((0, 0), (4, 3), (-1, 3), (1.5, 3)):
        with pytest.raises(ValueError):
            proportion_interval(k, n)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method"):
        proportion_interval(1, 3, method="wald")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        proportion_interval(1, 3, level=1.0)


# ------------------------------------------------------------------------------------- special functions


# Two-sided critical values of Student's t as printed in standard tables (e.g. NIST/SEMATECH e-Handbook of
# Statistical Methods, section 1.3.6.7.2): (df, 97.5% quantile, 99.5% quantile).
T_TABLE = [
    (1, 12.706, 63.657), (2, 4.303, 9.925), (3, 3.182, 5.841), (5, 2.571, 4.032), (10, 2.228, 3.169),
    (20, 2.086, 2.845), (30, 2.042, 2.750), (60, 2.000, 2.660), (100, 1.984, 2.626),
]


@pytest.mark.parametrize(("df", "q975", "q995"), T_TABLE)
def test_t_quantiles_match_the_table(df: int, q975: float, q995: float) -> None:
    assert round(t_quantile(0.975, df), 3) == q975
    assert round(t_quantile(0.995, df), 3) == q995
    assert t_quantile(0.025, df) == pytest.approx(-t_quantile(0.975, df), rel=1e-12)
    assert t_quantile_975(df) == t_quantile(0.975, df)


def test_t_quantile_large_df_tends_to_normal() -> None:
    for df in (1e4, 1e5, 2e5, 1e7):
        assert t_quantile(0.975, df) == pytest.approx(Z975 + (Z975**3 + Z975) / (4 * df), rel=1e-7)
    # Continuity across the switch to the Cornish-Fisher expansion at 1e5.
    assert t_quantile(0.975, 1e5) == pytest.approx(t_quantile(0.975, 1e5 + 1), abs=1e-9)


def test_regularized_beta_against_closed_forms() -> None:
    # I_x(1, b) = 1 - (1 - x)^b ; I_x(a, 1) = x^a ; I_x(1/2, 1/2) = (2 / pi) asin(sqrt x).
    for x in (1e-6, 0.1, 0.37, 0.5, 0.9, 0.999999):
        assert regularized_beta(1, 7, x) == pytest.approx(1 - (1 - x) ** 7, rel=1e-12, abs=1e-15)
        assert regularized_beta(4.5, 1, x) == pytest.approx(x**4.5, rel=1e-12, abs=1e-15)
        assert regularized_beta(0.5, 0.5, x) == pytest.approx(2 / math.pi * math.asin(math.sqrt(x)), rel=1e-12)
    for p in (0.001, 0.3, 0.975):
        assert regularized_beta(3, 9, beta_quantile(p, 3, 9)) == pytest.approx(p, abs=1e-13)


# --------------------------------------------------------------------------------------------- bootstrap

BOUNDED = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=60)


@settings(max_examples=200, deadline=None)
@given(values=BOUNDED, level=LEVELS, seed=st.integers(0, 2**32 - 1))
def test_bootstrap_stays_in_range_and_contains_the_mean(values: list[float], level: float, seed: int) -> None:
    iv = bootstrap_mean_interval(values, low=0.0, high=1.0, level=level, n_boot=300, seed=seed)
    assert iv is not None
    mean = math.fsum(values) / len(values)
    assert 0.0 <= iv.low <= iv.high <= 1.0
    assert iv.low <= mean + 1e-12 and mean - 1e-12 <= iv.high  # 1e-12: float rounding of the mean itself
    assert min(values) <= iv.low and iv.high <= max(values)
    s = summarize(values, kind="bounded", value_range=(0, 1), level=level, n_boot=300, seed=seed)
    assert (s["ci_low"], s["ci_high"]) == (iv.low, iv.high) and iv.low <= s["mean"] <= iv.high


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 0.5, 1.0, 0.25]), min_size=2, max_size=40), seed=st.integers(0, 99),
       shuffle_seed=st.integers())
def test_bootstrap_is_deterministic_for_a_seed_and_ignores_order(
    values: list[float], seed: int, shuffle_seed: int
) -> None:
    a = bootstrap_mean_interval(values, low=0, high=1, n_boot=200, seed=seed)
    shuffled = list(values)
    random.Random(shuffle_seed).shuffle(shuffled)
    assert bootstrap_mean_interval(values, low=0, high=1, n_boot=200, seed=seed) == a
    assert bootstrap_mean_interval(shuffled, low=0, high=1, n_boot=200, seed=seed) == a


def test_bootstrap_seed_matters_and_method_is_named() -> None:
    values = [i / 19 for i in range(20)]
    a = bootstrap_mean_interval(values, low=0, high=1, seed=0)
    b = bootstrap_mean_interval(values, low=0, high=1, seed=1)
    assert a is not None and b is not None and a != b
    assert a.method == "bootstrap percentile 95% (2000 resamples, seed 0)"


def test_bootstrap_agrees_with_the_normal_approximation_on_a_large_sample() -> None:
    # For n = 400 the percentile bootstrap of the mean is close to mean ± z s / sqrt(n) (central limit theorem).
    rng = random.Random(5)
    values = [rng.random() ** 2 for _ in range(400)]
    n = len(values)
    mean = math.fsum(values) / n
    s = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    iv = bootstrap_mean_interval(values, low=0, high=1, n_boot=4000, seed=3)
    assert iv is not None
    assert iv.low == pytest.approx(mean - Z975 * s / math.sqrt(n), abs=0.004)
    assert iv.high == pytest.approx(mean + Z975 * s / math.sqrt(n), abs=0.004)


def test_bootstrap_small_and_degenerate_samples() -> None:
    assert bootstrap_mean_interval([], low=0, high=1) is None
    assert bootstrap_mean_interval([0.7], low=0, high=1) is None  # one value: no interval
    const = bootstrap_mean_interval([0.1, 0.1, 0.1], low=0, high=1)
    assert const is not None and const.low == const.high == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"1\.5"):
        bootstrap_mean_interval([0.2, 1.5], low=0, high=1)
    with pytest.raises(ValueError, match="finite range"):
        bootstrap_mean_interval([0.2, 0.5], low=0, high=math.inf)


# ---------------------------------------------------------------------------------------------- t interval


def test_t_interval_by_hand() -> None:
    # [1, 2, 3, 4]: mean 2.5, s = sqrt(5/3), t(0.975, 3) = 3.1824 (table) -> half-width 2.0542.
    iv = t_interval([1.0, 2.0, 3.0, 4.0])
    assert iv is not None and iv.method == "student-t 95%"
    half = 3.182446 * math.sqrt(5 / 3) / 2
    assert iv.low == pytest.approx(2.5 - half, abs=1e-5) and iv.high == pytest.approx(2.5 + half, abs=1e-5)
    assert t_interval([5.0]) is None and t_interval([]) is None


# ---------------------------------------------------------------------------------------------- summarize


def test_summarize_proportion_zero_of_three() -> None:
    s = summarize([0, 0, 0], kind="proportion")
    assert s == {"mean": 0.0, "std": 0.0, "n": 3, "ci_low": 0.0, "ci_high": pytest.approx(0.5615, abs=1e-4),
                 "ci_method": "wilson 95%"}
    cp = summarize([1.0], kind="proportion", proportion_method="clopper-pearson")
    assert cp["std"] is None and cp["ci_low"] == pytest.approx(0.025) and cp["ci_high"] == 1.0
    with pytest.raises(ValueError, match=r"0\.5"):
        summarize([1, 0, 0.5], kind="proportion")


def test_summarize_bounded_unbounded_and_empty() -> None:
    # The board's complaint: interactivity 0.783 ± 0.637 reached 1.42 on a 0-1 score.
    b = summarize([1.0, 1.0, 0.35], kind="bounded", value_range=(0.0, 1.0))
    assert 0.0 <= b["ci_low"] <= b["mean"] <= b["ci_high"] <= 1.0
    assert b["ci_method"] == "bootstrap percentile 95% (2000 resamples, seed 0)"
    assert summarize([1.0, 1.0, 0.35], kind="bounded", value_range=(0.0, 1.0), seed=7)["ci_method"].endswith(
        "seed 7)")
    with pytest.raises(ValueError, match="finite value_range"):
        summarize([0.5, 0.2], kind="bounded")
    with pytest.raises(ValueError, match=r"2\.0"):
        summarize([0.5, 2.0], kind="bounded", value_range=(0, 1))
    # Token counts: the t interval is cut at the declared lower end instead of going negative.
    u = summarize([10.0, 0.0, 0.0, 400.0], kind="unbounded", value_range=(0.0, math.inf))
    assert u["ci_low"] == 0.0 and u["ci_high"] > u["mean"] and u["ci_method"] == "student-t 95%"
    free = summarize([10.0, 0.0, 0.0, 400.0], kind="unbounded")
    assert free["ci_low"] < 0 and free["ci_high"] == u["ci_high"]
    one = summarize([3.0], kind="unbounded")
    assert one == {"mean": 3.0, "std": None, "n": 1, "ci_low": None, "ci_high": None, "ci_method": None}
    for kind in ("proportion", "bounded", "unbounded"):
        empty = summarize([], kind=kind, value_range=(0, 1))
        assert empty == {"mean": None, "std": None, "n": 0, "ci_low": None, "ci_high": None, "ci_method": None}
    with pytest.raises(ValueError, match="kind"):
        summarize([1.0], kind="ratio")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, math.nan], kind="unbounded")


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(0, 1), max_size=50), level=LEVELS)
def test_summarize_is_json_and_contains_the_mean(values: list[int], level: float) -> None:
    for kind in ("proportion", "bounded"):
        s = summarize(values, kind=kind, value_range=(0, 1), level=level, n_boot=200)
        assert json.loads(json.dumps(s, allow_nan=False)) == s
        if s["ci_low"] is not None:
            assert 0.0 <= s["ci_low"] <= s["mean"] <= s["ci_high"] <= 1.0
    if values:
        assert summarize(values, kind="proportion")["ci_high"] > summarize(values, kind="proportion")["ci_low"]


# ------------------------------------------------------------------------------------------------- paired


def _table(a: int, b: int, c: int, d: int) -> tuple[dict[str, float], dict[str, float]]:
    """Two runs over a+b+c+d examples: a both succeed, b only the first, c only the second, d neither."""
    cells = [(1, 1)] * a + [(1, 0)] * b + [(0, 1)] * c + [(0, 0)] * d
    return ({f"e{i}": float(x) for i, (x, _) in enumerate(cells)},
            {f"e{i}": float(y) for i, (_, y) in enumerate(cells)})


def test_paired_proportions_published_example() -> None:
    # Fagerland, Lydersen & Laake (2014), "Recommended tests and confidence intervals for paired binomial
    # proportions", Stat Med 33:2850-2875: airway hyper-responsiveness (Bentur et al. 2009), table (1, 1, 7, 12);
    # Tango asymptotic score interval for the difference: -0.286 (-0.517 to -0.026), Table V.
    a, b = _table(1, 1, 7, 12)
    r = paired_difference(a, b, kind="proportion")
    assert r["n_pairs"] == 21 and r["mean_diff"] == pytest.approx(-6 / 21)
    assert (round(r["ci_low"], 3), round(r["ci_high"], 3)) == (-0.517, -0.026)
    assert r["verdict"] == "b>a" and r["ci_method"] == "tango score 95% (paired proportions)"
    assert (r["only_a_succeeded"], r["only_b_succeeded"]) == (1, 7)
    swapped = paired_difference(b, a, kind="proportion")
    assert swapped["ci_low"] == pytest.approx(-r["ci_high"]) and swapped["verdict"] == "a>b"


def test_paired_proportions_without_discordant_pairs_are_not_certain() -> None:
    # All pairs agree: Tango's interval reduces to ±z^2/(n + z^2) (its score equation with b = c = 0).
    a, b = _table(2, 0, 0, 1)
    r = paired_difference(a, b, kind="proportion")
    assert r["mean_diff"] == 0.0 and r["verdict"] == "no difference shown"
    assert r["ci_high"] == pytest.approx(Z975**2 / (3 + Z975**2), abs=1e-9)
    assert r["ci_low"] == pytest.approx(-r["ci_high"], abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, 30), b=st.integers(0, 30), c=st.integers(0, 30), d=st.integers(0, 30))
def test_paired_proportion_verdict_is_the_mcnemar_test(a: int, b: int, c: int, d: int) -> None:
    n = a + b + c + d
    if n < 2:
        return
    r = paired_difference(*_table(a, b, c, d), kind="proportion")
    assert -1.0 <= r["ci_low"] <= r["mean_diff"] <= r["ci_high"] <= 1.0
    # Tango's statistic at 0 is McNemar's (b - c) / sqrt(b + c) (independent, textbook form).
    mcnemar = (b - c) / math.sqrt(b + c) if b + c else 0.0
    if abs(abs(mcnemar) - Z975) > 1e-6:  # away from the knife edge
        want = "a>b" if mcnemar > Z975 else "b>a" if mcnemar < -Z975 else "no difference shown"
        assert r["verdict"] == want, (b, c, mcnemar)


def test_paired_bounded_and_unbounded() -> None:
    rng = random.Random(1)
    a = {f"x{i}": rng.random() for i in range(40)}
    better = {k: min(1.0, v + 0.3) for k, v in a.items()}
    r = paired_difference(better, a, kind="bounded", value_range=(0, 1), seed=3)
    assert r["verdict"] == "a>b" and 0 < r["ci_low"] <= r["mean_diff"] <= r["ci_high"] <= 1
    assert r["ci_method"] == "paired bootstrap percentile 95% (2000 resamples, seed 3)"
    assert paired_difference(better, a, kind="bounded", seed=3) == paired_difference(better, a, kind="bounded",
                                                                                     seed=3)
    same = paired_difference(a, dict(a), kind="bounded")
    assert same["verdict"] == "no difference shown" and same["ci_low"] == same["ci_high"] == 0.0
    # Unbounded: the paired t interval is the t interval of the differences.
    ta = {"p": 10.0, "q": 30.0, "r": 25.0, "s": 80.0}
    tb = {"p": 12.0, "q": 29.0, "r": 35.0, "s": 82.0, "only_b": 1.0}
    u = paired_difference(ta, tb, kind="unbounded")
    iv = t_interval([-2.0, 1.0, -10.0, -2.0])
    assert iv is not None and (u["ci_low"], u["ci_high"]) == pytest.approx((iv.low, iv.high))
    assert u["n_pairs"] == 4 and u["n_only_b"] == 1 and u["n_only_a"] == 0 and u["ci_method"] == "paired student-t 95%"
    assert json.loads(json.dumps(u, allow_nan=False)) == u


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=40), seed=st.integers(0, 50))
def test_paired_bootstrap_contains_the_mean_difference(pairs: list[tuple[float, float]], seed: int) -> None:
    a = {str(i): x for i, (x, _) in enumerate(pairs)}
    b = {str(i): y for i, (_, y) in enumerate(pairs)}
    r = paired_difference(a, b, kind="bounded", value_range=(0, 1), seed=seed, n_boot=200)
    assert -1.0 <= r["ci_low"] <= r["mean_diff"] <= r["ci_high"] <= 1.0
    assert (r["verdict"] == "a>b") == (r["ci_low"] > 0) and (r["verdict"] == "b>a") == (r["ci_high"] < 0)


def test_paired_too_few_pairs_and_bad_values() -> None:
    r = paired_difference({"a": 1.0, "b": 0.0}, {"a": 0.0, "c": 1.0}, kind="proportion")
    assert r["n_pairs"] == 1 and r["n_only_a"] == 1 and r["n_only_b"] == 1 and r["mean_diff"] == 1.0
    assert r["ci_low"] is None and r["ci_method"] is None and r["verdict"] == "no difference shown"
    none = paired_difference({"a": 1.0}, {"b": 1.0}, kind="bounded", value_range=(0, 1))
    assert none["n_pairs"] == 0 and none["mean_diff"] is None and none["verdict"] == "no difference shown"
    with pytest.raises(ValueError, match=r"0\.5"):
        paired_difference({"a": 0.5, "b": 1.0}, {"a": 1.0, "b": 1.0}, kind="proportion")
    with pytest.raises(ValueError, match="kind"):
        paired_difference({}, {}, kind="ordinal")  # type: ignore[arg-type]


def test_interval_is_a_named_tuple() -> None:
    iv = proportion_interval(1, 2)
    assert isinstance(iv, Interval) and iv._fields == ("low", "high", "method")
