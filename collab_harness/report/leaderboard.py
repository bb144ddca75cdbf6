"""Leaderboards from run directories, laid out like the paper's Table 1 — and honest about what they compare.

Layout: one row per *run label* × evaluation setting (exchanges, simulator, judge, parity); per task three columns:
the task metric, k-tokens (assistant tokens the user reads / 1000) and interactivity. A row's label is the run's
``--label`` or, by default, the assistant model plus a short hash of its system prompt, so two variants of one
assistant (the paper's Base and Proactive Base) are two rows.

What the board refuses to do silently:

- **compare different settings**: for every task, the settings of its runs (exchanges, example set, simulator,
  judge, tokenizer, parity, task metric) are compared; each one that differs is flagged on the task's header and
  cells (``⚑``) and explained in a note per task (which rows have which value). Token counts from two tokenizers in
  one k-tokens column are flagged in the cells themselves.
- **show a failure as a value**: a cell whose metric has no value shows ``failed (n)``; failures of the environment
  (a missing module ...) are counted apart; plots draw no bar for it and say why. Runs that finished with failures
  (status ``error``) or were cancelled are placed and marked with their failure counts; unfinished runs (status
  ``started``) are refused.
- **state intervals it does not have**: cells show ``mean [low, high]`` from ``results.json`` with the interval's
  method (legend: Wilson for proportions, bootstrap for bounded scores, Student-t for counts) — never ``±``.
- **claim "A beats B" without a test**: when two rows ran a task on the same examples, a paired comparison of the
  task metric (:func:`collab_harness.stats.paired_difference`, per-example values from the samples) states
  ``A > B``, ``B > A`` or ``no difference shown``.

Chat studies (``collab-harness chat`` run directories) are accepted too, alone or beside evaluation runs: they get
their own section (:mod:`collab_harness.report.chat_board`): per assistant, the people's ratings with intervals,
ratings over turns (plotted: a line per assistant), time spent, the automatic scores of the same conversations, and
the correlation of human ratings with the interactivity judge.

Output: ``README.md`` (Markdown), ``index.html`` (static, self-contained, plots embedded), ``plots/*.png`` and
``leaderboard.json``; never edited by hand.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..stats import paired_difference
from .runs import (
    ROW_SETTINGS,
    SCHEMA1_INTERACTION,
    SCHEMA1_TOKENS,
    SETTING_NAMES,
    LeaderboardError,
    RunView,
    Setting,
    load_run,
    method_abbrev,
)
from .safety import SAFETY_COLUMNS, safety_metrics, safety_notes, task_columns
from .safety import column_title as safety_column_title

if TYPE_CHECKING:
    from .chat_board import ChatBoard

__all__ = [
    "COLUMNS",
    "Board",
    "BoardRow",
    "Cell",
    "Comparison",
    "LeaderboardError",
    "LeaderboardFiles",
    "SettingDiff",
    "board_json",
    "build_board",
    "load_run",
    "to_html",
    "to_markdown",
    "write_leaderboard",
]

COLUMNS = ("task_metric", "k_tokens", "interactivity")
CellState = Literal["value", "failed", "not measured", "no run"]
FLAG = "⚑"


@dataclass(frozen=True)
class Cell:
    """One metric of one run: mean and interval from ``results.json`` (scaled for k-tokens), n scored, n failed
    (``n_environment`` of them the environment's fault), and ``tags`` (flagged settings this cell carries)."""

    state: CellState
    metric: str | None = None
    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = None
    n: int = 0
    n_failed: int = 0
    n_environment: int = 0
    tags: tuple[str, ...] = ()
    #: A setting differs between the rows of this cell's task (the task's note says which).
    flagged: bool = False

    @property
    def method_key(self) -> str:
        return method_abbrev(self.ci_method) if self.ci_method else ""

    def value_text(self, digits: int = 3) -> str:
        """``0.250 [0.050, 0.700]`` for a value, ``failed (3)`` when every sample failed, ``no run`` /
        ``not measured`` otherwise."""
        if self.state == "failed":
            return self.failure_text()
        if self.state != "value" or self.mean is None:
            return self.state
        s = f"{self.mean:.{digits}f}"
        if self.ci_low is not None and self.ci_high is not None:
            s += f" [{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]"
        return s

    def failure_text(self) -> str:
        """``failed (3)``; environment failures apart: ``failed (1) + environment (2)``."""
        other = self.n_failed - self.n_environment
        parts = []
        if other or not self.n_environment:
            parts.append(f"failed ({other})")
        if self.n_environment:
            parts.append(f"environment ({self.n_environment})")
        return " + ".join(parts)

    def text(self, digits: int = 3) -> str:
        """The whole cell as one line of text (Markdown)."""
        s = self.value_text(digits)
        if self.state == "value":
            if self.method_key:
                s += f" {self.method_key}"
            s += f" (n={self.n}" + (f", {self.failure_text()}" if self.n_failed else "") + ")"
        if self.tags:
            return s + "".join(f" {FLAG} {t}" for t in self.tags)
        return s + (f" {FLAG}" if self.flagged else "")


@dataclass
class BoardRow:
    """One run label under one evaluation setting, with its runs (task -> run) and cells (task -> column)."""

    label: str
    display: str
    assistant: str
    label_given: bool
    settings: dict[str, str]
    runs: dict[str, RunView] = field(default_factory=dict)
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)
    #: task -> what is wrong with that run (status, failures, incomplete), None when nothing is.
    status: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class SettingDiff:
    """A setting that differs between the rows of one task: each value with the rows that have it."""

    setting: str
    values: list[tuple[str, list[str]]]

    def text(self) -> str:
        return f"{self.setting} differs: " + "; ".join(f"{v} ({', '.join(rows)})" for v, rows in self.values)


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two rows on one task's metric (or the reason it was not made)."""

    task: str
    metric: str
    a: str
    b: str
    higher_is_better: bool
    n_pairs: int = 0
    n_only_a: int = 0
    n_only_b: int = 0
    mean_diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = None
    verdict: str | None = None
    #: Settings besides the label that differ between the two runs (the difference mixes their effect in).
    settings_differ: tuple[str, ...] = ()
    #: Why no comparison was made (different examples, fewer than two paired examples ...).
    refused: str | None = None

    @property
    def outcome(self) -> str:
        if self.refused:
            return "not compared"
        return {"a>b": f"{self.a} > {self.b}", "b>a": f"{self.b} > {self.a}"}.get(str(self.verdict),
                                                                                 "no difference shown")

    def text(self, digits: int = 3) -> str:
        head = f"{self.a} vs {self.b} on {self.task} ({self.metric}"
        if self.refused:
            return f"{head}): not compared — {self.refused}"
        s = f"{head}, {self.n_pairs} paired examples): difference {self.mean_diff:+.{digits}f}"
        if self.ci_low is not None and self.ci_high is not None:
            s += f" [{self.ci_low:+.{digits}f}, {self.ci_high:+.{digits}f}] ({self.ci_method})"
        s += f": {self.outcome}"
        if self.verdict in ("a>b", "b>a"):
            s += " (higher is better)" if self.higher_is_better else " (lower is better)"
        if self.n_only_a or self.n_only_b:
            s += f"; unpaired (a value on one side only): {self.n_only_a} in {self.a}, {self.n_only_b} in {self.b}"
        if self.settings_differ:
            s += (f"; {FLAG} settings differ ({', '.join(self.settings_differ)}): "
                  "the difference is not the labels' alone")
        return s


