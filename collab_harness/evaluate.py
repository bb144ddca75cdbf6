"""Benchmark runs: simulate one whole conversation per test example, score it, log it, aggregate.

Evaluation is MR with W = 0 and S = 1 on a finished dialogue (SPEC §2 (d)): each example gets a conversation
simulated from an empty history (up to ``max_exchanges``) between the user simulator and the assistant, and the
finished conversation is scored by the reward module (task metric, interactivity, token amounts ...).

Run directory (see :mod:`collab_harness.rundir`): ``manifest.json`` first, then one ``samples.jsonl`` line per
finished example (appended atomically as it finishes, in completion order), and ``results.json`` at the end.

- Seeds: every example's seed derives from (run seed, example id), never from its position or completion order, so
  a resumed run, a run with another concurrency, and an uninterrupted run produce the same records.
- Errors: a sample whose simulation fails is recorded with its errors (each naming the component) and *no* scores;
  a metric that fails is a failed score, listed in the errors too. Nothing failed is ever scored 0. The run goes on;
  ``fail_on_error`` (a count if >= 1, a proportion of the examples if < 1) stops it; ``retry_on_error`` reruns a
  failed sample and keeps the errors of the earlier attempts.
- Resume: finished example ids are skipped, a torn last line is cut off, and the manifest's identity (task, split,
  seed, models, metrics ...) must match the new configuration, else the resume is refused.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import inspect
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .components import Component, Task
from .config import BuiltRun, RunConfig, build_components
from .errors import CollabHarnessError, ConfigError
from .plugins import PluginHost
from .rundir import (
    MANIFEST,
    RESULTS,
    SAMPLES,
    SCHEMA_VERSION,
    RunDirError,
    SecretScrubber,
    aggregate,
    append_sample,
    read_manifest,
    read_samples,
    repair_samples,
    write_json_atomic,
)
from .types import Conversation, Example, Score

__all__ = [
    "EvalSummary",
    "FailOnErrorStop",
    "ProgressFn",
    "evaluate",
    "evaluate_async",
    "recompute_results",
    "sample_seed",
    "task_metric_of",
]

#: Config fields that determine the records; a resume with any of them changed is refused.
IDENTITY_FIELDS = ("task", "split", "limit", "seed", "assistant", "assistant_system_prompt", "user", "judge",
                   "metrics", "weights", "max_exchanges", "max_tokens", "temperature", "parity")
_NON_TASK_METRICS = {"interactivity", "token_amount"}

ProgressFn = Callable[[int, int, Mapping[str, Any]], None]


class FailOnErrorStop(CollabHarnessError):
    """The run stopped because ``fail_on_error`` was reached; finished samples are kept, ``--resume`` continues."""


@dataclass
class EvalSummary:
    run_dir: Path
    n_examples: int
    n_done: int
    n_new: int
    n_skipped: int
    results: dict[str, Any]
    stopped: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)


def sample_seed(run_seed: int, example_id: str) -> int:
    """The seed of one example: a hash of (run seed, example id), independent of order and concurrency."""
    return int.from_bytes(hashlib.sha256(f"{run_seed}:{example_id}".encode()).digest()[:4], "big")


def task_metric_of(task: Task, scorer_names: Sequence[str]) -> str | None:
    """The task's own success metric (BLEU, accuracy, pass rate ...): its first default metric that is neither
    interactivity nor token_amount and is scored in this run; else the first such scorer."""
    for name in list(task.default_metrics) + list(scorer_names):
        if name in scorer_names and name not in _NON_TASK_METRICS:
            return name
    return None


# ---------------------------------------------------------------------------------------------- manifest


def _prompt_hashes(obj: Any) -> dict[str, str]:
    """sha256 (16 hex) of every prompt-like constant (text of >= 40 chars, or a tuple of phrases) in the module
    that defines ``obj``: a changed prompt or rubric shows up in the manifest even when the version was not bumped."""
    mod = sys.modules.get(obj.__module__ if not inspect.ismodule(obj) else obj.__name__)
    out: dict[str, str] = {}
    if mod is None:
        return out
    for name, val in sorted(vars(mod).items()):
        if name.startswith("__"):
            continue
        text: str | None = None
        if isinstance(val, str) and len(val) >= 40:
            text = val
        elif isinstance(val, tuple) and val and all(isinstance(v, str) for v in val):
            text = "\x1f".join(val)
        if text is not None:
            out[name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def _ident(c: Component) -> dict[str, Any]:
    opts = c.options.model_dump(mode="json")
    d: dict[str, Any] = {"name": c.name, "version": c.version, "options": opts}
    if "model" in opts:
        d["model"] = opts["model"]
    return d


def _resolve_model(model: str) -> dict[str, Any]:
    """The model string plus what it resolves to, found cheaply (no model load, no conversion): for the embedded
    alias the shipped GGUF file, its size and the wheel's version; for a local path the path."""
    out: dict[str, Any] = {"model": model}
    if not model.startswith("local/"):
        return out
    try:
        from importlib.metadata import version

        from .models.local import EMBEDDED_ALIASES, embedded_gguf

        ref = model.removeprefix("local/")
        if ref in EMBEDDED_ALIASES:
            module, name = EMBEDDED_ALIASES[ref]
            gguf = embedded_gguf(ref)
            out.update({"resolved": name, "gguf_file": gguf.name, "gguf_bytes": gguf.stat().st_size,
                        "package": f"{module.replace('_', '-')}=={version(module.replace('_', '-'))}"})
        else:
            out["resolved"] = ref
    except Exception as e:  # a model that cannot be described must not stop the run; the run will say why
        out["resolve_error"] = f"{type(e).__name__}: {e}"
    return out


