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
    """Build a leaderboard (task metric, k-tokens, interactivity per task; one row per assistant) from runs."""
    from ..report.leaderboard import write_leaderboard

    cmd = command_text or "collab-harness leaderboard " + " ".join(shlex.quote(d) for d in run_dirs) + \
        f" --out {shlex.quote(out)}" + (" --skip-invalid" if skip_invalid else "")
    files = write_leaderboard(list(run_dirs), out, skip_invalid=skip_invalid, command=cmd)
    click.echo(f"markdown: {files.markdown}")
    click.echo(f"html: {files.html}")
