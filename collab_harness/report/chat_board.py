"""Chat studies on the leaderboard: what people said about each assistant, next to what the judges said.

Per task, one row per assistant label (sessions of several study directories pooled): the finished sessions (and,
apart, the incomplete and failed ones), the final ratings and the mean every-K-turns rating with bootstrap intervals
inside the rating scale, turns, the person's active time, and the automatic task metric and interactivity of the same
conversations. *Ratings over turns* (the paper's Figure 7): for each assistant, the mean rating given after turn
3, 6, 9 ... with its interval and n (fewer sessions reach later turns). *Agreement*: Spearman's rank correlation
between a human rating and the interactivity judge on the same conversations, with a Fisher-z interval
(standard error sqrt(1.06 / (n − 3)), Fieller, Hartley & Pearson 1957), all assistants pooled and per assistant;
fewer than 4 conversations, or a constant side, give no correlation and say why.

Only sessions the person finished (``status: complete``) carry ratings into the board; sessions that failed before
finishing and sessions still in their journals are counted, never averaged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..aggregate import chat_values, metric_summary
from ..records import ChatRecord
from ..stats import normal_quantile
from .leaderboard import Cell
from .runs import ChatRunView

__all__ = ["ChatBoard", "ChatRow", "Correlation", "build_chat_board", "rank_correlation"]

#: Columns of a chat row besides the final ratings (key -> title).
TIME_COLUMNS = {"turns": "turns", "active_min": "time (min)", "user_s_per_turn": "s / turn (person)"}


@dataclass(frozen=True)
class Correlation:
    """Agreement of a human rating with an automatic score on the same conversations."""

    task: str
    human: str
    auto: str
    group: str
    n: int
    spearman: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = None
    pearson: float | None = None
    refused: str | None = None

    def text(self) -> str:
        head = f"{self.task}, {self.group}: {self.human} vs {self.auto} (n={self.n})"
        if self.refused or self.spearman is None:
            return f"{head}: no correlation — {self.refused}"
        s = f"{head}: Spearman ρ = {self.spearman:+.3f}"
        if self.ci_low is not None and self.ci_high is not None:
            s += f" [{self.ci_low:+.3f}, {self.ci_high:+.3f}]"
        if self.pearson is not None:
            s += f"; Pearson r = {self.pearson:+.3f}"
        return s


@dataclass
class ChatRow:
    """One assistant on one task: its sessions, cells (column key -> Cell) and ratings over turns."""

    task: str
    label: str
    models: list[str]
    n_sessions: int
    n_failed: int = 0
    n_incomplete: int = 0
    runs: list[str] = field(default_factory=list)
    cells: dict[str, Cell] = field(default_factory=dict)
    #: Turn the rating followed -> the mean rating there (over the sessions that reached it).
    over_turns: dict[int, Cell] = field(default_factory=dict)
    #: (human final interaction rating or every-K mean, interactivity judge) per finished session.
    pairs: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class ChatBoard:
    tasks: list[str]
    rows: list[ChatRow]
    #: task -> column key -> title (final questions first, then the every-K rating, time, automatic scores).
    columns: dict[str, dict[str, str]]
    correlations: list[Correlation]
    #: task -> the rating scale and the every-K setting, and whether a study was blind.
    protocol: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    runs: list[ChatRunView] = field(default_factory=list)

    def rows_of(self, task: str) -> list[ChatRow]:
        return [r for r in self.rows if r.task == task]

    def turns_of(self, task: str) -> list[int]:
        return sorted({t for r in self.rows_of(task) for t in r.over_turns})


# ------------------------------------------------------------------------------------------------- statistics


def _ranks(xs: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    n = len(xs)
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return max(-1.0, min(1.0, math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) /
                         math.sqrt(sxx * syy)))


def rank_correlation(xs: Sequence[float], ys: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Spearman's ρ (Pearson on average ranks) with a Fisher-z interval (se = sqrt(1.06 / (n − 3))), and Pearson's r.
    Returns ``{"n", "spearman", "ci_low", "ci_high", "method", "pearson", "refused"}``; ``refused`` says why there is
    no ρ (fewer than 4 pairs, a constant side)."""
    n = len(xs)
    out: dict[str, Any] = {"n": n, "spearman": None, "ci_low": None, "ci_high": None, "method": None,
                           "pearson": None, "refused": None}
    if n != len(ys):
        raise ValueError("xs and ys must have the same length")
    if n < 4:
        out["refused"] = f"{n} paired conversation(s); need 4"
        return out
    rho = _pearson(_ranks(xs), _ranks(ys))
    if rho is None:
        out["refused"] = "one side is constant (no variation to correlate)"
        return out
    z = math.atanh(max(-0.999999, min(0.999999, rho)))
    half = normal_quantile(1 - (1 - level) / 2) * math.sqrt(1.06 / (n - 3))
    out.update(spearman=rho, ci_low=math.tanh(z - half), ci_high=math.tanh(z + half), pearson=_pearson(xs, ys),
               method=f"Fisher z, se sqrt(1.06/(n-3)), {round(level * 100)}%")
    return out