@dataclass
class Board:
    tasks: list[str]
    task_metrics: dict[str, str]
    rows: list[BoardRow]
    refused: list[str]
    #: task -> settings that differ between its rows (empty: comparable as they stand).
    flags: dict[str, list[SettingDiff]] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    #: Legend: interval method key -> the full method strings seen.
    methods: dict[str, list[str]] = field(default_factory=dict)
    #: task -> whether higher task-metric values are better.
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    command: str | None = None
    generated_at: str = ""
    #: Chat studies (:mod:`collab_harness.report.chat_board`), None when none was given.
    chat: ChatBoard | None = None
    #: task -> its column group (the safety group for a safety task; :data:`COLUMNS` otherwise).
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def columns_of(self, task: str) -> tuple[str, ...]:
        return self.columns.get(task, COLUMNS)

    def col_title(self, task: str, col: str) -> str:
        if col in SAFETY_COLUMNS:
            return safety_column_title(col)
        if col == "k_tokens":
            return "k-tokens ↓"
        if col == "interactivity":
            return "interactivity ↑"
        return f"{self.task_metrics[task]} {'↑' if self.higher_is_better.get(task, True) else '↓'}"


# ------------------------------------------------------------------------------------------------- building


def _cell(run: RunView, metric: str | None, scale: float = 1.0) -> Cell:
    s = run.summary(metric)
    if metric is None or s is None:
        return Cell(state="not measured", metric=metric)
    if s.mean is None:
        state: CellState = "failed" if s.n_failed else "not measured"
        return Cell(state=state, metric=metric, n_failed=s.n_failed, n_environment=s.n_environment)

    def sc(v: float | None) -> float | None:
        return None if v is None else v * scale

    return Cell(state="value", metric=metric, mean=sc(s.mean), ci_low=sc(s.ci_low), ci_high=sc(s.ci_high),
                ci_method=s.ci_method, n=s.n, n_failed=s.n_failed, n_environment=s.n_environment)


