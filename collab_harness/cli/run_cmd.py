"""``collab-harness run``: simulate and score one conversation per test example into a run directory.

With no model flag everything runs offline on the embedded defaults: ``local/smollm2`` as the assistant,
``shard-user`` as the user, and the offline judge ``rules`` (deterministic rubrics, rule-based artefact extraction;
the 135M embedded model cannot produce a judge's JSON). ``--judge MODEL`` switches to LLM judging and extraction.
``--config run.yaml`` takes the same options as a file; flags win over it.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ._common import echo_json, env, parse_weights, state


def default_out(task: str, assistant: str, seed: int) -> str:
    """A stable default run directory, so that ``--resume`` without ``--out`` finds the run again."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", assistant).strip("_")
    return str(Path("runs") / f"{task}__{safe}__seed{seed}")


class _Progress:
    """A rich progress bar with ETA on a terminal; plain log lines otherwise (CI logs, redirected stderr)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._t0 = time.monotonic()
        self._start_done = 0

    def start(self, done: int, total: int) -> None:
        self._start_done = done
        self._t0 = time.monotonic()
        if not self.enabled:
            return
        if done:
            click.echo(f"resuming: {done}/{total} samples already finished", err=True)
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("[bold]run"), BarColumn(), MofNCompleteColumn(), TextColumn("elapsed"),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("run", total=total, completed=done)

    def update(self, done: int, total: int, rec: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
            return
        new = done - self._start_done
        el = time.monotonic() - self._t0
        eta = el / new * (total - done) if new else 0.0
        status = f"{len(rec['errors'])} error(s)" if rec["errors"] else "ok"
        click.echo(f"[{done}/{total}] {rec['example_id']} {status} {rec.get('elapsed_s', 0):.1f}s "
                   f"(elapsed {el:.0f}s, eta {eta:.0f}s)", err=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _summary_lines(results: Mapping[str, Any]) -> list[str]:
    lines = []
    for name, m in results.get("metrics", {}).items():
        if "." in name or m.get("mean") is None:
            if "." not in name and m.get("n_failed"):
                lines.append(f"  {name}: all failed ({m['n_failed']})")
            continue
        ci = f" ± {m['ci_half']:.4g}" if m.get("ci_half") is not None else ""
        failed = f", {m['n_failed']} failed" if m.get("n_failed") else ""
        lines.append(f"  {name}: {m['mean']:.4g}{ci} (n={m['n']}{failed})")
    errs = results.get("errors_by_component") or {}
    if errs:
        lines.append("  errors: " + ", ".join(f"{k}={v}" for k, v in errs.items()))
    return lines


@click.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar=env("config"),
              help="YAML file with the same options; flags win over it.")
@click.option("--task", envvar=env("task"), help="Task name (doc-chat, math-chat, code-chat, abg-coqa, ...).")
@click.option("--split", envvar=env("split"), help="Split to evaluate on (default: test).")
@click.option("--limit", type=int, envvar=env("limit"), help="Evaluate N examples, chosen by --seed.")
@click.option("--seed", type=int, envvar=env("seed"), help="Run seed (default 0).")
@click.option("--out", envvar=env("out"), help="Run directory (default runs/<task>__<assistant>__seed<S>).")
@click.option("--resume", is_flag=True, envvar=env("resume"), help="Continue an interrupted run in --out.")
@click.option("--assistant", envvar=env("assistant"), help="Assistant model string (default local/smollm2).")
@click.option("--assistant-system-prompt", envvar=env("assistant_system_prompt"),
              help="System prompt given to the assistant.")
@click.option("--user", envvar=env("user"),
              help="Simulator name (shard-user, llm-user) or a model string played by llm-user.")
@click.option("--judge", envvar=env("judge"),
              help="Model for LLM judges and extraction, or 'rules' (default: the offline rule judge).")
@click.option("--metrics", envvar=env("metrics"), help="Comma-separated metrics/judges (default: the task's).")
@click.option("--weights", envvar=env("weights"), help="MR weights, e.g. bleu=1,interactivity=0.5.")
@click.option("--max-exchanges", type=int, envvar=env("max_exchanges"), help="Exchanges per conversation (7).")
@click.option("--max-tokens", type=int, envvar=env("max_tokens"), help="Max tokens per assistant reply.")
@click.option("--temperature", type=float, envvar=env("temperature"), help="Assistant sampling temperature.")
@click.option("--concurrency", type=int, envvar=env("concurrency"), help="Examples / model calls in flight.")
@click.option("--cache/--no-cache", default=None, envvar=env("cache"), help="Use the persistent model-call cache.")
@click.option("--fail-on-error", type=float, envvar=env("fail_on_error"),
              help="Stop after this many failed samples (>= 1) or this proportion of them (< 1).")
@click.option("--retry-on-error", type=int, envvar=env("retry_on_error"),
              help="Retry a failed sample up to N times (earlier errors are kept).")
@click.option("--parity/--no-parity", default=None, envvar=env("parity"), help="Paper-parity mode.")
@click.option("--progress/--no-progress", default=True, envvar=env("progress"), help="Show progress on stderr.")
@click.option("--json", "as_json", is_flag=True, envvar=env("json"), help="Print the results as JSON.")
def run(config_path: str | None, resume: bool, progress: bool, as_json: bool, **opts: Any) -> None:
    """Simulate one conversation per test example and score it (task metric, interactivity, token amounts)."""
    from ..config import load_config, make_config
    from ..evaluate import evaluate

    if opts.get("metrics") is not None:
        opts["metrics"] = [m.strip() for m in str(opts["metrics"]).split(",") if m.strip()]
    opts["weights"] = parse_weights(opts.get("weights"))
    out = opts.pop("out")
    overrides = {k: v for k, v in opts.items() if v is not None}
    if config_path:
        config = load_config(config_path, **overrides)
    else:
        if "task" not in overrides:
            raise click.UsageError("--task is required (or --config run.yaml)")
        config = make_config(overrides)
    out = out or config.out or default_out(config.task.name, config.assistant, config.seed)
    host = state().host
    bar = _Progress(progress)
    try:
        summary = evaluate(config, host, out, resume=resume, progress=bar.update, on_start=bar.start)
    finally:
        bar.stop()
    if as_json:
        echo_json({"run_dir": str(summary.run_dir), **summary.results})
        return
    click.echo(f"run directory: {summary.run_dir}  ({summary.n_done}/{summary.n_examples} samples, "
               f"{summary.n_new} new, {summary.n_skipped} resumed)")
    for line in _summary_lines(summary.results):
        click.echo(line)
