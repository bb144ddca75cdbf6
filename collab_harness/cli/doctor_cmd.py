"""``collab-harness doctor [--task NAME] [--json]``: the modules each task's examples import that this environment
lacks, found before any run (a missing library would otherwise fail those examples as environment failures).

Works for any task that declares the capability: a ``required_modules(example) -> list[str]`` method (top-level
module names the example's checker needs). A task may add ``install_names(modules) -> list[str]`` for the
install hint. The core names no plugin.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from ..errors import CollabHarnessError
from ._common import echo_json, state


def _available(module: str) -> bool:
    top = module.split(".", 1)[0]
    if top in sys.builtin_module_names:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _check_task(spec: Any, options: dict[str, Any], show: int) -> dict[str, Any]:
    row: dict[str, Any] = {"task": spec.name, "plugin": spec.plugin}
    probe = getattr(spec.cls, "required_modules", None)
    if not callable(probe):
        return {**row, "applicable": False}
    task = spec.create(options or None)
    required: Callable[[Any], Sequence[str]] = getattr(task, "required_modules")  # noqa: B009 - a capability
    seen: dict[str, Any] = {}  # a local file may serve every split: each example counts once
    for split in task.splits():
        for ex in task.load(split):
            seen.setdefault(ex.id, (split, ex))
    examples = list(seen.values())
    all_required: set[str] = set()
    missing: dict[str, list[str]] = {}
    lacking: set[str] = set()
    for _split, ex in examples:
        mods = [str(m) for m in required(ex)]
        all_required.update(mods)
        for m in mods:
            if not _available(m):
                missing.setdefault(m, []).append(ex.id)
                lacking.add(ex.id)
    names = sorted(missing)
    install_names = getattr(task, "install_names", None)
    install = [str(n) for n in install_names(names)] if callable(install_names) and names else list(names)
    return {
        **row,
        "applicable": True,
        "source": str(getattr(task, "resolved_source", getattr(task.options, "source", "?"))),
        "examples": len(examples),
        "lacking_examples": len(lacking),
        "required": sorted(all_required),
        "missing": {
            m: {"examples": len(missing[m]), "ids": missing[m][:show], "install": inst}
            for m, inst in zip(names, install, strict=False)
        },
        "install": sorted(set(install)),
    }


@click.command("doctor")
@click.option("--task", "task_name", help="Check only this task (default: every task that can say what it needs).")
@click.option("--source", type=click.Choice(["auto", "hub", "local", "sample"]), default=None,
              help="Which data to check (default: the task's own choice).")
@click.option("--data", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A local data file in the task's or the hub's schema (implies --source local).")
@click.option("--show", type=int, default=5, show_default=True, help="Example ids listed per missing module.")
@click.option("--strict", is_flag=True, help="Exit non-zero when any example lacks a module (for CI).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(task_name: str | None, source: str | None, data: str | None, show: int, strict: bool,
           as_json: bool) -> None:
    """List, per task, the modules its examples import that this environment lacks."""
    host = state().host
    specs = [host.registry.get("task", task_name)] if task_name else list(host.registry.specs("task"))
    options: dict[str, Any] = {}
    if source:
        options["source"] = source
    if data:
        options.update({"source": source or "local", "data": data})
    rows = []
    for spec in specs:
        try:
            rows.append(_check_task(spec, options, show))
        except CollabHarnessError:
            if task_name:
                raise
            rows.append({"task": spec.name, "plugin": spec.plugin, "applicable": True, "error": "could not load"})
        except Exception as e:
            if task_name:
                raise
            rows.append({"task": spec.name, "plugin": spec.plugin, "applicable": True,
                         "error": f"{type(e).__name__}: {e}"})
    if as_json:
        echo_json(rows)
    else:
        for r in rows:
            _print_row(r)
    if strict and any(r.get("lacking_examples") or r.get("error") for r in rows):
        sys.exit(1)


def _print_row(r: dict[str, Any]) -> None:
    if not r.get("applicable"):
        click.echo(f"{r['task']}: nothing to check (its examples run no code)")
        return
    if "error" in r:
        click.echo(f"{r['task']}: could not check: {r['error']}")
        return
    head = f"{r['task']} (source: {r['source']}, {r['examples']} examples)"
    if not r["missing"]:
        click.echo(f"{head}: every example has what it imports")
        click.echo(f"  required: {', '.join(r['required']) or '-'}")
        return
    click.echo(f"{head}: {r['lacking_examples']} examples lack a module")
    width = max(len(m) for m in r["missing"])
    for m, info in sorted(r["missing"].items(), key=lambda kv: (-kv[1]["examples"], kv[0])):
        more = "" if info["examples"] <= len(info["ids"]) else ", ..."
        click.echo(f"  {m:<{width}}  {info['examples']:>4} examples  ({', '.join(info['ids'])}{more})")
    click.echo(f"  install: pip install {' '.join(r['install'])}")
