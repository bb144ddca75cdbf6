"""Board plots: one PNG per task, a panel per column, a bar per row with its (asymmetric) interval.

A cell without a value is never drawn as a bar: no bar, a text in its place (``failed (3)``, ``no run``, ``not
measured``) and a note under the plot saying why. A task whose settings differ between rows says so in its title.

Chat studies get one PNG per task (key ``chat/<task>``): the ratings over turns (the paper's Figure 7 shape: a line
per assistant through the mean every-K-turns rating, with intervals, n under each point), the final ratings per
assistant, and the human rating against the interactivity judge per conversation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .leaderboard import FLAG, Board, Cell

if TYPE_CHECKING:
    from .chat_board import ChatBoard

__all__ = ["CHAT_PREFIX", "make_chat_plots", "make_plots"]

#: Plot keys of chat studies start with this (``chat/<task>``).
CHAT_PREFIX = "chat/"


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
        cols = board.columns_of(task)
        fig, axes = plt.subplots(1, len(cols), figsize=(width * len(cols), 3.6))
        task_notes: list[str] = []
        for ax, col in zip(axes, cols, strict=True):
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
    if board.chat is not None:
        chat_paths, chat_notes = make_chat_plots(board.chat, out_dir)
        paths.update(chat_paths)
        notes.update(chat_notes)
    return paths, notes


def make_chat_plots(chat: ChatBoard, out_dir: Path) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """``chat-<task>.png`` per task of a :class:`~collab_harness.report.chat_board.ChatBoard`; keys ``chat/<task>``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    notes: dict[str, list[str]] = {}
    for task in chat.tasks:
        rows = chat.rows_of(task)
        lo, hi = chat.protocol[task]["scale"]
        colors = {r.label: f"C{i % 10}" for i, r in enumerate(rows)}
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        task_notes: list[str] = []
        # (a) ratings over turns: a line per assistant.
        ax = axes[0]
        turns = chat.turns_of(task)
        for r in rows:
            pts = [(t, c, c.mean) for t, c in sorted(r.over_turns.items()) if c.state == "value" and c.mean is not None]
            if not pts:
                task_notes.append(f"ratings over turns: no line for {r.label} (no rating given)")
                continue
            # Dodged a little per assistant, so intervals at one turn do not hide each other.
            dodge = (rows.index(r) - (len(rows) - 1) / 2) * 0.08
            xs = [t + dodge for t, _, _ in pts]
            ys = [mu for _, _, mu in pts]
            err = [[max(0.0, mu - c.ci_low) if c.ci_low is not None else 0.0 for _, c, mu in pts],
                   [max(0.0, c.ci_high - mu) if c.ci_high is not None else 0.0 for _, c, mu in pts]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, linewidth=2, color=colors[r.label],
                        label=_short(r.label))
            for x, (_, c, y) in zip(xs, pts, strict=True):
                ax.annotate(f"n={c.n}", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=7,
                            color=colors[r.label])
        ax.set_xticks(turns or [0])
        ax.set_xlabel("turn")
        ax.set_ylabel(f"rating ({lo}–{hi})")
        ax.set_ylim(lo - 0.5, hi + 0.5)
        ax.set_title("ratings over turns (person)", fontsize=10)
        if any(r.over_turns for r in rows):
            ax.legend(fontsize=8, loc="lower right")
        # (b) final ratings: grouped bars per question.
        ax = axes[1]
        keys = [k for k in chat.columns[task] if k.startswith("human.") and k != "human.turn"]
        width = 0.8 / max(1, len(rows))
        for i, r in enumerate(rows):
            for j, k in enumerate(keys):
                fc = r.cells.get(k)
                if fc is None or fc.state != "value" or fc.mean is None:
                    continue
                err = [[max(0.0, fc.mean - fc.ci_low) if fc.ci_low is not None else 0.0],
                       [max(0.0, fc.ci_high - fc.mean) if fc.ci_high is not None else 0.0]]
                ax.bar([j + i * width], [fc.mean], width=width, yerr=err, capsize=3, color=colors[r.label],
                       label=_short(r.label) if j == 0 else None)
        ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(keys))],
                      [k.removeprefix("human.") for k in keys], fontsize=9)
        ax.set_ylim(0, hi + 0.5)
        ax.set_title("final ratings (person)", fontsize=10)
        if keys and rows:
            ax.legend(fontsize=8, loc="lower right")
        # (c) human rating vs the judge, one point per conversation.
        ax = axes[2]
        corr = next((c for c in chat.correlations if c.task == task and c.group == "all assistants"), None)
        for r in rows:
            if r.pairs:
                ax.scatter([p[1] for p in r.pairs], [p[0] for p in r.pairs], color=colors[r.label], s=22,
                           label=_short(r.label))
        xs_all = [p[1] for r in rows for p in r.pairs]
        if xs_all and min(xs_all) >= 0.0 and max(xs_all) <= 1.0:
            ax.set_xlim(-0.05, 1.05)  # the judge's 0-1 scale, so a narrow spread looks narrow
        ax.set_ylim(lo - 0.5, hi + 0.5)
        if corr is not None:
            ax.set_xlabel(corr.auto + " (judge)")
            ax.set_ylabel(corr.human.removeprefix("human.") + " (person)")
            rho = f"ρ = {corr.spearman:+.2f} (n={corr.n})" if corr.spearman is not None else f"no ρ: {corr.refused}"
            ax.set_title(f"person vs judge: {rho}", fontsize=10)
        else:
            ax.set_title("person vs judge: no judge in these runs", fontsize=10)
        fig.suptitle(f"{task}: human chat study")
        fig.tight_layout()
        p = out_dir / f"chat-{task}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths[CHAT_PREFIX + task] = p
        notes[CHAT_PREFIX + task] = task_notes
    return paths, notes
