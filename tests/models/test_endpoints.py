"""Providers over real HTTP on 127.0.0.1: OpenAI-compatible servers (vLLM / llama.cpp style), replicas behind
litellm's Router, Anthropic and Bedrock (parameters they lack are dropped and recorded), fatal auth errors and the
preflight. The servers are :class:`collab_harness.testing.servers.ChatServer`: real HTTP, not a mock of litellm."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from collab_harness import build_plugin_manager
from collab_harness.config import make_config
from collab_harness.errors import ConfigError, FatalRunError
from collab_harness.evaluation import run_evaluation
from collab_harness.models.client import Client
from collab_harness.models.protocol import GenerationParams
from collab_harness.mr_run import run_mr
from collab_harness.rundir import read_records
from collab_harness.testing.servers import ChatServer

CLAUDE = "anthropic/claude-3-5-sonnet-20240620"
BEDROCK = "bedrock/anthropic.claude-3-sonnet-20240229-v1:0"
FAKE_KEY = "sk-ant-fake-0123456789abcdefghij"
ROWS = Path(__file__).parents[1] / "data" / "mr_histories.jsonl"


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAB_HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-value-123")
    monkeypatch.setenv("AWS_REGION_NAME", "us-east-1")


def chat_reply(tag: str) -> Any:
    """Replies for every role: structured calls (tools / JSON schema) get a valid JSON object; the extraction prompt
    gets the last boxed answer; anything else a clarifying question tagged with the server's name."""

    def reply(messages: list[dict[str, str]], body: Mapping[str, Any]) -> str:
        structured = body.get("tools") or body.get("toolConfig") or body.get("response_format")
        text = "\n".join(m["content"] for m in messages)
        if structured:
            if "UserReply" in json.dumps(body) or "terminate" in json.dumps(body):
                return json.dumps({"thought": "ask more", "message": "Here is more detail.", "terminate": False})
            return json.dumps({"rationale": "asks good questions", "score": 0.75})
        if messages and messages[0]["role"] == "system" and "extract" in messages[0]["content"].lower():
            return "42"
        return f"[{tag}] Could you tell me more about the problem? {len(text) % 7}"

    return reply


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer(chat_reply("A")) as s:
        yield s


async def test_anthropic_and_bedrock_get_no_seed_and_the_drop_is_recorded(server: ChatServer) -> None:
    for model in (CLAUDE, BEDROCK):
        async with Client(use_cache=False, endpoints={model: [server.base]}, max_retries=0) as c:
            r = await c.complete(model, [{"role": "user", "content": "hi"}],
                                 params=GenerationParams(seed=7, temperature=0.7))
            assert r.text.startswith("[A]")
            assert c.param_drops == {model: ["seed"]}
    bodies = [r["body"] for r in server.requests]
    assert len(bodies) == 2 and all("seed" not in json.dumps(b) for b in bodies)
    assert {r["api"] for r in server.requests} == {"anthropic", "bedrock"}


def test_mr_with_claude_as_assistant_user_and_judge_has_no_failed_future(server: ChatServer, tmp_path: Path) -> None:
    host = build_plugin_manager()
    cfg = make_config({"task": "math-chat", "assistant": CLAUDE, "user": CLAUDE, "judge": CLAUDE,
                       "assistant_api_base": server.base, "mr": {"samples": 2, "window": 1}})
    out = run_mr(cfg, host, tmp_path / "mr", ROWS)
    assert out.status == "success"
    recs = read_records(tmp_path / "mr" / "samples.jsonl").records
    assert len(recs) == 4
    for r in recs:
        assert r.mr is not None and r.n_ok == r.n_total == 2 and not r.errors, r.errors  # type: ignore[union-attr]
    man = json.loads((tmp_path / "mr" / "manifest.json").read_text())
    assert man["param_drops"] == {CLAUDE: ["seed"]}
    assert man["models"]["judge"]["endpoints"] == [server.base]
    assert all("seed" not in json.dumps(r["body"]) for r in server.requests)
    # Every role reached the server: assistant turns, llm-user replies, judge verdicts (as tool calls).
    assert any(r["body"].get("tools") for r in server.requests)
    assert FAKE_KEY not in (tmp_path / "mr" / "manifest.json").read_text()


