"""``collab-harness view RUN_DIR --out FILE.html``: a static, self-contained conversation viewer."""

from __future__ import annotations

import click

from ._common import env


@click.command("view")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, envvar=env("out"), type=click.Path(dir_okay=False),
              help="HTML file to write.")
def view(run_dir: str, out: str) -> None:
    """Write an HTML page with every conversation of a run, its scores and errors (search and filters)."""
    from ..report.viewer import write_viewer

    path = write_viewer(run_dir, out)
    click.echo(f"html: {path}")