def _judge_identity(judge: str) -> dict[str, Any]:
    from .config import OFFLINE_JUDGE

    if judge == OFFLINE_JUDGE:
        return {"model": judge, "offline": True,
                "description": "deterministic rule-based judge rubrics; artefacts extracted by the tasks' rules"}
    return _resolve_model(judge)


def build_manifest(host: PluginHost, built: BuiltRun, examples: Sequence[Example]) -> dict[str, Any]:
    from . import __version__

    cfg = built.config
    scorer_names = [s.name for s in built.scorers]
    judges = [
        {**_ident(s), "kind": s.kind} for s in built.scorers if s.kind == "judge" or "model" in s.options.model_fields
    ]
    extra_modules = []
    for modname in ("collab_harness.simulate", "collab_harness.extract", "collab_harness.reward"):
        if modname in sys.modules:
            extra_modules.append(sys.modules[modname])
    prompt_hashes: dict[str, dict[str, str]] = {}
    for c in [built.task, built.simulator, *built.scorers]:
        h = _prompt_hashes(c)
        if h:
            prompt_hashes[f"{c.kind}:{c.name}"] = h
    for m in extra_modules:
        h = _prompt_hashes(m)
        if h:
            prompt_hashes[m.__name__] = h
    if cfg.assistant_system_prompt:
        prompt_hashes["assistant_system_prompt"] = {
            "text": hashlib.sha256(cfg.assistant_system_prompt.encode()).hexdigest()[:16]
        }
    sim = _ident(built.simulator)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "evaluation",
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "harness_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version, "builtin": p.builtin}
            for p in host.plugins
        ],
        "config": cfg.model_dump(mode="json"),
        "task": {
            "name": built.task.name,
            "split": cfg.split,
            "task_metric": task_metric_of(built.task, scorer_names),
            "n_examples": len(examples),
            "example_ids": [e.id for e in examples],
            "data_source": built.task.info().data_source,
        },
        "models": {
            "assistant": _resolve_model(cfg.assistant),
            "user": _resolve_model(sim["model"]) if "model" in sim else None,
            "judge": _judge_identity(cfg.judge),
        },
        "simulator": sim,
        "judges": judges,
        "metrics": scorer_names,
        "weights": built.weights,
        "components": built.manifest_components(host),
        "prompt_hashes": prompt_hashes,
        "seeds": {"run": cfg.seed, "per_sample": "sha256(f'{run_seed}:{example_id}')[:4 bytes]"},
        "mr": {"window_exchanges": 0, "samples": 1, "form": "weighted-sum"},
        "parity": cfg.parity,
        "resumes": [],
    }


def _identity(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: config.get(k) for k in IDENTITY_FIELDS}


def _check_resume(old: Mapping[str, Any], new: Mapping[str, Any], run_dir: Path) -> None:
    a, b = _identity(old.get("config") or {}), _identity(new["config"])
    diff = [k for k in IDENTITY_FIELDS if a.get(k) != b.get(k)]
    if diff:
        parts = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff)
        raise ConfigError(f"cannot resume {run_dir}: the configuration differs from the original run ({parts}); "
                          "use another --out for a new run")
    old_ids = (old.get("task") or {}).get("example_ids")
    if old_ids is not None and list(old_ids) != new["task"]["example_ids"]:
        raise ConfigError(f"cannot resume {run_dir}: the task now yields other examples than the original run")


