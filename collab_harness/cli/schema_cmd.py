"""``collab-harness schema KIND``: the JSON Schema of a run record, generated from the record models."""

from __future__ import annotations

import click

from ._common import echo_json


@click.command("schema")
@click.argument("kind", type=click.Choice(["eval", "mr", "synth", "chat", "manifest", "results"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of one kind of run record (eval, mr, synth, chat), of the manifest or of results.json."""
    from ..records import record_schema

    echo_json(record_schema(kind))