def _cells(run: RunView) -> dict[str, Cell]:
    if task_columns(run.manifest):
        # A safety task: its column group (safe-response rate, severity, over-refusal) instead of the usual three.
        return {c: _cell(run, m) for c, m in safety_metrics(run.manifest).items()}
    return {"task_metric": _cell(run, run.task_metric),
            "k_tokens": _cell(run, run.scorer("efficiency", SCHEMA1_TOKENS), 1e-3),
            "interactivity": _cell(run, run.scorer("interaction", SCHEMA1_INTERACTION))}


def _displays(rows: Sequence[BoardRow]) -> None:
    """Rows sharing a label are told apart by the row settings in which they differ."""
    by_label: dict[str, list[BoardRow]] = {}
    for r in rows:
        by_label.setdefault(r.label, []).append(r)
    for same in by_label.values():
        if len(same) < 2:
            continue
        keys = ["assistant", *ROW_SETTINGS]
        differing = [k for k in keys
                     if len({(r.assistant if k == "assistant" else r.settings[k]) for r in same}) > 1]
        for i, r in enumerate(same, 1):
            # Settings that differ only in details (simulator options ...) leave the words equal: number them.
            extra = ", ".join(r.assistant if k == "assistant" else r.settings[k] for k in differing) or f"#{i}"
            r.display = f"{r.label} [{extra}]"
        if len({r.display for r in same}) < len(same):
            for i, r in enumerate(same, 1):
                r.display += f" #{i}"


def _flags(task: str, rows: Sequence[BoardRow]) -> list[SettingDiff]:
    present = [r for r in rows if task in r.runs]
    out = []
    for name in SETTING_NAMES:
        values: dict[str, tuple[Setting, list[str]]] = {}
        for r in present:
            st = r.runs[task].settings[name]
            values.setdefault(st.key, (st, []))[1].append(r.display)
        if len(values) < 2:
            continue
        texts = [st.text for st, _ in values.values()]
        same_text = len(set(texts)) < len(texts)  # different keys, same words: show the details
        out.append(SettingDiff(name, [(st.detail or st.text if same_text else st.text, names)
                                      for st, names in values.values()]))
    return out