# ------------------------------------------------------------------------------------------------ samples


def _component_of(exc: BaseException, default: str) -> str:
    comp = getattr(exc, "component", None)
    if isinstance(comp, str) and comp:
        return comp
    model = getattr(exc, "model", None)
    return f"{default} ({model})" if isinstance(model, str) else default


def _err(component: str, message: str, attempt: int) -> dict[str, Any]:
    return {"component": component, "message": message[:2000], "attempt": attempt}


def _score_dict(s: Score) -> dict[str, Any]:
    return s.model_dump(mode="json")


@dataclass
class _Ctx:
    config: RunConfig
    built: BuiltRun
    client: Any
    memo: Any = None


class _SampleClient:
    """The shared client seen through one sample: same cache, limits and retries, plus this sample's own usage
    counters (the shared client's counters mix every sample in flight)."""

    def __init__(self, inner: Any) -> None:
        from .models.usage import UsageTracker

        self._inner = inner
        self.usage = UsageTracker()

    async def complete(self, model: str, messages: Any, *, component: str = "unknown", **kw: Any) -> Any:
        try:
            c = await self._inner.complete(model, messages, component=component, **kw)
        except Exception:
            self.usage.record_error(component, model)
            raise
        self.usage.record_success(component, model, c.usage, cached=bool(getattr(c, "cached", False)))
        return c

    async def structured(self, model: str, messages: Any, schema: Any, *, component: str = "unknown",
                         **kw: Any) -> Any:
        try:
            r = await self._inner.structured(model, messages, schema, component=component, **kw)
        except Exception:
            self.usage.record_error(component, model)
            raise
        if r.ok:
            self.usage.record_success(component, model, r.usage, cached=False)
        else:
            self.usage.record_error(component, model)
        return r

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _simulate(ctx: _Ctx, ex: Example, seed: int) -> tuple[Conversation, int, bool, list[tuple[str, str]]]:
    """One conversation from an empty history; returns (conversation, exchanges, terminated, [(component, msg)])."""
    from .models.protocol import GenerationParams
    from .simulate import simulate

    cfg = ctx.config
    res = await simulate(
        Conversation(),
        example=ex,
        task=ctx.built.task,
        simulator=ctx.built.simulator,
        assistant_model=cfg.assistant,
        client=ctx.client,
        max_exchanges=cfg.max_exchanges,
        seed=seed,
        sample_index=0,
        system_prompt=cfg.assistant_system_prompt,
        params=GenerationParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens),
    )
    errors = [(_err_component(e), _err_message(e)) for e in (getattr(res, "errors", None) or [])]
    return res.conversation, int(res.exchanges), bool(res.terminated), errors


def _err_component(e: Any) -> str:
    if isinstance(e, Mapping):
        return str(e.get("component", "simulation"))
    return str(getattr(e, "component", None) or "simulation")


def _err_message(e: Any) -> str:
    if isinstance(e, Mapping):
        return str(e.get("message", e))
    return str(getattr(e, "message", None) or e)


async def _score(
    ctx: _Ctx, ex: Example, conversation: Conversation, seed: int
) -> tuple[dict[str, Score], float | None, list[tuple[str, str]], dict[str, Any] | None]:
    """Score a finished conversation: MR with W = 0 and S = 1 over the whole dialogue (``forward_start`` 0), through
    the reward module's scoring (one shared artefact extraction, scorers isolated) and its reward combination."""
    from . import reward

    cfg = ctx.config
    scored = await reward.score_conversation(
        conversation,
        example=ex,
        task=ctx.built.task,
        scorers=ctx.built.scorers,
        client=ctx.client,
        memo=ctx.memo,
        forward_start=0,
        seed=seed,
        extraction="auto",
        extraction_model=cfg.judge,
        extra={"assistant_model": cfg.assistant, "parity": cfg.parity},
    )
    value, _parts, reward_errors = reward.combine_scores(
        scored.scores, ctx.built.scorers, ctx.built.weights, "weighted", 0.0, 0.0
    )
    errors = [(e.component, e.message) for e in reward_errors]
    ext = scored.extraction
    extraction: dict[str, Any] | None = None
    if ext is not None:
        extraction = {"method": ext.method, "model": ext.model, "error": ext.error}
        # A conversation without an artefact is the assistant's doing (the metric scores it, e.g. "no answer
        # found"); an extraction *call* that failed is a component failure and is recorded as one.
        if ext.text is None and ext.failed:
            errors.append(("extract", ext.error or "extraction failed"))
    return dict(scored.scores), value, errors, extraction


