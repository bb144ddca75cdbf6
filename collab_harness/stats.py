"""Confidence intervals chosen by the nature of a metric's values, and paired comparisons of two runs.

Three kinds of value (a metric declares its kind; see ``Metric.value_kind``):

``proportion``  0/1 scores (math_accuracy, pass/fail). Wilson score interval by default, Clopper–Pearson (exact)
                on request. Both stay inside [0, 1] and never collapse at 0/n or n/n: three misses out of three
                leave a real chance the success rate is well above zero, and the interval says so.
``bounded``     scores inside a declared range (judge scores in [0, 1], BLEU). Seeded percentile bootstrap of the
                mean: resampled means of in-range values are in range, so the interval is too.
``unbounded``   counts (tokens, exchanges). Student-t interval of the mean, cut to the declared range when one is
                given (a token count's interval never goes below 0; cutting an interval to the set where the
                parameter must lie cannot lower its coverage).

Pure functions over plain numbers, numpy only (no scipy: it is not a dependency; numpy is imported on first use of
the bootstrap, so importing this module stays cheap for the CLI). The few special functions needed
(normal, beta and Student-t quantiles) are the standard ones: the normal quantile from :class:`statistics.NormalDist`,
the regularised incomplete beta by its continued fraction (Numerical Recipes, 3rd ed., section 6.4), its inverse by
bisection. Every result is JSON-serialisable (plain floats, ints, strings and None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_RESAMPLES",
    "Interval",
    "ProportionMethod",
    "ValueKind",
    "Verdict",
    "beta_quantile",
    "bootstrap_mean_interval",
    "normal_quantile",
    "paired_difference",
    "proportion_interval",
    "regularized_beta",
    "summarize",
    "t_interval",
    "t_quantile",
    "t_quantile_975",
]

ValueKind = Literal["proportion", "bounded", "unbounded"]
ProportionMethod = Literal["wilson", "clopper-pearson"]
Verdict = Literal["a>b", "b>a", "no difference shown"]

#: Bootstrap resamples: enough that the 2.5% / 97.5% percentiles move by well under a table's last digit between
#: seeds for the sample sizes of an evaluation run, cheap enough for every metric of every board.
DEFAULT_RESAMPLES = 2000

#: Cap on bootstrap indices drawn at once (memory), whatever the sample size.
_CHUNK_CELLS = 1_000_000


class Interval(NamedTuple):
    """A confidence interval and how it was computed (``method``, e.g. ``"wilson 95%"``)."""

    low: float
    high: float
    method: str


# ----------------------------------------------------------------------------------------- special functions


def _check_level(level: float) -> float:
    if not (isinstance(level, int | float) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
    return float(level)


def _pct(level: float) -> str:
    """``0.95`` -> ``"95%"``, ``0.999`` -> ``"99.9%"``."""
    return f"{round(level * 100, 6):g}%"


def normal_quantile(p: float) -> float:
    """The ``p`` quantile of the standard normal distribution."""
    return NormalDist().inv_cdf(p)


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes ``betacf``)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 20_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return h
    return h  # converged to float precision in practice long before; never reached for a, b < 1e7


def regularized_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)`` (the Beta(a, b) distribution function at ``x``)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"beta parameters must be positive, got a={a!r}, b={b!r}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast only on this side of the mean; use the symmetry relation on the other.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def beta_quantile(p: float, a: float, b: float) -> float:
    """The ``p`` quantile of the Beta(a, b) distribution (bisection on :func:`regularized_beta`, to float
    precision)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(200):  # the CDF is increasing; 200 halvings reach adjacent floats even near 0
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if regularized_beta(a, b, mid) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom.

    Uses ``P(|T| > t) = I_{df/(df+t^2)}(df/2, 1/2)``; above 1e5 degrees of freedom the Cornish–Fisher expansion
    (error below 1e-12 there) replaces the continued fraction, whose convergence slows with ``df``.
    """
    if df <= 0:
        raise ValueError(f"df must be positive, got {df!r}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if df > 1e5:
        z = normal_quantile(p)
        return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
                + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))
    two_tail = 2.0 * (1.0 - p)
    x = beta_quantile(two_tail, df / 2.0, 0.5)
    return math.sqrt(df * (1.0 - x) / x)


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t (the factor of a two-sided 95% interval)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    return t_quantile(0.975, df)


# ------------------------------------------------------------------------------------------------ intervals


def proportion_interval(
    k: int, n: int, *, method: ProportionMethod = "wilson", level: float = 0.95
) -> Interval:
    """Confidence interval for a success probability from ``k`` successes in ``n`` trials.

    ``wilson``: the score interval (Wilson 1927), recommended by Newcombe (1998) and Brown, Cai & DasGupta (2001)
    for its near-nominal average coverage. ``clopper-pearson``: the exact tail-area interval (Clopper & Pearson
    1934), at least nominal coverage everywhere, wider. Both lie in [0, 1] and have positive width for every
    ``n >= 1``, including 0/n and n/n (Wilson 0/3 at 95%: [0, 0.5615]; Clopper–Pearson: [0, 0.7076]).
    """
    level = _check_level(level)
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise ValueError(f"k and n must be integers, got k={k!r}, n={n!r}")
    k, n = int(k), int(n)
    if n < 1:
        raise ValueError(f"a proportion needs at least one trial, got n={n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n={n}, got {k}")
    alpha = 1.0 - level
    if method == "wilson":
        z = normal_quantile(1.0 - alpha / 2.0)
        z2 = z * z
        center = (k + z2 / 2.0) / (n + z2)
        half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4.0)
        low = 0.0 if k == 0 else max(0.0, center - half)
        high = 1.0 if k == n else min(1.0, center + half)
    elif method == "clopper-pearson":
        low = 0.0 if k == 0 else beta_quantile(alpha / 2.0, k, n - k + 1)
        high = 1.0 if k == n else beta_quantile(1.0 - alpha / 2.0, k + 1, n - k)
    else:
        raise ValueError(f"unknown proportion interval method {method!r}; known: wilson, clopper-pearson")
    return Interval(float(low), float(high), f"{method} {_pct(level)}")


def _as_floats(values: Iterable[float], what: str = "value") -> list[float]:
    out: list[float] = []
    for v in values:
        if isinstance(v, bool):
            v = float(v)
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{what} {v!r} is not a number") from None
        if not math.isfinite(f):
            raise ValueError(f"{what} {v!r} is not finite")
        out.append(f)
    return out


def _check_in_range(values: Sequence[float], low: float, high: float) -> None:
    for v in values:
        if not low <= v <= high:
            raise ValueError(f"value {v!r} is outside the declared range [{low:g}, {high:g}]")


def _bootstrap_means(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``x``; drawn in chunks to bound memory."""
    import numpy as np

    n = len(x)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=float)
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        means[start : start + m] = x[rng.integers(0, n, size=(m, n))].mean(axis=1)
    return means


