"""MR over an input of (history, candidate) rows, on the run engine (``collab-harness mr``, :func:`collab_harness.mr`).

Input rows (JSONL, one object per line)::

    {"id": "r1", "example_id": "math-chat/sample-000", "history": [{"role": "user", "content": "..."}],
     "candidate": "..."}

``example_id`` is looked up across the task's splits; ``example`` may give an inline example instead
(``{"id", "task", "prompt", "reference", "metadata"}``). ``id`` defaults to ``row-<line number>`` and must be unique.
Every row is checked before any model is called: a typo fails at once, naming the file and line.

Each row becomes one :class:`~collab_harness.records.MRRecord` in ``samples.jsonl`` of the run directory (with the
manifest and ``results.json`` like every run): MR, std, per-metric means over the same futures, every future with its
conversation, scores, reward and failures. A row whose MR failed (fewer than ``min_futures`` futures succeeded) is a
failed item, with the failing components named.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .aggregate import aggregate_mr
from .config import BuiltRun, RunConfig, build_components
from .engine import ErrorPolicy, Progress, RunEngine, RunOutcome
from .errors import ConfigError
from .extract import ExtractionMemo, conversation_hash
from .manifest import build_manifest
from .plugins import PluginHost
from .records import ComponentFailure, FutureRecord, Manifest, MRRecord, Results
from .reward import MRConfig, MRResult, multiturn_reward
from .simulate import derive_seed
from .types import Conversation, Example, Message

__all__ = ["MRRow", "mr_config_of", "read_rows", "rows_digest", "run_mr", "run_mr_async"]


@dataclass(frozen=True)
class MRRow:
    id: str
    history: Conversation
    candidate: str
    example: Example


def read_rows(path: str | Path, task: Any) -> list[MRRow]:
    """Parse and check every input row up front (one-line errors naming the file and line)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--input: file not found: {p}")
    index: dict[str, Example] | None = None
    rows: list[MRRow] = []
    seen: dict[str, int] = {}
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not valid UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    for n, line in enumerate(text.splitlines(), start=1):
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
        rid = str(raw.get("id", f"row-{n}"))
        if rid in seen:
            raise ConfigError(f"{where}: row id {rid!r} is already used on line {seen[rid]}; ids must be unique")
        seen[rid] = n
        rows.append(MRRow(id=rid, history=history, candidate=raw["candidate"], example=example))
    if not rows:
        raise ConfigError(f"--input: {p} holds no rows")
    return rows