def _compare(task: str, a: BoardRow, b: BoardRow) -> Comparison:
    ra, rb = a.runs[task], b.runs[task]
    metric = ra.task_metric
    t = ra.traits.get(metric, {})
    base = Comparison(task=task, metric=metric, a=a.display, b=b.display,
                      higher_is_better=bool(t.get("higher_is_better", True)))
    if rb.task_metric != metric:
        return replace(base, refused=f"task metrics differ ({metric} vs {rb.task_metric})")
    if ra.settings["examples"].key != rb.settings["examples"].key:
        return replace(base, refused="different example sets")
    va, vb = ra.values(metric), rb.values(metric)
    kind = str(t.get("value_kind") or "bounded")
    rng = t.get("value_range")
    if kind == "proportion" and any(v not in (0.0, 1.0) for v in (*va.values(), *vb.values())):
        kind = "bounded"  # declared 0/1 but other values were recorded: never state a proportion's interval
    if kind == "bounded" and not rng:
        kind = "unbounded"
    try:
        res = paired_difference(va, vb, kind=kind,  # type: ignore[arg-type]
                                value_range=(float(rng[0]), float(rng[1])) if rng and kind != "unbounded" else None)
    except ValueError as e:
        return replace(base, refused=str(e))
    counts = replace(base, n_pairs=res["n_pairs"], n_only_a=res["n_only_a"], n_only_b=res["n_only_b"])
    if res["n_pairs"] < 2 or res["ci_method"] is None:
        return replace(counts, refused=f"{res['n_pairs']} paired example(s) with a value on both sides; need 2")
    differ = tuple(s for s in ROW_SETTINGS if ra.settings[s].key != rb.settings[s].key)
    return replace(counts, mean_diff=res["mean_diff"], ci_low=res["ci_low"], ci_high=res["ci_high"],
                   ci_method=res["ci_method"], verdict=res["verdict"], settings_differ=differ)


def build_board(run_dirs: Sequence[str | Path], *, skip_invalid: bool = False, command: str | None = None,
                host: Any = None) -> Board:
    """Read the runs and lay them out: rows (label × exchanges × simulator × judge × parity), columns (task ×
    metric), flags for differing settings, paired comparisons. Two runs of one row and task are ambiguous: the
    later one on the command line is refused (give the runs different ``--label`` values)."""
    from .runs import ChatRunView, load_chat_run, run_kind

    runs: list[RunView] = []
    chats: list[ChatRunView] = []
    refused: list[str] = []
    for d in run_dirs:
        try:
            if run_kind(d) == "chat":
                chats.append(load_chat_run(d))
            else:
                runs.append(load_run(d, host=host))
        except LeaderboardError as err:
            if not skip_invalid:
                raise
            refused.append(str(err))
    if not runs and not chats:
        why = (": " + "; ".join(refused)) if refused else ""
        raise LeaderboardError("no run could be placed on the leaderboard" + why)
    chat_board = None
    if chats:
        from .chat_board import build_chat_board

        chat_board = build_chat_board(chats)
    tasks: list[str] = []
    task_metrics: dict[str, str] = {}
    columns: dict[str, tuple[str, ...]] = {}
    hib: dict[str, bool] = {}
    rows: dict[tuple[str, ...], BoardRow] = {}
    notes: list[str] = []
    # Safety runs join the row of their label whatever their evaluation setting (their simulator is adversarial by
    # design), so a model's row shows its collaboration and its safety side by side; they are placed last.
    runs = sorted(runs, key=lambda r: bool(task_columns(r.manifest)))
    for run in runs:
        if run.task not in tasks:
            tasks.append(run.task)
            task_metrics[run.task] = run.task_metric
            columns[run.task] = task_columns(run.manifest) or COLUMNS
            hib[run.task] = bool(run.traits.get(run.task_metric, {}).get("higher_is_better", True))
        key = run.row_key
        if task_columns(run.manifest):
            same_label = [k for k, r in rows.items() if r.label == run.label and run.task not in r.runs]
            if len(same_label) == 1:
                key = same_label[0]
        row = rows.setdefault(key, BoardRow(
            label=run.label, display=run.label, assistant=run.assistant, label_given=run.label_given,
            settings={s: run.settings[s].text for s in ROW_SETTINGS}))
        if run.task in row.runs:
            msg = (f"refused {run.path}: {row.runs[run.task].path} already places label {run.label!r} on "
                   f"{run.task} with the same setting; give one of them another --label")
            if not skip_invalid:
                raise LeaderboardError(msg)
            refused.append(msg)
            continue
        row.runs[run.task] = run
        row.cells[run.task] = _cells(run)
        row.status[run.task] = run.status_text()
        notes += [f"{run.path}: {n}" for n in [*run.notes, *safety_notes(run)]]
    board_rows = list(rows.values())
    _displays(board_rows)
    flags = {t: _flags(t, board_rows) for t in tasks}
    for t, diffs in flags.items():
        if not diffs:
            continue
        # Each row's value of each differing setting, worded as in the task's note.
        values = {(d.setting, row): _tag(d.setting, v) for d in diffs for v, rows in d.values for row in rows}
        for r in board_rows:
            if t not in r.cells:
                continue
            cells = r.cells[t]
            # The task-metric cell names the row's value of each differing setting, the k-tokens cell its
            # tokenizer; every cell of the task carries the flag.
            tags = tuple(values[(d.setting, r.display)] for d in diffs if d.setting != "tokenizer")
            tok = tuple(values[(d.setting, r.display)] for d in diffs if d.setting == "tokenizer")
            first = columns[t][0]
            r.cells[t] = {c: replace(cell, flagged=True,
                                     tags=tags if c == first else tok if c == "k_tokens" else cell.tags)
                          for c, cell in cells.items()}
    comparisons = [_compare(t, a, b) for t in tasks for i, a in enumerate(board_rows) if t in a.runs
                   for b in board_rows[i + 1:] if t in b.runs]
    methods: dict[str, list[str]] = {}
    for r in board_rows:
        for cols in r.cells.values():
            for c in cols.values():
                if c.ci_method and c.ci_method not in methods.setdefault(c.method_key, []):
                    methods[c.method_key].append(c.ci_method)
    if chat_board is not None:
        for cc in [x for cr in chat_board.rows for x in [*cr.cells.values(), *cr.over_turns.values()]]:
            if cc.ci_method and cc.ci_method not in methods.setdefault(cc.method_key, []):
                methods[cc.method_key].append(cc.ci_method)
    return Board(tasks=tasks, task_metrics=task_metrics, rows=board_rows, refused=refused, flags=flags,
                 comparisons=comparisons, methods=dict(sorted(methods.items())), higher_is_better=hib, notes=notes,
                 command=command, generated_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 chat=chat_board, columns=columns)


