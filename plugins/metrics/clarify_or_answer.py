"""``clarify_or_answer``: did the assistant ask for clarification exactly when the question was ambiguous?

For the ``abg-coqa`` task (SPEC §3): 1.0 when the assistant's first reply asks a clarifying question on an
ambiguous input, or answers without one on a clear input; 0.0 otherwise. The example's ``metadata["ambiguous"]``
(bool) is the label.

Detection rule (programmatic, no model call), applied to the reply split into sentences:

1. A *question sentence* (ending in "?") counts as clarification when it
   a. contains a clarification cue ("do you mean", "are you asking", "could you clarify", "which one", "which …",
      "are you referring", "what do you mean", "do you want to know" …), or
   b. offers alternatives ("… X or Y?"), or
   c. addresses the user ("you", "your") and is not a closing offer ("anything else?", "would you like to know
      more?", "any other questions?").
2. A non-question sentence counts when it is an explicit request to clarify ("please clarify", "please specify",
   "let me know which / whether / what you …").

Limits: rhetorical questions containing "which" or "or" ("Which was the best part? The ending.") are counted as
clarification; a clarification phrased without a question mark or any listed cue is missed; the rule is English
only. It is deliberately cheap and transparent; an LLM judge can replace it for nuanced replies.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, NamedTuple

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, Metric, ScoringContext, ValueKind
from collab_harness.types import Score

__all__ = ["ClarificationCheck", "ClarifyOrAnswerMetric", "detect_clarification"]

_CUES = re.compile(
    r"\b(do|did) you mean\b|\bare you (asking|referring|talking|thinking)\b|\bwhat do you mean\b"
    r"|\b(could|can|would) you (please )?(clarify|specify|tell me which|tell me what you|be more specific)\b"
    r"|\bwhich\b"
    r"|\bdo you want (to know|me to)\b|\bis your question\b|\bwhen you say\b|\bby [\"'“]?\w+[\"'”]? do you\b"
    r"|\bclarif(y|ication)\b",
    re.IGNORECASE,
)
_ALTERNATIVE = re.compile(r"\w[\w'\"”]*,? or (the |a |an )?\w", re.IGNORECASE)
_ADDRESSES_USER = re.compile(r"\byou(r|rs)?\b", re.IGNORECASE)
_CLOSING_OFFER = re.compile(
    r"\banything else\b|\bany (other|more|further) questions?\b|\bknow more\b|\bhelp (you )?with anything\b"
    r"|\bhope (this|that) helps\b|\bfurther (help|assistance)\b|\bdoes (this|that) (help|answer)\b",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r"\bplease (clarify|specify|let me know which|tell me which)\b|\blet me know (which|whether|what you|if you mean)\b"
    r"|\bcould you clarify\b|\bneed (a bit )?more (context|detail|information) (about|on) (which|what you)\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


class ClarificationCheck(NamedTuple):
    """Whether a reply asks for clarification, and the sentence and reason that decided it."""

    asked: bool
    sentence: str | None
    reason: str | None


def detect_clarification(reply: str) -> ClarificationCheck:
    """Apply the module's rule to one assistant reply."""
    for raw in _SENTENCE.findall(reply):
        s = raw.strip()
        if not s:
            continue
        if s.endswith("?"):
            if _CUES.search(s):
                return ClarificationCheck(True, s, "clarification cue in a question")
            if _ALTERNATIVE.search(s):
                return ClarificationCheck(True, s, "question offering alternatives")
            if _ADDRESSES_USER.search(s) and not _CLOSING_OFFER.search(s):
                return ClarificationCheck(True, s, "question addressed to the user")
        elif _REQUEST.search(s):
            return ClarificationCheck(True, s, "explicit request to clarify")
    return ClarificationCheck(False, None, None)


class ClarifyOrAnswerOptions(ComponentOptions):
    #: "first": the first assistant reply of the whole conversation (evaluation, the paper's setting);
    #: "forward": the first assistant reply of the forward part (the candidate response in MR).
    reply: Literal["first", "forward"] = "first"


class ClarifyOrAnswerMetric(Metric):
    """1.0 iff the assistant asks for clarification on ambiguous input and answers directly on clear input.

    The rule that detects a clarification request is documented in the module docstring (cues, alternatives,
    questions addressed to the user; closing offers excluded). ``details``: asked_clarification, ambiguous,
    the deciding sentence and reason.
    """

    name: ClassVar[str] = "clarify_or_answer"
    value_kind: ClassVar[ValueKind] = "proportion"
    description: ClassVar[str] = "asks for clarification iff the question is ambiguous (Abg-CoQA)"
    Options: ClassVar[type[ComponentOptions]] = ClarifyOrAnswerOptions

    def compute(self, ctx: ScoringContext) -> Score:
        opts: Any = self.options
        ambiguous = ctx.example.metadata.get("ambiguous")
        if not isinstance(ambiguous, bool):
            return Score.failed(self.name, f"example {ctx.example.id!r} has no boolean metadata 'ambiguous'")
        messages = (
            ctx.conversation.messages[ctx.forward_start :] if opts.reply == "forward" else ctx.conversation.messages
        )
        reply = next((m.content for m in messages if m.role == "assistant"), None)
        if reply is None:
            return Score.failed(self.name, f"no assistant reply to score for example {ctx.example.id!r}")
        check = detect_clarification(reply)
        return Score(
            component=self.name,
            value=1.0 if check.asked == ambiguous else 0.0,
            details={
                "asked_clarification": check.asked,
                "ambiguous": ambiguous,
                "matched_sentence": check.sentence,
                "reason": check.reason,
            },
        )


@hookimpl
def register_metrics(register: Any) -> None:
    register(ClarifyOrAnswerMetric)