def _cell(values: Sequence[float], *, bounded: tuple[float, float] | None, seed: int = 0) -> Cell:
    if not values:
        return Cell(state="not measured")
    if bounded is not None:
        s = metric_summary(values, kind="bounded", value_range=bounded, seed=seed)
    else:
        s = metric_summary(values, kind="unbounded", value_range=(0.0, float("inf")), seed=seed)
    return Cell(state="value", mean=s.mean, ci_low=s.ci_low, ci_high=s.ci_high, ci_method=s.ci_method, n=s.n)


def _score_cell(recs: Sequence[ChatRecord], name: str | None, traits: dict[str, Any], seed: int) -> Cell:
    if name is None:
        return Cell(state="not measured")
    vals = [float(s.value) for r in recs if (s := r.scores.get(name)) is not None and s.ok and s.value is not None]
    n_failed = len(recs) - len(vals)
    if not vals:
        return Cell(state="failed" if n_failed else "not measured", metric=name, n_failed=n_failed)
    t = traits.get(name, {})
    summ = metric_summary(vals, kind=str(t.get("value_kind") or "bounded"), value_range=t.get("value_range"),
                          n_failed=n_failed, seed=seed)
    return Cell(state="value", metric=name, mean=summ.mean, ci_low=summ.ci_low, ci_high=summ.ci_high,
                ci_method=summ.ci_method, n=summ.n, n_failed=n_failed)


# --------------------------------------------------------------------------------------------------- building


