"""``collab-harness mr``: score (history, candidate) rows with the multiturn-aware reward, into a run directory.

Input: JSONL rows ``{"id", "example_id" | "example", "history", "candidate"}`` (see :mod:`collab_harness.mr_run`).
Output: a run directory like ``run``'s: ``manifest.json``, ``samples.jsonl`` (one MR record per row, appended as it
finishes: MR, std, per-metric means, every future with its conversation, scores, reward and failures) and
``results.json``. ``--resume`` continues after a crash. With no model flags everything runs offline on the embedded
defaults (``local/smollm2`` as the assistant in the futures, ``shard-user`` as the user, the ``rules`` judge).
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import ConfigError
from ._common import build_config, env, finish_run, run_options, state


@click.command("mr")
@run_options
@click.option("--input", "input_path", envvar=env("input"), required=True, type=click.Path(dir_okay=False),
              help="JSONL of {id, example_id | example, history, candidate} rows.")
@click.option("--samples", type=int, envvar=env("samples"), help="Futures S per candidate (3).")
@click.option("--window", type=int, envvar=env("window"),
              help="Window W in exchanges (user message + assistant reply) after the candidate; 0 = score h + r (2).")
@click.option("--min-futures", type=int, envvar=env("min_futures"),
              help="Successful futures MR needs (default: all S); fewer is a recorded failure.")
@click.option("--paper-form/--weighted", "paper", default=None, envvar=env("paper_form"),
              help="R = R_task + R_judge - min(lambda*T, 1) instead of the weighted sum.")
@click.option("--lambda", "penalty_lambda", type=float, envvar=env("lambda"),
              help="Token penalty of the paper form (default: the task's).")
@click.option("--token-count", type=click.Choice(["assistant", "all"]), envvar=env("token_count"),
              help="T of the paper form: assistant tokens of the forward part (default) or all tokens.")
@click.option("--variant", type=click.Choice(["plain", "proactive"]), envvar=env("variant"),
              help="Assistant prompt variant in the futures (plain).")
@click.option("--extraction", type=click.Choice(["auto", "llm", "rule"]), envvar=env("extraction"),
              help="Artefact extraction: LLM with rule fallback, LLM only, or the task's rule only (auto).")
@click.option("--extraction-max-tokens", type=int, envvar=env("extraction_max_tokens"),
              help="Max tokens of an extraction reply (1024).")
@click.option("--temperature", type=float, envvar=env("temperature"),
              help="Assistant temperature in the futures (0.7).")
def mr(config_path: str | None, resume: bool, allow_changed: bool, progress: bool, as_json: bool, dry_run: bool,
       input_path: str,
       samples: int | None, window: int | None, min_futures: int | None, paper: bool | None,
       penalty_lambda: float | None, token_count: str | None, variant: str | None, extraction: str | None,
       extraction_max_tokens: int | None, temperature: float | None, **opts: Any) -> None:
    """Score every (history, candidate) row of --input with the multiturn-aware reward."""
    from ..mr_run import run_mr
    from ._progress import RunProgress

    out = opts.pop("out")
    if not out:
        raise click.UsageError("--out (a run directory) is required")
    mr_opts = {"samples": samples, "window": window, "min_futures": min_futures,
               "form": None if paper is None else ("paper" if paper else "weighted"),
               "penalty_lambda": penalty_lambda, "token_count": token_count, "variant": variant,
               "extraction": extraction, "extraction_max_tokens": extraction_max_tokens, "temperature": temperature}
    if samples is not None and samples < 1:
        raise ConfigError("--samples must be >= 1")
    if window is not None and window < 0:
        raise ConfigError("--window must be >= 0")
    config = build_config(config_path, opts, mr_opts)
    if dry_run:
        from ..config import build_components
        from ..mr_run import read_rows
        from ..plan import plan_mr

        built = build_components(state().host, config)
        rows = read_rows(input_path, built.task)
        turns = sum(len(r.history.by_role("user")) for r in rows) // len(rows)
        prompt = sum(len(r.example.prompt) + len(r.history.render()) for r in rows) // len(rows) // 4
        for line in plan_mr(built, len(rows), history_turns=turns, prompt_tokens=prompt + 100).lines():
            click.echo(line)
        return
    outcome = run_mr(config, state().host, out, input_path, resume=resume, allow_changed=allow_changed,
                     progress=RunProgress(progress, "mr"))
    finish_run(outcome, as_json, "rows")
