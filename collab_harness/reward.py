"""The multiturn-aware reward (MR, SPEC §2).

``MR(r | h)``: append the candidate response ``r`` to the history ``h`` (which ends with a user message), sample ``S``
futures of up to ``W`` exchanges each (user simulator <-> assistant, :func:`collab_harness.simulate.simulate`),
score every finished conversation with every metric / judge, combine the scores into one reward per future, and
average over the futures.

Forms of the per-future reward:

- ``"weighted"`` (default): ``R = Σ_k w_k · m_k`` over the primary values of the scorers with a non-zero weight;
- ``"paper"``: ``R = R_task + R_judge − min(λ · T, 1)`` where ``R_task = Σ w_k m_k`` over the scorers whose role is
  ``task`` (BLEU, accuracy, pass rate ...), ``R_judge = Σ w_k m_k`` over the scorers whose role is ``interaction``
  (the interactivity judge; with the default weights of 1 this is exactly the paper's form), ``T`` = the tokens the
  assistant generated in the forward part (the candidate and the future's assistant turns, as the reference counts
  them; ``token_count="all"`` adds the simulated user's) — from the ``efficiency``-role score (``token_amount``) when
  it ran, else counted with the assistant's tokenizer — and ``λ`` the task's ``penalty_lambda`` unless configured.
  Efficiency scorers' weights are not used in this form: the penalty replaces them.

Failure policy (a failure is recorded, never a silent 0, and never hidden in a mean over survivors):

- A future whose simulation failed (simulator or assistant error) is kept with the failing component and is not
  scored.
- A scorer that fails (``Score.failed``, or raises — converted to a failed score naming it) fails the future's
  reward when the reward needs it (non-zero weight), with the scorer named.
- MR needs at least ``min_futures`` successful futures (default: all S). With fewer, MR itself is a recorded failure
  (``mean`` None, ``error`` set; :meth:`MRResult.require` raises :class:`MRFailure`): averaging over the futures that
  happened to succeed would bias MR whenever failures depend on the path a future took. ``per_metric`` means are
  taken over exactly the futures behind the MR mean; ``per_metric_other`` over the futures outside it where the
  scorer still succeeded.

W = 0 scores ``h + r`` as is. Its futures would all be the same conversation, so ``S`` is forced to 1
(``MRConfig.single_future_at_w0``; switch it off when a scorer is stochastic and you want several draws).

Concurrency: everything inside one MR — the S futures, and within a future the artefact extraction, the metrics
and the judges — runs as asyncio tasks, and :func:`score_many` runs many MRs at once. Only the model layer limits
how many calls are in flight, so wall time approaches the critical path: ``W × (user + assistant)`` then
``max(extraction → metrics, judges)``. Extraction runs once per (conversation, artefact type) through a shared
:class:`~collab_harness.extract.ExtractionMemo`, whichever metrics and futures need it.

Seeds: future ``s`` of an MR uses ``derive_seed(seed, "future", s)``. In :func:`score_many` an item's seed is derived
from the run seed, the example and the history (not the candidate), so candidates for the same history are compared
on the same random draws (common random numbers).
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .components import DEFAULT_TERMINATION_SIGNAL, Judge, Metric, ScoringContext, Task, UserSimulator
from .config import DEFAULT_LOCAL_MODEL, MRSettings
from .errors import CollabHarnessError, ConfigError
from .executors import run_blocking
from .extract import ExtractionMemo, ExtractionMode, ExtractionResult, conversation_hash
from .models.protocol import GenerationParams, ModelClient
from .records import ComponentFailure
from .simulate import AssistantVariant, derive_seed, simulate
from .types import Conversation, Example, Score

__all__ = [
    "FutureError",
    "MRConfig",
    "MRFailure",
    "MRItem",
    "MRResult",
    "SampledFuture",
    "ScoredConversation",
    "combine_scores",
    "multiturn_reward",
    "resolve_weights",
    "score_conversation",
    "score_many",
]

Scorer = Metric | Judge

#: Kept for callers of the first version: a future's failures are :class:`ComponentFailure` like every failure.
FutureError = ComponentFailure


class MRFailure(CollabHarnessError):
    """No future of an MR succeeded: there is no reward to report."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MRConfig(_Frozen):
    """How MR is computed. ``weights`` None = the task's default weights (1.0 for scorers the task does not list)."""

    samples: int = Field(3, ge=1)
    window_exchanges: int = Field(2, ge=0)
    weights: dict[str, float] | None = None
    form: Literal["weighted", "paper"] = "weighted"
    #: λ of the paper form; None = the task's ``penalty_lambda``.
    penalty_lambda: float | None = Field(None, ge=0.0)
    assistant_variant: AssistantVariant = "plain"
    assistant_system_prompt: str | None = None
    assistant_temperature: float = Field(0.7, ge=0.0)
    assistant_max_tokens: int = Field(256, ge=1)
    extraction: ExtractionMode = "auto"
    #: Model for LLM artefact extraction (the judge model in the CLI).
    extraction_model: str | None = DEFAULT_LOCAL_MODEL
    extraction_max_tokens: int = Field(1024, ge=1)
    termination_signal: str = DEFAULT_TERMINATION_SIGNAL
    #: Paper-parity mode, passed to scorers in ``ScoringContext.extra["parity"]``.
    parity: bool = False
    #: With W = 0 every future is the same conversation: score it once.
    single_future_at_w0: bool = True
    #: Successful futures MR needs (None = all of them).
    min_futures: int | None = Field(None, ge=1)
    #: T of the paper form: assistant tokens of the forward part (default, as the reference) or all tokens.
    token_count: Literal["assistant", "all"] = "assistant"

    @classmethod
    def from_settings(cls, s: MRSettings, *, weights: dict[str, float] | None = None,
                      assistant_system_prompt: str | None = None, assistant_max_tokens: int = 256,
                      extraction_model: str | None = DEFAULT_LOCAL_MODEL, parity: bool = False) -> MRConfig:
        """The MR configuration of a run's settings tree (:class:`~collab_harness.config.MRSettings`)."""
        return cls(samples=s.samples, window_exchanges=s.window, weights=weights, form=s.form,
                   penalty_lambda=s.penalty_lambda, assistant_variant=s.variant,
                   assistant_system_prompt=assistant_system_prompt, assistant_temperature=s.temperature,
                   assistant_max_tokens=assistant_max_tokens, extraction=s.extraction,
                   extraction_model=extraction_model, extraction_max_tokens=s.extraction_max_tokens, parity=parity,
                   min_futures=s.min_futures, token_count=s.token_count)

    def assistant_params(self) -> GenerationParams:
        return GenerationParams(temperature=self.assistant_temperature, max_tokens=self.assistant_max_tokens)

    def extraction_params(self) -> GenerationParams:
        return GenerationParams(temperature=0.0, max_tokens=self.extraction_max_tokens)


