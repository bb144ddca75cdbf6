"""Aggregates of run records (``results.json``), pure and order-independent, so a resumed run matches an
uninterrupted one and ``results.json`` can always be recomputed from ``samples.jsonl`` and the manifest.

Each metric's interval follows the nature its scorer declares (``value_kind`` in the manifest's components):
proportions get a Wilson interval, bounded scores a seeded bootstrap inside their range, unbounded counts a
Student-t interval (:mod:`collab_harness.stats`); ``ci_method`` in each summary says which. A failed score is never
a value: it counts in ``n_failed`` (and in ``n_environment`` when the environment, not the model, failed).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .components import ValueKind
from .records import (
    AnyRecord,
    ChatRecord,
    EvalRecord,
    Manifest,
    MetricSummary,
    MRRecord,
    Results,
    SynthRecord,
    UsageCounters,
)
from .stats import summarize

__all__ = ["aggregate_chat", "aggregate_eval", "aggregate_mr", "aggregate_synth", "chat_values", "metric_summary",
           "scorer_traits", "sum_usage"]


def scorer_traits(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """Scorer name -> its declared traits (value_kind, value_range, role, higher_is_better) from the manifest."""
    out: dict[str, dict[str, Any]] = {}
    for c in manifest.components:
        if c.get("kind") in ("metric", "judge"):
            out[str(c.get("name"))] = {k: c.get(k) for k in ("value_kind", "value_range", "role", "higher_is_better",
                                                             "board_column")}
    return out


def reward_range(manifest: Manifest, form: str = "weighted") -> list[float | None] | None:
    """The range a run's reward can take, from the weights and the scorers' declared ranges: the weighted form is
    sum(w * value), the paper form drops the efficiency scorer and subtracts a penalty in [0, 1]. An open end is None
    (its interval is only cut at the finite end); None when nothing is known (no weights)."""
    weights = {k: float(v) for k, v in (manifest.weights or {}).items() if v}
    if not weights:
        return None
    traits = scorer_traits(manifest)
    lo = hi = 0.0
    for name, w in weights.items():
        t = traits.get(name)
        if t is None:
            return None
        if form == "paper" and t.get("role") == "efficiency":
            continue
        rng = t.get("value_range") or [None, None]
        a = float("-inf") if rng[0] is None else float(rng[0])
        b = float("inf") if rng[1] is None else float(rng[1])
        ends = [w * a, w * b]
        lo += min(ends)
        hi += max(ends)
    if form == "paper":
        lo -= 1.0
    return [lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None]


def _reward_summary(manifest: Manifest, values: Sequence[float], n_failed: int, seed: int = 0,
                    form: str = "weighted") -> MetricSummary:
    rng = reward_range(manifest, form)
    kind = "bounded" if rng is not None and None not in rng else "unbounded"
    return metric_summary(values, kind=kind, value_range=rng, n_failed=n_failed, seed=seed)


def _mr_form(manifest: Manifest) -> str:
    mr = manifest.config.get("mr") if isinstance(manifest.config, dict) else None
    return str((mr or {}).get("form") or "weighted")


def metric_summary(values: Sequence[float], *, kind: ValueKind | str, value_range: Sequence[float | None] | None,
                   n_failed: int = 0, n_environment: int = 0, seed: int = 0) -> MetricSummary:
    # A null end of a declared range is open (-inf / +inf).
    rng = ((float("-inf") if value_range[0] is None else float(value_range[0]),
            float("inf") if value_range[1] is None else float(value_range[1])) if value_range else None)
    if kind == "proportion" and any(v not in (0.0, 1.0) for v in values):
        kind = "bounded"  # a scorer that declared proportions but produced other values: never mis-state the CI
    if kind == "bounded" and (rng is None or not all(abs(x) != float("inf") for x in rng)):
        kind = "unbounded"
    vk: ValueKind = "proportion" if kind == "proportion" else "bounded" if kind == "bounded" else "unbounded"
    # Unbounded counts keep their half-open range: the t interval is cut to it (no negative token counts).
    s = summarize(list(values), kind=vk, value_range=rng, seed=seed)
    finite = rng if rng is not None and all(abs(x) != float("inf") for x in rng) else None
    return MetricSummary(mean=s["mean"], std=s["std"], n=s["n"], n_failed=n_failed, n_environment=n_environment,
                         ci_low=s["ci_low"], ci_high=s["ci_high"], ci_method=s["ci_method"], value_kind=kind,
                         value_range=finite)


def sum_usage(records: Iterable[AnyRecord]) -> dict[str, UsageCounters]:
    acc: dict[str, dict[str, Any]] = {}
    for r in records:
        for comp, u in r.usage.items():
            a = acc.setdefault(comp, {f: 0 for f in UsageCounters.model_fields})
            for f in UsageCounters.model_fields:
                v = getattr(u, f)
                if f == "cost":
                    a[f] = None if (v is None or a[f] is None) else a[f] + v
                else:
                    a[f] += v
    return {k: UsageCounters(**v) for k, v in sorted(acc.items())}


def _errors(records: Sequence[AnyRecord]) -> tuple[dict[str, int], dict[str, int], int]:
    by_comp: Counter[str] = Counter()
    by_cat: Counter[str] = Counter()
    for r in records:
        for e in r.errors:
            by_comp[e.component] += 1
            by_cat[e.category] += 1
    return dict(sorted(by_comp.items())), dict(sorted(by_cat.items())), sum(1 for r in records if r.errors)


def aggregate_eval(manifest: Manifest, records: Sequence[EvalRecord]) -> Results:
    """Per metric (and sub-value ``name.sub``) summaries over the evaluated examples."""
    records = sorted(records, key=lambda r: r.example_id)
    traits = scorer_traits(manifest)
    seed = int(manifest.seeds.get("run", 0) or 0)
    names: list[str] = list(manifest.metrics)
    values: dict[str, list[float]] = {}
    failed: Counter[str] = Counter()
    env: Counter[str] = Counter()
    for r in records:
        for name in manifest.metrics:
            if name not in r.scores:
                failed[name] += 1  # the sample failed before this scorer ran: no value, counted as failed
        for name, s in r.scores.items():
            if name not in names:
                names.append(name)
            if s.ok and s.value is not None:
                values.setdefault(name, []).append(float(s.value))
                for sub, v in s.values.items():
                    values.setdefault(f"{name}.{sub}", []).append(float(v))
            else:
                failed[name] += 1
                if s.details.get("failure") == "environment":
                    env[name] += 1
    metrics: dict[str, MetricSummary] = {}
    for name in names:
        t = traits.get(name, {})
        metrics[name] = metric_summary(values.get(name, []), kind=str(t.get("value_kind") or "bounded"),
                                       value_range=t.get("value_range"), n_failed=failed[name],
                                       n_environment=env[name], seed=seed)
        subs = sorted(k for k in values if k.startswith(f"{name}."))
        for sub in subs:
            metrics[sub] = metric_summary(values[sub], kind="unbounded", value_range=None, n_failed=failed[name],
                                          seed=seed)
    rewards = [float(r.reward) for r in records if r.reward is not None]
    by_comp, by_cat, n_failed = _errors(records)
    return Results(
        kind="eval", status=manifest.status, task=manifest.task.get("name"),
        task_metric=manifest.task.get("task_metric"), n_items=len(manifest.item_ids), n_samples=len(records),
        n_failed=n_failed, complete={r.example_id for r in records} >= set(manifest.item_ids),
        metrics=metrics,
        reward=_reward_summary(manifest, rewards, len(records) - len(rewards), seed),
        errors_by_component=by_comp, errors_by_category=by_cat, usage=sum_usage(records),
    )


def aggregate_mr(manifest: Manifest, records: Sequence[MRRecord]) -> Results:
    """MR over the rows (``reward``), and each scorer's per-row mean over the same futures as MR."""
    records = sorted(records, key=lambda r: r.row_id)
    traits = scorer_traits(manifest)
    seed = int(manifest.seeds.get("run", 0) or 0)
    per: dict[str, list[float]] = {}
    failed: Counter[str] = Counter()
    for r in records:
        for name in manifest.metrics:
            v = r.per_metric.get(name) if r.mr is not None else None
            if v is None:
                failed[name] += 1
            else:
                per.setdefault(name, []).append(float(v))
    metrics = {}
    for name in manifest.metrics:
        t = traits.get(name, {})
        kind = str(t.get("value_kind") or "bounded")
        # A row's value is a mean over futures: a proportion's mean is a bounded score.
        metrics[name] = metric_summary(per.get(name, []), kind="bounded" if kind == "proportion" else kind,
                                       value_range=t.get("value_range"), n_failed=failed[name], seed=seed)
    mrs = [float(r.mr) for r in records if r.mr is not None]
    by_comp, by_cat, n_failed = _errors(records)
    return Results(
        kind="mr", status=manifest.status, task=manifest.task.get("name"),
        task_metric=manifest.task.get("task_metric"), n_items=len(manifest.item_ids), n_samples=len(records),
        n_failed=n_failed, complete={r.row_id for r in records} >= set(manifest.item_ids), metrics=metrics,
        reward=_reward_summary(manifest, mrs, len(records) - len(mrs), form=_mr_form(manifest)),
        errors_by_component=by_comp, errors_by_category=by_cat, usage=sum_usage(records),
    )


