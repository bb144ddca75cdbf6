"""The board's safety column group: safe-response rate, mean harm severity and over-refusal rate of a run.

A run is a *safety run* when it scored at least one scorer that declares a column of this group
(:attr:`collab_harness.components.Metric.board_column`: the ``safety-chat`` plugins' ``safe_response``, ``harm`` and
``over_refusal`` do; the board never looks for them by name). For such a run the board shows, instead of the usual
task columns (task metric, k-tokens, interactivity), the three columns of :data:`SAFETY_COLUMNS`, each read from
``results.json`` (mean, interval and its method: Wilson for the two rates, bootstrap in [0, 7] for the severity),
so a trained model's row shows its collaboration gains on the other tasks beside its safety.

Every safety group names how it was scored (:func:`detector_label`): the offline rules (refusal/compliance detector,
not a content classifier) or the LLM judge, so boards never present rule-based numbers as a judge's. Per-category
values (violence, sexual, self-harm, hate) are recomputed from ``samples.jsonl`` with the same interval machinery as
``results.json`` (:func:`collab_harness.aggregate.metric_summary`).

Entry points for the board (:mod:`collab_harness.report.leaderboard`): :func:`task_columns`,
:func:`safety_metrics`, :func:`column_title`, :func:`safety_notes`; standalone: :func:`load_safety_groups`,
:func:`safety_markdown`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..records import EvalRecord, Manifest, MetricSummary

__all__ = [
    "CATEGORIES",
    "SAFETY_COLUMNS",
    "SafetyCell",
    "SafetyGroup",
    "column_title",
    "detector_label",
    "is_safety_run",
    "load_safety_groups",
    "safety_group",
    "safety_markdown",
    "safety_metrics",
    "safety_notes",
    "task_columns",
]

#: The column group, in board order.
SAFETY_COLUMNS: tuple[str, ...] = ("safe_rate", "severity", "over_refusal_rate")
_TITLES = {"safe_rate": "safe-response rate ↑", "severity": "harm severity 0–7 ↓",
           "over_refusal_rate": "over-refusal rate ↓"}
_HIGHER_IS_BETTER = {"safe_rate": True, "severity": False, "over_refusal_rate": False}
CATEGORIES: tuple[str, ...] = ("violence", "sexual", "self_harm", "hate")
OFFLINE_JUDGE = "rules"


def column_title(column: str) -> str:
    """The header of a safety column (with the direction arrow)."""
    return _TITLES[column]


def _column_scorers(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """Column -> the manifest's component entry of the scorer that declares it (``board_column``)."""
    out: dict[str, dict[str, Any]] = {}
    for c in manifest.components:
        col = c.get("board_column")
        if c.get("kind") in ("metric", "judge") and col in SAFETY_COLUMNS and col not in out:
            out[str(col)] = c
    return out


def safety_metrics(manifest: Manifest) -> dict[str, str | None]:
    """Column -> the scorer that fills it in this run, or None when the run did not score it."""
    scored = set(manifest.metrics)
    by_col = _column_scorers(manifest)
    return {col: (str(by_col[col].get("name")) if col in by_col and by_col[col].get("name") in scored else None)
            for col in SAFETY_COLUMNS}


def is_safety_run(manifest: Manifest) -> bool:
    """Whether the run scored any of the safety scorers."""
    return any(v is not None for v in safety_metrics(manifest).values())


def task_columns(manifest: Manifest) -> tuple[str, ...] | None:
    """The columns of this run's task on the board: :data:`SAFETY_COLUMNS` for a safety run, None otherwise (the
    board's usual columns)."""
    return SAFETY_COLUMNS if is_safety_run(manifest) else None


def detector_label(manifest: Manifest) -> str:
    """How the safety scores were made: the offline rules or the LLM judge (model named)."""
    judge = str(manifest.config.get("judge") or "")
    options = [c.get("options") or {} for c in _column_scorers(manifest).values() if c.get("kind") == "judge"]
    models = {str(o.get("model")) for o in options if o.get("model")} or ({judge} if judge else set())
    if models <= {OFFLINE_JUDGE}:
        return "offline rules (refusal/compliance detector, not a content classifier)"
    return "LLM judge " + ", ".join(sorted(models - {OFFLINE_JUDGE})) + (
        " (some scorers: offline rules)" if OFFLINE_JUDGE in models else "")


def _threshold(manifest: Manifest) -> int | None:
    c = _column_scorers(manifest).get("safe_rate")
    if c is None:
        return None
    t = (c.get("options") or {}).get("threshold")
    return int(t) if t is not None else None


@dataclass(frozen=True)
class SafetyCell:
    """One safety column of one run (or of one category of it)."""

    column: str
    metric: str | None
    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = None
    n: int = 0
    n_failed: int = 0
    n_environment: int = 0

    @property
    def state(self) -> str:
        if self.metric is None:
            return "not measured"
        if self.mean is None:
            return "failed" if self.n_failed else "not measured"
        return "value"

    @property
    def higher_is_better(self) -> bool:
        return _HIGHER_IS_BETTER[self.column]

    def text(self, digits: int = 3) -> str:
        if self.state == "failed":
            return f"failed ({self.n_failed})"
        if self.state != "value" or self.mean is None:
            return self.state
        s = f"{self.mean:.{digits}f}"
        if self.ci_low is not None and self.ci_high is not None:
            s += f" [{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]"
        if self.ci_method:
            s += f" ({self.ci_method.split()[0]})"
        return s + f" n={self.n}" + (f", failed {self.n_failed}" if self.n_failed else "")


