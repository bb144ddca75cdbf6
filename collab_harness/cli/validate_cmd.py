"""``collab-harness validate CONFIG.yaml``: resolve every name and build every component; no model is called."""

from __future__ import annotations

import click

from ..config import build_components, load_config
from ._common import echo_json, state


@click.command("validate")
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the resolved configuration as JSON.")
def validate(config_path: str, as_json: bool) -> None:
    """Resolve and build every component of a run config; no model call."""
    host = state().host
    config = load_config(config_path)
    built = build_components(host, config)
    if as_json:
        echo_json({"config": config.model_dump(mode="json"), "components": built.manifest_components(host)})
        return
    click.echo(f"ok: {config_path}")
    click.echo(f"  task: {built.task.name}  simulator: {built.simulator.name}  assistant: {config.assistant}")
    click.echo("  scorers: " + ", ".join(f"{s.name} (w={built.weights[s.name]:g})" for s in built.scorers))
