"""The multiturn-aware reward (MR, SPEC §2).

``MR(r | h)``: append the candidate response ``r`` to the history ``h`` (which ends with a user message), sample ``S``
futures of up to ``W`` exchanges each (user simulator <-> assistant, :func:`collab_harness.simulate.simulate`),
score every finished conversation with every metric / judge, combine the scores into one reward per future, and
average over the futures.

Forms of the per-future reward:

- ``"weighted"`` (default): ``R = Σ_k w_k · m_k`` over the primary values of the scorers with a non-zero weight;
- ``"paper"``: ``R = R_task + R_judge − min(λ · T, 1)`` where ``R_task = Σ w_k m_k`` over the task metrics (scorers
  that are neither judges nor ``token_amount``), ``R_judge = Σ w_k m_k`` over the judges (with the default weights of
  1 this is exactly the paper's form), ``T`` = total tokens (assistant + user) of the forward part — from the
  ``token_amount`` score when it ran, else counted with the assistant's tokenizer — and ``λ`` the task's
  ``penalty_lambda`` unless configured. ``token_amount``'s weight is not used in this form: the penalty replaces it.

Failure policy (a failure is recorded, never a silent 0):

- A future whose simulation failed (simulator or assistant error) is kept with the failing component and is not
  scored.
- A scorer that fails (``Score.failed``, or raises — converted to a failed score naming it) is excluded from that
  metric's mean. The future's reward is computed only if every scorer the reward needs succeeded; otherwise the
  future counts as failed, with the scorer named.
- MR is the mean over the futures that succeeded; ``n_ok`` / ``n_total`` say how many. If none succeeded, ``mean``
  is None and ``error`` is set (:meth:`MRResult.require` raises :class:`MRFailure`).

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
from .config import DEFAULT_LOCAL_MODEL
from .errors import CollabHarnessError, ConfigError
from .extract import ExtractionMemo, ExtractionMode, ExtractionResult, conversation_hash
from .models.protocol import GenerationParams, ModelClient
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
TOKEN_METRIC = "token_amount"


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

    def assistant_params(self) -> GenerationParams:
        return GenerationParams(temperature=self.assistant_temperature, max_tokens=self.assistant_max_tokens)

    def extraction_params(self) -> GenerationParams:
        return GenerationParams(temperature=0.0, max_tokens=self.extraction_max_tokens)


class FutureError(_Frozen):
    """A component that failed in a future (``assistant``, ``user:<simulator>``, ``metric:<name>``,
    ``judge:<name>``, ``extract``)."""

    component: str
    message: str


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
    errors: tuple[FutureError, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reward is not None


class MRResult(_Frozen):
    """MR of one candidate response: the mean reward over the futures that succeeded (``std``: their population
    standard deviation), and everything behind it."""

    mean: float | None
    std: float | None
    n_ok: int
    n_total: int
    #: Mean primary value per scorer over the futures where it succeeded (None if it never did).
    per_metric: dict[str, float | None]
    per_metric_n: dict[str, int]
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


def _count_forward_tokens(conversation: Conversation, forward_start: int, assistant_model: str, parity: bool) -> float:
    """T for the paper form when no ``token_amount`` score is available, counted like ``token_amount`` counts."""
    from .models.tokens import get_tokenizer

    texts = [m.content for m in conversation.messages[forward_start:] if m.role in ("user", "assistant")]
    tok = get_tokenizer("auto", assistant_model=assistant_model, parity=parity)
    return float(sum(tok.count(t) for t in texts))


def combine_scores(
    scores: Mapping[str, Score],
    scorers: Sequence[Scorer],
    weights: Mapping[str, float],
    form: str,
    lam: float,
    tokens: float,
) -> tuple[float | None, dict[str, float], list[FutureError]]:
    """The reward of one conversation from its scores (``form`` "weighted" or "paper"; ``lam`` and ``tokens`` are
    used by the paper form only). Returns (reward or None, parts, failures of the scorers the reward needs)."""
    errors: list[FutureError] = []
    parts: dict[str, float] = {}
    task_sum = judge_sum = total = 0.0
    for s in scorers:
        w = weights.get(s.name, 0.0)
        if form == "paper" and s.name == TOKEN_METRIC:
            continue  # replaced by the penalty
        if w == 0.0:
            continue
        sc = scores[s.name]
        if not sc.ok or sc.value is None:
            errors.append(FutureError(component=_label(s), message=sc.error or "no value"))
            continue
        contribution = w * sc.value
        total += contribution
        if isinstance(s, Judge):
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
    extra = {"assistant_model": assistant_model, "parity": cfg.parity}

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
                    errors=tuple(FutureError(component=e.component, message=e.message) for e in sim.errors),
                )
        scored = await score_conversation(
            conv, example=example, task=task, scorers=scorers, client=client, memo=memo,
            forward_start=forward_start, seed=derive_seed(fseed, "score"), extraction=cfg.extraction,
            extraction_model=cfg.extraction_model, extraction_params=cfg.extraction_params(), extra=extra,
        )

        tokens = 0.0
        if cfg.form == "paper":
            ta = scored.scores.get(TOKEN_METRIC)
            if ta is not None and ta.ok and "total_tokens" in ta.values:
                tokens = float(ta.values["total_tokens"])
            else:
                # Counting may load a tokenizer: keep it off the event loop.
                tokens = await asyncio.to_thread(
                    _count_forward_tokens, conv, forward_start, assistant_model, cfg.parity
                )
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
    rewards = [f.reward for f in futures if f.reward is not None]
    per_metric: dict[str, float | None] = {}
    per_metric_n: dict[str, int] = {}
    for s in scorers:
        vals = [
            sc.value for f in futures if (sc := f.scores.get(s.name)) is not None and sc.ok and sc.value is not None
        ]
        per_metric[s.name] = statistics.fmean(vals) if vals else None
        per_metric_n[s.name] = len(vals)
    error = None
    if not rewards:
        first = [f"future {f.index}: {e.component}: {e.message}" for f in futures for e in f.errors][:3]
        error = f"no future succeeded (0/{len(futures)})" + (": " + "; ".join(first) if first else "")
    mean = statistics.fmean(rewards) if rewards else None
    std = statistics.pstdev(rewards) if rewards else None
    if mean is not None and not math.isfinite(mean):
        mean, std, error = None, None, f"non-finite reward {mean}"
    return MRResult(
        mean=mean, std=std, n_ok=len(rewards), n_total=len(futures), per_metric=per_metric, per_metric_n=per_metric_n,
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
