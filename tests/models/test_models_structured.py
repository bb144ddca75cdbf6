"""Structured output: lenient extraction, validation, retry with feedback, typed failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from collab_harness.models.client import Client
from collab_harness.models.protocol import StructuredResult
from collab_harness.models.scripted import register_script, script_stats, unregister_script
from collab_harness.models.structured import extract_json, parse_structured, schema_instruction


class Verdict(BaseModel):
    answer: str
    score: int = Field(ge=0, le=3)
    label: Literal["yes", "no"] = "no"


MSGS = [{"role": "user", "content": "Judge this."}]


@pytest.fixture
def script() -> Iterator:
    names: list[str] = []

    def make(reply, **kw) -> str:
        name = f"s-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return register_script(name, reply, **kw)

    yield make
    for n in names:
        unregister_script(n)


def test_extract_json_variants() -> None:
    assert extract_json('{"a": 1}') == '{"a": 1}'
    assert extract_json('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert extract_json('Sure: {"a": {"b": [1, 2]}} hope that helps') == '{"a": {"b": [1, 2]}}'
    assert extract_json("{broken {\"a\": 2}") == '{"a": 2}'
    assert extract_json("no json here") is None
    assert extract_json("[1, 2]") is None


def test_numeric_strings_stay_strings() -> None:
    v, err = parse_structured(Verdict, '{"answer": "007", "score": 2}')
    assert err is None and v is not None and v.answer == "007"
    # A bare number where a string is wanted keeps its literal text, trailing zero included.
    v, err = parse_structured(Verdict, '{"answer": 3.10, "score": "2"}')
    assert err is None and v is not None and v.answer == "3.10" and v.score == 2


def test_validation_error_is_reported() -> None:
    v, err = parse_structured(Verdict, '{"answer": "x", "score": 9}')
    assert v is None and err is not None and "score" in err
    v, err = parse_structured(Verdict, "not json")
    assert v is None and err == "the reply contains no JSON object"


def test_schema_instruction_lists_fields() -> None:
    text = schema_instruction(Verdict)
    assert '"answer": <string>' in text and '"score": <integer>' in text and '"yes" | "no"' in text


async def test_valid_first_time(script) -> None:
    model = script('Here you go: {"answer": "42", "score": 3, "label": "yes"}')
    async with Client(use_cache=False) as c:
        r = await c.structured(model, MSGS, Verdict, component="judge")
    assert r.ok and r.attempts == 1 and r.value == Verdict(answer="42", score=3, label="yes")
    assert isinstance(r.value.answer, str)


async def test_retry_feeds_validation_error_back(script) -> None:
    seen: list[list[dict]] = []

    def reply(messages, params, sample_index):
        seen.append(messages)
        if len(seen) == 1:
            return '{"answer": "a", "score": 7}'
        return '{"answer": "a", "score": 1}'

    model = script(reply)
    async with Client(use_cache=False) as c:
        r = await c.structured(model, MSGS, Verdict)
    assert r.ok and r.attempts == 2 and r.value is not None and r.value.score == 1
    feedback = seen[1][-1]["content"]
    assert seen[1][-2] == {"role": "assistant", "content": '{"answer": "a", "score": 7}'}
    assert "invalid" in feedback and "score" in feedback


async def test_persistent_malformed_output_is_a_typed_failure(script) -> None:
    model = script('{"answer": "x", "score": 1}', malformed_rate=1.0)
    async with Client(use_cache=False) as c:
        r: StructuredResult[Verdict] = await c.structured(model, MSGS, Verdict, max_attempts=3, component="judge")
    assert not r.ok and r.value is None  # not a crash, not a 0
    assert r.attempts == 3 and r.error is not None and "Verdict" in r.error
    assert r.raw is not None and "not valid json" in r.raw
    assert script_stats(model).calls == 3
    assert c.usage.snapshot()["judge"]["calls"] == 3


async def test_model_failure_becomes_typed_failure(script) -> None:
    model = script("x", fatal_rate=1.0)
    async with Client(use_cache=False) as c:
        r = await c.structured(model, MSGS, Verdict)
    assert not r.ok and r.error is not None and r.error.startswith("model call failed")


async def test_structured_is_cached_on_rerun(tmp_path, script) -> None:
    model = script(['nope', '{"answer": "b", "score": 0}'])
    async with Client(cache_dir=tmp_path) as c:
        r1 = await c.structured(model, MSGS, Verdict)
    async with Client(cache_dir=tmp_path) as c2:
        r2 = await c2.structured(model, MSGS, Verdict)
        assert c2.paid_calls == 0
    assert r1.ok and r2.ok and r1.value == r2.value and r1.attempts == r2.attempts == 2
