"""Benchmark runs: simulate one whole conversation per test example, score it, on the run engine.

Evaluation is MR with W = 0 and S = 1 on a finished dialogue (SPEC §2 (d)): each example gets a conversation
simulated from an empty history (up to ``max_exchanges``) between the user simulator and the assistant, and the
finished conversation is scored by the reward module (task metric, interactivity, token amounts ...). The run
directory, resume, locking, error policy and progress are the engine's (:mod:`collab_harness.engine`); the records
are :class:`~collab_harness.records.EvalRecord`.

- Seeds: an example's seed derives from (run seed, example id, attempt), never from its position or completion order,
  so a resumed run, a run with another concurrency, and an uninterrupted run produce the same records; a retried
  attempt gets a fresh seed.
- Failures: a sample whose simulation failed is recorded with its failures (each naming the component) and *no*
  scores: scoring an unfinished conversation would turn the failure into low scores. A scorer that fails is a failed
  score, listed in the failures too. Nothing failed is ever scored 0.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .aggregate import aggregate_eval
from .config import BuiltRun, RunConfig, build_components
from .engine import ErrorPolicy, Progress, RunEngine, RunOutcome
from .errors import ConfigError
from .executors import run_blocking
from .extract import ExtractionMemo
from .manifest import build_manifest
from .plugins import PluginHost
from .records import ComponentFailure, EvalRecord, ExtractionInfo, Manifest, Results
from .scrub import scrub_text
from .types import Conversation, Example, Message

if TYPE_CHECKING:
    from .reward import ScoredConversation

__all__ = ["EvalRun", "run_evaluation", "run_evaluation_async", "sample_seed"]


_log = logging.getLogger(__name__)
_UNFREEZE_AT_EXIT = True

def sample_seed(run_seed: int, example_id: str, attempt: int = 1) -> int:
    """The seed of one example's attempt: a hash of (run seed, example id[, attempt]), independent of order."""
    key = f"{run_seed}:{example_id}" if attempt == 1 else f"{run_seed}:{example_id}:attempt{attempt}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")


def scoring_extra(cfg: RunConfig, *, temperature: float | None = None) -> dict[str, Any]:
    """What scorers may know of the run's assistant (``ScoringContext.extra``): a scorer that probes the assistant
    (over-refusal) calls it as the run does."""
    return {"assistant_model": cfg.assistant, "parity": cfg.parity,
            "assistant_system_prompt": cfg.assistant_system_prompt,
            "assistant_params": {"temperature": cfg.temperature if temperature is None else temperature,
                                 "max_tokens": cfg.max_tokens}}


def scored_outcome(scored: ScoredConversation, built: BuiltRun, ids: dict[str, Any]
                   ) -> tuple[float | None, list[ComponentFailure], ExtractionInfo | None]:
    """What a record keeps of a scored conversation: the weighted reward, every failure (``ids``, e.g. the sample
    id and attempt, added to each) and the extraction. Shared by evaluation and chat records."""
    from . import reward

    def fail(component: str, message: str, category: str = "component") -> ComponentFailure:
        return ComponentFailure(component=component, message=message[:2000], category=category, **ids)

    value, _parts, reward_errors = reward.combine_scores(scored.scores, built.scorers, built.weights, "weighted",
                                                         0.0, 0.0)
    errors = [e.model_copy(update=ids) for e in reward_errors]
    # Failed scores the reward did not need (weight 0) are failures all the same.
    named = {e.component for e in errors}
    for s in built.scorers:
        sc = scored.scores[s.name]
        label = f"{s.kind}:{s.name}"
        if not sc.ok and label not in named:
            env = sc.details.get("failure") == "environment"
            errors.append(fail(label, sc.error or "failed score", "environment" if env else "component"))
    extraction = None
    ext = scored.extraction
    if ext is not None:
        extraction = ExtractionInfo(method=ext.method, model=ext.model, error=ext.error, artefact=ext.text)
        # A conversation without an artefact is the assistant's doing (the metric scores it, e.g. "no answer
        # found"); an extraction *call* that failed is a component failure and is recorded as one.
        if ext.text is None and ext.failed:
            errors.append(fail("extract", ext.error or "extraction failed"))
    return value, errors, extraction


async def prepare_scorers(config: RunConfig, built: BuiltRun) -> None:
    """Run every scorer's one-time setup off the event loop before the first item, then move everything alive
    (imports, components, tokenizers) out of the garbage collector's scans: with the process warm, nothing a sample
    does later pays for a first use or a full collection over startup objects (a full collection took 50-70 ms here,
    stalling the loop through the GIL). Objects frozen here are still freed by reference counting; only cycles among
    them wait for the exit."""
    import gc

    extra = scoring_extra(config)
    for scorer in built.scorers:
        try:
            await run_blocking("io", scorer.prepare, extra)
        except Exception as e:  # the scorer will fail per item with its own message
            _log.warning("setup of %s failed (it will fail per item): %s", scorer.name, scrub_text(str(e)))
    gc.freeze()
    global _UNFREEZE_AT_EXIT
    if _UNFREEZE_AT_EXIT:
        # Let the interpreter's final collection see them again (extensions such as nanobind's report instances
        # still alive at exit as leaks).
        atexit.register(gc.unfreeze)
        _UNFREEZE_AT_EXIT = False


def open_client(config: RunConfig) -> Any:
    """The model client a run's settings ask for."""
    from .models.client import Client

    return Client(use_cache=config.cache, concurrency=config.concurrency, timeout_s=config.timeout,
                  endpoints=config.endpoints(), local_threads=config.local_threads)