def bootstrap_mean_interval(
    values: Sequence[float],
    *,
    low: float,
    high: float,
    level: float = 0.95,
    n_boot: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval | None:
    """Seeded percentile-bootstrap interval of the mean of scores bounded in ``[low, high]``.

    The interval lies inside ``[low, high]`` (a mean of in-range values is in range) and contains the sample mean.
    It depends only on the multiset of values, ``level``, ``n_boot`` and ``seed``: the same inputs give the same
    interval in any order, on any machine. Values outside the range raise :class:`ValueError`.

    Fewer than two values give ``None``: every resample of one value is that value, which says nothing about
    uncertainty. A constant sample gives the zero-width interval ``[c, c]``: the percentile bootstrap cannot
    show variation the sample does not contain, so read it as "no spread observed", not as certainty.
    """
    level = _check_level(level)
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"a bounded score needs a finite range low <= high, got [{low!r}, {high!r}]")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    vals = _as_floats(values)
    _check_in_range(vals, low, high)
    if len(vals) < 2:
        return None
    import numpy as np

    x = np.sort(np.asarray(vals, dtype=float))  # sorted: the result must not depend on record order
    mean, _ = _mean_std(vals)
    assert mean is not None
    alpha = 1.0 - level
    q_lo, q_hi = (float(q) for q in np.quantile(_bootstrap_means(x, n_boot, seed), [alpha / 2, 1 - alpha / 2]))
    lo, hi = _settle(q_lo, q_hi, mean, float(x[0]), float(x[-1]))
    return Interval(lo, hi, f"bootstrap percentile {_pct(level)} ({n_boot} resamples, seed {seed})")


def _settle(q_lo: float, q_hi: float, mean: float, x_min: float, x_max: float) -> tuple[float, float]:
    """Percentile bounds made exact where float rounding blurs them: a resampled mean lies in ``[x_min, x_max]``,
    and the interval reports the sample mean (numpy's and fsum's means of a constant sample can differ in the
    last bit)."""
    return min(max(q_lo, x_min), mean), max(min(q_hi, x_max), mean)


