"""The notebook API: MR of candidate responses and a whole evaluation, each in one call, with the CLI's defaults.

>>> import collab_harness as ch
>>> results = ch.mr("math-chat", example="math-chat/sample-000", samples=1, window=1,
...                 history=[{"role": "user", "content": "Can you help me with a probability question?"}],
...                 candidates=["Sure! What is the question?", "The answer is 1/2."])
>>> [r.mean for r in results]

Settings are the run config's options (``assistant``, ``user``, ``judge``, ``seed``, ``max_tokens`` ...) and the MR
settings (``samples``, ``window``, ``form``, ``min_futures`` ...), all optional; no model flags = the embedded,
offline defaults, exactly like ``collab-harness mr``. Every candidate of one call is scored on the same futures'
seeds (common random numbers), concurrently. The sync functions work in a plain script and inside a running event
loop (a notebook); inside async code, await :func:`amr` / :func:`aevaluate`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .config import MRSettings, RunConfig, build_components, make_config
from .engine import Progress, RunOutcome
from .errors import ConfigError
from .plugins import PluginHost
from .records import EvalRecord
from .reward import MRResult
from .types import Conversation, Example

__all__ = ["aevaluate", "amr", "asynthesize", "evaluate", "mr", "synthesize"]

T = TypeVar("T")

_HOST: PluginHost | None = None


def _host(host: PluginHost | None) -> PluginHost:
    global _HOST
    if host is not None:
        return host
    if _HOST is None:
        from .plugins import build_plugin_manager

        _HOST = build_plugin_manager()
    return _HOST


def _config(task: str | Mapping[str, Any], settings: Mapping[str, Any]) -> RunConfig:
    top: dict[str, Any] = {"task": task}
    mr: dict[str, Any] = {}
    for k, v in settings.items():
        if k in MRSettings.model_fields and k not in RunConfig.model_fields:
            mr[k] = v
        else:
            top[k] = v
    if mr:
        top["mr"] = {**dict(top.get("mr") or {}), **mr}
    return make_config(top, source="keyword arguments")


def _sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from a running loop (a notebook cell): run on a private loop in a worker thread.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="collab-api") as pool:
        return pool.submit(asyncio.run, coro).result()


async def amr(
    task: str | Mapping[str, Any],
    *,
    history: Sequence[Mapping[str, str]] | Conversation,
    candidates: Sequence[str],
    example: str | Example | Mapping[str, Any],
    host: PluginHost | None = None,
    client: Any = None,
    **settings: Any,
) -> list[MRResult]:
    """MR of each candidate after ``history`` (see the module docstring)."""
    from .evaluation import open_client
    from .extract import ExtractionMemo
    from .mr_run import MRRow, mr_config_of, row_seed
    from .preflight import preflight
    from .reward import multiturn_reward

    if isinstance(candidates, str):
        raise ConfigError("candidates must be a list of strings, not one string")
    config = _config(task, settings)
    built = build_components(_host(host), config)
    hist = history if isinstance(history, Conversation) else Conversation.of(*history)
    if isinstance(example, Example):
        ex = example
    elif isinstance(example, Mapping):
        ex = Example.model_validate(dict(example))
    else:
        index = {e.id: e for split in built.task.splits() for e in built.task.load(split)}
        if example not in index:
            raise ConfigError(f"task {built.task.name!r} has no example {example!r}")
        ex = index[example]
    cfg = mr_config_of(config, built)
    seed = row_seed(config.seed, MRRow(id="-", history=hist, candidate="", example=ex))
    own = client is None
    client = client if client is not None else open_client(config)
    try:
        await preflight(config, client)
        memo = ExtractionMemo()
        return list(await asyncio.gather(*(
            multiturn_reward(hist, c, example=ex, task=built.task, simulator=built.simulator, scorers=built.scorers,
                             assistant_model=config.assistant, client=client, config=cfg, seed=seed, memo=memo)
            for c in candidates)))
    finally:
        if own:
            await client.aclose()


def mr(task: str | Mapping[str, Any], **kwargs: Any) -> list[MRResult]:
    """Synchronous :func:`amr`."""
    return _sync(amr(task, **kwargs))


async def aevaluate(
    task: str | Mapping[str, Any],
    *,
    out: str | Path,
    resume: bool = False,
    allow_changed: bool = False,
    host: PluginHost | None = None,
    client: Any = None,
    progress: Progress | None = None,
    **settings: Any,
) -> RunOutcome[EvalRecord]:
    """Evaluate on a task's test split into the run directory ``out`` (``limit``, ``assistant``, ``user``, ``judge``,
    ``max_exchanges`` ... as keyword settings); returns the outcome (``.results``, ``.manifest``, new records)."""
    from .evaluation import run_evaluation_async

    config = _config(task, settings)
    return await run_evaluation_async(config, _host(host), out, resume=resume, allow_changed=allow_changed,
                                      progress=progress, client=client)


def evaluate(task: str | Mapping[str, Any], **kwargs: Any) -> RunOutcome[EvalRecord]:
    """Synchronous :func:`aevaluate`."""
    return _sync(aevaluate(task, **kwargs))


async def asynthesize(
    task: str | Mapping[str, Any],
    *,
    out: str | Path,
    resume: bool = False,
    allow_changed: bool = False,
    host: PluginHost | None = None,
    client: Any = None,
    progress: Progress | None = None,
    **settings: Any,
) -> RunOutcome[Any]:
    """Synthesise training conversations into ``out`` (split ``train`` unless ``split=`` says otherwise; synthesis
    settings as keywords: ``candidates``, ``max_turns``, ``proactive_share``, ``temperatures``, ``next_user``)."""
    from .config import SynthSettings
    from .synthesize import run_synthesis_async

    synth = {k: settings.pop(k) for k in list(settings) if k in SynthSettings.model_fields
             and k not in RunConfig.model_fields and k not in MRSettings.model_fields}
    settings.setdefault("split", "train")
    if synth:
        settings["synth"] = {**dict(settings.get("synth") or {}), **synth}
    config = _config(task, settings)
    return await run_synthesis_async(config, _host(host), out, resume=resume, allow_changed=allow_changed,
                                     progress=progress, client=client)


def synthesize(task: str | Mapping[str, Any], **kwargs: Any) -> RunOutcome[Any]:
    """Synchronous :func:`asynthesize`."""
    return _sync(asynthesize(task, **kwargs))
