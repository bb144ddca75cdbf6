"""``collab-harness list KIND``: the components of one kind, with the plugin that registered each."""

from __future__ import annotations

from typing import Any

import click

from ..components import KINDS
from ..errors import ComponentNotFound
from ._common import echo_json, state

PLURALS = {f"{k}s": k for k in KINDS}


def _row(spec: Any, full: bool) -> dict[str, Any]:
    row = spec.as_dict()
    if not full:
        row.pop("options_schema", None)
    if spec.kind == "task":
        # A task's self-description (sizes, default metrics) costs no data loading beyond what splits() does.
        try:
            row["info"] = spec.create().info().model_dump(mode="json")
        except Exception as e:  # a broken task should not hide the others
            row["info_error"] = f"{type(e).__name__}: {e}"
    return row


@click.command("list")
@click.argument("kind", metavar="tasks|metrics|judges|simulators|trainers")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--schema", is_flag=True, help="Include each component's options JSON schema (with --json).")
def list_(kind: str, as_json: bool, schema: bool) -> None:
    """List components of one kind."""
    k = PLURALS.get(kind) or (kind if kind in KINDS else None)
    if k is None:
        raise ComponentNotFound("component kind", kind, PLURALS)
    host = state().host
    rows = [_row(s, schema) for s in host.registry.specs(k)]
    if as_json:
        echo_json(rows)
        return
    import shutil

    from rich.console import Console
    from rich.table import Table

    # Not a terminal (a pipe, a CI log): rich would squeeze the table into 80 columns and cut cells.
    console = Console(width=max(120, shutil.get_terminal_size((120, 24)).columns))
    table = Table(title=f"{kind}")
    if k == "task":
        for col in ("name", "version", "sizes", "default metrics", "data", "plugin"):
            table.add_column(col, no_wrap=col in ("name", "version", "sizes"), overflow="fold")
        table.add_column("description", ratio=1, overflow="fold")
        for r in rows:
            info = r.get("info") or {}
            sizes = ", ".join(f"{s}={n if n is not None else '?'}" for s, n in (info.get("splits") or {}).items())
            metrics = ", ".join(f"{m}={w:g}" for m, w in (info.get("default_metrics") or {}).items())
            source = str(info.get("data_source", "?")) + (f" (hub: {info['hub_id']})" if info.get("hub_id") else "")
            table.add_row(r["name"], r["version"], sizes or r.get("info_error", "?"), metrics, source,
                          f"{r['plugin']} ({r['distribution'] or '-'})", r["description"])
    else:
        for col in ("name", "version", "plugin", "distribution", "description"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["name"], r["version"], r["plugin"], r["distribution"] or "-", r["description"])
    console.print(table)
    for err in host.load_errors:
        click.echo(f"note: {err}", err=True)
