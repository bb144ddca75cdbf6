"""``collab-harness leaderboard RUN_DIR... --out DIR``: Markdown + static HTML (with plots) from run directories."""

from __future__ import annotations

import shlex

import click

from ._common import env


@click.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, envvar=env("out"), type=click.Path(file_okay=False),
              help="Directory for README.md, index.html, leaderboard.json and plots/.")
@click.option("--skip-invalid", is_flag=True, envvar=env("skip_invalid"),
              help="Leave out (and list) runs that cannot be placed instead of failing.")
@click.option("--command", "command_text", envvar=env("command"),
              help="Generation command written in the board's header (default: this invocation).")
def leaderboard(run_dirs: tuple[str, ...], out: str, skip_invalid: bool, command_text: str | None) -> None:
    """Build a leaderboard from evaluation runs: one row per run label (`run --label`, default: the assistant and a
    hash of its system prompt) and setting; per task the task metric, k-tokens and interactivity with intervals;
    settings that differ between rows flagged; paired comparisons of rows run on the same examples. Runs that
    finished with failures are marked with their counts; unfinished runs are refused."""
    from ..report.leaderboard import write_leaderboard

    cmd = command_text or "collab-harness leaderboard " + " ".join(shlex.quote(d) for d in run_dirs) + \
        f" --out {shlex.quote(out)}" + (" --skip-invalid" if skip_invalid else "")
    files = write_leaderboard(list(run_dirs), out, skip_invalid=skip_invalid, command=cmd)
    click.echo(f"markdown: {files.markdown}")
    click.echo(f"html: {files.html}")
    click.echo(f"json: {files.json}")
    board = files.board
    for task, diffs in board.flags.items():
        for d in diffs:
            click.echo(f"flag: {task}: {d.text()}")
    for c in board.comparisons:
        click.echo(f"compare: {c.text()}")
    for r in board.rows:
        for task, problem in r.status.items():
            if problem:
                click.echo(f"marked: {r.display} on {task}: {problem}")
    for x in board.refused:
        click.echo(f"refused: {x}")
