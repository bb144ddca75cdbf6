"""Runs that fail loudly and never leak (issue 11): secrets nowhere on disk, one process per run directory, a
corrupt cache moved aside, version changes refused on resume, honest exit status, empty completions as failures,
validated options, usage of failed calls counted, time budgets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from evaluate_scripts import register

from collab_harness import build_plugin_manager
from collab_harness.config import make_config
from collab_harness.errors import ConfigError
from collab_harness.evaluation import run_evaluation
from collab_harness.models.client import Client
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.rundir import read_records
from collab_harness.testing.servers import ChatServer

DRIVER = str(Path(__file__).with_name("evaluate_scripts.py"))
CANARIES = {"OPENAI_API_KEY": "sk-canaryOPENAI0123456789abcdef", "ANTHROPIC_API_KEY": "sk-ant-canary-ANTHROPIC-99999",
            "MY_SERVICE_TOKEN": "canary-service-token-777777"}


def cli(args: list[str]) -> int:
    from collab_harness.cli.main import main

    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("COLLAB_HARNESS_CACHE_DIR", str(d))
    return d


@pytest.fixture
def scripts() -> Any:
    register()
    yield
    unregister_script("ev-assistant")
    unregister_script("ev-judge")


def _all_text(*roots: Path) -> str:
    out = []
    for root in roots:
        for f in root.rglob("*"):
            if f.is_file():
                out.append(f.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(out)


def test_canary_keys_reach_no_file_and_no_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    for k, v in CANARIES.items():
        monkeypatch.setenv(k, v)
    leak = " ".join(CANARIES.values())

    def echoing(messages: list[dict[str, str]], body: Any) -> str:  # a model that repeats every key it knows
        return f"My keys are {leak} — what do you need?"

    leaky = register_script("leaky", lambda m, p, i: f"keys: {leak}. Could you say more?")
    try:
        with ChatServer(echoing) as ok_server, \
                ChatServer(echoing, status=400, error_message=f"invalid request from key {leak}") as failing:
            # 1. run: replies that echo keys (a scripted model and a real HTTP server), cached.
            assert cli(["run", "--task", "math-chat", "--limit", "2", "--max-exchanges", "1", "--assistant", leaky,
                        "--out", str(tmp_path / "run"), "--no-progress"]) == 0
            assert cli(["run", "--task", "math-chat", "--limit", "2", "--max-exchanges", "1",
                        "--assistant", "hosted_vllm/echo", "--assistant-api-base", ok_server.openai_base,
                        "--out", str(tmp_path / "run2"), "--no-progress"]) == 0
            # 2. mr: a provider error whose body echoes the keys (400: recorded as the assistant's failure).
            rows = Path(__file__).parent / "data" / "mr_histories.jsonl"
            code = cli(["mr", "--task", "math-chat", "--input", str(rows), "--out", str(tmp_path / "mr"),
                        "--samples", "1", "--window", "1", "--assistant", "hosted_vllm/echo",
                        "--assistant-api-base", failing.openai_base,
                        "--no-progress"])
            assert code == 1  # the rows failed; the run says so
    finally:
        unregister_script("leaky")
    recs = read_records(tmp_path / "mr" / "samples.jsonl").records
    failed = [r for r in recs if r.errors]
    assert len(failed) == 3 and all(r.errors[0].component == "assistant" for r in failed)  # m1-solve needs no call
    text = _all_text(tmp_path / "run", tmp_path / "run2", tmp_path / "mr", tmp_path / "cache")
    assert "***" in text  # the echoes were there, masked
    captured = capfd.readouterr()
    for name, value in CANARIES.items():
        assert value not in text, f"{name} found on disk"
        assert value not in captured.out + captured.err, f"{name} printed"


def test_two_processes_on_one_run_directory_one_proceeds(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [sys.executable, DRIVER, "--latency", "0.3", "--", "run", "--task", "math-chat", "--limit", "4",
            "--max-exchanges", "2", "--assistant", "scripted/ev-assistant", "--judge", "scripted/ev-judge",
            "--out", str(out), "--no-progress"]
    env = {**os.environ}
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / ".lock").exists() or not (out / ".lock").read_text():
        assert time.monotonic() < deadline and first.poll() is None, "first run did not start"
        time.sleep(0.02)
    second = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=120)
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode != 0
    err = second.stderr.strip()
    assert len(err.splitlines()) == 1 and f"in use by pid {first.pid} on host" in err
    log = read_records(out / "samples.jsonl")
    assert sorted(r.item_id for r in log.records) == sorted(json.loads((out / "manifest.json").read_text())["item_ids"])
    assert not log.duplicates


def test_corrupt_cache_is_moved_aside_and_the_run_completes(tmp_path: Path, _cache: Path, scripts: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    _cache.mkdir(parents=True)
    (_cache / "responses.sqlite").write_bytes(b"this is not a database" * 100)
    with caplog.at_level("WARNING"):
        code = cli(["run", "--task", "math-chat", "--limit", "2", "--max-exchanges", "1", "--assistant",
                    "scripted/ev-assistant", "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 0
    assert any("moved it to responses.sqlite.corrupt-" in r.getMessage() for r in caplog.records)
    assert list(_cache.glob("responses.sqlite.corrupt-*")) and (_cache / "responses.sqlite").exists()
    assert len(read_records(tmp_path / "run" / "samples.jsonl").records) == 2


@pytest.mark.parametrize(("edit", "named"), [
    (lambda m: m.update(harness_version="0.0.9"), "harness version 0.0.9 ->"),
    (lambda m: next(c for c in m["components"] if c["name"] == "interactivity").update(version="0.0.1"),
     "component judge:interactivity version changed (0.0.1 ->"),
    (lambda m: m["prompt_hashes"]["judge:interactivity"].update({next(iter(m["prompt_hashes"]["judge:interactivity"])):
                                                                "0000000000000000"}),
     "prompt judge:interactivity"),
])
def test_resume_after_a_version_change_is_refused_unless_allowed(tmp_path: Path, scripts: Any, edit: Any,
                                                                 named: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    base = ["run", "--task", "math-chat", "--limit", "2", "--max-exchanges", "1", "--assistant",
            "scripted/ev-assistant", "--judge", "scripted/ev-judge", "--out", str(out), "--no-progress"]
    assert cli(base) == 0
    man = json.loads((out / "manifest.json").read_text())
    edit(man)  # as if the run had been made by another version
    (out / "manifest.json").write_text(json.dumps(man))
    capsys.readouterr()
    assert cli([*base, "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot resume" in err and named in err and "--allow-changed" in err
    assert cli([*base, "--resume", "--allow-changed"]) == 0
    resumes = json.loads((out / "manifest.json").read_text())["resumes"]
    assert any(named.split(" (")[0] in c for c in resumes[-1]["allowed_changes"])


def test_a_run_where_every_sample_failed_exits_non_zero(tmp_path: Path, scripts: Any,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    broken = register_script("broken", "x", fatal_rate=1.0)
    try:
        code = cli(["run", "--task", "math-chat", "--limit", "3", "--max-exchanges", "1", "--assistant", broken,
                    "--out", str(tmp_path / "run"), "--no-progress"])
    finally:
        unregister_script("broken")
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].startswith("error: 3 of 3 samples failed (assistant 3)")
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert man["status"] == "error" and res["status"] == "error" and res["n_failed"] == 3


def test_fail_on_error_allowance_makes_a_partly_failed_run_a_success(tmp_path: Path) -> None:
    flaky = register_script("flaky", lambda m, p, i: "" if "number" in m[-1]["content"] else "What is it for?")
    try:
        host = build_plugin_manager()
        cfg = make_config({"task": "math-chat", "limit": 8, "max_exchanges": 1, "assistant": flaky,
                           "fail_on_error": 0.99})
        out = run_evaluation(cfg, host, tmp_path / "run")
    finally:
        unregister_script("flaky")
    failed = [r for r in read_records(tmp_path / "run" / "samples.jsonl").records if r.errors]
    assert 0 < len(failed) < 8 and out.status == "success"


def test_empty_completions_are_failures_of_the_component_that_produced_them(tmp_path: Path) -> None:
    empty = register_script("empty", "   ")
    try:
        cfg = make_config({"task": "math-chat", "limit": 2, "max_exchanges": 1, "assistant": empty})
        out = run_evaluation(cfg, build_plugin_manager(), tmp_path / "run")
    finally:
        unregister_script("empty")
    recs = read_records(tmp_path / "run" / "samples.jsonl").records
    assert out.status == "error" and len(recs) == 2
    for r in recs:
        assert r.errors[0].component == "assistant" and "empty completion" in r.errors[0].message
        assert r.scores == {}  # nothing scored: no silent zero for an assistant that said nothing
        # The provider answered: its (empty) answers were paid for and retried, and that shows in the usage.
        assert r.usage["assistant"].provider_calls >= 2 and r.usage["assistant"].errors == 1


@pytest.mark.parametrize("weights", ["math_accuracy=nan", "math_accuracy=inf", "interactivity=-inf"])
def test_non_finite_weights_are_one_line_errors_leaving_nothing(tmp_path: Path, weights: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = cli(["run", "--task", "math-chat", "--weights", weights, "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "must be a finite number" in err
    assert not (tmp_path / "r").exists()


def test_zero_exchanges_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["run", "--task", "math-chat", "--max-exchanges", "0"]) == 2
    assert "max_exchanges" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        make_config({"task": "math-chat", "weights": {"x": float("nan")}})


async def test_tokens_of_failed_structured_calls_are_counted() -> None:
    from pydantic import BaseModel

    class Verdict(BaseModel):
        score: float

    bad = register_script("never-json", "I refuse to answer in JSON, sorry about that")
    try:
        async with Client(use_cache=False) as c:
            res = await c.structured(bad, [{"role": "user", "content": "judge this"}], Verdict, component="judge",
                                     max_attempts=3)
        u = c.usage.snapshot()["judge"]
    finally:
        unregister_script("never-json")
    assert not res.ok and res.attempts == 3
    assert u["provider_calls"] == 3 and u["errors"] == 1 and u["completion_tokens"] == 3 * 9 and u["prompt_tokens"] > 0


def test_sample_time_budget_records_a_timeout_failure(tmp_path: Path) -> None:
    slow = register_script("slow", "What do you mean?", latency_s=2.0)
    try:
        cfg = make_config({"task": "math-chat", "limit": 2, "max_exchanges": 2, "assistant": slow,
                           "sample_timeout": 0.5})
        t0 = time.monotonic()
        out = run_evaluation(cfg, build_plugin_manager(), tmp_path / "run")
        elapsed = time.monotonic() - t0
    finally:
        unregister_script("slow")
    recs = read_records(tmp_path / "run" / "samples.jsonl").records
    assert out.status == "error" and elapsed < 10
    for r in recs:
        assert r.errors[0].component == "engine" and r.errors[0].category == "timeout"
        assert "0.5s" in r.errors[0].message
