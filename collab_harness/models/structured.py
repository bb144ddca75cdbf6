"""Structured output: JSON matching a pydantic schema, validated, retried with the error fed back.

The schema's JSON Schema travels with every request (``GenerationParams.json_schema``): providers that can enforce it
do (OpenAI ``json_schema``, vLLM guided decoding and llama.cpp through an endpoint, the local provider's constrained
decoding), others get JSON mode or nothing. Whatever the provider did, the reply is validated here; the JSON is
extracted leniently (code fences, prose around the object). Validation parses the JSON text itself with pydantic, so
a numeric-looking string (``"007"``) stays a string where the schema says string; a bare number where the schema
wants a string is converted from its literal text (``3.10`` -> ``"3.10"``). After ``max_attempts`` bad replies, or
when the model call fails for good, the result is a failed :class:`StructuredResult` that callers record (never an
exception, never a default value); the tokens of every bad reply are counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ModelError, validation_summary
from .protocol import ChatMessages, GenerationParams, StructuredResult, Usage

if TYPE_CHECKING:
    from .client import Client

__all__ = ["extract_json", "parse_structured", "schema_instruction", "structured_call"]

T = TypeVar("T", bound=BaseModel)


@lru_cache(maxsize=256)
def schema_instruction(schema: type[BaseModel]) -> str:
    """A compact instruction describing the expected JSON object (short enough for small models)."""
    js = schema.model_json_schema()
    props = js.get("properties", {})
    simple = all(isinstance(p, dict) and ("type" in p or "enum" in p) for p in props.values()) and "$defs" not in js
    if simple:
        fields = []
        for name, p in props.items():
            kind = " | ".join(json.dumps(e) for e in p["enum"]) if "enum" in p else p["type"]
            desc = f"  // {p['description']}" if p.get("description") else ""
            fields.append(f'  "{name}": <{kind}>{desc}')
        shape = "{\n" + ",\n".join(fields) + "\n}"
    else:
        shape = json.dumps(js, separators=(",", ":"))
    return "Reply with only a JSON object of this form, no other text:\n" + shape


def _strip_fences(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        if "```" in t:
            t = t[: t.rindex("```")]
    return t.strip()


def extract_json(text: str) -> str | None:
    """The text of the first JSON object in ``text`` (whole reply, fenced block, or embedded in prose)."""
    t = _strip_fences(text)
    decoder = json.JSONDecoder()
    try:
        obj, end = decoder.raw_decode(t)
        if isinstance(obj, dict) and not t[end:].strip():
            return t
    except ValueError:
        pass
    start = t.find("{")
    while start != -1:
        try:
            obj, end = decoder.raw_decode(t, start)
        except ValueError:
            start = t.find("{", start + 1)
            continue
        if isinstance(obj, dict):
            return t[start:end]
        start = t.find("{", start + 1)
    return None


def _at(obj: Any, loc: Sequence[int | str]) -> Any:
    for part in loc:
        obj = obj[part]
    return obj


def _set_at(obj: Any, loc: Sequence[int | str], value: Any) -> None:
    _at(obj, loc[:-1])[loc[-1]] = value


def parse_structured(schema: type[T], raw: str) -> tuple[T | None, str | None]:
    """Validate ``raw`` against ``schema``: ``(value, None)`` or ``(None, error message for the model)``."""
    text = extract_json(raw)
    if text is None:
        return None, "the reply contains no JSON object"
    try:
        return schema.model_validate_json(text), None
    except ValidationError as exc:
        errors = exc.errors()
    # Numbers given where the schema wants a string: use the number's literal text, then validate again.
    fixable = [e for e in errors if e["type"] == "string_type" and isinstance(e.get("input"), (int, float))
               and not isinstance(e.get("input"), bool)]
    if fixable and len(fixable) == len(errors):
        try:
            data = json.loads(text)
            literal = json.loads(text, parse_int=str, parse_float=str)
            for e in fixable:
                _set_at(data, e["loc"], _at(literal, e["loc"]))
            return schema.model_validate(data), None
        except (ValidationError, KeyError, IndexError, TypeError, ValueError) as exc2:
            errors = exc2.errors() if isinstance(exc2, ValidationError) else errors
    return None, validation_summary(errors, limit=5)


def _add_usage(a: Usage, b: Usage) -> Usage:
    cost = None if a.cost is None or b.cost is None else a.cost + b.cost
    return Usage(a.prompt_tokens + b.prompt_tokens, a.completion_tokens + b.completion_tokens, cost)


def _with_instruction(messages: list[dict[str, str]], instruction: str) -> list[dict[str, str]]:
    # Appended to the last user turn rather than as an extra system message: some providers reject a system
    # message that is not first, and small local models follow the closest instruction best.
    if messages and messages[-1]["role"] == "user":
        last = messages[-1]
        return [*messages[:-1], {"role": "user", "content": f"{last['content']}\n\n{instruction}"}]
    return [*messages, {"role": "user", "content": instruction}]


async def structured_call(
    client: Client,
    model: str,
    messages: ChatMessages,
    schema: type[T],
    *,
    params: GenerationParams | None = None,
    sample_index: int = 0,
    component: str = "unknown",
    max_attempts: int = 3,
) -> StructuredResult[T]:
    from .client import _normalise

    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    # The schema travels with the request: providers that can enforce it do (OpenAI json_schema, vLLM guided
    # decoding, llama.cpp, the local provider's constrained decoding); the reply is validated here either way.
    params = (params or GenerationParams()).with_schema(schema)
    base = _with_instruction(_normalise(messages), schema_instruction(schema))
    convo = base
    usage = Usage(cost=0.0)
    raw: str | None = None
    error: str | None = None
    for attempt in range(1, max_attempts + 1):
        try:
            completion = await client.complete(
                model, convo, params=params, sample_index=sample_index, component=component
            )
        except ModelError as exc:
            return StructuredResult(value=None, raw=raw, attempts=attempt, error=f"model call failed: {exc}",
                                    usage=usage)
        usage = _add_usage(usage, completion.usage if not completion.cached else Usage(cost=0.0))
        raw = completion.text
        value, error = parse_structured(schema, raw)
        if value is not None:
            return StructuredResult(value=value, raw=raw, attempts=attempt, error=None, usage=usage)
        # Only the latest bad reply is fed back: the prompt stays short for small models.
        convo = [
            *base,
            {"role": "assistant", "content": raw},
            {"role": "user", "content": f"That reply was invalid ({error}). {schema_instruction(schema)}"},
        ]
    # Every bad reply was paid for (counted by the client as an answered call); the structured call itself failed.
    client._error(component, model)
    return StructuredResult(
        value=None,
        raw=raw,
        attempts=max_attempts,
        error=f"no valid {schema.__name__} after {max_attempts} attempt(s): {error}",
        usage=usage,
    )