def _mean_std(vals: Sequence[float]) -> tuple[float | None, float | None]:
    n = len(vals)
    if n == 0:
        return None, None
    # Clamped: fsum(...) / n can land one ulp outside [min, max] (a constant sample's mean must be that constant).
    mean = min(max(math.fsum(vals) / n, min(vals)), max(vals))
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1))


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval | None:
    """Student-t interval of the mean (``mean ± t · s / √n``); ``None`` with fewer than two values."""
    level = _check_level(level)
    vals = _as_floats(values)
    mean, std = _mean_std(vals)
    if mean is None or std is None:
        return None
    half = t_quantile(1.0 - (1.0 - level) / 2.0, len(vals) - 1) * std / math.sqrt(len(vals))
    return Interval(mean - half, mean + half, f"student-t {_pct(level)}")


# -------------------------------------------------------------------------------------------------- summary


def _resolve_range(kind: str, value_range: tuple[float, float] | None) -> tuple[float, float] | None:
    if value_range is None:
        return (0.0, 1.0) if kind == "proportion" else None
    lo, hi = (float(v) for v in value_range)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"value_range must be (low, high) with low <= high, got {value_range!r}")
    return lo, hi


def summarize(
    values: Iterable[float],
    *,
    kind: ValueKind,
    value_range: tuple[float, float] | None = None,
    seed: int = 0,
    level: float = 0.95,
    n_boot: int = DEFAULT_RESAMPLES,
    proportion_method: ProportionMethod = "wilson",
) -> dict[str, Any]:
    """Mean, sample std, n and the confidence interval suited to ``kind``.

    Returns ``{"mean", "std", "n", "ci_low", "ci_high", "ci_method"}``: plain JSON values, ``None`` where
    undefined (no values; std and, except for proportions, the interval with a single value). ``ci_method`` names
    the method and level (``"wilson 95%"``, ``"bootstrap percentile 95% (2000 resamples, seed 0)"``,
    ``"student-t 95%"``), None when there is no interval.

    ``proportion``: every value must be 0 or 1 (:class:`ValueError` naming the first other value).
    ``bounded``: ``value_range`` (finite) is required; values outside it are an error.
    ``unbounded``: ``value_range`` is optional (ends may be infinite); when given, values must lie inside it and
    the t interval is cut to it.
    """
    vals = _as_floats(values)
    rng = _resolve_range(kind, value_range)
    n = len(vals)
    mean, std = _mean_std(vals)
    out: dict[str, Any] = {"mean": mean, "std": std, "n": n, "ci_low": None, "ci_high": None, "ci_method": None}
    iv: Interval | None
    if kind == "proportion":
        for v in vals:
            if v not in (0.0, 1.0):
                raise ValueError(f"a proportion's values must be 0 or 1, got {v!r}")
        iv = proportion_interval(int(sum(vals)), n, method=proportion_method, level=level) if n else None
    elif kind == "bounded":
        if rng is None or not (math.isfinite(rng[0]) and math.isfinite(rng[1])):
            raise ValueError(f"a bounded score needs a finite value_range, got {value_range!r}")
        iv = bootstrap_mean_interval(vals, low=rng[0], high=rng[1], level=level, n_boot=n_boot, seed=seed)
    elif kind == "unbounded":
        if rng is not None:
            _check_in_range(vals, *rng)
        iv = t_interval(vals, level)
        if iv is not None and rng is not None:
            iv = Interval(max(iv.low, rng[0]), min(iv.high, rng[1]), iv.method)
    else:
        raise ValueError(f"unknown value kind {kind!r}; known: proportion, bounded, unbounded")
    if iv is not None:
        out.update(ci_low=iv.low, ci_high=iv.high, ci_method=iv.method)
    return out


# -------------------------------------------------------------------------------------------------- paired


