"""``collab-harness view RUN_DIR --out FILE.html``: a static, self-contained conversation viewer (candidate trees
for synth runs)."""

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
    filters.

    For a synth run, each conversation shows per turn its candidate tree: every candidate with how it was sampled,
    its MR (mean ± std, futures ok/total) and per-metric means, the chosen one and why each other was not, the next
    user message and the future it came from, and each candidate's futures folded underneath. An mr run shows each
    row's candidate with its futures."""
    from ..report.viewer import write_viewer

    path = write_viewer(run_dir, out, references=references)
    click.echo(f"html: {path}")