def _tag(name: str, text: str) -> str:
    return text if name in ("exchanges", "parity") else f"{name}: {text}"


# ------------------------------------------------------------------------------------------------- rendering


METHOD_NAMES = {"W": "Wilson score interval (proportions: 0/1 values)",
                "CP": "Clopper–Pearson exact interval (proportions)",
                "B": "percentile bootstrap inside the metric's range (bounded scores)",
                "t": "Student-t interval of the mean (counts)",
                "?": "method not recorded"}


def to_markdown(board: Board) -> str:
    lines = ["# collab-harness leaderboard", "",
             "Generated by collab-harness from run directories; do not edit by hand."]
    if board.command:
        lines += ["", "Generated with:", "", "```", board.command, "```"]
    lines += ["", f"Generated at {board.generated_at}. One row per run label (`--label`, default: the assistant "
              "model plus a hash of its system prompt) and evaluation setting.",
              "Cells: mean [95% interval] method (n scored, failures); k-tokens = thousands of assistant tokens the "
              "user reads per conversation.", "", "Interval methods:", ""]
    for key, ms in board.methods.items():
        lines.append(f"- **{key}**: {METHOD_NAMES.get(key, key)} — " + "; ".join(f"`{m}`" for m in ms))
    lines += [f"- `failed (n)`: every sample of that metric failed (no value); `environment (n)`: failures of the "
              f"machine (a missing module ...), counted apart; `{FLAG}`: a setting differs between the rows of "
              "that task (see the notes).", ""]
    if board.tasks:
        lines += _markdown_eval(board)
    if board.chat is not None:
        lines += _markdown_chat(board.chat)
    if board.notes:
        lines += ["", "Notes:", ""] + [f"- {x}" for x in board.notes]
    if board.refused:
        lines += ["", "## Refused", ""] + [f"- {x}" for x in board.refused]
    return "\n".join(lines) + "\n"