def test_run_against_an_openai_compatible_server_and_another_server_is_a_cache_miss(tmp_path: Path) -> None:
    host = build_plugin_manager()
    model = "hosted_vllm/served-model"
    with ChatServer(chat_reply("A")) as a, ChatServer(chat_reply("B")) as b:
        cfg = make_config({"task": "math-chat", "limit": 2, "max_exchanges": 2, "assistant": model,
                           "assistant_api_base": a.openai_base})
        out = run_evaluation(cfg, host, tmp_path / "a")
        assert out.status == "success" and len(a.requests) > 0
        man = json.loads((tmp_path / "a" / "manifest.json").read_text())
        assert man["models"]["assistant"]["endpoints"] == [f"http://127.0.0.1:{a.port}"]
        assert man["config"]["assistant_api_base"] == [a.openai_base]
        texts_a = [m.content for r in read_records(tmp_path / "a" / "samples.jsonl").records
                   for m in r.conversation if m.role == "assistant"]  # type: ignore[union-attr]
        assert texts_a and all(t.startswith("[A]") for t in texts_a)
        # The same model string on another server, same cache directory: nothing may come from A's cache.
        cfg_b = cfg.model_copy(update={"assistant_api_base": [b.openai_base]})
        run_evaluation(cfg_b, host, tmp_path / "b")
        texts_b = [m.content for r in read_records(tmp_path / "b" / "samples.jsonl").records
                   for m in r.conversation if m.role == "assistant"]  # type: ignore[union-attr]
        assert len(b.requests) == len(texts_b) > 0 and all(t.startswith("[B]") for t in texts_b)
        # And a rerun against A is served from the cache: A sees no new request.
        n_a = len(a.requests)
        run_evaluation(cfg, host, tmp_path / "a2")
        assert len(a.requests) == n_a


async def test_replicas_are_spread_by_litellms_router() -> None:
    model = "hosted_vllm/replicated"
    with ChatServer(chat_reply("A")) as a, ChatServer(chat_reply("B")) as b:
        async with Client(use_cache=False, endpoints={model: [a.openai_base, b.openai_base]}) as c:
            import asyncio

            replies = await asyncio.gather(*(c.complete(model, [{"role": "user", "content": f"q{i}"}])
                                             for i in range(24)))
        tags = {r.text[:3] for r in replies}
        assert tags == {"[A]", "[B]"} and len(a.requests) + len(b.requests) == 24


def test_bad_credentials_stop_the_run_at_once_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from collab_harness.cli.main import main

    with ChatServer(chat_reply("A"), status=401) as s:
        with pytest.raises(SystemExit) as e:
            main(["run", "--task", "math-chat", "--limit", "6", "--max-exchanges", "1", "--assistant", CLAUDE,
                  "--assistant-api-base", s.base, "--out", str(tmp_path / "r"), "--no-progress", "--concurrency", "1"])
        assert e.value.code == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "AuthenticationError" in err and "--resume" in err
        assert len(s.requests) == 1  # not retried, and no other sample was tried
    man = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert man["status"] == "error" and man["summary"]["fatal"]
    assert not (tmp_path / "r" / "samples.jsonl").exists()  # nothing recorded as a model failure


def test_preflight_names_the_missing_key_before_any_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = make_config({"task": "math-chat", "limit": 2, "judge": "openai/gpt-4o-mini"})
    with pytest.raises(ConfigError, match=r"judge model 'openai/gpt-4o-mini' needs OPENAI_API_KEY"):
        run_evaluation(cfg, build_plugin_manager(), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_api_base_for_an_in_process_model_is_an_error() -> None:
    with pytest.raises(ConfigError, match="runs in-process"):
        make_config({"task": "math-chat", "assistant_api_base": "http://x:1"}).endpoints()


def test_fatal_error_class_is_exposed() -> None:
    assert issubclass(FatalRunError, Exception)
