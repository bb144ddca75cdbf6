"""Fault injection: providers failing 20% of calls, timing out 10%, and answering malformed JSON 10% of the time.

The run must complete; every failure must be in samples.jsonl with the component that failed; no failed part may
be scored (never a silent 0). Also: ``retry_on_error`` keeps earlier errors, ``fail_on_error`` stops the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evaluate_scripts import assistant_reply

from collab_harness import build_plugin_manager
from collab_harness.config import make_config
from collab_harness.engine import FailOnErrorStop
from collab_harness.evaluation import recompute_results, run_evaluation, sample_seed
from collab_harness.models.client import Client
from collab_harness.models.scripted import register_script, script_stats, unregister_script
from collab_harness.rundir import read_records


def read_samples(path: Path) -> Any:
    """The records as JSON dicts (what a reader of the file sees)."""
    from types import SimpleNamespace

    log = read_records(path)
    return SimpleNamespace(records=[r.model_dump(mode="json") for r in log.records], duplicates=log.duplicates)

KNOWN_COMPONENTS = {"assistant", "user:shard-user", "judge:interactivity", "metric:math_accuracy",
                    "metric:token_amount", "extract"}


def floor_judge(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    """Extraction: the last assistant message. Judging: a score of at least 0.25, so a 0 can only be a silent
    failure."""
    system = str(messages[0].get("content", "")) if messages else ""
    body = "\n".join(str(m.get("content", "")) for m in messages)
    if "extract" in system.lower():
        return body.rsplit("ASSISTANT:", 1)[-1].split("CONVERSATION>>>", 1)[0].strip() or "NO_ARTEFACT"
    d = int(hashlib.sha256(body.encode()).hexdigest()[:8], 16)
    return json.dumps({"rationale": "ok", "score": 0.25 + (d % 4) / 4 * 0.75})


@pytest.fixture
def faulty() -> Iterator[tuple[str, str]]:
    faults = dict(error_rate=0.2, timeout_rate=0.1, malformed_rate=0.1)
    a = register_script("fi-assistant", assistant_reply, seed=11, **faults)
    j = register_script("fi-judge", floor_judge, seed=12, **faults)
    yield a, j
    unregister_script("fi-assistant")
    unregister_script("fi-judge")


def _client() -> Client:
    # No retries in the model layer and no cache: every injected fault reaches the evaluation loop.
    return Client(use_cache=False, max_retries=0, timeout_s=5)


def test_faulty_providers_every_failure_recorded_never_a_silent_zero(tmp_path: Path,
                                                                     faulty: tuple[str, str]) -> None:
    a, j = faulty
    host = build_plugin_manager(strict=False, block=[])
    cfg = make_config({"task": "math-chat", "limit": 20, "assistant": a, "judge": j, "max_exchanges": 2,
                       "concurrency": 4})
    summary = run_evaluation(cfg, host, tmp_path / "run", client=_client())
    assert summary.n_done == 20 and summary.stopped is None
    assert summary.status == "error"  # failed samples and no --fail-on-error allowance: the run says so

    stats_a, stats_j = script_stats(a), script_stats(j)
    injected = sum(stats_a.faults.values()) + sum(stats_j.faults.values())
    assert stats_a.faults["error"] and stats_a.faults["timeout"] and stats_j.faults["malformed"]

    log = read_samples(tmp_path / "run" / "samples.jsonl")
    assert len(log.records) == 20 and not log.duplicates
    n_errors = 0
    for rec in log.records:
        comps = {e["component"] for e in rec["errors"]}
        assert comps <= KNOWN_COMPONENTS, comps
        n_errors += len(rec["errors"])
        if "assistant" in comps or "user:shard-user" in comps:
            # The conversation is incomplete: nothing of it is scored.
            assert rec["scores"] == {} and rec["reward"] is None
        for name, s in rec["scores"].items():
            if s["value"] is None:
                # Every failed score is an error of the sample, naming the scorer.
                assert s["error"] and any(c.endswith(":" + name) for c in comps), (name, comps)
        itr = rec["scores"].get("interactivity")
        if itr is not None:
            # The judge never answers below 0.25: a 0 would be a failure passed off as a score.
            assert itr["value"] is None or itr["value"] >= 0.25
        if rec["reward"] is not None:
            assert all(rec["scores"][n]["value"] is not None for n in ("math_accuracy", "interactivity"))
    # Malformed judge output is retried inside the judge, so not every fault becomes a sample error.
    assert 0 < n_errors <= injected
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res == recompute_results(tmp_path / "run").model_dump(mode="json")
    for name in ("math_accuracy", "interactivity", "token_amount"):
        m = res["metrics"][name]
        assert m["n"] + m["n_failed"] == 20, (name, m)
    assert sum(res["errors_by_component"].values()) == n_errors
    assert res["n_failed"] == sum(1 for r in log.records if r["errors"])


def test_retry_on_error_retries_and_keeps_earlier_errors(tmp_path: Path, faulty: tuple[str, str]) -> None:
    a, j = faulty
    host = build_plugin_manager(strict=False, block=[])
    cfg = make_config({"task": "math-chat", "limit": 12, "assistant": a, "judge": j, "max_exchanges": 2,
                       "retry_on_error": 4})
    run_evaluation(cfg, host, tmp_path / "run", client=_client())
    recs = read_samples(tmp_path / "run" / "samples.jsonl").records
    retried = [r for r in recs if r["attempt"] > 1]
    assert retried, "with these fault rates some sample must have needed a retry"
    for r in retried:
        # Earlier attempts' failures are kept apart from the final attempt's.
        assert r["retried"] and min(e["attempt"] for e in r["retried"]) == 1
        assert all(e["attempt"] < r["attempt"] for e in r["retried"])
        assert all(e["attempt"] == r["attempt"] for e in r["errors"])
        # A retry draws a fresh seed: it is not the cached failure served again.
        assert r["seed"] != sample_seed(cfg.seed, r["example_id"], 1)
    recovered = [r for r in retried if not r["errors"]]
    assert recovered and all(r["reward"] is not None for r in recovered)


def test_fail_on_error_stops_the_run_and_resume_continues(tmp_path: Path) -> None:
    broken = register_script("fi-broken", "hello", fatal_rate=1.0)
    judge = register_script("fi-j2", floor_judge)
    try:
        host = build_plugin_manager(strict=False, block=[])
        cfg = make_config({"task": "math-chat", "limit": 10, "assistant": broken, "judge": judge,
                           "max_exchanges": 1, "fail_on_error": 3, "concurrency": 1})
        with pytest.raises(FailOnErrorStop, match="fail_on_error reached: 3 failed"):
            run_evaluation(cfg, host, tmp_path / "run", client=_client())
        recs = read_samples(tmp_path / "run" / "samples.jsonl").records
        assert len(recs) == 3 and all(r["errors"][0]["component"] == "assistant" for r in recs)
        assert "injected authentication error" in recs[0]["errors"][0]["message"]
        res = json.loads((tmp_path / "run" / "results.json").read_text())
        assert res["stopped"].startswith("fail_on_error") and res["complete"] is False and res["status"] == "error"
        # Proportion form: 0.5 of 10 examples = 5 failures allowed before stopping.
        cfg2 = cfg.model_copy(update={"fail_on_error": 0.5})
        with pytest.raises(FailOnErrorStop, match="5 failed"):
            run_evaluation(cfg2, host, tmp_path / "run", resume=True, client=_client())
        assert len(read_samples(tmp_path / "run" / "samples.jsonl").records) == 5
    finally:
        unregister_script("fi-broken")
        unregister_script("fi-j2")