def aggregate_synth(manifest: Manifest, records: Sequence[SynthRecord]) -> Results:
    """Over the synthesised conversations: MR of the chosen candidates (every turn) as ``reward``, and each scorer's
    per-metric mean of the chosen candidates; ``turns`` and ``candidates`` counts as unbounded summaries."""
    records = sorted(records, key=lambda r: r.example_id)
    traits = scorer_traits(manifest)
    seed = int(manifest.seeds.get("run", 0) or 0)
    chosen = [t.candidates[t.chosen] for r in records for t in r.turns if t.chosen is not None]
    metrics: dict[str, MetricSummary] = {}
    for name in manifest.metrics:
        t = traits.get(name, {})
        kind = str(t.get("value_kind") or "bounded")
        vals = [float(v) for c in chosen if (v := c.per_metric.get(name)) is not None]
        metrics[name] = metric_summary(vals, kind="bounded" if kind == "proportion" else kind,
                                       value_range=t.get("value_range"), n_failed=len(chosen) - len(vals), seed=seed)
    metrics["turns"] = metric_summary([float(len(r.turns)) for r in records], kind="unbounded", value_range=None)
    gaps = []
    for r in records:
        for turn in r.turns:
            scored = [c.mr for c in turn.candidates if c.mr is not None]
            if len(scored) >= 2:
                gaps.append(max(scored) - min(scored))
    metrics["candidate_gap"] = metric_summary(gaps, kind="unbounded", value_range=None)
    mrs = [float(c.mr) for c in chosen if c.mr is not None]
    by_comp, by_cat, n_failed = _errors(records)
    return Results(
        kind="synth", status=manifest.status, task=manifest.task.get("name"),
        task_metric=manifest.task.get("task_metric"), n_items=len(manifest.item_ids), n_samples=len(records),
        n_failed=n_failed, complete={r.example_id for r in records} >= set(manifest.item_ids), metrics=metrics,
        reward=_reward_summary(manifest, mrs, 0, form=_mr_form(manifest)),
        errors_by_component=by_comp, errors_by_category=by_cat, usage=sum_usage(records),
    )


