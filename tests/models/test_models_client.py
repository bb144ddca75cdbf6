"""The model client on scripted providers: cache, limits, retries, single-flight, usage, litellm error classes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collab_harness.errors import ModelError
from collab_harness.models.cache import CACHE_FILE, ResponseCache, cache_key
from collab_harness.models.client import Client
from collab_harness.models.protocol import Completion, GenerationParams, Usage
from collab_harness.models.scripted import register_script, script_stats, unregister_script

MSGS = [{"role": "user", "content": "Tell me something."}]


@pytest.fixture
def script() -> Iterator:
    names: list[str] = []

    def make(reply, **kw) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return register_script(name, reply, **kw)

    yield make
    for n in names:
        unregister_script(n)


def counter_reply():
    """A reply that differs on every provider call, so a cache hit is recognisable by its text."""
    n = {"i": 0}

    def reply(messages, params, sample_index):
        n["i"] += 1
        return f"reply {n['i']} sample {sample_index}"

    return reply


async def test_cache_distinct_samples_and_identical_rerun(tmp_path: Path, script) -> None:
    model = script(counter_reply())
    params = GenerationParams(temperature=1.0, max_tokens=32)
    async with Client(cache_dir=tmp_path) as c:
        first = [await c.complete(model, MSGS, params=params, sample_index=i) for i in range(4)]
        assert len({r.text for r in first}) == 4  # distinct samples are distinct calls
        assert c.paid_calls == 4 and not any(r.cached for r in first)
        # A different generation parameter is a different request.
        other = await c.complete(model, MSGS, params=params.with_(max_tokens=33), sample_index=0)
        assert other.text not in {r.text for r in first}
    # An identical re-run in a fresh client (new process would be the same) makes zero provider calls.
    async with Client(cache_dir=tmp_path) as c2:
        again = [await c2.complete(model, MSGS, params=params, sample_index=i) for i in range(4)]
        assert [r.text for r in again] == [r.text for r in first]
        assert all(r.cached for r in again)
        assert c2.paid_calls == 0
        snap = c2.usage.snapshot()["unknown"]
        assert snap["calls"] == 4 and snap["cache_hits"] == 4 and snap["provider_calls"] == 0
    assert script_stats(model).calls == 5


async def test_no_cache_calls_provider_every_time(tmp_path: Path, script) -> None:
    model = script(counter_reply())
    async with Client(cache_dir=tmp_path, use_cache=False) as c:
        a = await c.complete(model, MSGS)
        b = await c.complete(model, MSGS)
    assert a.text != b.text and c.paid_calls == 2
    assert not (tmp_path / CACHE_FILE).exists()


async def test_identical_concurrent_requests_share_one_call(tmp_path: Path, script) -> None:
    model = script(counter_reply(), latency_s=0.05)
    async with Client(cache_dir=tmp_path) as c:
        out = await asyncio.gather(*(c.complete(model, MSGS, component="x") for _ in range(5)))
    assert len({r.text for r in out}) == 1
    assert script_stats(model).calls == 1
    assert c.usage.snapshot()["x"]["cache_hits"] == 4


async def test_concurrency_limit_never_exceeded(tmp_path: Path, script) -> None:
    model = script("ok", latency_s=0.02)
    async with Client(cache_dir=tmp_path, concurrency={"scripted": 3}) as c:
        await asyncio.gather(*(c.complete(model, MSGS, sample_index=i) for i in range(30)))
    stats = script_stats(model)
    assert stats.calls == 30
    assert stats.max_in_flight == 3  # reached, never exceeded


async def test_int_concurrency_applies_to_scripted(script) -> None:
    model = script("ok", latency_s=0.02)
    async with Client(use_cache=False, concurrency=2) as c:
        await asyncio.gather(*(c.complete(model, MSGS, sample_index=i) for i in range(10)))
    assert script_stats(model).max_in_flight == 2


async def test_transient_faults_are_retried(script) -> None:
    model = script("fine", error_rate=0.3, timeout_rate=0.2, seed=7)
    async with Client(use_cache=False, max_retries=10, backoff_base_s=0.001) as c:
        out = await asyncio.gather(*(c.complete(model, MSGS, sample_index=i, component="sim") for i in range(40)))
    assert all(r.text == "fine" for r in out)
    stats = script_stats(model)
    injected = stats.faults["error"] + stats.faults["timeout"]
    assert injected > 0
    assert stats.calls == 40 + injected
    snap = c.usage.snapshot()["sim"]
    assert snap["retries"] == injected and snap["errors"] == 0 and snap["provider_calls"] == stats.calls


async def test_transient_faults_exhaust_retries(script) -> None:
    model = script("never", error_rate=1.0)
    async with Client(use_cache=False, max_retries=3, backoff_base_s=0.001) as c:
        with pytest.raises(ModelError) as ei:
            await c.complete(model, MSGS, component="judge")
    assert ei.value.transient and ei.value.model == model
    assert script_stats(model).calls == 4  # 1 + 3 retries
    assert c.usage.snapshot()["judge"]["errors"] == 1


async def test_permanent_fault_is_not_retried(script) -> None:
    model = script("never", fatal_rate=1.0)
    async with Client(use_cache=False, max_retries=5, backoff_base_s=0.001) as c:
        with pytest.raises(ModelError) as ei:
            await c.complete(model, MSGS)
    assert not ei.value.transient
    assert script_stats(model).calls == 1


async def test_timeout_is_transient_and_retry_budget_bounds_the_call(script) -> None:
    model = script("slow", latency_s=5.0)
    async with Client(use_cache=False, timeout_s=0.05, max_retries=100, retry_budget_s=0.5,
                      backoff_base_s=0.05, backoff_max_s=0.1) as c:
        t0 = time.perf_counter()
        with pytest.raises(ModelError) as ei:
            await c.complete(model, MSGS)
        elapsed = time.perf_counter() - t0
    assert ei.value.transient
    assert elapsed < 1.0  # bounded by retry_budget_s, not by 100 retries of a 5 s reply
    assert script_stats(model).calls >= 2


async def test_failures_are_not_cached(tmp_path: Path, script) -> None:
    model = script("never", fatal_rate=1.0)
    async with Client(cache_dir=tmp_path) as c:
        with pytest.raises(ModelError):
            await c.complete(model, MSGS)
        with pytest.raises(ModelError):
            await c.complete(model, MSGS)
    assert script_stats(model).calls == 2


async def test_unknown_script_is_a_permanent_model_error() -> None:
    async with Client(use_cache=False) as c:
        with pytest.raises(ModelError, match="no script registered"):
            await c.complete("scripted/does-not-exist", MSGS)


async def test_sequence_reply_follows_assistant_turns_and_echo(script) -> None:
    model = script(["first", "second"])
    async with Client(use_cache=False) as c:
        a = await c.complete(model, MSGS)
        b = await c.complete(model, [*MSGS, {"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}])
        e = await c.complete("scripted/echo", [{"role": "user", "content": "ping 42"}])
        s = await c.complete(model, MSGS, params=GenerationParams(stop=("co",)), sample_index=3)
    assert (a.text, b.text, e.text) == ("first", "second", "ping 42")
    assert s.text == "first"  # stop string absent: untouched


def test_cache_key_covers_every_parameter_and_no_secret() -> None:
    p = GenerationParams()
    base = cache_key("openai/gpt-4o-mini", MSGS, p, 0)
    variants = [
        cache_key("openai/gpt-4o", MSGS, p, 0),
        cache_key("openai/gpt-4o-mini", [{"role": "user", "content": "other"}], p, 0),
        cache_key("openai/gpt-4o-mini", MSGS, p, 1),
        cache_key("openai/gpt-4o-mini", MSGS, p.with_(temperature=0.5), 0),
        cache_key("openai/gpt-4o-mini", MSGS, p.with_(top_p=0.9), 0),
        cache_key("openai/gpt-4o-mini", MSGS, p.with_(stop=("\n",)), 0),
        cache_key("openai/gpt-4o-mini", MSGS, p.with_(seed=1), 0),
        cache_key("openai/gpt-4o-mini", MSGS, p.with_(extra=(("response_format", "json_object"),)), 0),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert cache_key("openai/gpt-4o-mini", MSGS, p, 0) == base


async def test_cache_never_stores_api_base_or_keys(tmp_path: Path, script, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-test-key")
    model = script("hello")
    async with Client(cache_dir=tmp_path, api_base="http://user:hunter2@example.invalid:8000/v1") as c:
        await c.complete(model, MSGS)
    blob = (tmp_path / CACHE_FILE).read_bytes()
    for wal in tmp_path.glob(CACHE_FILE + "*"):
        blob += wal.read_bytes()
    assert b"hello" in blob
    assert b"hunter2" not in blob and b"sk-secret" not in blob and b"example.invalid" not in blob


_WRITER = """
import sys
from collab_harness.models.cache import ResponseCache
from collab_harness.models.protocol import Completion
c = ResponseCache(sys.argv[1])
tag = sys.argv[2]
for i in range(150):
    c.put(f"{tag}-{i}", Completion(text=f"{tag} {i}", model="scripted/x"))
    c.put("shared", Completion(text=tag, model="scripted/x"))
    assert c.get(f"{tag}-{i}").text == f"{tag} {i}"
