"""Scripted model doubles for tests and benchmarks: ``scripted/<name>``.

A script replies with a fixed string, a sequence of strings, or a function, after an optional latency, and can
inject faults at seeded rates. Scripted calls go through the real client (cache, limits, retries, usage), which is
what makes tests of those parts real. :func:`script_stats` reports how many provider calls a script received and
how many were in flight at once.

Reply rule for a sequence: the reply is ``reply[n]`` where ``n`` is the number of assistant messages already in the
conversation (clamped to the last item). It depends only on the request, so it is deterministic under concurrency.

Fault rule: each provider call draws one number from the script's own ``random.Random(seed)``; faults are
therefore reproducible for a given call order, and a retry draws a fresh number (so transient faults can clear).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from ._provider import ProviderError, ProviderReply, ProviderRequest
from .protocol import GenerationParams, Usage

__all__ = [
    "ScriptStats",
    "ScriptedProvider",
    "register_script",
    "reset_script_stats",
    "script_stats",
    "unregister_script",
]

ReplyFn = Callable[[list[dict[str, Any]], GenerationParams, int], str]
#: A latency that depends on the request (same request, same latency: reproducible heavy tails in benchmarks).
LatencyFn = Callable[[list[dict[str, Any]], GenerationParams, int], float]
Reply = Union[str, Sequence[str], ReplyFn]

MALFORMED_TEXT = "Sure! Here is the answer: {not valid json"


@dataclass
class ScriptStats:
    calls: int = 0  # provider calls received (each retry counts)
    in_flight: int = 0
    max_in_flight: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {"error": 0, "timeout": 0, "malformed": 0, "fatal": 0})


@dataclass
class _Script:
    name: str
    reply: Reply
    latency_s: float | LatencyFn
    error_rate: float
    timeout_rate: float
    malformed_rate: float
    fatal_rate: float
    rng: random.Random
    stats: ScriptStats = field(default_factory=ScriptStats)
    lock: threading.Lock = field(default_factory=threading.Lock)


_SCRIPTS: dict[str, _Script] = {}
_REGISTRY_LOCK = threading.Lock()


def _echo(messages: list[dict[str, Any]], params: GenerationParams, sample_index: int) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def register_script(
    name: str,
    reply: Reply,
    *,
    latency_s: float | LatencyFn = 0.0,
    error_rate: float = 0.0,
    timeout_rate: float = 0.0,
    malformed_rate: float = 0.0,
    fatal_rate: float = 0.0,
    seed: int = 0,
) -> str:
    """Register (or replace) a script and return its model string ``"scripted/<name>"``.

    ``latency_s``: seconds per call, or a function of the request returning them.

    ``error_rate``: transient server errors (retried); ``timeout_rate``: simulated timeouts (retried);
    ``malformed_rate``: replies that are not valid JSON; ``fatal_rate``: permanent errors (never retried).
    """
    if "/" in name or not name:
        raise ValueError(f"script name must be non-empty and contain no '/': {name!r}")
    for label, rate in (("error_rate", error_rate), ("timeout_rate", timeout_rate),
                        ("malformed_rate", malformed_rate), ("fatal_rate", fatal_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{label} must be in [0, 1], got {rate}")
    if error_rate + timeout_rate + fatal_rate > 1.0:
        raise ValueError("error_rate + timeout_rate + fatal_rate must not exceed 1")
    if not isinstance(reply, str) and not callable(reply) and len(reply) == 0:
        raise ValueError("a reply sequence must not be empty")
    with _REGISTRY_LOCK:
        _SCRIPTS[name] = _Script(
            name=name, reply=reply, latency_s=latency_s, error_rate=error_rate, timeout_rate=timeout_rate,
            malformed_rate=malformed_rate, fatal_rate=fatal_rate, rng=random.Random(seed),
        )
    return f"scripted/{name}"


def unregister_script(name: str) -> None:
    with _REGISTRY_LOCK:
        if name != "echo":
            _SCRIPTS.pop(name, None)


def script_stats(name: str) -> ScriptStats:
    """A copy of the script's counters (``name`` with or without the ``scripted/`` prefix)."""
    s = _get(name.removeprefix("scripted/"))
    with s.lock:
        return ScriptStats(s.stats.calls, s.stats.in_flight, s.stats.max_in_flight, dict(s.stats.faults))


def reset_script_stats(name: str) -> None:
    s = _get(name.removeprefix("scripted/"))
    with s.lock:
        s.stats = ScriptStats()


def _get(name: str) -> _Script:
    with _REGISTRY_LOCK:
        s = _SCRIPTS.get(name)
    if s is None:
        raise ProviderError(f"no script registered under {name!r} (use register_script)", transient=False)
    return s


register_script("echo", _echo)


def _pick(reply: Reply, messages: list[dict[str, Any]], params: GenerationParams, sample_index: int) -> str:
    if isinstance(reply, str):
        return reply
    if callable(reply):
        return str(reply(messages, params, sample_index))
    n = sum(1 for m in messages if m.get("role") == "assistant")
    return reply[min(n, len(reply) - 1)]


def _count_tokens(text: str) -> int:
    return len(text.split())


class ScriptedProvider:
    """Serves every ``scripted/<name>`` model string from the module-level script registry."""

    async def generate(self, request: ProviderRequest) -> ProviderReply:
        name = request.model.removeprefix("scripted/")
        s = _get(name)
        with s.lock:
            s.stats.calls += 1
            s.stats.in_flight += 1
            s.stats.max_in_flight = max(s.stats.max_in_flight, s.stats.in_flight)
            draw = s.rng.random()
            malformed_draw = s.rng.random()
        try:
            delay = (s.latency_s([dict(m) for m in request.messages], request.params, request.sample_index)
                     if callable(s.latency_s) else s.latency_s)
            if delay > 0:
                await asyncio.sleep(delay)
            fault = None
            if draw < s.error_rate:
                fault = "error"
            elif draw < s.error_rate + s.timeout_rate:
                fault = "timeout"
            elif draw < s.error_rate + s.timeout_rate + s.fatal_rate:
                fault = "fatal"
            if fault is not None:
                with s.lock:
                    s.stats.faults[fault] += 1
                if fault == "error":
                    raise ProviderError(f"scripted/{name}: injected 503 service unavailable", transient=True)
                if fault == "timeout":
                    raise ProviderError(f"scripted/{name}: injected timeout", transient=True)
                raise ProviderError(f"scripted/{name}: injected authentication error", transient=False)
            messages = [dict(m) for m in request.messages]
            if malformed_draw < s.malformed_rate:
                with s.lock:
                    s.stats.faults["malformed"] += 1
                text = MALFORMED_TEXT
            else:
                text = _pick(s.reply, messages, request.params, request.sample_index)
            text = _apply_limits(text, request.params)
            prompt = sum(_count_tokens(str(m.get("content", ""))) for m in messages)
            return ProviderReply(
                text=text,
                usage=Usage(prompt_tokens=prompt, completion_tokens=_count_tokens(text), cost=0.0),
                finish_reason="stop",
            )
        finally:
            with s.lock:
                s.stats.in_flight -= 1

    async def aclose(self) -> None:
        return None


def _apply_limits(text: str, params: GenerationParams) -> str:
    # Honour stop strings like a real provider would, so callers relying on them are exercised.
    for stop in params.stop:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text