class SampledFuture(_Frozen):
    """One sampled future: its conversation (history + candidate + simulated exchanges), scores and reward."""

    index: int
    seed: int
    conversation: Conversation
    #: Index of the candidate response in ``conversation`` (start of the forward part).
    forward_start: int
    exchanges: int
    terminated: bool
    scores: dict[str, Score] = Field(default_factory=dict)
    artefact: str | None = None
    extraction_method: str | None = None
    #: Why the LLM extraction was not used or nothing was found. Informational: a missing artefact is scored by the
    #: metrics (e.g. "no answer" = 0 accuracy); it fails the future only through a failed score.
    extraction_error: str | None = None
    reward: float | None = None
    #: Paper form: ``task``, ``judge``, ``penalty``, ``tokens``; weighted form: ``w·m`` per scorer.
    reward_parts: dict[str, float] = Field(default_factory=dict)
    errors: tuple[ComponentFailure, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reward is not None


class MRResult(_Frozen):
    """MR of one candidate response: the mean reward over its futures (``std``: their population standard deviation),
    and everything behind it. ``mean`` is None (and ``error`` set) when fewer than ``min_futures`` succeeded."""

    mean: float | None
    std: float | None
    n_ok: int
    n_total: int
    #: Mean primary value per scorer over the futures behind ``mean`` (None if there are none).
    per_metric: dict[str, float | None]
    per_metric_n: dict[str, int]
    #: Mean per scorer over the other futures (those whose reward failed) where the scorer still succeeded.
    per_metric_other: dict[str, float | None] = Field(default_factory=dict)
    min_futures: int | None = None
    form: Literal["weighted", "paper"]
    weights: dict[str, float]
    penalty_lambda: float | None = None
    samples: int
    window_exchanges: int
    seed: int
    candidate: str
    futures: tuple[SampledFuture, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.mean is not None

    def require(self) -> float:
        """The MR value, or :class:`MRFailure` when no future succeeded."""
        if self.mean is None:
            raise MRFailure(self.error or "no future succeeded")
        return self.mean

    def errors(self) -> list[str]:
        """Every recorded failure as ``future i: component: message``."""
        return [f"future {f.index}: {e.component}: {e.message}" for f in self.futures for e in f.errors]

    def failures(self) -> list[ComponentFailure]:
        """Every recorded failure of every future, plus MR's own when it has no value."""
        out = [e for f in self.futures for e in f.errors]
        if self.mean is None:
            out.append(ComponentFailure(component="mr", message=self.error or "no MR"))
        return out


@dataclass(frozen=True)
class ScoredConversation:
    """The scores of one conversation and the artefact extraction they used (None if no scorer needed one)."""

    scores: dict[str, Score]
    extraction: ExtractionResult | None


def _label(s: Scorer) -> str:
    return f"{s.kind}:{s.name}"


def resolve_weights(task: Task, scorers: Sequence[Scorer], weights: Mapping[str, float] | None) -> dict[str, float]:
    """Weight per scorer: explicit ``weights`` win, then the task's defaults, then 1.0."""
    names = [s.name for s in scorers]
    if len(set(names)) != len(names):
        raise ConfigError(f"scorer names must be unique, got {names}")
    out = {n: float(task.default_metrics.get(n, 1.0)) for n in names}
    if weights:
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ConfigError(
                f"weights given for scorers not in this run: {', '.join(unknown)} (scorers: {', '.join(names)})"
            )
        out.update({k: float(v) for k, v in weights.items()})
    return out


async def score_conversation(
    conversation: Conversation,
    *,
    example: Example,
    task: Task,
    scorers: Sequence[Scorer],
    client: ModelClient | None,
    memo: ExtractionMemo | None = None,
    forward_start: int = 0,
    seed: int = 0,
    extraction: ExtractionMode = "auto",
    extraction_model: str | None = None,
    extraction_params: GenerationParams | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ScoredConversation:
    """Score one conversation with every scorer concurrently. Scorers that need the artefact await one shared
    extraction; the others start at once. A scorer that raises becomes a failed score naming it."""
    memo = memo if memo is not None else ExtractionMemo()
    wants_artefact = task.artefact_type is not None and any(s.needs_artefact for s in scorers)

    async def artefact() -> ExtractionResult:
        return await memo.extract(conversation, example, task, client=client, model=extraction_model,
                                  mode=extraction, params=extraction_params)

    async def run(scorer: Scorer) -> Score:
        art: str | None = None
        if scorer.needs_artefact and wants_artefact:
            art = (await artefact()).text
        ctx = ScoringContext(example=example, conversation=conversation, forward_start=forward_start, artefact=art,
                             task=task, client=client, seed=seed, extra=dict(extra or {}))
        try:
            score = await scorer.score(ctx)
        except Exception as e:  # isolation: one broken scorer must not sink the others
            return Score.failed(scorer.name, f"{_label(scorer)} raised {type(e).__name__}: {e}")
        if not isinstance(score, Score):
            return Score.failed(scorer.name, f"{_label(scorer)} returned {type(score).__name__}, not a Score")
        return score

    results = await asyncio.gather(*(run(s) for s in scorers))
    ext = await artefact() if wants_artefact else None  # memoised: no second call
    return ScoredConversation(scores={s.name: r for s, r in zip(scorers, results, strict=True)}, extraction=ext)


def _count_forward_tokens(conversation: Conversation, forward_start: int, assistant_model: str, parity: bool,
                          roles: tuple[str, ...] = ("assistant",)) -> float:
    """T for the paper form when no efficiency score is available, counted like ``token_amount`` counts."""
    from .models.tokens import get_tokenizer

    texts = [m.content for m in conversation.messages[forward_start:] if m.role in roles]
    tok = get_tokenizer("auto", assistant_model=assistant_model, parity=parity)
    return float(sum(tok.count(t) for t in texts))


def combine_scores(
    scores: Mapping[str, Score],
    scorers: Sequence[Scorer],
    weights: Mapping[str, float],
    form: str,
    lam: float,
    tokens: float,
) -> tuple[float | None, dict[str, float], list[ComponentFailure]]:
    """The reward of one conversation from its scores (``form`` "weighted" or "paper"; ``lam`` and ``tokens`` are
    used by the paper form only). Returns (reward or None, parts, failures of the scorers the reward needs)."""
    errors: list[ComponentFailure] = []
    parts: dict[str, float] = {}
    task_sum = judge_sum = total = 0.0
    for s in scorers:
        w = weights.get(s.name, 0.0)
        if form == "paper" and s.role == "efficiency":
            continue  # replaced by the penalty
        if w == 0.0:
            continue
        sc = scores[s.name]
        if not sc.ok or sc.value is None:
            env = sc.details.get("failure") == "environment"
            errors.append(ComponentFailure(component=_label(s), message=sc.error or "no value",
                                           category="environment" if env else "component"))
            continue
        contribution = w * sc.value
        total += contribution
        if s.role == "interaction":
            judge_sum += contribution
        else:
            task_sum += contribution
        parts[s.name] = contribution
    if errors:
        return None, parts, errors
    if form == "weighted":
        return total, parts, []
    penalty = min(lam * tokens, 1.0)
    parts = {"task": task_sum, "judge": judge_sum, "penalty": penalty, "tokens": tokens}
    return task_sum + judge_sum - penalty, parts, []


async def multiturn_reward(
    history: Conversation,
    candidate: str,
    *,
    example: Example,
    task: Task,
    simulator: UserSimulator,
    scorers: Sequence[Scorer],
    assistant_model: str,
    client: ModelClient,
    config: MRConfig | None = None,
    seed: int = 0,
    memo: ExtractionMemo | None = None,
) -> MRResult:
    """MR of ``candidate`` after ``history`` (see the module docstring). Raises :class:`ConfigError` for invalid
    input (a history that does not end with a user message, weights for unknown scorers); component failures are
    recorded in the result, never raised."""
    cfg = config or MRConfig()
    turns = [m for m in history.messages if m.role != "system"]
    if not turns or turns[-1].role != "user":
        raise ConfigError(f"example {example.id!r}: MR needs a history that ends with a user message")
    if not scorers:
        raise ConfigError("MR needs at least one metric or judge")
    weights = resolve_weights(task, scorers, cfg.weights)
    lam = cfg.penalty_lambda if cfg.penalty_lambda is not None else float(task.penalty_lambda)
    memo = memo if memo is not None else ExtractionMemo()
    base = history.append("assistant", candidate)
    forward_start = len(history)
    W = cfg.window_exchanges
    S = 1 if (W == 0 and cfg.single_future_at_w0) else cfg.samples
    # What scorers may know of the assistant (a scorer that probes it calls it as the futures do).
    extra = {"assistant_model": assistant_model, "parity": cfg.parity,
             "assistant_system_prompt": cfg.assistant_system_prompt,
             "assistant_params": {"temperature": cfg.assistant_temperature, "max_tokens": cfg.assistant_max_tokens}}

    async def one_future(s: int) -> SampledFuture:
        fseed = derive_seed(seed, "future", s)
        conv, exchanges, terminated = base, 0, False
        if W > 0:
            sim = await simulate(
                base, example=example, task=task, simulator=simulator, assistant_model=assistant_model,
                client=client, max_exchanges=W, seed=fseed, sample_index=s, assistant_variant=cfg.assistant_variant,
                system_prompt=cfg.assistant_system_prompt, termination_signal=cfg.termination_signal,
                params=cfg.assistant_params(),
            )
            conv, exchanges, terminated = sim.conversation, sim.exchanges, sim.terminated
            if not sim.ok:
                return SampledFuture(
                    index=s, seed=fseed, conversation=conv, forward_start=forward_start, exchanges=exchanges,
                    terminated=terminated,
                    errors=tuple(ComponentFailure(component=e.component, message=e.message, sample_id=example.id,
                                                  category=e.category) for e in sim.errors),
                )
        scored = await score_conversation(
            conv, example=example, task=task, scorers=scorers, client=client, memo=memo,
            forward_start=forward_start, seed=derive_seed(fseed, "score"), extraction=cfg.extraction,
            extraction_model=cfg.extraction_model, extraction_params=cfg.extraction_params(), extra=extra,
        )

        tokens = 0.0
        if cfg.form == "paper":
            key = "assistant_tokens" if cfg.token_count == "assistant" else "total_tokens"
            eff = [sc for s in scorers if s.role == "efficiency" and (sc := scored.scores.get(s.name)) is not None
                   and sc.ok and key in sc.values]
            if eff:
                tokens = float(eff[0].values[key])
            else:
                # Counting may load a tokenizer: keep it off the event loop.
                roles = ("assistant",) if cfg.token_count == "assistant" else ("user", "assistant")
                tokens = await run_blocking("metrics", _count_forward_tokens, conv, forward_start, assistant_model,
                                            cfg.parity, roles)
        reward, parts, errors = combine_scores(scored.scores, scorers, weights, cfg.form, lam, tokens)
        ext = scored.extraction
        return SampledFuture(
            index=s, seed=fseed, conversation=conv, forward_start=forward_start, exchanges=exchanges,
            terminated=terminated, scores=scored.scores, artefact=ext.text if ext else None,
            extraction_method=ext.method if ext else None, extraction_error=ext.error if ext else None,
            reward=reward, reward_parts=parts, errors=tuple(errors),
        )

    futures = await asyncio.gather(*(one_future(s) for s in range(S)))
    return _aggregate(futures, candidate=candidate, scorers=scorers, weights=weights, cfg=cfg, lam=lam, seed=seed,
                      samples=S)


def required_futures(cfg: MRConfig, samples: int) -> int:
    """How many successful futures MR needs: ``min_futures`` (at most S), default all S."""
    return min(cfg.min_futures, samples) if cfg.min_futures is not None else samples


def _aggregate(
    futures: Sequence[SampledFuture],
    *,
    candidate: str,
    scorers: Sequence[Scorer],
    weights: dict[str, float],
    cfg: MRConfig,
    lam: float,
    seed: int,
    samples: int,
) -> MRResult:
    ok = [f for f in futures if f.reward is not None]
    others = [f for f in futures if f.reward is None]
    need = required_futures(cfg, samples)

    def means(fs: Sequence[SampledFuture]) -> tuple[dict[str, float | None], dict[str, int]]:
        m: dict[str, float | None] = {}
        n: dict[str, int] = {}
        for s in scorers:
            vals = [sc.value for f in fs if (sc := f.scores.get(s.name)) is not None and sc.ok and sc.value is not None]
            m[s.name] = statistics.fmean(vals) if vals else None
            n[s.name] = len(vals)
        return m, n

    per_metric, per_metric_n = means(ok)
    per_other, _ = means(others)
    error = None
    mean = std = None
    if len(ok) < need:
        first = [f"future {f.index}: {e.component}: {e.message}" for f in futures for e in f.errors][:3]
        error = (f"{len(ok)}/{len(futures)} futures succeeded, {need} needed (min_futures)"
                 + (": " + "; ".join(first) if first else ""))
    else:
        rewards = [float(f.reward) for f in ok if f.reward is not None]
        mean, std = statistics.fmean(rewards), statistics.pstdev(rewards)
        if not math.isfinite(mean):
            mean, std, error = None, None, f"non-finite reward {mean}"
    return MRResult(
        mean=mean, std=std, n_ok=len(ok), n_total=len(futures), per_metric=per_metric, per_metric_n=per_metric_n,
        per_metric_other=per_other, min_futures=need,
        form=cfg.form, weights=weights, penalty_lambda=lam if cfg.form == "paper" else None, samples=samples,
        window_exchanges=cfg.window_exchanges, seed=seed, candidate=candidate, futures=tuple(futures), error=error,
    )


# Kept for callers written against the first version's name.


@dataclass(frozen=True)
class MRItem:
    """One (history, candidate) to score. ``seed`` None: derived from the run seed, the example and the history."""

    history: Conversation
    candidate: str
    example: Example
    seed: int | None = None


def item_seed(seed: int, item: MRItem) -> int:
    if item.seed is not None:
        return item.seed
    return derive_seed(seed, "item", item.example.id, conversation_hash(item.history))


async def score_many(
    items: Sequence[MRItem],
    *,
    task: Task,
    simulator: UserSimulator,
    scorers: Sequence[Scorer],
    assistant_model: str,
    client: ModelClient,
    config: MRConfig | None = None,
    seed: int = 0,
    memo: ExtractionMemo | None = None,
    on_result: Callable[[int, MRResult | CollabHarnessError], None] | None = None,
) -> list[MRResult | CollabHarnessError]:
    """MR of many items at once, all concurrent (the model layer's limits bound the calls in flight). One shared
    extraction memo. An item with invalid input gets its :class:`CollabHarnessError` in its slot instead of a
    result; ``on_result(index, outcome)`` is called as each item finishes (e.g. to append it to a file)."""
    memo = memo if memo is not None else ExtractionMemo()
    out: list[MRResult | CollabHarnessError | None] = [None] * len(items)

    async def one(i: int, item: MRItem) -> None:
        res: MRResult | CollabHarnessError
        try:
            res = await multiturn_reward(
                item.history, item.candidate, example=item.example, task=task, simulator=simulator,
                scorers=scorers, assistant_model=assistant_model, client=client, config=config,
                seed=item_seed(seed, item), memo=memo,
            )
        except CollabHarnessError as e:
            res = e
        out[i] = res
        if on_result is not None:
            on_result(i, res)

    await asyncio.gather(*(one(i, it) for i, it in enumerate(items)))
    return [r for r in out if r is not None]
