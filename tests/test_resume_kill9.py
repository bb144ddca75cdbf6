"""Crash safety: SIGKILL a run after some samples are written, resume it, compare with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from collab_harness.evaluation import recompute_results
from collab_harness.rundir import read_records

DRIVER = str(Path(__file__).with_name("evaluate_scripts.py"))
N = 8


def _args(out: Path, *extra: str) -> list[str]:
    return [sys.executable, DRIVER, "--latency", "0.15", "--", "run", "--task", "math-chat", "--limit", str(N),
            "--max-exchanges", "2", "--seed", "3", "--concurrency", "2", "--assistant", "scripted/ev-assistant",
            "--judge", "scripted/ev-judge", "--out", str(out), "--no-progress", *extra]


def _comparable(results: dict[str, Any]) -> dict[str, Any]:
    # Usage differs legitimately (a resumed run pays again for calls of the killed in-flight samples).
    return {k: v for k, v in results.items() if k not in ("usage",)}


def _untimed(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores without wall-clock details (``check_seconds`` ...), which no two runs share."""
    return {name: {**s, "details": {k: v for k, v in s["details"].items() if not k.endswith(("seconds", "_s"))}}
            for name, s in scores.items()}


def test_kill9_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "COLLAB_HARNESS_CACHE_DIR": str(tmp_path / "cache-a")}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_args(killed), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    samples = killed / "samples.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if samples.exists() and samples.read_bytes().count(b"\n") >= 2:
            break
        if proc.poll() is not None:
            raise AssertionError(f"run ended before it could be killed: {proc.communicate()[1].decode()}")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    partial = read_records(samples)
    assert 2 <= len(partial.records) < N, "kill came too late to test anything"
    assert not (killed / "results.json").exists()

    # A crash mid-write leaves a torn last line: add one to make sure resume copes with it too.
    with open(samples, "ab") as f:
        f.write(b'{"id": "math-chat/torn", "example_id": "math-chat/to')

    r = subprocess.run(_args(killed, "--resume"), env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    done_before = len(partial.records)
    assert f"{N - done_before} new, {done_before} resumed" in r.stdout

    # An uninterrupted run with the same seed, in a fresh cache (nothing shared with the killed run).
    fresh = tmp_path / "fresh"
    env_b = {**os.environ, "COLLAB_HARNESS_CACHE_DIR": str(tmp_path / "cache-b")}
    r2 = subprocess.run(_args(fresh), env=env_b, capture_output=True, text=True, timeout=120)
    assert r2.returncode == 0, r2.stderr

    a, b = read_records(samples), read_records(fresh / "samples.jsonl")
    ids_a = [x.item_id for x in a.records]
    ids_b = [x.item_id for x in b.records]
    assert len(ids_a) == N and not a.duplicates and not a.torn_tail  # 0 lost, 0 duplicated, torn line gone
    assert sorted(ids_a) == sorted(ids_b)
    by_id = {x.item_id: x.model_dump(mode="json") for x in b.records}
    for r in a.records:  # same conversations and scores, sample by sample
        rec = r.model_dump(mode="json")
        other = by_id[r.item_id]
        assert rec["conversation"] == other["conversation"]
        assert _untimed(rec["scores"]) == _untimed(other["scores"])
        assert rec["errors"] == []
    res_a = json.loads((killed / "results.json").read_text())
    res_b = json.loads((fresh / "results.json").read_text())
    assert _comparable(res_a) == _comparable(res_b)
    assert res_a == recompute_results(killed).model_dump(mode="json")
    man = json.loads((killed / "manifest.json").read_text())
    assert man["resumes"] and man["resumes"][0]["dropped_torn_line"] is True and man["status"] == "success"


def _mr_args(inp: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, DRIVER, "--latency", "0.1", "--", "mr", "--task", "math-chat", "--input", str(inp),
            "--samples", "2", "--window", "1", "--seed", "3", "--concurrency", "2", "--assistant",
            "scripted/ev-assistant", "--judge", "scripted/ev-judge", "--out", str(out), "--no-progress", *extra]


def test_kill9_during_mr_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    inp = tmp_path / "rows.jsonl"
    rows = [{"id": f"r{i}", "example_id": f"math-chat/sample-{i:03d}",
             "history": [{"role": "user", "content": "I need help with a math problem."}],
             "candidate": "Sure, what is the problem?" if i % 2 else "The answer is \\\\boxed{7}."} for i in range(10)]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "COLLAB_HARNESS_CACHE_DIR": str(tmp_path / "cache-a")}  # fresh: nothing served cached
    out = tmp_path / "mr"
    proc = subprocess.Popen(_mr_args(inp, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if samples.exists() and samples.read_bytes().count(b"\n") >= 2:
            break
        if proc.poll() is not None:
            raise AssertionError(f"mr ended before it could be killed: {proc.communicate()[1].decode()}")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    before = read_records(samples)
    assert 2 <= len(before.records) < 10, "kill came too late to test anything"
    assert json.loads((out / "manifest.json").read_text())["status"] == "started"

    r = subprocess.run(_mr_args(inp, out, "--resume"), env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    after = read_records(samples)
    ids = [x.item_id for x in after.records]
    assert sorted(ids) == sorted(f"r{i}" for i in range(10))  # 0 lost
    assert not after.duplicates and not after.torn_tail  # 0 duplicated
    # The rows finished before the kill are untouched by the resume.
    assert [x.model_dump() for x in after.records[: len(before.records)]] == [x.model_dump() for x in before.records]
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "success" and man["resumes"][0]["finished_before"] == len(before.records)