def _cell(column: str, metric: str | None, s: MetricSummary | None) -> SafetyCell:
    if metric is None or s is None:
        return SafetyCell(column, metric)
    return SafetyCell(column, metric, s.mean, s.ci_low, s.ci_high, s.ci_method, s.n, s.n_failed, s.n_environment)


@dataclass(frozen=True)
class SafetyGroup:
    """The safety column group of one run, with its per-category breakdown."""

    path: str
    label: str
    task: str
    detector: str
    threshold: int | None
    cells: dict[str, SafetyCell]
    #: category -> column -> cell (recomputed from samples.jsonl).
    by_category: dict[str, dict[str, SafetyCell]] = field(default_factory=dict)


def _category_of(record: EvalRecord) -> str | None:
    for s in record.scores.values():
        cat = s.details.get("category") if isinstance(s.details, Mapping) else None
        if isinstance(cat, str) and cat:
            return cat
    return None


def _by_category(manifest: Manifest, records: Sequence[EvalRecord], metrics: Mapping[str, str | None]
                 ) -> dict[str, dict[str, SafetyCell]]:
    from ..aggregate import metric_summary, scorer_traits

    traits = scorer_traits(manifest)
    seed = int(manifest.seeds.get("run", 0) or 0)
    groups: dict[str, list[EvalRecord]] = {}
    for r in records:
        cat = _category_of(r)
        if cat is not None:
            groups.setdefault(cat, []).append(r)
    out: dict[str, dict[str, SafetyCell]] = {}
    for cat in [c for c in CATEGORIES if c in groups] + sorted(set(groups) - set(CATEGORIES)):
        cells: dict[str, SafetyCell] = {}
        for col, metric in metrics.items():
            if metric is None:
                cells[col] = SafetyCell(col, None)
                continue
            vals, failed = [], 0
            for r in groups[cat]:
                sc = r.scores.get(metric)
                if sc is not None and sc.ok and sc.value is not None:
                    vals.append(float(sc.value))
                else:
                    failed += 1
            t = traits.get(metric, {})
            cells[col] = _cell(col, metric, metric_summary(vals, kind=str(t.get("value_kind") or "bounded"),
                                                           value_range=t.get("value_range"), n_failed=failed,
                                                           seed=seed))
        out[cat] = cells
    return out


def safety_group(run: Any) -> SafetyGroup | None:
    """The safety group of a loaded run (:class:`collab_harness.report.runs.RunView`), None for other runs."""
    manifest: Manifest = run.manifest
    if not is_safety_run(manifest):
        return None
    metrics = safety_metrics(manifest)
    cells = {col: _cell(col, m, run.results.metrics.get(m) if m else None) for col, m in metrics.items()}
    return SafetyGroup(path=str(run.path), label=str(run.label), task=str(run.task),
                       detector=detector_label(manifest), threshold=_threshold(manifest), cells=cells,
                       by_category=_by_category(manifest, run.records, metrics))


def load_safety_groups(run_dirs: Sequence[str | Path]) -> list[SafetyGroup]:
    """The safety groups of the safety runs among ``run_dirs`` (other runs are skipped; a directory that is not a
    finished evaluation raises :class:`~collab_harness.report.runs.LeaderboardError`)."""
    from .runs import load_run

    out = []
    for d in run_dirs:
        g = safety_group(load_run(d))
        if g is not None:
            out.append(g)
    return out


def safety_notes(run: Any) -> list[str]:
    """One-line notes for the board under a safety run: how it was scored, the threshold, the per-category rates."""
    g = safety_group(run)
    if g is None:
        return []
    notes = [f"{g.task} ({g.label}): scored by {g.detector}; safe = no assistant message above severity "
             f"{g.threshold if g.threshold is not None else 3}; over-refusal on matched benign twins"]
    for cat, cells in g.by_category.items():
        parts = [f"{column_title(c).rsplit(' ', 1)[0]} {cells[c].text()}" for c in SAFETY_COLUMNS
                 if cells[c].state != "not measured"]
        if parts:
            notes.append(f"{g.task} ({g.label}) {cat.replace('_', '-')}: " + "; ".join(parts))
    return notes


def safety_markdown(groups: Sequence[SafetyGroup], digits: int = 3) -> str:
    """A Markdown table of safety groups (one row per run) followed by the per-category notes."""
    if not groups:
        return ""
    head = ["run", "task", *[column_title(c) for c in SAFETY_COLUMNS], "scored by"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        lines.append("| " + " | ".join([g.label, g.task, *[g.cells[c].text(digits) for c in SAFETY_COLUMNS],
                                        g.detector]) + " |")
    for g in groups:
        for cat, cells in g.by_category.items():
            lines.append(f"- {g.label} / {cat.replace('_', '-')}: "
                         + "; ".join(f"{c} {cells[c].text(digits)}" for c in SAFETY_COLUMNS
                                     if cells[c].state != "not measured"))
    return "\n".join(lines) + "\n"
