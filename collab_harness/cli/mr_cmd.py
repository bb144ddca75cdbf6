"""``collab-harness mr``: score (history, candidate) rows with the multiturn-aware reward.

Input: JSONL, one row per line::

    {"id": "r1", "example_id": "math-chat/sample-000", "history": [{"role": "user", "content": "..."}],
     "candidate": "..."}

``example_id`` is looked up across the task's splits; ``example`` may give an inline example instead
(``{"id", "task", "prompt", "reference", "metadata"}``). ``id`` defaults to ``row-<line number>``.

Output: JSONL, one record per row, appended and flushed as each row finishes (so in completion order): id,
example_id, mr, std, per_metric, n_ok, n_total, form, weights, every future (conversation, scores, reward,
errors), errors. With no model flags everything runs offline on the embedded defaults (``local/smollm2`` as
assistant, judge and extraction model; ``shard-user`` as the user).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import CollabHarnessError, ConfigError
from ._common import env, parse_weights, state


def read_rows(path: str, task: Any) -> list[dict[str, Any]]:
    """Parse and check every input row up front, so a typo fails before any model is called."""
    from ..reward import MRItem
    from ..types import Conversation, Example

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--input: file not found: {p}")
    index: dict[str, Example] | None = None
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p}:{n}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: each line must be a JSON object")
        unknown = set(raw) - {"id", "example_id", "example", "history", "candidate"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if not isinstance(raw.get("candidate"), str):
            raise ConfigError(f"{where}: 'candidate' (a string) is required")
        try:
            history = Conversation.of(*raw.get("history") or [])
        except Exception as e:
            raise ConfigError(f"{where}: invalid 'history': {str(e).splitlines()[0]}") from None
        if "example" in raw:
            try:
                example = Example.model_validate(raw["example"])
            except Exception as e:
                raise ConfigError(f"{where}: invalid inline 'example': {str(e).splitlines()[0]}") from None
        elif "example_id" in raw:
            if index is None:
                index = {ex.id: ex for split in task.splits() for ex in task.load(split)}
            found = index.get(str(raw["example_id"]))
            if found is None:
                from difflib import get_close_matches

                close = get_close_matches(str(raw["example_id"]), list(index), n=2)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(f"{where}: task {task.name!r} has no example {raw['example_id']!r}{hint}")
            example = found
        else:
            raise ConfigError(f"{where}: give 'example_id' or an inline 'example'")
        rows.append({"id": str(raw.get("id", f"row-{n}")),
                     "item": MRItem(history=history, candidate=raw["candidate"], example=example)})
    if not rows:
        raise ConfigError(f"--input: {p} holds no rows")
    return rows


def record(row_id: str, example_id: str, res: Any) -> dict[str, Any]:
    """The output record of one row: an MR result, or the input error that prevented it."""
    if isinstance(res, CollabHarnessError):
        return {"id": row_id, "example_id": example_id, "mr": None, "std": None, "per_metric": {}, "n_ok": 0,
                "n_total": 0, "futures": [], "errors": [str(res)], "error": str(res)}
    data = res.model_dump(mode="json")
    return {
        "id": row_id,
        "example_id": example_id,
        "mr": data.pop("mean"),
        "std": data.pop("std"),
        "per_metric": data.pop("per_metric"),
        "n_ok": data.pop("n_ok"),
        "n_total": data.pop("n_total"),
        "errors": res.errors(),
        **data,
    }


@click.command("mr")
@click.option("--task", envvar=env("task"), required=True, help="Task name (doc-chat, math-chat, code-chat, ...).")
@click.option("--input", "input_path", envvar=env("input"), required=True, type=click.Path(dir_okay=False),
              help="JSONL of {id, example_id | example, history, candidate} rows.")
@click.option("--out", envvar=env("out"), required=True, type=click.Path(dir_okay=False),
              help="JSONL file to write, one record per row.")
@click.option("--samples", type=int, default=3, show_default=True, envvar=env("samples"),
              help="Futures S per candidate.")
@click.option("--window", type=int, default=2, show_default=True, envvar=env("window"),
              help="Window W in exchanges (user message + assistant reply) after the candidate; 0 = score h + r.")
@click.option("--weights", envvar=env("weights"), help="Weights, e.g. bleu=1,interactivity=0.5 (default: the task's).")
@click.option("--paper-form/--weighted", "paper", default=False, envvar=env("paper_form"),
              help="R = R_task + R_judge - min(lambda*T, 1) instead of the weighted sum.")
@click.option("--lambda", "penalty_lambda", type=float, envvar=env("lambda"),
              help="Token penalty of the paper form (default: the task's).")
@click.option("--metrics", envvar=env("metrics"), help="Comma-separated metrics/judges (default: the task's).")
@click.option("--assistant", envvar=env("assistant"), help="Assistant model string (default local/smollm2).")
@click.option("--assistant-system-prompt", envvar=env("assistant_system_prompt"),
              help="System prompt of the assistant in the futures.")
@click.option("--variant", type=click.Choice(["plain", "proactive"]), default="plain", envvar=env("variant"),
              help="Assistant prompt variant in the futures.")
@click.option("--user", envvar=env("user"),
              help="Simulator name (shard-user, llm-user) or a model string played by llm-user.")
@click.option("--judge", envvar=env("judge"),
              help="Model for LLM judges and extraction, or 'rules' for the offline judge (default).")
@click.option("--extraction", type=click.Choice(["auto", "llm", "rule"]), default="auto", envvar=env("extraction"),
              help="Artefact extraction: LLM with rule fallback, LLM only, or the task's rule only.")
@click.option("--extraction-max-tokens", type=int, default=1024, show_default=True,
              envvar=env("extraction_max_tokens"), help="Max tokens of an extraction reply.")
@click.option("--max-tokens", type=int, envvar=env("max_tokens"), help="Max tokens per assistant reply (256).")
@click.option("--temperature", type=float, default=0.7, show_default=True, envvar=env("temperature"),
              help="Assistant temperature in the futures.")
@click.option("--seed", type=int, envvar=env("seed"), help="Run seed (default 0).")
@click.option("--concurrency", type=int, envvar=env("concurrency"), help="Model calls in flight per provider.")
@click.option("--cache/--no-cache", default=None, envvar=env("cache"), help="Use the persistent model-call cache.")
@click.option("--parity/--no-parity", default=None, envvar=env("parity"), help="Paper-parity mode.")
@click.option("--progress/--no-progress", default=True, envvar=env("progress"), help="Show progress on stderr.")
def mr(input_path: str, out: str, samples: int, window: int, paper: bool, penalty_lambda: float | None,
       variant: str, extraction: str, extraction_max_tokens: int, temperature: float, progress: bool,
       **opts: Any) -> None:
    """Score every (history, candidate) row of --input with the multiturn-aware reward."""
    import asyncio

    from ..config import build_components, make_config
    from ..reward import MRConfig

    if samples < 1:
        raise ConfigError("--samples must be >= 1")
    if window < 0:
        raise ConfigError("--window must be >= 0")
    if opts.get("metrics") is not None:
        opts["metrics"] = [m.strip() for m in str(opts["metrics"]).split(",") if m.strip()]
    opts["weights"] = parse_weights(opts.get("weights"))
    config = make_config({k: v for k, v in opts.items() if v is not None}, source="command-line options")
    host = state().host
    built = build_components(host, config)
    rows = read_rows(input_path, built.task)
    mr_config = MRConfig(
        samples=samples,
        window_exchanges=window,
        weights=built.weights,
        form="paper" if paper else "weighted",
        penalty_lambda=penalty_lambda,
        assistant_variant=variant,
        assistant_system_prompt=config.assistant_system_prompt,
        assistant_temperature=temperature,
        assistant_max_tokens=config.max_tokens,
        extraction=extraction,
        extraction_model=config.judge,
        extraction_max_tokens=extraction_max_tokens,
        parity=config.parity,
    )
    summary = asyncio.run(_score(rows, built, config, mr_config, Path(out), progress))
    ok, failed = summary
    click.echo(f"scored {ok + failed} row(s) into {out}: {ok} with an MR, {failed} without (see their 'error')")
    if ok == 0:
        raise CollabHarnessError(f"no row got an MR; the reasons are in {out}")


async def _score(rows: list[dict[str, Any]], built: Any, config: Any, mr_config: Any, out: Path,
                 progress: bool) -> tuple[int, int]:
    from ..models.client import Client
    from ..reward import MRResult, score_many

    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"ok": 0, "failed": 0}
    bar: Any = None
    if progress and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[bold]mr"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True))
    with out.open("w", encoding="utf-8") as fh:

        def on_result(i: int, res: Any) -> None:
            row = rows[i]
            rec = record(row["id"], row["item"].example.id, res)
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            counts["ok" if isinstance(res, MRResult) and res.ok else "failed"] += 1
            if bar is not None:
                bar.update(task_id, advance=1)
            elif progress:
                done = counts["ok"] + counts["failed"]
                mrv = f"{rec['mr']:.4g}" if rec["mr"] is not None else "failed"
                click.echo(f"[{done}/{len(rows)}] {row['id']}: MR {mrv} ({rec['n_ok']}/{rec['n_total']} futures)",
                           err=True)

        task_id: Any = None
        if bar is not None:
            bar.start()
            task_id = bar.add_task("mr", total=len(rows))
        try:
            async with Client(use_cache=config.cache, concurrency=config.concurrency) as client:
                await score_many(
                    [r["item"] for r in rows], task=built.task, simulator=built.simulator, scorers=built.scorers,
                    assistant_model=config.assistant, client=client, config=mr_config, seed=config.seed,
                    on_result=on_result,
                )
        finally:
            if bar is not None:
                bar.stop()
    return counts["ok"], counts["failed"]