async def _run_sample(shared: _Ctx, ex: Example) -> dict[str, Any]:
    sample_client = _SampleClient(shared.client)
    ctx = _Ctx(config=shared.config, built=shared.built, client=sample_client, memo=shared.memo)
    cfg = ctx.config
    cfg_scorers = ctx.built.scorers
    seed = sample_seed(cfg.seed, ex.id)
    errors: list[dict[str, Any]] = []
    t0 = time.monotonic()
    attempts = cfg.retry_on_error + 1
    conversation: Conversation = Conversation()
    exchanges, terminated = 0, False
    scores: dict[str, Score] = {}
    reward_value: float | None = None
    extraction: dict[str, Any] | None = None
    attempt = 0
    for attempt in range(1, attempts + 1):
        scores, reward_value, extraction = {}, None, None
        n_before = len(errors)
        try:
            conversation, exchanges, terminated, sim_errors = await _simulate(ctx, ex, seed)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            errors.append(_err(_component_of(e, "simulation"), f"{type(e).__name__}: {e}", attempt))
            continue
        for comp, msg in sim_errors:
            errors.append(_err(comp, msg, attempt))
        if len(errors) > n_before:
            # The conversation is incomplete: scoring it would turn the failure into low scores.
            continue
        try:
            scores, reward_value, score_errors, extraction = await _score(ctx, ex, conversation, seed)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            scores, reward_value = {}, None
            errors.append(_err(_component_of(e, "scoring"), f"{type(e).__name__}: {e}", attempt))
            continue
        # The reward module names a failed scorer ("judge:interactivity"); every failed score is listed once.
        named = {comp for comp, _ in score_errors}
        for comp, msg in score_errors:
            errors.append(_err(comp, msg, attempt))
        kinds = {sc.name: sc.kind for sc in cfg_scorers}
        for name, sc in scores.items():
            label = f"{kinds.get(name, 'metric')}:{name}"
            if not sc.ok and label not in named:
                errors.append(_err(label, sc.error or "failed score", attempt))
        if len(errors) == n_before:
            break
    return {
        "id": f"{ex.id}#{seed}",
        "example_id": ex.id,
        "attempt": attempt,
        "conversation": conversation.as_dicts(),
        "exchanges": exchanges,
        "terminated": terminated,
        "scores": {name: _score_dict(s) for name, s in scores.items()},
        "reward": reward_value,
        "extraction": extraction,
        "errors": errors,
        "usage": sample_client.usage.snapshot(),
        "seed": seed,
        "elapsed_s": round(time.monotonic() - t0, 3),
    }


# --------------------------------------------------------------------------------------------------- runs


def _fail_threshold(value: float | None, n_total: int) -> float | None:
    if value is None:
        return None
    return value if value >= 1 else value * n_total


