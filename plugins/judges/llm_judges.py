"""LLM judges: ``interactivity`` and ``accuracy``.

Both show the judge model the task description and the transcript, ask for a rationale and a score as JSON, and get
it through :meth:`ModelClient.structured`, which validates against a schema (score restricted to the rubric's range)
and retries a bounded number of times with the validation error fed back. A judge that still has no valid verdict —
or whose model call fails — returns ``Score.failed(...)`` with the reason and the last raw output: never an exception,
never a silent 0.

In MR the conversation holds the history (for context) and the forward part (the candidate response and its
simulated future, from ``ctx.forward_start`` on); the prompt marks the two and asks the judge to grade the forward part.

Paper-parity mode (option ``parity=True``, or ``ScoringContext.extra["parity"]``) for ``interactivity`` uses 1–3
anchors and rescales the judge's S to ``2 · (S − 2.5)``, i.e. S ∈ [1, 3] → [−3, 1]. With the option set the instance
declares ``value_range = (-3, 1)`` (an instance attribute shadowing the class default (0, 1)); when parity is switched
on per call only through ``ctx.extra``, the declared range stays (0, 1) and the score's ``details["value_range"]``
says which range applies — set the option when the declared range matters (e.g. for range checks downstream).

Offline judge: with ``model = "rules"`` (:data:`OFFLINE_JUDGE`) neither judge calls a model (``ctx.client`` may be
None); they score with the deterministic rubrics documented in :mod:`collab_harness_plugins.judges.rules` and record
``details["judge"] = "rules"`` with the evidence. Parity mode maps the rules' interactivity s ∈ [0, 1] to the 1–3
anchors ``S = 1 + 2s`` and applies the same rescale; the accuracy rules are binary in parity mode, like the LLM path.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, Judge, ScorerRole, ScoringContext
from collab_harness.executors import run_blocking
from collab_harness.models.protocol import GenerationParams, StructuredResult
from collab_harness.types import Conversation, Score

from . import rules

__all__ = [
    "OFFLINE_JUDGE",
    "AccuracyJudge",
    "AccuracyJudgeOptions",
    "BinaryVerdict",
    "GradedVerdict",
    "InteractivityJudge",
    "JudgeOptions",
    "ParityInteractivityVerdict",
    "parity_rescale",
    "register_judges",
    "render_transcript",
]

#: How much raw model output goes into a failure reason / the details.
_RAW_IN_REASON = 300
_RAW_IN_DETAILS = 2000
PARITY_RANGE: tuple[float, float] = (-3.0, 1.0)
#: The reserved ``model`` value that selects the deterministic offline rubrics (see :mod:`.rules`).
OFFLINE_JUDGE = "rules"


class JudgeOptions(ComponentOptions):
    #: A model string, or ``"rules"`` (:data:`OFFLINE_JUDGE`) for the deterministic offline rubric.
    model: str = "local/smollm2"
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=16)
    #: Structured-output attempts (first call plus retries with the validation error fed back).
    max_attempts: int = Field(3, ge=1, le=10)
    #: Paper-parity mode (see the module docstring).
    parity: bool = False
    #: The transcript is cut to this many characters (earlier context first) to fit small judge models.
    max_transcript_chars: int = Field(12000, ge=500)


# --------------------------------------------------------------------------------------------------- schemas


class _Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)
    # Rationale first: the model reasons before committing to a number.
    rationale: str = Field(description="a few sentences justifying the score")


class GradedVerdict(_Verdict):
    """Score anywhere in [0, 1]."""

    score: float = Field(ge=0.0, le=1.0)


class BinaryVerdict(_Verdict):
    """Score 0 (wrong) or 1 (right)."""

    score: float

    @field_validator("score")
    @classmethod
    def _binary(cls, v: float) -> float:
        if v not in (0.0, 1.0):
            raise ValueError(f"score must be 0 or 1, got {v}")
        return v


class ParityInteractivityVerdict(_Verdict):
    """The paper's 1–3 scale."""

    score: float = Field(ge=1.0, le=3.0)


def parity_rescale(s: float) -> float:
    """The paper's rescaling of a 1–3 interactivity rating: ``2 · (S − 2.5)`` (1 → −3, 2 → −1, 3 → 1)."""
    return 2.0 * (s - 2.5)


# ------------------------------------------------------------------------------------------------ transcript


