"""Leaderboards from run directories, laid out like the paper's Table 1.

Per task three columns: the task metric, k-tokens (assistant tokens read by the user / 1000) and interactivity; one
row per assistant model *and* evaluation setting (simulator, judge, parity mode), because numbers obtained with a
different simulator or judge are not comparable. Each cell is the mean with its 95% confidence interval and n.

A run is accepted only when its manifest is complete (every identity the row depends on is recorded) and its
``results.json`` exists; anything else is refused with the reason. Output: ``README.md`` (Markdown), ``index.html``
(static page, plots embedded), ``plots/*.png`` and ``leaderboard.json``; never edited by hand.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CollabHarnessError
from ..records import SCHEMA_VERSION
from ..rundir import read_manifest, read_results

__all__ = [
    "Board",
    "BoardRow",
    "Cell",
    "LeaderboardError",
    "RunEntry",
    "build_board",
    "load_run",
    "write_leaderboard",
]

#: Manifest fields a leaderboard row depends on.
REQUIRED_MANIFEST = ("schema_version", "harness_version", "config", "task", "models", "simulator", "judges",
                     "components", "seeds", "parity")
COLUMNS = ("task_metric", "k_tokens", "interactivity")


class LeaderboardError(CollabHarnessError):
    """A run directory cannot be placed on a leaderboard."""


@dataclass(frozen=True)
class Cell:
    mean: float | None
    ci_half: float | None
    n: int
    n_failed: int = 0

    def fmt(self, digits: int = 3) -> str:
        if self.mean is None:
            return "–"
        s = f"{self.mean:.{digits}f}"
        if self.ci_half is not None:
            s += f" ± {self.ci_half:.{digits}f}"
        return s


@dataclass(frozen=True)
class RunEntry:
    """One accepted run: where it is, what it measured, and under which setting."""

    path: str
    task: str
    task_metric: str
    assistant: str
    simulator: str
    judge: str
    parity: bool
    cells: dict[str, Cell]
    n_samples: int
    n_errors: int
    created_at: str | None


@dataclass
class BoardRow:
    assistant: str
    simulator: str
    judge: str
    parity: bool
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)  # task -> column -> cell
    runs: list[str] = field(default_factory=list)


@dataclass
class Board:
    tasks: list[str]
    task_metrics: dict[str, str]
    rows: list[BoardRow]
    refused: list[str]
    command: str | None = None
    generated_at: str = ""


def _who(d: Any) -> str:
    """A readable identity of a simulator / judge entry of the manifest."""
    if isinstance(d, Mapping):
        name = str(d.get("name", "?"))
        model = d.get("model")
        return f"{name} ({model})" if model else name
    return str(d)


def _manifest_view(run_dir: str | Path) -> dict[str, Any]:
    """The manifest fields a row depends on, from a typed manifest (any schema version)."""
    m = read_manifest(run_dir)
    comps = m.components
    sim = next((c for c in comps if c.get("kind") == "simulator"), None)
    judges = [c for c in comps if c.get("kind") == "judge"]
    judge_model = (m.models.get("judge") or {}).get("model") if isinstance(m.models.get("judge"), Mapping) else None
    if m.summary.get("upgraded_from_schema") == 1:
        sim = m.summary.get("simulator") or sim
        judges = m.summary.get("judges") or judges
    return {
        "schema_version": m.schema_version, "harness_version": m.harness_version, "config": m.config,
        "task": m.task, "models": m.models, "simulator": sim,
        "judges": [{"name": j.get("name"), "model": (j.get("options") or {}).get("model", j.get("model"))}
                   for j in judges] or ([{"name": "judge", "model": judge_model}] if judge_model else []),
        "components": comps, "seeds": m.seeds, "parity": bool(m.config.get("parity", False)),
        "created_at": m.created_at, "status": m.status, "kind": m.kind,
    }


def load_run(run_dir: str | Path) -> RunEntry:
    """Read and check one run directory; :class:`LeaderboardError` says why a run is refused."""
    try:
        man = _manifest_view(run_dir)
    except CollabHarnessError as e:
        raise LeaderboardError(f"refused {run_dir}: {e}") from e
    if man["kind"] != "eval":
        raise LeaderboardError(f"refused {run_dir}: a {man['kind']!r} run, not an evaluation")
    missing = [k for k in REQUIRED_MANIFEST if k not in man or man[k] in (None, "", [])]
    if man.get("parity") is False and "parity" in missing:
        missing.remove("parity")
    if "judges" in missing:
        missing.remove("judges")  # a run may score with metrics only
    task: Mapping[str, Any] = man["task"] if isinstance(man.get("task"), Mapping) else {}
    models: Mapping[str, Any] = man["models"] if isinstance(man.get("models"), Mapping) else {}
    for key, where in (("name", task), ("task_metric", task), ("assistant", models)):
        if not where.get(key):
            missing.append(f"{'task' if where is task else 'models'}.{key}")
    if missing:
        raise LeaderboardError(f"refused {run_dir}: incomplete manifest (missing {', '.join(missing)})")
    if man["schema_version"] > SCHEMA_VERSION:
        raise LeaderboardError(
            f"refused {run_dir}: manifest schema {man['schema_version']} is newer than {SCHEMA_VERSION}"
        )
    if man["status"] == "started":
        raise LeaderboardError(f"refused {run_dir}: the run has not finished (status started); resume it first")
    res = read_results(run_dir)
    if res is None:
        raise LeaderboardError(f"refused {run_dir}: no results.json (run not finished; resume it first)")
    metrics = res.get("metrics", {})
    tm = str(task["task_metric"])

    def cell(key: str, scale: float = 1.0) -> Cell:
        m = metrics.get(key) or {}
        mean, lo, hi = m.get("mean"), m.get("ci_low"), m.get("ci_high")
        half = m.get("ci_half") if "ci_half" in m else (None if lo is None or hi is None else (hi - lo) / 2)
        return Cell(
            mean=None if mean is None else mean * scale,
            ci_half=None if half is None else half * scale,
            n=int(m.get("n", 0)),
            n_failed=int(m.get("n_failed", 0)),
        )

    judges = man["judges"]
    judge = ", ".join(_who(j) for j in judges) if isinstance(judges, list) else _who(judges)
    models_assistant = models["assistant"]
    assistant = models_assistant.get("model") if isinstance(models_assistant, Mapping) else models_assistant
    return RunEntry(
        path=str(run_dir),
        task=str(task["name"]),
        task_metric=tm,
        assistant=str(assistant),
        simulator=_who(man["simulator"]),
        judge=judge or "(none)",
        parity=bool(man["parity"]),
        cells={"task_metric": cell(tm), "k_tokens": cell("token_amount", 1e-3), "interactivity": cell("interactivity")},
        n_samples=int(res.get("n_samples", 0)),
        n_errors=int(res.get("n_failed", res.get("n_samples_with_errors", 0))),
        created_at=man.get("created_at"),
    )


def build_board(run_dirs: Sequence[str | Path], *, skip_invalid: bool = False, command: str | None = None) -> Board:
    """Group runs into rows (assistant × simulator × judge × parity) and columns (task × metric). Two runs of the same
    row and task are ambiguous and refused (the later one on the command line)."""
    entries: list[RunEntry] = []
    refused: list[str] = []
    for d in run_dirs:
        try:
            entries.append(load_run(d))
        except LeaderboardError as err:
            if not skip_invalid:
                raise
            refused.append(str(err))
    if not entries:
        why = (": " + "; ".join(refused)) if refused else ""
        raise LeaderboardError("no run could be placed on the leaderboard" + why)
    tasks: list[str] = []
    task_metrics: dict[str, str] = {}
    rows: dict[tuple[str, str, str, bool], BoardRow] = {}
    for e in entries:
        if e.task not in tasks:
            tasks.append(e.task)
            task_metrics[e.task] = e.task_metric
        key = (e.assistant, e.simulator, e.judge, e.parity)
        row = rows.setdefault(key, BoardRow(assistant=e.assistant, simulator=e.simulator, judge=e.judge,
                                            parity=e.parity))
        if e.task in row.cells:
            msg = f"refused {e.path}: a run of {e.assistant} on {e.task} with the same setting is already on the board"
            if not skip_invalid:
                raise LeaderboardError(msg)
            refused.append(msg)
            continue
        row.cells[e.task] = e.cells
        row.runs.append(e.path)
    return Board(
        tasks=tasks,
        task_metrics=task_metrics,
        rows=list(rows.values()),
        refused=refused,
        command=command,
        generated_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


# ------------------------------------------------------------------------------------------------- rendering


_HEAD = {"task_metric": None, "k_tokens": "k-tokens ↓", "interactivity": "interactivity ↑"}


def _col_title(board: Board, task: str, col: str) -> str:
    return _HEAD[col] or f"{board.task_metrics[task]} ↑"


def to_markdown(board: Board) -> str:
    lines = ["# collab-harness leaderboard", ""]
    lines.append("Generated by collab-harness from run directories; do not edit by hand.")
    if board.command:
        lines += ["", "Generated with:", "", "```", board.command, "```"]
    lines += ["", f"Generated at {board.generated_at}. Cells: mean ± half-width of the 95% Student-t interval;",
              "k-tokens = thousands of assistant tokens the user reads per conversation.", ""]
    header = ["assistant", "simulator", "judge", "parity"]
    for t in board.tasks:
        header += [f"{t}: {_col_title(board, t, c)}" for c in COLUMNS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in board.rows:
        cells = [f"`{r.assistant}`", r.simulator, r.judge, "on" if r.parity else "off"]
        for t in board.tasks:
            for c in COLUMNS:
                cell = r.cells.get(t, {}).get(c)
                cells.append(f"{cell.fmt()} (n={cell.n})" if cell and cell.mean is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Runs:", ""]
    for r in board.rows:
        for p in r.runs:
            lines.append(f"- `{p}` ({r.assistant})")
    if board.refused:
        lines += ["", "Refused:", ""] + [f"- {x}" for x in board.refused]
    return "\n".join(lines) + "\n"


def make_plots(board: Board, out_dir: Path) -> dict[str, Path]:
    """One PNG per task: a bar per row for each column, with 95% CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for task in board.tasks:
        fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.2))
        labels = [r.assistant for r in board.rows]
        for ax, col in zip(axes, COLUMNS, strict=True):
            means, errs = [], []
            for r in board.rows:
                c = r.cells.get(task, {}).get(col)
                means.append(c.mean if c and c.mean is not None else 0.0)
                errs.append(c.ci_half if c and c.ci_half is not None else 0.0)
            xs = list(range(len(labels)))
            ax.bar(xs, means, yerr=errs, capsize=4, color="#4C72B0")
            ax.set_xticks(xs, [lbl if len(lbl) <= 18 else lbl[:16] + "…" for lbl in labels], rotation=20,
                          ha="right", fontsize=8)
            ax.set_title(_col_title(board, task, col), fontsize=10)
        fig.suptitle(task)
        fig.tight_layout()
        p = out_dir / f"{task}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths[task] = p
    return paths


