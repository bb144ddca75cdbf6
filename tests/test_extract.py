"""Artefact extraction: LLM path, rule fallback, rule-only mode, and the one-extraction-per-conversation memo."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collab_harness.extract import ExtractionMemo, conversation_hash, extract_artefact
from collab_harness.models.client import Client
from collab_harness.models.scripted import script_stats
from collab_harness.prompts import EXTRACTION_NONE
from collab_harness.testing import ToyTask
from collab_harness.types import Conversation, Example

TASK = ToyTask()
EXAMPLE = Example(id="toy/x", task="toy", prompt="p", reference="r",
                  metadata={"extraction_requirement": "Start with the word TITLE.", "words": ["a"]})
CONV = Conversation.of(
    ("user", "write a poem"),
    ("assistant", "Draft: waves and salt"),
    ("user", "add gulls"),
    ("assistant", "Final: waves, salt and gulls"),
)


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    async with Client(cache_dir=tmp_path / "cache") as c:
        yield c


async def test_llm_extraction_sees_whole_conversation_and_requirement(
    client: Any, scripted_model: Callable[..., str]
) -> None:
    seen: list[list[dict[str, Any]]] = []

    def spy(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
        seen.append(messages)
        return "```text\nTITLE waves, salt and gulls\n```"

    model = scripted_model(spy)
    res = await extract_artefact(CONV, EXAMPLE, TASK, client=client, model=model)
    assert res.text == "TITLE waves, salt and gulls"  # the enclosing fence is packaging
    assert res.method == "llm" and res.error is None and res.model == model
    prompt = " ".join(m["content"] for m in seen[0])
    assert "Draft: waves and salt" in prompt and "Final: waves, salt and gulls" in prompt
    assert "Start with the word TITLE." in prompt and "document" in prompt


async def test_auto_falls_back_to_rule_on_failure(client: Any, scripted_model: Callable[..., str]) -> None:
    broken = scripted_model("x", fatal_rate=1.0)
    res = await extract_artefact(CONV, EXAMPLE, TASK, client=client, model=broken)
    assert res.method == "rule" and res.text == "Final: waves, salt and gulls"
    assert res.error is not None and "extraction call failed" in res.error


async def test_auto_falls_back_to_rule_when_model_finds_nothing(
    client: Any, scripted_model: Callable[..., str]
) -> None:
    none = scripted_model(EXTRACTION_NONE)
    res = await extract_artefact(CONV, EXAMPLE, TASK, client=client, model=none)
    assert res.method == "rule" and res.text == "Final: waves, salt and gulls"
    # llm mode does not fall back
    res2 = await extract_artefact(CONV, EXAMPLE, TASK, client=client, model=none, mode="llm")
    assert res2.text is None and res2.method == "none" and res2.error


async def test_rule_mode_calls_no_model(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("should not be used")
    res = await extract_artefact(CONV, EXAMPLE, TASK, client=client, model=model, mode="rule")
    assert res.method == "rule" and res.text == "Final: waves, salt and gulls"
    assert script_stats(model).calls == 0


async def test_nothing_found_is_reported_not_empty_string(client: Any) -> None:
    conv = Conversation.of(("user", "hi"))
    res = await extract_artefact(conv, EXAMPLE, TASK, client=client, model=None)
    assert res.text is None and res.method == "none" and res.error


async def test_memo_shares_one_extraction_between_concurrent_callers(
    client: Any, scripted_model: Callable[..., str]
) -> None:
    model = scripted_model("the document", latency_s=0.05)
    memo = ExtractionMemo()
    results = await asyncio.gather(
        *(memo.extract(CONV, EXAMPLE, TASK, client=client, model=model) for _ in range(5))
    )
    assert {r.text for r in results} == {"the document"}
    assert script_stats(model).calls == 1 and memo.calls == 1 and memo.hits == 4
    # A different conversation is a different extraction.
    other = CONV.append("user", "and one more line")
    await memo.extract(other, EXAMPLE, TASK, client=client, model=model)
    assert script_stats(model).calls == 2 and len(memo) == 2


async def test_memo_survives_a_cancelled_caller(client: Any, scripted_model: Callable[..., str]) -> None:
    model = scripted_model("doc", latency_s=0.1)
    memo = ExtractionMemo()
    first = asyncio.ensure_future(memo.extract(CONV, EXAMPLE, TASK, client=client, model=model))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(memo.extract(CONV, EXAMPLE, TASK, client=client, model=model))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second).text == "doc"
    assert script_stats(model).calls == 1


def test_conversation_hash_ignores_provenance() -> None:
    a = Conversation.of(("user", "x"), model="m1")
    b = Conversation.of(("user", "x"), model="m2")
    assert conversation_hash(a) == conversation_hash(b)
    assert conversation_hash(a) != conversation_hash(a.append("assistant", "y"))


async def test_a_failed_extraction_is_not_remembered(client: Any, scripted_model: Callable[..., str]) -> None:
    """A retried sample must extract again: the memo forgets failures (the call failed), keeps successes."""
    state = {"fail": True}

    def flaky(messages: Any, params: Any, sample_index: int) -> str:
        if state["fail"]:
            raise RuntimeError("provider bug")  # a permanent error: not retried by the client
        return "the document"

    model = scripted_model(flaky)
    memo = ExtractionMemo()
    first = await memo.extract(CONV, EXAMPLE, TASK, client=client, model=model, mode="llm")
    assert first.failed and first.text is None and len(memo) == 0
    state["fail"] = False
    second = await memo.extract(CONV, EXAMPLE, TASK, client=client, model=model, mode="llm")
    assert second.text == "the document" and len(memo) == 1
    third = await memo.extract(CONV, EXAMPLE, TASK, client=client, model=model, mode="llm")
    assert third is second and memo.hits == 1


async def test_a_retried_attempt_gets_fresh_cache_keys(tmp_path: Path, scripted_model: Callable[..., str]) -> None:
    """The attempt number of the call scope enters the cache key: a retry is not served the failed reply again."""
    from collab_harness.models.context import call_scope

    model = scripted_model("same text")
    async with Client(cache_dir=tmp_path / "c") as c:
        msgs = [{"role": "user", "content": "hi"}]
        with call_scope(attempt=1):
            await c.complete(model, msgs)
            assert (await c.complete(model, msgs)).cached
        with call_scope(attempt=2) as scope:
            r = await c.complete(model, msgs)
        assert not r.cached and script_stats(model).calls == 2
        assert scope.usage.snapshot()["unknown"]["provider_calls"] == 1  # counted on the attempt's own usage too