def render_transcript(conversation: Conversation, forward_start: int, max_chars: int) -> str:
    """The transcript with the earlier context and the part to grade marked; the context is cut first when long."""

    def fmt(msgs: Any) -> str:
        return "\n\n".join(f"{m.role.upper()}: {m.content}" for m in msgs if m.role in ("user", "assistant"))

    msgs = conversation.messages
    start = max(0, min(forward_start, len(msgs)))
    history, forward = fmt(msgs[:start]), fmt(msgs[start:])
    if len(forward) > max_chars:
        # Keep the end of the forward part: it holds the latest (final) answer.
        forward = "[... start of this part omitted ...]\n" + forward[-max_chars:]
        history = ""
    budget = max_chars - len(forward)
    if history and len(history) > budget:
        history = ("[... earlier messages omitted ...]\n" + history[-budget:]) if budget > 200 else ""
    if start == 0 or not history:
        return f"<<<TRANSCRIPT\n{forward}\nTRANSCRIPT>>>"
    return (
        f"<<<EARLIER CONTEXT (for reference only; do not grade)\n{history}\nEARLIER CONTEXT>>>\n\n"
        f"<<<PART TO GRADE\n{forward}\nPART TO GRADE>>>"
    )


def _focus(ctx: ScoringContext) -> str:
    if ctx.forward_start > 0:
        return ("The transcript is split into earlier context and the part to grade. Read the context to understand "
                "the situation, but base your score only on the assistant's messages in the part to grade.")
    return "Grade the assistant over the whole transcript."


# ----------------------------------------------------------------------------------------------------- base


class _LLMJudge(Judge):
    Options: ClassVar[type[ComponentOptions]] = JudgeOptions
    #: Both judges have the documented deterministic rubric of :mod:`.rules` for the offline mode.
    offline: ClassVar[bool] = True

    def _parity(self, ctx: ScoringContext) -> bool:
        return bool(getattr(self.options, "parity", False) or ctx.extra.get("parity", False))

    def _schema(self, parity: bool) -> type[_Verdict]:
        raise NotImplementedError

    def _messages(self, ctx: ScoringContext, parity: bool) -> list[dict[str, str]] | str:
        """The judge prompt, or a string saying why this conversation cannot be judged."""
        raise NotImplementedError

    def _value(self, raw_score: float, parity: bool) -> float:
        return raw_score

    def _range(self, parity: bool) -> tuple[float, float]:
        return (0.0, 1.0)

    def _rules_score(self, ctx: ScoringContext, parity: bool) -> Score:
        """The offline rubric's score (no model call)."""
        raise NotImplementedError

    async def score(self, ctx: ScoringContext) -> Score:
        opts: Any = self.options
        parity = self._parity(ctx)
        if opts.model == OFFLINE_JUDGE:
            # The rubric is CPU work (tokenising, matching): on the metrics executor, off the event loop.
            return await run_blocking("metrics", self._rules_score, ctx, parity)
        if ctx.client is None:
            return Score.failed(self.name, "no model client in the scoring context", model=opts.model)
        prompt = self._messages(ctx, parity)
        if isinstance(prompt, str):
            return Score.failed(self.name, prompt, model=opts.model)
        params = GenerationParams(temperature=opts.temperature, max_tokens=opts.max_tokens, seed=ctx.seed)
        try:
            result: StructuredResult[Any] = await ctx.client.structured(
                opts.model, prompt, self._schema(parity), params=params, component=self.name,
                max_attempts=opts.max_attempts,
            )
        except Exception as e:  # a judge must never take the run down: a failed call is a failed score
            return Score.failed(self.name, f"judge model call failed: {type(e).__name__}: {e}", model=opts.model)
        raw = result.raw or ""
        if result.value is None:
            return Score.failed(
                self.name,
                f"no valid verdict from {opts.model} ({result.attempts} attempt(s)): "
                f"{result.error or 'unknown error'}; last raw output: {raw[:_RAW_IN_REASON]!r}",
                model=opts.model, attempts=result.attempts, raw=raw[:_RAW_IN_DETAILS],
            )
        verdict = result.value
        value = self._value(float(verdict.score), parity)
        lo, hi = self._range(parity)
        if not lo - 1e-9 <= value <= hi + 1e-9:  # the schema should make this impossible; keep the guarantee anyway
            return Score.failed(self.name, f"value {value} outside [{lo}, {hi}]", model=opts.model, raw=raw[:300])
        return Score(
            component=self.name,
            value=value,
            details={
                "rationale": verdict.rationale,
                "raw_score": float(verdict.score),
                "model": opts.model,
                "attempts": result.attempts,
                "raw": raw[:_RAW_IN_DETAILS],
                "parity": parity,
                "value_range": [lo, hi],
                "forward_start": ctx.forward_start,
            },
        )