def _jinja_env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("collab_harness.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def to_html(board: Board, plots: Mapping[str, Path]) -> str:
    embedded = {t: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode() for t, p in plots.items()}
    tmpl = _jinja_env().get_template("leaderboard.html.j2")
    return str(tmpl.render(board=board, columns=COLUMNS, col_title=lambda t, c: _col_title(board, t, c),
                           plots=embedded))


def board_json(board: Board) -> dict[str, Any]:
    return {
        "tasks": board.tasks,
        "task_metrics": board.task_metrics,
        "generated_at": board.generated_at,
        "command": board.command,
        "refused": board.refused,
        "rows": [
            {
                "assistant": r.assistant, "simulator": r.simulator, "judge": r.judge, "parity": r.parity,
                "runs": r.runs,
                "cells": {t: {c: vars(cell) for c, cell in cols.items()} for t, cols in r.cells.items()},
            }
            for r in board.rows
        ],
    }


@dataclass(frozen=True)
class LeaderboardFiles:
    markdown: Path
    html: Path
    json: Path
    plots: dict[str, Path]


def write_leaderboard(
    run_dirs: Sequence[str | Path], out: str | Path, *, skip_invalid: bool = False, command: str | None = None
) -> LeaderboardFiles:
    """Build the board and write ``README.md``, ``index.html``, ``leaderboard.json`` and ``plots/`` under ``out``."""
    board = build_board(run_dirs, skip_invalid=skip_invalid, command=command)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = make_plots(board, out_dir / "plots")
    md = out_dir / "README.md"
    md.write_text(to_markdown(board), encoding="utf-8")
    html = out_dir / "index.html"
    html.write_text(to_html(board, plots), encoding="utf-8")
    js = out_dir / "leaderboard.json"
    js.write_text(json.dumps(board_json(board), indent=2) + "\n", encoding="utf-8")
    return LeaderboardFiles(markdown=md, html=html, json=js, plots=plots)