def _tango_statistic(delta: float, b: int, c: int, n: int) -> float:
    """Tango's (1998) score statistic for H0: p(a only) - p(b only) = ``delta``, with the restricted maximum
    likelihood estimate of p(b only) under H0 (closed form, Tango 1998 eq. 6)."""
    big_a = 2.0 * n
    big_b = -b - c + (2.0 * n - b + c) * delta
    big_c = -c * delta * (1.0 - delta)
    q21 = (math.sqrt(max(big_b * big_b - 4.0 * big_a * big_c, 0.0)) - big_b) / (2.0 * big_a)
    num = b - c - n * delta
    var = n * (2.0 * q21 + delta * (1.0 - delta))
    if var <= 0.0:
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def _root(f: Any, lo: float, hi: float) -> float:
    """A root of the decreasing function ``f`` on ``[lo, hi]`` where ``f(lo) >= 0 >= f(hi)`` (bisection)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _tango_interval(b: int, c: int, n: int, level: float) -> tuple[float, float]:
    """Tango's asymptotic score interval for a difference of paired proportions (``b``: pairs where only the
    first run succeeded, ``c``: only the second, ``n``: all pairs). Recommended by Fagerland, Lydersen & Laake
    (2014, "Recommended tests and confidence intervals for paired binomial proportions", Stat Med 33:2850-2875).
    At 0 it inverts the McNemar test; with no discordant pair it is ±z²/(n+z²), never zero-width."""
    z = normal_quantile(1.0 - (1.0 - level) / 2.0)
    est = (b - c) / n
    low = -1.0 if est <= -1.0 else _root(lambda d: _tango_statistic(d, b, c, n) - z, -1.0, est)
    high = 1.0 if est >= 1.0 else _root(lambda d: _tango_statistic(d, b, c, n) + z, est, 1.0)
    return max(-1.0, min(low, est)), min(1.0, max(high, est))


def paired_difference(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    kind: ValueKind,
    seed: int = 0,
    level: float = 0.95,
    n_boot: int = DEFAULT_RESAMPLES,
    value_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Compare two runs scored on the same examples: mean of ``a[id] - b[id]`` over the ids both have.

    Interval of the mean difference, by kind:

    ``proportion``  Tango's score interval for paired proportions (see :func:`_tango_interval`): uses the
                    discordant pairs, positive width even when every pair agrees; "a>b" at 95% is the McNemar
                    test's rejection.
    ``bounded``     paired percentile bootstrap (pairs resampled together, seeded, ``n_boot`` resamples).
    ``unbounded``   paired Student-t on the differences.

    ``verdict`` is ``"a>b"`` when the interval lies above 0, ``"b>a"`` when below, else ``"no difference shown"``
    ("a>b" means a's values are higher; whether higher is better is the metric's business). Fewer than two shared
    examples give no interval and "no difference shown". Paired bootstrap and t intervals of a constant
    difference have zero width (as in :func:`bootstrap_mean_interval`), so with a handful of pairs that all move
    the same way they can show a difference that a sign test would not; the proportion interval never has zero
    width.

    Returns ``{"n_pairs", "n_only_a", "n_only_b", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
    "ci_method", "verdict"}`` (plus ``"only_a_succeeded"``/``"only_b_succeeded"`` for proportions), JSON values,
    None where undefined.
    """
    level = _check_level(level)
    shared = sorted(set(a) & set(b))
    xa = _as_floats((a[k] for k in shared), "value of a")
    xb = _as_floats((b[k] for k in shared), "value of b")
    rng = _resolve_range(kind, value_range)
    if kind == "proportion":
        for v in (*xa, *xb):
            if v not in (0.0, 1.0):
                raise ValueError(f"a proportion's values must be 0 or 1, got {v!r}")
    elif kind not in ("bounded", "unbounded"):
        raise ValueError(f"unknown value kind {kind!r}; known: proportion, bounded, unbounded")
    if rng is not None:
        _check_in_range(xa + xb, *rng)
    n = len(shared)
    diffs = [x - y for x, y in zip(xa, xb, strict=True)]
    out: dict[str, Any] = {
        "n_pairs": n,
        "n_only_a": len(a) - n,
        "n_only_b": len(b) - n,
        "mean_a": _mean_std(xa)[0],
        "mean_b": _mean_std(xb)[0],
        "mean_diff": _mean_std(diffs)[0],
        "ci_low": None,
        "ci_high": None,
        "ci_method": None,
        "verdict": "no difference shown",
    }
    if kind == "proportion":
        only_a = sum(1 for x, y in zip(xa, xb, strict=True) if x > y)
        only_b = sum(1 for x, y in zip(xa, xb, strict=True) if y > x)
        out.update(only_a_succeeded=only_a, only_b_succeeded=only_b)
    if n < 2:
        return out
    if kind == "proportion":
        low, high = _tango_interval(only_a, only_b, n, level)
        method = f"tango score {_pct(level)} (paired proportions)"
    elif kind == "bounded":
        import numpy as np

        x = np.asarray(diffs, dtype=float)
        alpha = 1.0 - level
        means = _bootstrap_means(np.sort(x), n_boot, seed)  # sorted: independent of record order
        q_lo, q_hi = (float(q) for q in np.quantile(means, [alpha / 2, 1 - alpha / 2]))
        low, high = _settle(q_lo, q_hi, float(out["mean_diff"]), float(x.min()), float(x.max()))
        method = f"paired bootstrap percentile {_pct(level)} ({n_boot} resamples, seed {seed})"
    else:
        iv = t_interval(diffs, level)
        assert iv is not None  # n >= 2
        low, high = iv.low, iv.high
        method = f"paired student-t {_pct(level)}"
    out.update(ci_low=float(low), ci_high=float(high), ci_method=method)
    if low > 0:
        out["verdict"] = "a>b"
    elif high < 0:
        out["verdict"] = "b>a"
    return out