def build_chat_board(runs: Sequence[ChatRunView]) -> ChatBoard:
    """Lay out chat studies: rows (task × assistant label), ratings over turns, correlations with the judge."""
    tasks: list[str] = []
    groups: dict[tuple[str, str], list[tuple[ChatRunView, ChatRecord]]] = {}
    protocol: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    incomplete: dict[tuple[str, str], int] = {}
    for run in runs:
        if run.task not in tasks:
            tasks.append(run.task)
        proto = run.protocol
        seen = protocol.setdefault(run.task, {"scale": tuple(proto.get("scale") or (1, 10)),
                                              "rate_every": proto.get("rate_every"), "blind": set(), "runs": []})
        seen["blind"].add(bool(run.chat.get("blind")))
        seen["runs"].append(run.path)
        if proto.get("rate_every") != seen["rate_every"] or tuple(proto.get("scale") or (1, 10)) != seen["scale"]:
            notes.append(f"⚑ {run.task}: {run.path} rates every {proto.get('rate_every')} turns on "
                         f"{proto.get('scale')}, other studies of this task differ; ratings are pooled as they are")
        notes += [f"{run.path}: {n}" for n in run.notes]
        if run.n_incomplete:
            notes.append(f"{run.path}: {run.n_incomplete} session(s) still incomplete (in their journals; resume "
                         "them with the same chat command); not counted")
        for rec in run.records:
            groups.setdefault((run.task, rec.assistant), []).append((run, rec))
        # Assistants with planned sessions but nothing finished still get a row.
        for spec in run.chat.get("assistants") or []:
            groups.setdefault((run.task, str(spec.get("label"))), [])
        for label in run.incomplete_by_session().values():
            incomplete[(run.task, label)] = incomplete.get((run.task, label), 0) + 1
    columns: dict[str, dict[str, str]] = {}
    rows: list[ChatRow] = []
    correlations: list[Correlation] = []
    for task in tasks:
        scale = protocol[task]["scale"]
        bounded = (float(scale[0]), float(scale[1]))
        finals: dict[str, str] = {}
        for (t, _), items in groups.items():
            if t == task:
                for _, rec in items:
                    for x in rec.final_ratings:
                        finals.setdefault(f"human.{x.key}", x.key)
        cols = {k: f"{v} (person)" for k, v in finals.items()}
        cols["human.turn"] = f"every-{protocol[task]['rate_every']}-turns rating (person)"
        cols.update(TIME_COLUMNS)
        first = next((run for run in runs if run.task == task), None)
        tm = first.task_metric if first else None
        inter = first.interaction_scorer() if first else None
        traits = dict(first.traits) if first else {}
        if tm:
            cols[f"auto.{tm}"] = f"{tm} (automatic)"
        if inter:
            cols[f"auto.{inter}"] = f"{inter} (judge)"
        columns[task] = cols
        task_rows = []
        for (t, label), items in groups.items():
            if t != task:
                continue
            done = [rec for _, rec in items if rec.status == "complete"]
            row = ChatRow(task=task, label=label, models=sorted({rec.assistant_model for _, rec in items}),
                          n_sessions=len(done), n_failed=sum(1 for _, rec in items if rec.errors),
                          n_incomplete=incomplete.get((task, label), 0),
                          runs=sorted({run.path for run, _ in items}))
            values: dict[str, list[float]] = {}
            for rec in done:
                for k, v in chat_values(rec).items():
                    values.setdefault(k, []).append(v)
            for key in cols:
                if key.startswith("human."):
                    row.cells[key] = _cell(values.get(key, []), bounded=bounded)
                elif key in TIME_COLUMNS:
                    row.cells[key] = _cell(values.get(key, []), bounded=None)
                elif key.startswith("auto."):
                    row.cells[key] = _score_cell(done, key.removeprefix("auto."), traits, 0)
            by_turn: dict[int, list[float]] = {}
            for rec in done:
                for x in rec.ratings:
                    by_turn.setdefault(x.after_turn, []).append(float(x.value))
            row.over_turns = {t_: _cell(v, bounded=bounded) for t_, v in sorted(by_turn.items())}
            task_rows.append(row)
        task_rows.sort(key=lambda r: r.label)
        rows += task_rows
        if inter:
            correlations += _correlations(task, task_rows, groups, inter, finals)
    for p in protocol.values():
        p["blind"] = sorted(p["blind"])
    return ChatBoard(tasks=tasks, rows=rows, columns=columns, correlations=correlations, protocol=protocol,
                     notes=notes, runs=list(runs))


def _correlations(task: str, rows: Sequence[ChatRow], groups: dict[tuple[str, str], list[Any]], judge: str,
                  finals: dict[str, str]) -> list[Correlation]:
    """Each human rating (final interaction rating first, then the every-K mean) against the judge, pooled and per
    assistant."""
    humans: list[str] = [k for k in ("human.interaction", "human.turn") if k == "human.turn" or k in finals]
    humans += [k for k in finals if k not in humans]
    out = []
    for human in humans:
        pooled: list[tuple[float, float]] = []
        per: dict[str, list[tuple[float, float]]] = {}
        for row in rows:
            for _, rec in groups[(task, row.label)]:
                if rec.status != "complete":
                    continue
                h = chat_values(rec).get(human)
                s = rec.scores.get(judge)
                if h is None or s is None or not s.ok or s.value is None:
                    continue
                pooled.append((h, float(s.value)))
                per.setdefault(row.label, []).append((h, float(s.value)))
            if human == humans[0]:
                row.pairs = per.get(row.label, [])
        for group, pairs in [("all assistants", pooled), *sorted(per.items())]:
            res = rank_correlation([p[0] for p in pairs], [p[1] for p in pairs])
            out.append(Correlation(task=task, human=human, auto=judge, group=group, n=res["n"],
                                   spearman=res["spearman"], ci_low=res["ci_low"], ci_high=res["ci_high"],
                                   method=res["method"], pearson=res["pearson"], refused=res["refused"]))
    return out