def _has_assistant(conversation: Conversation, start: int) -> bool:
    return any(m.role == "assistant" for m in conversation.messages[start:])


# --------------------------------------------------------------------------------------------- interactivity

_INTERACTIVITY_RUBRIC = """\
Score how well the assistant collaborates: does it find out what the user actually needs and move the user toward
their goal, instead of guessing or answering passively?

- 1.0: asks the right clarifying and follow-up questions at the right moments (about what is genuinely unclear or
  missing), uses the answers, and actively moves the user toward the goal.
- 0.5: asks some relevant questions or checks in, but misses key ones, asks unnecessary ones, or does not use the
  answers well.
- 0.0: no engagement: ignores ambiguity, never asks or checks anything, or drifts away from the user's goal.
Values in between are allowed when the assistant falls between two descriptions."""

_INTERACTIVITY_RUBRIC_PARITY = """\
Rate how interactive and engaging the assistant is on a 1-3 scale:

- 3 (highly interactive): asks specific clarifying questions about the unclear parts, checks its understanding,
  and guides the user effectively toward the goal.
- 2 (moderately interactive): some engagement and relevant questions, but misses important ones or is not
  consistently proactive.
- 1 (low interactivity): little or no engagement; answers without checking what the user needs.
Values in between are allowed."""


