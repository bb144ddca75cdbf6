"""Board plots: one PNG per task, a panel per column, a bar per row with its (asymmetric) interval.

A cell without a value is never drawn as a bar: no bar, a text in its place (``failed (3)``, ``no run``, ``not
measured``) and a note under the plot saying why. A task whose settings differ between rows says so in its title.
"""

from __future__ import annotations

from pathlib import Path

from .leaderboard import COLUMNS, FLAG, Board, Cell

__all__ = ["make_plots"]


def _short(label: str, n: int = 22) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def make_plots(board: Board, out_dir: Path) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """Write ``<task>.png`` per task under ``out_dir``; returns the paths and, per task, the notes on cells that
    have no bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    notes: dict[str, list[str]] = {}
    labels = [r.display for r in board.rows]
    colors = [f"C{i % 10}" for i in range(len(labels))]
    for task in board.tasks:
        width = max(4.0, 0.9 * len(labels) + 1.6)
        fig, axes = plt.subplots(1, len(COLUMNS), figsize=(width * len(COLUMNS), 3.6))
        task_notes: list[str] = []
        for ax, col in zip(axes, COLUMNS, strict=True):
            xs = list(range(len(labels)))
            top, bottom = 0.0, 0.0
            for x, r in zip(xs, board.rows, strict=True):
                c: Cell = r.cells.get(task, {}).get(col) or Cell(state="no run")
                if c.state != "value" or c.mean is None:
                    continue
                lo = c.mean - c.ci_low if c.ci_low is not None else 0.0
                hi = c.ci_high - c.mean if c.ci_high is not None else 0.0
                ax.bar([x], [c.mean], yerr=[[max(lo, 0.0)], [max(hi, 0.0)]], capsize=4, color=colors[x])
                top = max(top, c.ci_high if c.ci_high is not None else c.mean)
                bottom = min(bottom, c.ci_low if c.ci_low is not None else c.mean)
            ymax = top * 1.15 if top > 0 else 1.0
            ax.set_ylim(bottom, ymax)
            for x, r in zip(xs, board.rows, strict=True):
                c = r.cells.get(task, {}).get(col) or Cell(state="no run")
                if c.state == "value":
                    continue
                why = c.value_text()
                ax.text(x, ymax * 0.04, why, rotation=90, ha="center", va="bottom", fontsize=8, color="#b03a2e")
                task_notes.append(f"{board.col_title(task, col)}: no bar for {r.display}: {why}"
                                  + (" (every sample of this metric failed)" if c.state == "failed" else ""))
            ax.set_xticks(xs, [_short(lbl) for lbl in labels], rotation=20, ha="right", fontsize=8)
            title = board.col_title(task, col)
            if col == "k_tokens" and any(d.setting == "tokenizer" for d in board.flags.get(task, [])):
                title += f" {FLAG} tokenizers differ"
            ax.set_title(title, fontsize=10)
        diffs = board.flags.get(task) or []
        fig.suptitle(task + (f"  {FLAG} settings differ: {', '.join(d.setting for d in diffs)}" if diffs else ""))
        fig.tight_layout()
        p = out_dir / f"{task}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths[task] = p
        notes[task] = task_notes
    return paths, notes