class EvalRun:
    """``process`` and ``failed_record`` of an evaluation, for the engine."""

    def __init__(self, config: RunConfig, built: BuiltRun, client: Any) -> None:
        self.config = config
        self.built = built
        self.client = client
        self.memo = ExtractionMemo()

    def failed_record(self, ex: Example, attempt: int, failures: list[ComponentFailure]) -> EvalRecord:
        seed = sample_seed(self.config.seed, ex.id, attempt)
        return EvalRecord(id=f"{ex.id}#{seed}", example_id=ex.id, attempt=attempt, seed=seed, conversation=[],
                          errors=failures)

    async def process(self, ex: Example, attempt: int) -> EvalRecord:
        from . import reward
        from .models.protocol import GenerationParams
        from .simulate import simulate

        cfg, built = self.config, self.built
        seed = sample_seed(cfg.seed, ex.id, attempt)

        def fail(component: str, message: str, category: str = "component") -> ComponentFailure:
            return ComponentFailure(component=component, message=message[:2000], sample_id=ex.id, attempt=attempt,
                                    category=category)

        sim = await simulate(
            Conversation(), example=ex, task=built.task, simulator=built.simulator, assistant_model=cfg.assistant,
            client=self.client, max_exchanges=cfg.max_exchanges, seed=seed, sample_index=0,
            system_prompt=cfg.assistant_system_prompt,
            params=GenerationParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens),
        )
        conversation = [Message(role=m.role, content=m.content) for m in sim.conversation.messages]
        base = {"id": f"{ex.id}#{seed}", "example_id": ex.id, "attempt": attempt, "seed": seed,
                "conversation": conversation, "exchanges": sim.exchanges, "terminated": sim.terminated}
        if not sim.ok:
            return EvalRecord(**base, errors=[fail(e.component, e.message, e.category) for e in sim.errors])
        scored = await reward.score_conversation(
            sim.conversation, example=ex, task=built.task, scorers=built.scorers, client=self.client, memo=self.memo,
            forward_start=0, seed=seed, extraction="auto", extraction_model=cfg.judge,
            extra=scoring_extra(cfg),
        )
        value, errors, extraction = scored_outcome(scored, built, {"sample_id": ex.id, "attempt": attempt})
        return EvalRecord(**base, scores=dict(scored.scores), reward=value, extraction=extraction, errors=errors)


def recompute_results(run_dir: str | Path) -> Results:
    """``results.json`` of an evaluation computed from ``samples.jsonl`` and the manifest alone."""
    from .rundir import SAMPLES, read_manifest, read_records

    man = read_manifest(run_dir)
    recs = [r for r in read_records(Path(run_dir) / SAMPLES).records if isinstance(r, EvalRecord)]
    return aggregate_eval(man, recs).model_copy(update={"status": man.status,
                                                        "stopped": man.summary.get("stopped")})


def _aggregate(manifest: Manifest, records: Sequence[Any]) -> Results:
    return aggregate_eval(manifest, [r for r in records if isinstance(r, EvalRecord)])


async def run_evaluation_async(
    config: RunConfig,
    host: PluginHost,
    out: str | Path,
    *,
    resume: bool = False,
    allow_changed: bool = False,
    progress: Progress | None = None,
    client: Any = None,
) -> RunOutcome[EvalRecord]:
    """Run (or resume) a benchmark into ``out`` (see the module docstring). ``client`` overrides the model client
    (default: one honouring the config's cache, concurrency, timeout and endpoints). Runs in the caller's loop."""
    from . import executors
    from .preflight import preflight

    # Building components and loading data is blocking work: off the caller's loop (a training loop may be it).
    built = await run_blocking("io", build_components, host, config)
    examples = await run_blocking("io", built.task.examples, config.split, limit=config.limit, seed=config.seed)
    if not examples:
        raise ConfigError(f"task {built.task.name!r} has no examples in split {config.split!r}")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"task {built.task.name!r} yields duplicate example ids; records could not be told apart")
    if config.executors:
        executors.configure(config.executors)
    await executors.start_scoring(config.executor, address=config.ray_address)
    await prepare_scorers(config, built)
    own = client is None
    client = client if client is not None else open_client(config)
    try:
        await preflight(config, client)
        manifest = await build_manifest(
            "eval", host, built, client=client, item_ids=ids,
            mr={"window_exchanges": 0, "samples": 1, "form": "weighted"},
            seeds={"per_sample": "sha256(f'{run_seed}:{example_id}')[:4 bytes]; retries add ':attempt{n}'"},
        )
        runner = EvalRun(config, built, client)
        engine: RunEngine[Example, EvalRecord] = RunEngine(
            out, manifest=manifest, items=examples, item_id=lambda e: e.id, process=runner.process,
            failed_record=runner.failed_record, aggregate=_aggregate,
            policy=ErrorPolicy(config.fail_on_error, config.retry_on_error, config.sample_timeout),
            concurrency=config.concurrency, resume=resume, allow_changed=allow_changed, progress=progress,
            client=client,
        )
        return await engine.run()
    finally:
        if own:
            await client.aclose()


def run_evaluation(config: RunConfig, host: PluginHost, out: str | Path, **kw: Any) -> RunOutcome[EvalRecord]:
    """Synchronous :func:`run_evaluation_async` (for scripts; inside a running loop, await the async one)."""
    return asyncio.run(run_evaluation_async(config, host, out, **kw))
