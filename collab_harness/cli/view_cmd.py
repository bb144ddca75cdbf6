"""``collab-harness view RUN_DIR --out FILE.html``: a static, self-contained conversation viewer."""

from __future__ import annotations

import click

from ._common import env


@click.command("view")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, envvar=env("out"), type=click.Path(dir_okay=False),
              help="HTML file to write.")
@click.option("--references/--no-references", default=True, envvar=env("references"), show_default=True,
              help="Load the run's task to show each example's reference (a task that cannot be loaded gives a "
                   "note, not an error).")
def view(run_dir: str, out: str, references: bool) -> None:
    """Write one self-contained HTML page with every conversation of a run: reference, extracted artefact, scores
    with the judges' rationales, models, seeds and failures; LaTeX typeset offline (bundled KaTeX); search and
    filters."""
    from ..report.viewer import write_viewer

    path = write_viewer(run_dir, out, references=references)
    click.echo(f"html: {path}")