def rows_digest(rows: Sequence[MRRow]) -> str:
    """A digest of the rows' content (what a resume must find unchanged)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps([r.id, r.example.id, conversation_hash(r.history), r.candidate]).encode())
    return h.hexdigest()


def mr_config_of(config: RunConfig, built: BuiltRun) -> MRConfig:
    return MRConfig.from_settings(config.mr, weights=built.weights,
                                  assistant_system_prompt=config.assistant_system_prompt,
                                  assistant_max_tokens=config.max_tokens, extraction_model=config.judge,
                                  parity=config.parity)


def row_seed(run_seed: int, row: MRRow, attempt: int = 1) -> int:
    """Seed of a row: from the run seed, the example and the history — not the candidate, so candidates for the same
    history are compared on the same futures (common random numbers). A retry adds its attempt number."""
    base = derive_seed(run_seed, "item", row.example.id, conversation_hash(row.history))
    return base if attempt == 1 else derive_seed(base, "attempt", attempt)


def _msgs(c: Conversation) -> list[Message]:
    return [Message(role=m.role, content=m.content) for m in c.messages]


def mr_record(row: MRRow, attempt: int, seed: int, res: MRResult) -> MRRecord:
    futures = [
        FutureRecord(index=f.index, seed=f.seed, conversation=_msgs(f.conversation), forward_start=f.forward_start,
                     exchanges=f.exchanges, terminated=f.terminated, scores=dict(f.scores), artefact=f.artefact,
                     extraction_method=f.extraction_method, extraction_error=f.extraction_error, reward=f.reward,
                     reward_parts=dict(f.reward_parts),
                     errors=[e.model_copy(update={"sample_id": row.id, "attempt": attempt}) for e in f.errors])
        for f in res.futures
    ]
    errors: list[ComponentFailure] = []
    if res.mean is None:
        errors = [e for f in futures for e in f.errors] or [
            ComponentFailure(component="mr", message=res.error or "no MR", sample_id=row.id, attempt=attempt)]
    return MRRecord(
        id=f"{row.id}#{seed}", row_id=row.id, example_id=row.example.id, attempt=attempt, seed=seed,
        history=_msgs(row.history), candidate=row.candidate, mr=res.mean, std=res.std, n_ok=res.n_ok,
        n_total=res.n_total, per_metric=res.per_metric, per_metric_n=res.per_metric_n, form=res.form,
        weights=res.weights, penalty_lambda=res.penalty_lambda, samples=res.samples,
        window_exchanges=res.window_exchanges, min_futures=res.min_futures, futures=futures, errors=errors,
    )


class MRRun:
    def __init__(self, config: RunConfig, built: BuiltRun, client: Any, mr_config: MRConfig) -> None:
        self.config, self.built, self.client, self.mr_config = config, built, client, mr_config
        self.memo = ExtractionMemo()

    def failed_record(self, row: MRRow, attempt: int, failures: list[ComponentFailure]) -> MRRecord:
        seed = row_seed(self.config.seed, row, attempt)
        return MRRecord(id=f"{row.id}#{seed}", row_id=row.id, example_id=row.example.id, attempt=attempt, seed=seed,
                        history=_msgs(row.history), candidate=row.candidate, errors=failures)

    async def process(self, row: MRRow, attempt: int) -> MRRecord:
        seed = row_seed(self.config.seed, row, attempt)
        try:
            res = await multiturn_reward(
                row.history, row.candidate, example=row.example, task=self.built.task,
                simulator=self.built.simulator, scorers=self.built.scorers, assistant_model=self.config.assistant,
                client=self.client, config=self.mr_config, seed=seed, memo=self.memo,
            )
        except ConfigError as e:  # this row's input is unusable (e.g. a history not ending with a user turn)
            return self.failed_record(row, attempt, [ComponentFailure(
                component="input", message=str(e), sample_id=row.id, attempt=attempt, category="input")])
        return mr_record(row, attempt, seed, res)


def _aggregate(manifest: Manifest, records: Sequence[Any]) -> Results:
    return aggregate_mr(manifest, [r for r in records if isinstance(r, MRRecord)])


async def run_mr_async(
    config: RunConfig,
    host: PluginHost,
    out: str | Path,
    rows: Sequence[MRRow] | str | Path,
    *,
    resume: bool = False,
    allow_changed: bool = False,
    progress: Progress | None = None,
    client: Any = None,
) -> RunOutcome[MRRecord]:
    """Score every row with MR into the run directory ``out`` (resumable, locked, like every run)."""
    from . import executors
    from .evaluation import open_client, prepare_scorers
    from .executors import run_blocking
    from .preflight import preflight

    if str(out).endswith(".jsonl"):
        raise ConfigError(f"--out {out}: MR writes a run directory (manifest.json, samples.jsonl, results.json); "
                          f"name a directory, e.g. --out {str(out)[:-6] or 'runs/mr'}")
    # Building components and reading the input is blocking work: off the caller's loop.
    built = await run_blocking("io", build_components, host, config)
    input_info: dict[str, Any] = {}
    if isinstance(rows, (str, Path)):
        p = Path(rows)
        input_info = {"path": str(p), "file_sha256": hashlib.sha256(p.read_bytes()).hexdigest()
                      if p.is_file() else None}
        rows = await run_blocking("io", read_rows, p, built.task)
    rows = list(rows)
    input_info.update({"rows": len(rows), "sha256": rows_digest(rows)})
    mr_config = mr_config_of(config, built)
    if config.executors:
        executors.configure(config.executors)
    await executors.start_scoring(config.executor, address=config.ray_address)
    await prepare_scorers(config, built)
    own = client is None
    client = client if client is not None else open_client(config)
    try:
        await preflight(config, client)
        manifest = await build_manifest(
            "mr", host, built, client=client, item_ids=[r.id for r in rows], input_info=input_info,
            mr=mr_config.model_dump(mode="json"),
            seeds={"per_row": "derive_seed(run_seed, 'item', example_id, history hash); retries add the attempt",
                   "per_future": "derive_seed(row_seed, 'future', s)"},
        )
        runner = MRRun(config, built, client, mr_config)
        engine: RunEngine[MRRow, MRRecord] = RunEngine(
            out, manifest=manifest, items=rows, item_id=lambda r: r.id, process=runner.process,
            failed_record=runner.failed_record, aggregate=_aggregate,
            policy=ErrorPolicy(config.fail_on_error, config.retry_on_error, config.sample_timeout),
            concurrency=config.concurrency, resume=resume, allow_changed=allow_changed, progress=progress,
            client=client,
        )
        return await engine.run()
    finally:
        if own:
            await client.aclose()


def run_mr(config: RunConfig, host: PluginHost, out: str | Path, rows: Sequence[MRRow] | str | Path,
           **kw: Any) -> RunOutcome[MRRecord]:
    return asyncio.run(run_mr_async(config, host, out, rows, **kw))
