"""``collab-harness run``: simulate and score one conversation per test example into a run directory.

With no model flag everything runs offline on the embedded defaults: ``local/smollm2`` as the assistant,
``shard-user`` as the user, and the offline judge ``rules`` (deterministic rubrics, rule-based artefact extraction;
the 135M embedded model cannot produce a judge's JSON reliably). ``--judge MODEL`` switches to LLM judging and
extraction. ``--config run.yaml`` takes the same options as a file; flags win over it. The exit status is 0 only
when the run's status is ``success`` (every example scored, or the failures allowed by ``--fail-on-error``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from ._common import build_config, env, finish_run, run_options, state


def default_out(task: str, assistant: str, seed: int) -> str:
    """A stable default run directory, so that ``--resume`` without ``--out`` finds the run again."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", assistant).strip("_")
    return str(Path("runs") / f"{task}__{safe}__seed{seed}")


@click.command("run")
@run_options
@click.option("--max-exchanges", type=int, envvar=env("max_exchanges"), help="Exchanges per conversation (7).")
@click.option("--temperature", type=float, envvar=env("temperature"), help="Assistant sampling temperature (0).")
def run(config_path: str | None, resume: bool, allow_changed: bool, progress: bool, as_json: bool, dry_run: bool,
        **opts: Any) -> None:
    """Simulate one conversation per test example and score it (task metric, interactivity, token amounts)."""
    from ..evaluation import run_evaluation
    from ._progress import RunProgress

    out = opts.pop("out")
    config = build_config(config_path, opts)
    if dry_run:
        from ..config import build_components
        from ..plan import plan_eval

        built = build_components(state().host, config)
        examples = built.task.examples(config.split, limit=config.limit, seed=config.seed)
        prompt = sum(len(e.prompt) for e in examples) // max(1, len(examples)) // 4
        for line in plan_eval(built, len(examples), prompt_tokens=prompt + 100).lines():
            click.echo(line)
        return
    out = out or config.out or default_out(config.task.name, config.assistant, config.seed)
    outcome = run_evaluation(config, state().host, out, resume=resume, allow_changed=allow_changed,
                             progress=RunProgress(progress, "run"))
    finish_run(outcome, as_json, "samples")
