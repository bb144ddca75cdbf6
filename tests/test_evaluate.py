"""Run-directory I/O, statistics and the evaluation loop (Python API) on scripted models."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest

from collab_harness.rundir import (
    RunDirError,
    SecretScrubber,
    aggregate,
    append_sample,
    mean_ci,
    read_samples,
    repair_samples,
    t_quantile_975,
)


def _rec(eid: str, value: float | None = 1.0, **kw: Any) -> dict[str, Any]:
    score: dict[str, Any] = {"component": "m", "value": value, "values": {}, "details": {}, "error": None}
    if value is None:
        score["error"] = "boom"
    return {
        "id": f"{eid}#1", "example_id": eid, "attempt": 1, "conversation": [], "exchanges": 0, "terminated": False,
        "scores": {"m": score}, "reward": value, "errors": [] if value is not None else
        [{"component": "m", "message": "boom", "attempt": 1}], "usage": {}, "seed": 1, "elapsed_s": 0.0, **kw,
    }


# ------------------------------------------------------------------------------------------ samples.jsonl


def test_torn_last_line_is_dropped_and_repaired(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    for i in range(3):
        append_sample(p, _rec(f"e{i}"))
    whole = p.read_bytes()
    # Simulate kill -9 in the middle of the fourth write.
    line = (json.dumps(_rec("e3")) + "\n").encode()
    p.write_bytes(whole + line[: len(line) // 2])
    log = read_samples(p)
    assert [r["example_id"] for r in log.records] == ["e0", "e1", "e2"]
    assert log.torn_tail and log.valid_bytes == len(whole)
    repair_samples(p)
    assert p.read_bytes() == whole
    append_sample(p, _rec("e3"))
    log = read_samples(p)
    assert [r["example_id"] for r in log.records] == ["e0", "e1", "e2", "e3"] and not log.torn_tail


def test_incomplete_record_at_end_counts_as_torn(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    append_sample(p, _rec("a"))
    with open(p, "a") as f:
        f.write(json.dumps({"example_id": "b"}) + "\n")  # valid JSON, but not a finished sample
    log = read_samples(p)
    assert log.finished_ids == {"a"} and log.torn_tail


def test_damage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    append_sample(p, _rec("a"))
    with open(p, "a") as f:
        f.write("{not json\n")
    append_sample(p, _rec("b"))
    with pytest.raises(RunDirError, match="line 2"):
        read_samples(p)


def test_duplicates_are_reported(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    append_sample(p, _rec("a"))
    append_sample(p, _rec("a"))
    assert read_samples(p).duplicates == ["a"]


def _writer(path: str, wid: int, n: int) -> None:
    big = "x" * 20000  # larger than a pipe buffer: interleaving would show without the lock
    for i in range(n):
        append_sample(path, _rec(f"w{wid}-{i}", conversation=[{"role": "user", "content": big}]))


def test_concurrent_appends_from_processes_never_interleave(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(p), w, 25)) for w in range(4)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(60)
        assert pr.exitcode == 0
    log = read_samples(p)
    assert len(log.records) == 100 and not log.torn_tail and not log.duplicates


def test_append_refuses_incomplete_records(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks"):
        append_sample(tmp_path / "s.jsonl", {"example_id": "x"})


# ------------------------------------------------------------------------------------------------ secrets


def test_scrubber_removes_env_secrets_and_secret_options() -> None:
    s = SecretScrubber({"OPENAI_API_KEY": "sk-planted-XYZ123", "HOME": "/root", "SHORT_TOKEN": "abc"})
    out = s({"msg": "failed with key sk-planted-XYZ123!", "options": {"api_key": "whatever", "home": "/root",
             "tokenizer": "cl100k_base"}, "list": ["sk-planted-XYZ123"]})
    assert "sk-planted" not in json.dumps(out)
    # Non-secret env values and look-alike keys ("tokenizer") are kept.
    assert out["options"] == {"api_key": "***", "home": "/root", "tokenizer": "cl100k_base"}
    assert s("abc") == "abc"  # too short to be a credential: not scrubbed (it would mangle ordinary text)


# --------------------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(("df", "expected"), [(1, 12.7062), (10, 2.2281), (30, 2.0423), (40, 2.0211),
                                              (60, 2.0003), (120, 1.9799), (1000, 1.9623)])
def test_t_quantiles(df: int, expected: float) -> None:
    assert t_quantile_975(df) == pytest.approx(expected, abs=2e-4)


def test_mean_ci() -> None:
    r = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert r["mean"] == 2.5 and r["n"] == 4
    half = 3.1824 * math.sqrt(((1.5**2) * 2 + (0.5**2) * 2) / 3) / 2
    assert r["ci_half"] == pytest.approx(half, rel=1e-4)
    assert r["ci_low"] == pytest.approx(2.5 - half) and r["ci_high"] == pytest.approx(2.5 + half)
    assert mean_ci([5.0])["ci_half"] is None and mean_ci([])["mean"] is None


def test_aggregate_never_counts_failures_as_zero() -> None:
    recs = [_rec("a", 1.0), _rec("b", 0.5), _rec("c", None)]
    # "d": simulation failed, so it has no score at all.
    recs.append({**_rec("d"), "scores": {}, "reward": None,
                 "errors": [{"component": "assistant", "message": "503", "attempt": 1}]})
    agg = aggregate(recs, expected_metrics=["m"])
    m = agg["metrics"]["m"]
    assert m["mean"] == pytest.approx(0.75) and m["n"] == 2 and m["n_failed"] == 2
    assert agg["errors_by_component"] == {"assistant": 1, "m": 1}
    assert agg["n_samples"] == 4 and agg["n_samples_with_errors"] == 2
    # Order-independent (a resumed run appends in another order).
    assert aggregate(list(reversed(recs)), expected_metrics=["m"]) == agg