def _markdown_eval(board: Board) -> list[str]:
    lines: list[str] = []
    header = ["row", "assistant", "setting"]
    for t in board.tasks:
        mark = f" {FLAG}" if board.flags.get(t) else ""
        header += [f"{t}{mark}: {board.col_title(t, c)}" for c in board.columns_of(t)]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in board.rows:
        cells = [f"**{r.display}**", f"`{r.assistant}`", " · ".join(r.settings[s] for s in ROW_SETTINGS)]
        for t in board.tasks:
            status = r.status.get(t)
            for c in board.columns_of(t):
                cell = r.cells.get(t, {}).get(c) or Cell(state="no run")
                txt = cell.text()
                if c == board.columns_of(t)[0] and status:
                    txt += f" ⚠ {status}"
                cells.append(txt.replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    if any(board.flags.values()):
        lines += ["", "## Settings that differ", ""]
        for t, diffs in board.flags.items():
            for d in diffs:
                lines.append(f"- {FLAG} **{t}**: {d.text()}")
    if board.comparisons:
        lines += ["", "## Paired comparisons (task metric, same examples)", ""]
        lines += [f"- {c.text()}" for c in board.comparisons]
    failing = [(r, t) for r in board.rows for t in board.tasks if r.status.get(t)]
    if failing:
        lines += ["", "## Runs with failures", ""]
        for r, t in failing:
            run = r.runs[t]
            by = ", ".join(f"{k} {v}" for k, v in run.failures().items()) or "none recorded"
            cats = ", ".join(f"{k} {v}" for k, v in run.results.errors_by_category.items())
            lines.append(f"- {r.display} on {t}: {r.status[t]} (by component: {by}"
                         + (f"; by category: {cats}" if cats else "") + ")")
    lines += ["", "## Runs", ""]
    for r in board.rows:
        for t, run in r.runs.items():
            lines.append(f"- `{run.path}`: {r.display} on {t} ({run.status}, {run.results.n_samples} samples)")
    return lines


def _markdown_chat(chat: ChatBoard) -> list[str]:
    """The chat section: per task, a row per assistant; ratings over turns; agreement with the judge; studies."""
    lines = ["", "## Human chat studies", "",
             "People played the user (`collab-harness chat`). Ratings are from finished sessions only; cells: mean "
             "[95% interval] method (n sessions)."]
    for task in chat.tasks:
        p = chat.protocol[task]
        cols = chat.columns[task]
        blind = "blind" if p["blind"] == [True] else "not blind" if p["blind"] == [False] else "blind and not blind"
        lines += ["", f"### {task}", "",
                  f"Scale {p['scale'][0]}–{p['scale'][1]}, a rating every {p['rate_every']} turns; {blind}.", ""]
        header = ["assistant", "sessions", *cols.values()]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for r in chat.rows_of(task):
            extra = [f"{r.n_incomplete} incomplete" if r.n_incomplete else "", f"{r.n_failed} failed"
                     if r.n_failed else ""]
            sessions = str(r.n_sessions) + "".join(f" ({x})" for x in extra if x)
            cells = [f"**{r.label}**", sessions] + [r.cells[k].text().replace("|", "\\|") for k in cols]
            lines.append("| " + " | ".join(cells) + " |")
        turns = chat.turns_of(task)
        if turns:
            lines += ["", "Ratings over turns (mean [interval] (n)):", ""]
            lines.append("| assistant | " + " | ".join(f"after turn {t}" for t in turns) + " |")
            lines.append("|" + "---|" * (len(turns) + 1))
            for r in chat.rows_of(task):
                cells = [r.over_turns[t].text() if t in r.over_turns else "—" for t in turns]
                lines.append(f"| **{r.label}** | " + " | ".join(cells) + " |")
        corr = [c for c in chat.correlations if c.task == task]
        if corr:
            lines += ["", "Human ratings vs the automatic judge, same conversations:", ""]
            lines += [f"- {c.text()}" + (f" ({c.method})" if c.method else "") for c in corr]
    lines += ["", "Studies:", ""]
    for run in chat.runs:
        lines.append(f"- `{run.path}`: {run.task}, {len(run.records)} of {run.n_planned} planned sessions finished"
                     + (f", {run.n_incomplete} incomplete" if run.n_incomplete else "") + f" (status {run.status})")
    if chat.notes:
        lines += [""] + [f"- {x}" for x in chat.notes]
    return lines


def _jinja_env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("collab_harness.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def to_html(board: Board, plots: Mapping[str, Path], plot_notes: Mapping[str, list[str]] | None = None) -> str:
    embedded = {t: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode() for t, p in plots.items()}
    tmpl = _jinja_env().get_template("leaderboard.html.j2")
    return str(tmpl.render(board=board, columns=COLUMNS, row_settings=ROW_SETTINGS, plots=embedded,
                           plot_notes=plot_notes or {}, method_names=METHOD_NAMES, flag=FLAG,
                           empty_cell=Cell(state="no run")))


def _cell_json(c: Cell) -> dict[str, Any]:
    return {**asdict(c), "text": c.text()}


def board_json(board: Board) -> dict[str, Any]:
    return {
        "tasks": board.tasks,
        "task_metrics": board.task_metrics,
        "generated_at": board.generated_at,
        "command": board.command,
        "interval_methods": board.methods,
        "rows": [
            {
                "label": r.label, "display": r.display, "label_given": r.label_given, "assistant": r.assistant,
                "settings": r.settings,
                "runs": {t: {"path": run.path, "status": run.status, "problems": r.status.get(t),
                             "settings": {k: s.text for k, s in run.settings.items()},
                             "failures_by_component": run.failures(),
                             "failures_by_category": run.results.errors_by_category}
                         for t, run in r.runs.items()},
                "cells": {t: {c: _cell_json(cell) for c, cell in cols.items()} for t, cols in r.cells.items()},
            }
            for r in board.rows
        ],
        "flags": {t: [{"setting": d.setting, "values": [{"value": v, "rows": rows} for v, rows in d.values]}
                      for d in diffs] for t, diffs in board.flags.items()},
        "comparisons": [{**asdict(c), "outcome": c.outcome, "text": c.text()} for c in board.comparisons],
        "notes": board.notes,
        "refused": board.refused,
        **({"chat": _chat_json(board.chat)} if board.chat is not None else {}),
    }


def _chat_json(chat: ChatBoard) -> dict[str, Any]:
    return {
        "tasks": chat.tasks,
        "columns": chat.columns,
        "protocol": {t: {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()}
                     for t, p in chat.protocol.items()},
        "rows": [{"task": r.task, "label": r.label, "models": r.models, "sessions": r.n_sessions,
                  "failed": r.n_failed, "incomplete": r.n_incomplete, "runs": r.runs,
                  "cells": {k: _cell_json(c) for k, c in r.cells.items()},
                  "over_turns": {str(t): _cell_json(c) for t, c in r.over_turns.items()}} for r in chat.rows],
        "correlations": [{**asdict(c), "text": c.text()} for c in chat.correlations],
        "notes": chat.notes,
    }


@dataclass(frozen=True)
class LeaderboardFiles:
    markdown: Path
    html: Path
    json: Path
    plots: dict[str, Path]
    board: Board


def write_leaderboard(run_dirs: Sequence[str | Path], out: str | Path, *, skip_invalid: bool = False,
                      command: str | None = None, host: Any = None) -> LeaderboardFiles:
    """Build the board and write ``README.md``, ``index.html``, ``leaderboard.json`` and ``plots/`` under ``out``."""
    from .plots import make_plots

    board = build_board(run_dirs, skip_invalid=skip_invalid, command=command, host=host)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots, plot_notes = make_plots(board, out_dir / "plots")
    md = out_dir / "README.md"
    md.write_text(to_markdown(board), encoding="utf-8")
    html = out_dir / "index.html"
    html.write_text(to_html(board, plots, plot_notes), encoding="utf-8")
    js = out_dir / "leaderboard.json"
    js.write_text(json.dumps(board_json(board), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return LeaderboardFiles(markdown=md, html=html, json=js, plots=plots, board=board)