class InteractivityJudge(_LLMJudge):
    """How well the assistant asks clarifying / follow-up questions and steers toward the user's goal (0–1)."""

    name: ClassVar[str] = "interactivity"
    role: ClassVar[ScorerRole] = "interaction"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "LLM judge: clarifying questions and guidance toward the goal (0-1; parity: 1-3)."

    def __init__(self, options: Any = None, /, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        if getattr(self.options, "parity", False):
            # Instance attribute shadowing the ClassVar default (0, 1): parity scores live in [-3, 1].
            setattr(self, "value_range", PARITY_RANGE)  # noqa: B010 (a plain assignment trips mypy's ClassVar rule)

    def _schema(self, parity: bool) -> type[_Verdict]:
        return ParityInteractivityVerdict if parity else GradedVerdict

    def _value(self, raw_score: float, parity: bool) -> float:
        return parity_rescale(raw_score) if parity else raw_score

    def _range(self, parity: bool) -> tuple[float, float]:
        return PARITY_RANGE if parity else (0.0, 1.0)

    def _messages(self, ctx: ScoringContext, parity: bool) -> list[dict[str, str]] | str:
        if not _has_assistant(ctx.conversation, ctx.forward_start):
            return "no assistant message to judge in the conversation"
        opts: Any = self.options
        task_desc = ctx.task.task_desc if ctx.task is not None and ctx.task.task_desc else "general assistance"
        scale = "a number from 1 to 3" if parity else "a number from 0 to 1"
        system = (
            "You are a careful evaluator of conversations between a user and an AI assistant.\n\n"
            + (_INTERACTIVITY_RUBRIC_PARITY if parity else _INTERACTIVITY_RUBRIC)
            + f"\n\nReply with only a JSON object, no other text: a short rationale, then the score ({scale}). "
            + 'Example: {"rationale": "It asked about the audience but never about the length.", "score": '
            + ("2}" if parity else "0.5}")
        )
        user = (
            f"The user wants help with: {task_desc}.\n{_focus(ctx)}\n\n"
            + render_transcript(ctx.conversation, ctx.forward_start, opts.max_transcript_chars)
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _rules_score(self, ctx: ScoringContext, parity: bool) -> Score:
        result = rules.interactivity_rules(ctx.example.prompt, ctx.conversation.messages, ctx.forward_start)
        if isinstance(result, str):
            return Score.failed(self.name, result, judge=OFFLINE_JUDGE, model=OFFLINE_JUDGE)
        raw = 1.0 + 2.0 * result.value if parity else result.value
        lo, hi = self._range(parity)
        return Score(
            component=self.name,
            value=self._value(raw, parity),
            details={
                "judge": OFFLINE_JUDGE,
                "model": OFFLINE_JUDGE,
                "rationale": result.rationale,
                "raw_score": raw,
                "rules_score": result.value,
                "components": result.components,
                "evidence": result.details,
                "parity": parity,
                "value_range": [lo, hi],
                "forward_start": ctx.forward_start,
            },
        )


# -------------------------------------------------------------------------------------------------- accuracy


class AccuracyJudgeOptions(JudgeOptions):
    #: Partial credit in [0, 1] instead of 0/1 (ignored in parity mode, which is always 0/1).
    graded: bool = False
    #: Offline judge only: in binary mode an answer counts as right when its token F1 with the reference reaches this.
    rules_f1_threshold: float = Field(0.8, gt=0.0, le=1.0)


class AccuracyJudge(_LLMJudge):
    """Whether the assistant's final answer agrees with the reference (0/1, or graded 0–1), for tasks without a
    programmatic checker. Reads the extracted artefact when there is one, else the transcript's final answer."""

    name: ClassVar[str] = "accuracy"
    #: The task metric of tasks without a programmatic check.
    role: ClassVar[ScorerRole] = "task"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "LLM judge: final answer agrees with the reference (0/1)."
    Options: ClassVar[type[ComponentOptions]] = AccuracyJudgeOptions
    needs_artefact: ClassVar[bool] = True

    def _graded(self, parity: bool) -> bool:
        return bool(getattr(self.options, "graded", False)) and not parity

    def _schema(self, parity: bool) -> type[_Verdict]:
        return GradedVerdict if self._graded(parity) else BinaryVerdict

    def _messages(self, ctx: ScoringContext, parity: bool) -> list[dict[str, str]] | str:
        reference = ctx.example.reference.strip()
        if not reference:
            return f"example {ctx.example.id!r} has no reference to judge against"
        artefact = (ctx.artefact or "").strip()
        if not artefact and not _has_assistant(ctx.conversation, ctx.forward_start):
            return "no assistant answer to judge in the conversation"
        opts: Any = self.options
        task_desc = ctx.task.task_desc if ctx.task is not None and ctx.task.task_desc else "general assistance"
        if self._graded(parity):
            scale = ("a number from 0 to 1: 1 = fully agrees with the reference, 0 = wrong or missing, in between = "
                     "partly right")
        else:
            scale = "1 if the final answer agrees with the reference, else 0"
        system = (
            "You are a strict grader. Compare the assistant's final answer with the reference solution. Judge the "
            "substance (the result, the facts, the meaning), not the wording or formatting; equivalent forms count as "
            "agreeing. An answer that is missing, hedged between options, or contradicts the reference does not agree."
            f"\n\nReply with only a JSON object, no other text: a short rationale, then the score ({scale}). "
            'Example: {"rationale": "The final answer gives 12, the reference 12.", "score": 1}'
        )
        parts = [f"Task type: {task_desc}.", f"<<<REFERENCE\n{reference}\nREFERENCE>>>"]
        if artefact:
            parts.append(f"<<<FINAL ANSWER (extracted from the conversation)\n{artefact}\nFINAL ANSWER>>>")
            parts.append("The conversation, for context:")
        else:
            parts.append(f"{_focus(ctx)} Find the assistant's final answer (its latest one) in the transcript.")
        parts.append(render_transcript(ctx.conversation, ctx.forward_start, opts.max_transcript_chars))
        return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]

    def _rules_score(self, ctx: ScoringContext, parity: bool) -> Score:
        opts: Any = self.options
        reference = ctx.example.reference.strip()
        if not reference:
            return Score.failed(self.name, f"example {ctx.example.id!r} has no reference to judge against",
                                judge=OFFLINE_JUDGE, model=OFFLINE_JUDGE)
        answer = (ctx.artefact or "").strip()
        source = "artefact"
        if not answer:
            replies = [m for m in ctx.conversation.messages[ctx.forward_start:] if m.role == "assistant"]
            if not replies or not replies[-1].content.strip():
                return Score.failed(self.name, "no assistant answer to judge in the conversation",
                                    judge=OFFLINE_JUDGE, model=OFFLINE_JUDGE)
            answer, source = replies[-1].content, "last_assistant_message"
        graded = self._graded(parity)
        result = rules.accuracy_rules(answer, reference, graded=graded, threshold=opts.rules_f1_threshold)
        return Score(
            component=self.name,
            value=result.value,
            details={
                "judge": OFFLINE_JUDGE,
                "model": OFFLINE_JUDGE,
                "rationale": result.rationale,
                "raw_score": result.value,
                "answer_source": source,
                "evidence": result.details,
                "parity": parity,
                "value_range": [0.0, 1.0],
                "forward_start": ctx.forward_start,
            },
        )


@hookimpl
def register_judges(register: Any) -> None:
    register(InteractivityJudge)
    register(AccuracyJudge)
