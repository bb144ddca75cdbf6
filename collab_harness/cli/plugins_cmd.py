"""``collab-harness plugins``: every plugin seen, with distribution, version, components and load errors."""

from __future__ import annotations

import click

from ._common import echo_json, state


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """Show plugins, their distributions, components and load errors."""
    host = state().host
    if as_json:
        echo_json(host.summary())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="collab-harness plugins")
    for col in ("plugin", "distribution", "version", "components"):
        table.add_column(col)
    for p in host.plugins:
        comps = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.components.items()) or "(none)"
        table.add_row(p.name, p.distribution or "-", p.version or "-", comps)
    console = Console()
    console.print(table)
    if host.blocked:
        console.print("blocked: " + ", ".join(host.blocked))
    for err in host.load_errors:
        console.print(f"[red]failed to load[/red] {err}", markup=True, highlight=False)
