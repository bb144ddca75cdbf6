"""``collab-harness synth``: synthesise multi-turn training conversations ranked by MR into a run directory.

Per example of the split (default: train): the user opens, N candidate responses per turn are scored by MR with
common random numbers, the best continues, the next user message comes from its futures (see
:mod:`collab_harness.synthesize`). Records are :class:`~collab_harness.records.SynthRecord`; ``--resume`` continues
after a crash; ``export sft|dpo|rl`` turns the run into datasets. With no model flags everything runs offline on
the embedded defaults.
"""

from __future__ import annotations

from typing import Any

import click

from ._common import build_config, env, finish_run, run_options, state


def _floats(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


@click.command("synth")
@run_options
@click.option("--candidates", type=int, envvar=env("candidates"), help="Candidate responses N per turn (3).")
@click.option("--max-turns", type=int, envvar=env("max_turns"), help="Assistant turns per conversation at most (3).")
@click.option("--proactive-share", type=float, envvar=env("proactive_share"),
              help="Share of the candidates sampled with the proactive-collaborator instruction (0.5).")
@click.option("--temperatures", envvar=env("temperatures"),
              help="Candidate temperatures, cycled, e.g. 0.7,1.0 (default).")
@click.option("--next-user", type=click.Choice(["sample", "best", "lowest-nonterminated"]), envvar=env("next_user"),
              help="Which of the chosen candidate's futures gives the next user message (sample).")
@click.option("--samples", type=int, envvar=env("samples"), help="MR futures S per candidate (3).")
@click.option("--window", type=int, envvar=env("window"), help="MR window W in exchanges (2).")
@click.option("--min-futures", type=int, envvar=env("min_futures"),
              help="Successful futures MR needs (default: all S).")
@click.option("--paper-form/--weighted", "paper", default=None, envvar=env("paper_form"),
              help="MR as R_task + R_judge - min(lambda*T, 1) instead of the weighted sum.")
@click.option("--future-temperature", type=float, envvar=env("future_temperature"),
              help="Assistant temperature in the MR futures (0.7).")
def synth(config_path: str | None, resume: bool, allow_changed: bool, progress: bool, as_json: bool, dry_run: bool,
          candidates: int | None, max_turns: int | None, proactive_share: float | None, temperatures: str | None,
          next_user: str | None, samples: int | None, window: int | None, min_futures: int | None,
          paper: bool | None, future_temperature: float | None, **opts: Any) -> None:
    """Synthesise multi-turn training conversations, every candidate scored by MR."""
    from ..synthesize import run_synthesis
    from ._progress import RunProgress

    out = opts.pop("out")
    if not out and not dry_run:
        raise click.UsageError("--out (a run directory) is required")
    if opts.get("split") is None and not config_path:
        opts["split"] = "train"  # training data comes from the training split
    mr_opts = {"samples": samples, "window": window, "min_futures": min_futures,
               "form": None if paper is None else ("paper" if paper else "weighted"),
               "temperature": future_temperature}
    config = build_config(config_path, opts, mr_opts)
    synth_over = {k: v for k, v in {"candidates": candidates, "max_turns": max_turns,
                                    "proactive_share": proactive_share, "temperatures": _floats(temperatures),
                                    "next_user": next_user}.items() if v is not None}
    if synth_over:
        from ..config import make_config

        config = make_config({**config.model_dump(), "synth": {**config.synth.model_dump(), **synth_over}},
                             source="command-line options")
    if dry_run:
        from ..config import build_components
        from ..plan import plan_synth

        built = build_components(state().host, config)
        examples = built.task.examples(config.split, limit=config.limit, seed=config.seed)
        prompt = sum(len(e.prompt) for e in examples) // max(1, len(examples)) // 4
        for line in plan_synth(built, len(examples), turns=config.synth.max_turns,
                               candidates=config.synth.candidates, prompt_tokens=prompt + 100).lines():
            click.echo(line)
        return
    outcome = run_synthesis(config, state().host, out, resume=resume, allow_changed=allow_changed,
                            progress=RunProgress(progress, "synth"))
    finish_run(outcome, as_json, "conversations")