def chat_values(r: ChatRecord) -> dict[str, float]:
    """The human-side numbers of one chat session: ``human.turn`` (mean of the every-K-turns ratings),
    ``human.<key>`` per final rating, ``turns``, ``active_min`` and ``user_s_per_turn``."""
    out: dict[str, float] = {}
    if r.ratings:
        out["human.turn"] = sum(x.value for x in r.ratings) / len(r.ratings)
    for x in r.final_ratings:
        out[f"human.{x.key}"] = float(x.value)
    out["turns"] = float(len(r.turns))
    out["active_min"] = r.active_s / 60.0
    if r.turns:
        out["user_s_per_turn"] = sum(t.user_s for t in r.turns) / len(r.turns)
    return out


def aggregate_chat(manifest: Manifest, records: Sequence[ChatRecord]) -> Results:
    """Chat sessions: the automatic scores as in an evaluation (every scorer, failures counted), the human ratings
    (``human.turn``: per-session mean of the every-K-turns ratings; ``human.<key>``: each final rating; bootstrap
    inside the rating scale), ``turns``, ``active_min`` and ``user_s_per_turn`` (Student-t, cut at 0); the same per
    assistant as ``<metric>@<label>``. ``complete`` means every planned session has a record."""
    records = sorted(records, key=lambda r: r.session_id)
    # The scorer part is exactly an evaluation's aggregate (records carry scores, reward, errors, usage alike).
    base = aggregate_eval(manifest, records)  # type: ignore[arg-type]
    seed = int(manifest.seeds.get("run", 0) or 0)
    metrics = dict(base.metrics)
    groups: dict[str, list[ChatRecord]] = {"": list(records)}
    for r in records:
        groups.setdefault(f"@{r.assistant}", []).append(r)
    for suffix, recs in groups.items():
        values: dict[str, list[float]] = {}
        scales: dict[str, tuple[int, int]] = {}
        for r in recs:
            for k, v in chat_values(r).items():
                values.setdefault(k, []).append(v)
            for x in r.ratings:
                scales["human.turn"] = x.scale
            for x in r.final_ratings:
                scales[f"human.{x.key}"] = x.scale
        for k in sorted(values):
            if k.startswith("human."):
                lo, hi = scales.get(k, (1, 10))
                metrics[k + suffix] = metric_summary(values[k], kind="bounded", value_range=(lo, hi), seed=seed)
            else:
                metrics[k + suffix] = metric_summary(values[k], kind="unbounded", value_range=(0.0, float("inf")),
                                                     seed=seed)
        if suffix:
            for name in manifest.metrics:
                vals = [float(s.value) for r in recs if (s := r.scores.get(name)) is not None and s.ok
                        and s.value is not None]
                t = scorer_traits(manifest).get(name, {})
                metrics[name + suffix] = metric_summary(vals, kind=str(t.get("value_kind") or "bounded"),
                                                        value_range=t.get("value_range"),
                                                        n_failed=len(recs) - len(vals), seed=seed)
    return base.model_copy(update={
        "kind": "chat", "n_items": len(manifest.item_ids), "n_samples": len(records), "metrics": metrics,
        "complete": {r.session_id for r in records} >= set(manifest.item_ids),
    })


def usage_totals(usage: Mapping[str, UsageCounters]) -> dict[str, Any]:
    tot: dict[str, Any] = {f: 0 for f in UsageCounters.model_fields}
    for u in usage.values():
        for f in UsageCounters.model_fields:
            v = getattr(u, f)
            tot[f] = None if (f == "cost" and (v is None or tot[f] is None)) else tot[f] + v
    return tot