def recompute_results(run_dir: str | Path, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``results.json`` computed from ``samples.jsonl`` (and the manifest's metric list) alone."""
    d = Path(run_dir)
    man = read_manifest(d)
    log = read_samples(d / SAMPLES)
    res = aggregate(log.records, expected_metrics=man.get("metrics") or ())
    n_examples = (man.get("task") or {}).get("n_examples")
    return {
        "schema_version": SCHEMA_VERSION,
        "task": (man.get("task") or {}).get("name"),
        "task_metric": (man.get("task") or {}).get("task_metric"),
        "n_examples": n_examples,
        **res,
        "complete": n_examples is not None and res["n_samples"] >= n_examples,
        **(extra or {}),
    }


def _prepare_dir(run_dir: Path, manifest: dict[str, Any], resume: bool, scrub: SecretScrubber) -> set[str]:
    """Create or reopen the run directory; returns the finished example ids."""
    has_run = (run_dir / MANIFEST).exists() or (run_dir / SAMPLES).exists()
    if has_run and not resume:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not has_run:
        write_json_atomic(run_dir / MANIFEST, manifest, scrub=scrub)
        return set()
    old = read_manifest(run_dir)
    _check_resume(old, scrub(manifest), run_dir)
    log = repair_samples(run_dir / SAMPLES)
    if log.duplicates:
        raise RunDirError(f"{run_dir}/{SAMPLES} holds several records for {', '.join(log.duplicates[:5])}")
    old.setdefault("resumes", []).append(
        {"at": manifest["created_at"], "finished_before": len(log.records), "dropped_torn_line": log.torn_tail}
    )
    write_json_atomic(run_dir / MANIFEST, old, scrub=scrub)
    return log.finished_ids


async def evaluate_async(
    config: RunConfig,
    host: PluginHost,
    out: str | Path,
    *,
    resume: bool = False,
    progress: ProgressFn | None = None,
    client: Any = None,
    on_start: Callable[[int, int], None] | None = None,
) -> EvalSummary:
    """Run (or resume) a benchmark into ``out``; see the module docstring. ``client`` overrides the model client
    (default: a :class:`collab_harness.models.client.Client` honouring the config's cache and concurrency)."""
    built = build_components(host, config)
    examples = built.task.examples(config.split, limit=config.limit, seed=config.seed)
    if not examples:
        raise ConfigError(f"task {built.task.name!r} has no examples in split {config.split!r}")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"task {built.task.name!r} yields duplicate example ids; records could not be told apart")
    run_dir = Path(out)
    scrub = SecretScrubber()
    manifest = build_manifest(host, built, examples)
    finished = _prepare_dir(run_dir, manifest, resume, scrub)
    pending = [e for e in examples if e.id not in finished]
    n_total = len(examples)
    if on_start:
        on_start(len(finished), n_total)

    threshold = _fail_threshold(config.fail_on_error, n_total)
    prior = read_samples(run_dir / SAMPLES).records
    n_failed = sum(1 for r in prior if r.get("errors"))
    done = len(prior)
    new_records: list[dict[str, Any]] = []
    stopped: str | None = None

    own_client = client is None
    if own_client:
        from .models.client import Client

        client = Client(use_cache=config.cache, concurrency=config.concurrency)
    sem = asyncio.Semaphore(config.concurrency)

    async def one(ex: Example, ctx: _Ctx) -> None:
        nonlocal done, n_failed, stopped
        async with sem:
            if stopped:
                return
            rec = await _run_sample(ctx, ex)
        append_sample(run_dir / SAMPLES, rec, scrub=scrub)
        new_records.append(rec)
        done += 1
        if rec["errors"]:
            n_failed += 1
        if progress:
            progress(done, n_total, rec)
        if threshold is not None and n_failed and n_failed >= threshold and stopped is None:
            stopped = (f"fail_on_error reached: {n_failed} failed sample(s) of {done} finished "
                       f"(limit {config.fail_on_error:g})")

    async def body(c: Any) -> None:
        from .extract import ExtractionMemo

        ctx = _Ctx(config=config, built=built, client=c, memo=ExtractionMemo())
        tasks = [asyncio.create_task(one(ex, ctx)) for ex in pending]
        try:
            for fut in asyncio.as_completed(tasks):
                await fut
                if stopped:
                    break
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    if own_client and hasattr(client, "__aenter__"):
        async with client as c:
            await body(c)
    else:
        await body(client)

    results = recompute_results(run_dir, extra={"stopped": stopped} if stopped else None)
    write_json_atomic(run_dir / RESULTS, results, scrub=scrub)
    summary = EvalSummary(run_dir=run_dir, n_examples=n_total, n_done=results["n_samples"],
                          n_new=len(new_records), n_skipped=len(finished), results=results, stopped=stopped,
                          records=new_records)
    if stopped:
        raise FailOnErrorStop(f"{stopped}; finished samples are in {run_dir}/{SAMPLES}; --resume continues")
    return summary


def evaluate(
    config: RunConfig,
    host: PluginHost,
    out: str | Path,
    *,
    resume: bool = False,
    progress: ProgressFn | None = None,
    client: Any = None,
    on_start: Callable[[int, int], None] | None = None,
) -> EvalSummary:
    """Synchronous wrapper of :func:`evaluate_async`."""
    coro: Awaitable[EvalSummary] = evaluate_async(
        config, host, out, resume=resume, progress=progress, client=client, on_start=on_start
    )
    return asyncio.run(coro)  # type: ignore[arg-type]
