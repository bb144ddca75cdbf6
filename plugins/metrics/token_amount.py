"""``token_amount``: how much the user had to read and type, and how many exchanges it took.

Counts over the *forward part* of the conversation (``ScoringContext.forward``): in MR that is the candidate response
and its simulated future; in evaluation (``forward_start=0``) the whole dialogue. The primary value is the number of
assistant tokens (what the leaderboard shows as k-tokens, divided by 1000).

Tokenizer (option ``tokenizer``): ``"auto"`` uses the assistant model's own tokenizer when it is known
(``ctx.extra["assistant_model"]``: ``local/...`` through the embedded provider, litellm model strings through
``litellm.token_counter``), else tiktoken ``cl100k_base``; ``"cl100k_base"`` forces tiktoken (paper-parity mode,
``ctx.extra["parity"]``, always uses it); ``"local/..."`` names a local model explicitly. The tokenizer actually used
is recorded in ``details`` so numbers from different tokenizers are never silently compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, Metric, ScorerRole, ScoringContext
from collab_harness.models.tokens import Tokenizer, get_tokenizer
from collab_harness.types import Score

__all__ = ["TokenAmount", "TokenAmountOptions", "Tokenizer", "get_tokenizer", "register_metrics"]


class TokenAmountOptions(ComponentOptions):
    tokenizer: str = Field(
        "auto",
        min_length=1,
        description='"auto" (the assistant model\'s tokenizer when known, else cl100k_base), "cl100k_base", '
        'a "local/..." model, or a litellm model string.',
    )


class TokenAmount(Metric):
    """Assistant tokens read, user tokens typed and exchanges, over the forward part of the conversation."""

    name: ClassVar[str] = "token_amount"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = "Tokens the user reads (primary) and types, and the number of exchanges."
    Options: ClassVar[type[ComponentOptions]] = TokenAmountOptions
    value_range: ClassVar[tuple[float, float]] = (0.0, math.inf)
    higher_is_better: ClassVar[bool] = False
    role: ClassVar[ScorerRole] = "efficiency"
    needs_artefact: ClassVar[bool] = False

    def prepare(self, extra: Mapping[str, Any]) -> None:
        # Loading a tokenizer (litellm's, tiktoken's, a local one) holds the GIL for up to hundreds of ms: do it
        # before the run's items are in flight. get_tokenizer caches it for the run.
        opts: Any = self.options
        get_tokenizer(opts.tokenizer, assistant_model=extra.get("assistant_model"), parity=bool(extra.get("parity")))

    def compute(self, ctx: ScoringContext) -> Score:
        opts: Any = self.options
        tok = get_tokenizer(
            opts.tokenizer,
            assistant_model=ctx.extra.get("assistant_model"),
            parity=bool(ctx.extra.get("parity")),
        )
        msgs = ctx.conversation.messages
        start = max(0, ctx.forward_start)
        assistant = user = exchanges = 0
        try:
            for i in range(start, len(msgs)):
                m = msgs[i]
                if m.role == "assistant":
                    assistant += tok.count(m.content)
                    # An assistant reply closes an exchange opened by the user message before it, which in MR is
                    # the last message of the history (just before the forward part).
                    if i > 0 and msgs[i - 1].role == "user":
                        exchanges += 1
                elif m.role == "user":
                    user += tok.count(m.content)
        except Exception as e:
            return Score.failed(self.name, f"sample {ctx.example.id!r}: tokenizer {tok.name} failed: "
                                           f"{type(e).__name__}: {e}", tokenizer=tok.name)
        details: dict[str, Any] = {"tokenizer": tok.name, "forward_start": start}
        if tok.note:
            details["tokenizer_note"] = tok.note
        return Score(
            component=self.name,
            value=float(assistant),
            values={
                "assistant_tokens": float(assistant),
                "user_tokens": float(user),
                "exchanges": float(exchanges),
                "total_tokens": float(assistant + user),
            },
            details=details,
        )


@hookimpl
def register_metrics(register: Any) -> None:
    register(TokenAmount)