"""


def test_two_processes_write_the_cache_concurrently(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), tag], stderr=subprocess.PIPE)
        for tag in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    cache = ResponseCache(tmp_path)
    assert len(cache) == 301
    a, b, shared = cache.get("a-149"), cache.get("b-0"), cache.get("shared")
    assert a is not None and b is not None and shared is not None
    assert a.text == "a 149" and b.text == "b 0" and shared.text in ("a", "b")
    cache.close()


def test_cache_roundtrip_keeps_usage(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache.put("k", Completion(text="t", model="m", usage=Usage(3, 4, 0.5), finish_reason="length"))
    got = cache.get("k")
    assert got is not None and got.cached and got.usage == Usage(3, 4, 0.5) and got.finish_reason == "length"
    assert cache.get("missing") is None
    cache.close()


def test_package_import_is_light() -> None:
    code = ("import sys, collab_harness.models as m; "
            "assert 'litellm' not in sys.modules and 'torch' not in sys.modules, 'heavy import'; "
            "m.Client; assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_litellm_exceptions_are_classified() -> None:
    from collab_harness.models._litellm import classify_exception, import_litellm

    litellm = import_litellm()
    assert classify_exception(litellm.RateLimitError("slow down", llm_provider="openai", model="m"))
    assert classify_exception(litellm.Timeout("t", model="m", llm_provider="openai"))
    assert classify_exception(litellm.APIConnectionError("c", llm_provider="openai", model="m"))
    assert classify_exception(litellm.ServiceUnavailableError("s", llm_provider="openai", model="m"))
    assert classify_exception(litellm.InternalServerError("i", llm_provider="openai", model="m"))
    assert not classify_exception(litellm.AuthenticationError("a", llm_provider="openai", model="m"))
    assert not classify_exception(litellm.BadRequestError("b", model="m", llm_provider="openai"))
    assert not classify_exception(litellm.NotFoundError("n", model="m", llm_provider="openai"))
    assert not classify_exception(ValueError("bug"))


async def test_litellm_connection_failure_is_transient_model_error() -> None:
    # A real litellm call to a closed local port: exercises the litellm path offline, with our retries.
    os.environ.setdefault("HOSTED_VLLM_API_KEY", "none")
    async with Client(use_cache=False, api_base="http://127.0.0.1:9/v1", max_retries=1, backoff_base_s=0.01,
                      timeout_s=10) as c:
        with pytest.raises(ModelError) as ei:
            await c.complete("hosted_vllm/nothing-here", MSGS, params=GenerationParams(max_tokens=4))
    assert ei.value.transient
    assert c.usage.snapshot()["unknown"]["provider_calls"] == 2


def test_client_survives_several_event_loops(tmp_path: Path, script) -> None:
    model = script("ok", latency_s=0.01)
    c = Client(cache_dir=tmp_path, concurrency={"scripted": 2})
    for i in range(2):
        out = asyncio.run(_burst(c, model, offset=10 * i))
        assert [r.text for r in out] == ["ok"] * 6
    asyncio.run(c.aclose())
    assert script_stats(model).max_in_flight == 2 and c.paid_calls == 12


async def _burst(c: Client, model: str, offset: int) -> list[Completion]:
    return list(await asyncio.gather(*(c.complete(model, MSGS, sample_index=offset + i) for i in range(6))))


async def test_usage_snapshot_per_component(tmp_path: Path, script) -> None:
    from collab_harness.types import Message

    model = script("a b c")
    async with Client(cache_dir=tmp_path) as c:
        await c.complete(model, [Message(role="user", content="x y").as_dict()], component="user-sim")
        await c.complete(model, MSGS, component="judge")
        await c.complete(model, MSGS, component="judge")
    snap = c.usage.snapshot()
    assert set(snap) == {"user-sim", "judge"}
    assert snap["user-sim"]["completion_tokens"] == 3 and snap["user-sim"]["prompt_tokens"] == 2
    assert snap["judge"] == {**snap["judge"], "calls": 2, "cache_hits": 1, "provider_calls": 1, "errors": 0}
    assert c.usage.totals()["calls"] == 3 and c.usage.by_model()[model]["calls"] == 3
