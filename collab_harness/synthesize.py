"""Synthetic multi-turn training data ranked by MR (SPEC §5): ``collab-harness synth`` and :func:`synthesize`.

Per example (all examples concurrently, under the model layer's limits; a turn of one example never waits for
another example):

1. the user simulator opens the conversation;
2. at each turn, N candidate responses are sampled concurrently — a share of them with the proactive-collaborator
   instruction, temperatures cycled from the settings, each with its own seed;
3. every candidate is scored by MR **concurrently and with common random numbers**: all candidates of a turn use the
   same future seeds (the turn's ``mr_seed``), so their MR difference is not sampling noise;
4. every candidate is kept with its futures and per-metric scores; the best MR continues the conversation (ties: the
   lower index);
5. the next user message is taken from the chosen candidate's futures (rule ``synth.next_user``: ``sample``, the
   first future in seed order that reached a user message — an unbiased draw of the user's reaction, paid for
   already; ``best``; or ``lowest-nonterminated``, the older reference's rule), or from the simulator when no future
   has one (W = 0);
6. the conversation stops at ``max_turns`` or when the user ends it (the terminating message is kept).

A candidate whose generation or MR failed is kept with the reason and cannot be chosen; a turn where no candidate has
an MR fails the example (recorded with the component), never a silent pick. Each finished conversation is one
:class:`~collab_harness.records.SynthRecord`, appended atomically by the run engine (resume, lock, error policy,
progress, manifest as for every run): a kill -9 loses only the conversations in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .aggregate import aggregate_synth
from .components import SimulationContext
from .config import BuiltRun, RunConfig, build_components
from .engine import ErrorPolicy, Progress, RunEngine, RunOutcome
from .errors import ConfigError
from .evaluation import prepare_scorers, sample_seed
from .extract import ExtractionMemo
from .manifest import build_manifest
from .models.protocol import GenerationParams
from .mr_run import mr_config_of
from .plugins import PluginHost
from .records import ComponentFailure, FutureRecord, Manifest, Results, SynthCandidate, SynthRecord, SynthTurn
from .reward import MRConfig, MRResult, SampledFuture, multiturn_reward
from .simulate import assistant_messages, derive_seed
from .types import Conversation, Example, Message

__all__ = ["SynthRun", "candidate_plan", "next_user_message", "run_synthesis", "run_synthesis_async"]


def candidate_plan(n: int, proactive_share: float, temperatures: Sequence[float]) -> list[tuple[str, float]]:
    """(variant, temperature) of each of ``n`` candidates: the first ``round(n * share)`` proactive, temperatures
    cycled."""
    n_pro = round(n * proactive_share)
    return [("proactive" if i < n_pro else "plain", float(temperatures[i % len(temperatures)])) for i in range(n)]


def _first_user(f: SampledFuture) -> str | None:
    msgs = f.conversation.messages
    i = f.forward_start + 1
    return msgs[i].content if i < len(msgs) and msgs[i].role == "user" else None


def next_user_message(res: MRResult, rule: str, termination_signal: str) -> tuple[str, int] | None:
    """The next user message from the chosen candidate's futures by ``rule``, and the future it came from; None
    when no future reached a user message."""
    options = [(f, msg) for f in sorted(res.futures, key=lambda f: f.index) if (msg := _first_user(f)) is not None]
    if not options:
        return None
    if rule == "sample":
        f, msg = options[0]
    elif rule == "best":
        f, msg = max(options, key=lambda o: (o[0].reward if o[0].reward is not None else float("-inf"), -o[0].index))
    elif rule == "lowest-nonterminated":
        going = [o for o in options if termination_signal not in o[1]] or options
        f, msg = min(going, key=lambda o: (o[0].reward if o[0].reward is not None else float("inf"), o[0].index))
    else:
        raise ConfigError(f"unknown next_user rule {rule!r}")
    return msg, f.index


def _future_record(f: SampledFuture) -> FutureRecord:
    return FutureRecord(
        index=f.index, seed=f.seed, conversation=[Message(role=m.role, content=m.content)
                                                  for m in f.conversation.messages],
        forward_start=f.forward_start, exchanges=f.exchanges, terminated=f.terminated, scores=dict(f.scores),
        artefact=f.artefact, extraction_method=f.extraction_method, extraction_error=f.extraction_error,
        reward=f.reward, reward_parts=dict(f.reward_parts), errors=list(f.errors))


class SynthRun:
    """``process`` and ``failed_record`` of a synthesis run, for the engine."""

    def __init__(self, config: RunConfig, built: BuiltRun, client: Any, mr_config: MRConfig) -> None:
        self.config, self.built, self.client, self.mr_config = config, built, client, mr_config
        self.memo = ExtractionMemo()

    def failed_record(self, ex: Example, attempt: int, failures: list[ComponentFailure]) -> SynthRecord:
        seed = sample_seed(self.config.seed, ex.id, attempt)
        return SynthRecord(id=f"{ex.id}#{seed}", example_id=ex.id, task=self.built.task.name, attempt=attempt,
                           seed=seed, errors=failures, stop_reason="failed")

    async def _user(self, ex: Example, conv: Conversation, seed: int, index: int) -> tuple[str, bool]:
        sim = self.built.simulator
        turn = await sim.respond(SimulationContext(
            example=ex, conversation=conv, task=self.built.task, client=self.client,
            seed=derive_seed(seed, "user", index), sample_index=0,
            termination_signal=self.mr_config.termination_signal))
        ended = turn.terminate or self.mr_config.termination_signal in turn.message
        return turn.message, ended

    async def _candidate(self, conv: Conversation, seed: int, turn: int, i: int, variant: str,
                         temperature: float) -> tuple[str | None, int, str | None]:
        cseed = derive_seed(seed, "turn", turn, "candidate", i)
        msgs = assistant_messages(conv, variant=variant,  # type: ignore[arg-type]
                                  system_prompt=self.config.assistant_system_prompt)
        try:
            c = await self.client.complete(
                self.config.assistant, msgs, sample_index=i, component="candidate",
                params=GenerationParams(temperature=temperature, max_tokens=self.config.max_tokens, seed=cseed))
        except Exception as e:  # the model layer already retried: the candidate is kept with the reason
            return None, cseed, f"{type(e).__name__}: {e}"
        return c.text, cseed, None

    async def process(self, ex: Example, attempt: int) -> SynthRecord:
        cfg, s = self.config, self.config.synth
        seed = sample_seed(cfg.seed, ex.id, attempt)
        base = {"id": f"{ex.id}#{seed}", "example_id": ex.id, "task": self.built.task.name, "attempt": attempt,
                "seed": seed}

        def fail(component: str, message: str, category: str = "component") -> ComponentFailure:
            return ComponentFailure(component=component, message=message[:2000], sample_id=ex.id, attempt=attempt,
                                    category=category)

        user_label = f"user:{self.built.simulator.name}"
        conv = Conversation()
        try:
            opening, ended = await self._user(ex, conv, seed, 0)
        except Exception as e:
            return SynthRecord(**base, errors=[fail(user_label, f"{type(e).__name__}: {e}",
                                                    str(getattr(e, "category", "component")))],
                               stop_reason="failed")
        conv = conv.append("user", opening)
        turns: list[SynthTurn] = []
        errors: list[ComponentFailure] = []
        stop = "terminated" if ended else "max_turns"
        plan = candidate_plan(s.candidates, s.proactive_share, s.temperatures)
        for t in range(0 if ended else s.max_turns):
            prefix = len(conv)
            sampled = await asyncio.gather(*(self._candidate(conv, seed, t, i, v, temp)
                                             for i, (v, temp) in enumerate(plan)))
            mr_seed = derive_seed(seed, "turn", t, "mr")

            async def score(text: str | None, history: Conversation, mr_seed: int) -> MRResult | None:
                if text is None:
                    return None
                return await multiturn_reward(history, text, example=ex, task=self.built.task,
                                              simulator=self.built.simulator, scorers=self.built.scorers,
                                              assistant_model=cfg.assistant, client=self.client,
                                              config=self.mr_config, seed=mr_seed, memo=self.memo)

            # Every candidate on the same future seeds (common random numbers), all at once.
            results = await asyncio.gather(*(score(text, conv, mr_seed) for text, _, _ in sampled))
            cands = []
            for i, ((text, cseed, err), res, (variant, temp)) in enumerate(zip(sampled, results, plan, strict=True)):
                if res is None:
                    cands.append(SynthCandidate(index=i, text=text, variant=variant, temperature=temp, seed=cseed,
                                                error=f"candidate: {err}"))
                    continue
                cands.append(SynthCandidate(
                    index=i, text=text, variant=variant, temperature=temp, seed=cseed, mr=res.mean, std=res.std,
                    n_ok=res.n_ok, n_total=res.n_total, per_metric=res.per_metric,
                    futures=[_future_record(f) for f in res.futures], error=res.error))
            scored = [c for c in cands if c.mr is not None]
            if not scored:
                reasons = "; ".join(f"candidate {c.index}: {c.error}" for c in cands)[:1500]
                component = "candidate" if all(c.text is None for c in cands) else "mr"
                errors.append(fail(component, f"turn {t}: no candidate has an MR ({reasons})"))
                turns.append(SynthTurn(index=t, prefix=prefix, mr_seed=mr_seed, candidates=cands))
                stop = "failed"
                break
            best = max(scored, key=lambda c: (c.mr, -c.index))
            conv = conv.append("assistant", str(best.text))
            turn = SynthTurn(index=t, prefix=prefix, mr_seed=mr_seed, candidates=cands, chosen=best.index)
            if t == s.max_turns - 1:
                turns.append(turn)
                break
            picked = next_user_message(results[best.index], s.next_user,  # type: ignore[arg-type]
                                       self.mr_config.termination_signal)
            try:
                if picked is not None:
                    msg, fidx = picked
                    source = f"future {fidx} of candidate {best.index}"
                    ended = self.mr_config.termination_signal in msg
                else:
                    msg, ended = await self._user(ex, conv, seed, t + 1)
                    source = "simulator"
            except Exception as e:
                errors.append(fail(user_label, f"turn {t}: {type(e).__name__}: {e}",
                                   str(getattr(e, "category", "component"))))
                turns.append(turn)
                stop = "failed"
                break
            turns.append(turn.model_copy(update={"next_user": msg, "next_user_source": source,
                                                 "terminated": ended}))
            conv = conv.append("user", msg)
            if ended:
                stop = "terminated"
                break
        return SynthRecord(**base, conversation=[Message(role=m.role, content=m.content) for m in conv.messages],
                           turns=turns, terminated=stop == "terminated", stop_reason=stop, errors=errors)


def _aggregate(manifest: Manifest, records: Sequence[Any]) -> Results:
    return aggregate_synth(manifest, [r for r in records if isinstance(r, SynthRecord)])


async def run_synthesis_async(
    config: RunConfig,
    host: PluginHost,
    out: str | Path,
    *,
    resume: bool = False,
    allow_changed: bool = False,
    progress: Progress | None = None,
    client: Any = None,
) -> RunOutcome[SynthRecord]:
    """Synthesise one conversation per example of ``config.split`` into the run directory ``out``."""
    from . import executors
    from .evaluation import open_client
    from .executors import run_blocking
    from .preflight import preflight

    built = await run_blocking("io", build_components, host, config)
    examples = await run_blocking("io", built.task.examples, config.split, limit=config.limit, seed=config.seed)
    if not examples:
        raise ConfigError(f"task {built.task.name!r} has no examples in split {config.split!r}")
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
            "synth", host, built, client=client, item_ids=[e.id for e in examples],
            mr=mr_config.model_dump(mode="json"),
            seeds={"per_example": "sha256(f'{run_seed}:{example_id}')[:4 bytes]; retries add ':attempt{n}'",
                   "candidate": "derive_seed(example_seed, 'turn', t, 'candidate', i)",
                   "mr (shared by the candidates of a turn)": "derive_seed(example_seed, 'turn', t, 'mr')"},
        )
        runner = SynthRun(config, built, client, mr_config)
        engine: RunEngine[Example, SynthRecord] = RunEngine(
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


def run_synthesis(config: RunConfig, host: PluginHost, out: str | Path, **kw: Any) -> RunOutcome[SynthRecord]:
    return asyncio.run(run_synthesis_async(config, host, out, **kw))
