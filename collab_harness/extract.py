"""Artefact extraction: the final document / answer / code of a whole conversation, once per conversation.

Modes:

- ``"llm"``: ask a model (our own prompt, :func:`collab_harness.prompts.extraction_messages`) to put together the
  final artefact from the whole conversation, merging revisions spread over turns and obeying the task's extraction
  requirement;
- ``"rule"``: only the task's rule-based extractor (:meth:`Task.extract_rule`), no model call — offline-friendly;
- ``"auto"`` (default): the LLM, falling back to the rule when the call fails or returns nothing usable.

:class:`ExtractionMemo` guarantees one extraction per (conversation content, example, artefact type, model, mode)
even when several metrics ask for it at the same moment: concurrent callers await the same task.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from .components import Task
from .config import OFFLINE_JUDGE
from .models.protocol import GenerationParams, ModelClient
from .prompts import EXTRACTION_NONE, EXTRACTION_SYSTEM, EXTRACTION_USER, extraction_messages
from .types import Conversation, Example

__all__ = [
    "ExtractionMemo",
    "ExtractionMode",
    "ExtractionResult",
    "conversation_hash",
    "extract_artefact",
]

ExtractionMode = Literal["auto", "llm", "rule"]

#: The prompt texts this module sends (run manifests hash module-level texts).
PROMPT_TEXTS: tuple[str, ...] = (EXTRACTION_SYSTEM, EXTRACTION_USER)

DEFAULT_EXTRACTION_PARAMS = GenerationParams(temperature=0.0, max_tokens=1024)

_FENCE = re.compile(r"^```[\w+.-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


@dataclass(frozen=True)
class ExtractionResult:
    """The extracted artefact (``text`` None when there is none) and how it was obtained.

    ``method`` is ``"llm"``, ``"rule"`` or ``"none"``; ``error`` says why the LLM path was not used or why nothing
    was found (it may be set next to a rule result, when the rule was the fallback). ``failed`` tells a broken
    extraction (the model call failed, the rule raised) from a conversation that simply holds no artefact.
    """

    text: str | None
    method: Literal["llm", "rule", "none"]
    error: str | None = None
    model: str | None = None
    failed: bool = False


def conversation_hash(conversation: Conversation) -> str:
    """Content hash of the messages (provenance excluded: the same words are the same conversation)."""
    payload = json.dumps(conversation.as_dicts(), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _clean(text: str) -> str | None:
    """The model's reply as an artefact, or None when it is empty or says there is none."""
    t = text.strip()
    m = _FENCE.match(t)
    if m:  # one enclosing code fence around the whole reply is packaging, not content
        t = m.group(1).strip()
    if not t or t.strip("`'\" .") == EXTRACTION_NONE:
        return None
    return t


def _rule(task: Task, example: Example, conversation: Conversation) -> tuple[str | None, str | None]:
    try:
        text = task.extract_rule(example, conversation)
    except Exception as e:  # a buggy rule is a failed extraction, not a crashed run
        return None, f"task {task.name!r} extract_rule raised {type(e).__name__}: {e}"
    if text is None or not str(text).strip():
        return None, f"task {task.name!r} rule found no {task.artefact_type}"
    return str(text), None


async def extract_artefact(
    conversation: Conversation,
    example: Example,
    task: Task,
    *,
    client: ModelClient | None,
    model: str | None,
    mode: ExtractionMode = "auto",
    params: GenerationParams | None = None,
    max_transcript_chars: int = 24000,
) -> ExtractionResult:
    """Extract the task's artefact from ``conversation`` (see the module docstring). Never raises for a failed model
    call or rule: the result says what happened."""
    artefact_type = task.artefact_type
    if artefact_type is None:
        return ExtractionResult(None, "none", f"task {task.name!r} has no artefact type")
    if mode not in ("auto", "llm", "rule"):
        raise ValueError(f"unknown extraction mode {mode!r}")
    if model == OFFLINE_JUDGE:
        # The offline judge has no model: artefacts come from the task's rule.
        mode = "rule"
    llm_error: str | None = None
    call_failed = False
    if mode in ("auto", "llm"):
        if client is None or not model:
            llm_error = "no extraction model / client given"
        elif not conversation.by_role("assistant"):
            llm_error = "no assistant message in the conversation"
        else:
            transcript = conversation.render()
            if len(transcript) > max_transcript_chars:
                # The final artefact lives at the end: keep the end.
                transcript = "[... earlier messages omitted ...]\n" + transcript[-max_transcript_chars:]
            msgs = extraction_messages(artefact_type, transcript, task.extraction_requirement(example))
            try:
                completion = await client.complete(
                    model, msgs, params=params or DEFAULT_EXTRACTION_PARAMS, component="extract"
                )
            except Exception as e:
                llm_error = f"extraction call failed: {type(e).__name__}: {e}"
                call_failed = True
            else:
                text = _clean(completion.text)
                if text is not None:
                    return ExtractionResult(text, "llm", None, model)
                llm_error = f"extraction model found no {artefact_type} (reply {completion.text[:120]!r})"
        if mode == "llm":
            return ExtractionResult(None, "none", llm_error, model, failed=call_failed)
    text, rule_error = _rule(task, example, conversation)
    if text is not None:
        return ExtractionResult(text, "rule", llm_error, None)
    reasons = "; ".join(r for r in (llm_error, rule_error) if r)
    rule_raised = rule_error is not None and "extract_rule raised" in rule_error
    return ExtractionResult(None, "none", reasons or f"no {artefact_type} found", model if mode != "rule" else None,
                            failed=call_failed or rule_raised)


class ExtractionMemo:
    """One extraction per key for the lifetime of the memo (an MR, a batch of MRs, a run).

    Concurrent callers of the same key await one shared task; a caller being cancelled does not cancel the
    extraction the others wait for. Failed extractions are forgotten once their waiters have them, so a retried
    sample extracts again. Bound to the event loop it is first used in.
    """

    def __init__(self) -> None:
        self._tasks: dict[tuple[str, ...], asyncio.Task[ExtractionResult]] = {}
        self.calls = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._tasks)

    async def get(
        self, key: tuple[str, ...], make: Callable[[], Awaitable[ExtractionResult]]
    ) -> ExtractionResult:
        task = self._tasks.get(key)
        if task is None:
            self.calls += 1

            async def run() -> ExtractionResult:
                return await make()

            task = asyncio.ensure_future(run())
            self._tasks[key] = task
        else:
            self.hits += 1
        result = await asyncio.shield(task)
        if result.failed and self._tasks.get(key) is task:
            # A failed extraction (the call failed, the rule raised) is not remembered: a retry must try again.
            del self._tasks[key]
        return result

    async def extract(
        self,
        conversation: Conversation,
        example: Example,
        task: Task,
        *,
        client: ModelClient | None,
        model: str | None,
        mode: ExtractionMode = "auto",
        params: GenerationParams | None = None,
    ) -> ExtractionResult:
        """:func:`extract_artefact` through the memo."""
        key = (
            conversation_hash(conversation),
            example.id,
            task.name,
            str(task.artefact_type),
            model or "",
            mode,
            repr(params) if params else "",
        )
        return await self.get(
            key,
            lambda: extract_artefact(conversation, example, task, client=client, model=model, mode=mode,
                                     params=params),
        )
