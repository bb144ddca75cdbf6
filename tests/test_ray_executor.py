"""The ``ray`` scoring backend (issue 17) against a real local Ray cluster: a head and one more worker node, each a
separate ``ray start`` process with one CPU, in a temporary directory, torn down after the module.

Shown here: the shipped code-chat canonical and wrong solutions get the same verdicts through Ray as through the
local pool; a worker killed in the middle of a verdict loses nothing (the verdict is retried and the retry is
recorded); backpressure follows the cluster's CPUs as nodes join; a code-chat ``synth`` with scripted models and
``--executor ray`` writes the same records as the local run; without Ray, ``--executor ray`` is a one-line error
naming the extra.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collab_harness import executors
from collab_harness.components import ScoringContext
from collab_harness.prompts import PROACTIVE_COLLABORATOR
from collab_harness.types import Conversation, Example, Score

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'collab-harness[ray]')")

SAMPLE = Path(__file__).resolve().parents[1] / "plugins" / "tasks" / "data" / "code_chat.jsonl"
#: The wrong solution scripts/check_code_sample.py checks every suite against.
WRONG = "def task_func(*args, **kwargs):\n    return None\n"
VERDICT_TASK = "ray::collab_harness_verdict"


def sample_examples() -> list[Example]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Example(**{k: r[k] for k in ("id", "task", "prompt", "reference", "metadata")}) for r in rows]


def pass_rate_metric() -> Any:
    from collab_harness_plugins.metrics.pass_rate import PassRate

    return PassRate()


def score_all(metric: Any, jobs: list[tuple[Example, str]]) -> list[Score]:
    """Every (example, code) through the real metric's ``score`` (which sends the test run to the scoring
    executor), all at once."""

    async def go() -> list[Score]:
        ctxs = [ScoringContext(example=e, conversation=Conversation(), artefact=code) for e, code in jobs]
        return list(await asyncio.gather(*(metric.score(c) for c in ctxs)))

    return asyncio.run(go())


_TMP = re.compile(r"/tmp/ch-sandbox-[^/\s]+(/work/tmp/tmp[^/\s]+)?")


def verdict(s: Score) -> tuple[Any, ...]:
    """What a verdict says (the random sandbox paths a failure message may quote aside)."""
    d = s.details
    return (s.component, s.value, dict(s.values), s.error, d.get("status"), _TMP.sub("<box>", str(d.get("reason"))),
            [_TMP.sub("<box>", str(m)) for m in d.get("failures", [])], d.get("isolation"), d.get("code_source"))


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and one worker node (one CPU each) on this machine; this process joined as the driver."""
    from collab_harness.ray_executor import LocalCluster

    c = LocalCluster([1, 1])
    c.start()
    try:
        asyncio.run(executors.start_scoring("ray", address=c.address))
        c.wait_for_cpus(2)
        deadline = time.monotonic() + 30
        while executors.scoring_capacity() < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the backend re-reads the cluster's CPUs every refresh_s
        yield c
    finally:
        executors.close_scoring()  # leaves the cluster (ray.shutdown)
        c.stop()


@pytest.fixture(scope="module")
def jobs() -> list[tuple[Example, str]]:
    """Every third shipped code-chat task (stdlib, pandas and numpy suites among them) with its canonical solution
    and with the wrong one; ``benchmarks/ray_verdicts.py`` checks all of them the same way."""
    return [(e, code) for e in sample_examples()[::3] for code in (e.reference, WRONG)]


@pytest.fixture(scope="module")
def local_verdicts(jobs: list[tuple[Example, str]]) -> list[Score]:
    executors.configure_scoring("local")
    return score_all(pass_rate_metric(), jobs)


@pytest.fixture
def ray_backend(cluster: Any) -> Iterator[Any]:
    """The scoring backend set to the module's cluster for one test (and back to local after it)."""
    asyncio.run(executors.start_scoring("ray", address=cluster.address))
    yield executors._ray
    executors.configure_scoring("local")


# -------------------------------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_local_verdicts_are_the_shipped_truth(local_verdicts: list[Score], jobs: list[tuple[Example, str]]) -> None:
    # Canonical solutions pass, the wrong one fails every suite: what the Ray run must reproduce.
    assert [s.value for s in local_verdicts] == [1.0 if code != WRONG else 0.0 for _e, code in jobs]
    assert all(s.details.get("isolation", {}).get("mode") for s in local_verdicts)


@needs_ray
@pytest.mark.slow
def test_verdicts_through_ray_equal_the_local_pool(ray_backend: Any, jobs: list[tuple[Example, str]],
                                                   local_verdicts: list[Score]) -> None:
    assert executors.scoring_backend() == "ray" and ray_backend.capacity == 2
    before = ray_backend.retries
    got = score_all(pass_rate_metric(), jobs)
    assert [verdict(s) for s in got] == [verdict(s) for s in local_verdicts]
    # The sandbox ran on the workers with the isolation it has locally (namespaces, cgroup, quota ...).
    assert got[0].details["isolation"] == local_verdicts[0].details["isolation"]
    assert ray_backend.retries == before and not any("scoring_retries" in s.details for s in got)


@needs_ray
@pytest.mark.slow
def test_worker_killed_mid_verdict_loses_nothing(ray_backend: Any, cluster: Any,
                                                 jobs: list[tuple[Example, str]],
                                                 local_verdicts: list[Score]) -> None:
    subset = jobs[:12]
    assert len(subset) == 12
    before = ray_backend.retries
    killed: list[int] = []

    def killer() -> None:
        # SIGKILL a worker while it runs a verdict, until one loss has been seen by the driver.
        deadline = time.monotonic() + 60
        while ray_backend.retries == before and len(killed) < 4 and time.monotonic() < deadline:
            busy = cluster.processes(VERDICT_TASK)
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                time.sleep(0.5)
            else:
                time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    got = score_all(pass_rate_metric(), subset)
    t.join()
    assert killed, "no worker was seen running a verdict"
    assert [verdict(s) for s in got] == [verdict(s) for s in local_verdicts[:12]]
    retried = [s for s in got if s.details.get("scoring_retries")]
    assert retried and ray_backend.retries > before
    assert all("WorkerCrashedError" in r for s in retried for r in s.details["scoring_retry_reasons"])


@needs_ray
@pytest.mark.slow
def test_in_flight_never_exceeds_capacity(ray_backend: Any) -> None:
    seen: list[int] = []

    async def go() -> list[Any]:
        work = asyncio.gather(*(executors.run_scoring("sandbox", time.sleep, 0.3) for _ in range(8)))
        while not work.done():
            seen.append(ray_backend.in_flight)
            await asyncio.sleep(0.01)
        return list(await work)

    out = asyncio.run(go())
    # Two CPUs: two verdicts in flight at a time, the other six wait in the driver, none floods the cluster.
    assert len(out) == 8 and max(seen) == ray_backend.capacity == 2 and ray_backend.in_flight == 0


# ---------------------------------------------------------------------------------- synth through the CLI


def _coder(examples: list[Example]) -> Callable[..., str]:
    """Scripted assistant: the proactive candidate writes the task's canonical solution, every other reply the
    wrong one (so verdicts pass and fail, and shard-user's success check runs the sandbox too)."""
    by_opening = {str(e.metadata["shards"][0]): e.reference for e in examples}

    def reply(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
        users = [str(m["content"]) for m in messages if m["role"] == "user"]
        canonical = by_opening.get(users[0]) if users else None
        proactive = messages[0]["role"] == "system" and PROACTIVE_COLLABORATOR[:40] in str(messages[0]["content"])
        code = canonical if (proactive and canonical) else WRONG
        return f"Here it is:\n```python\n{code}```"

    return reply


_TIMING = {"duration_s", "started_at", "finished_at", "elapsed_s", "latency_s", "time_s", "wall_s", "created_at"}


def _strip(obj: Any) -> Any:
    """A record less its timings (and the random sandbox paths in failure messages)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _TIMING and not k.endswith(("_at", "_ms"))}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    if isinstance(obj, str):
        return _TMP.sub("<box>", obj)
    return obj


def _synth(tmp_path: Path, name: str, assistant: str, *extra: str) -> list[dict[str, Any]]:
    from collab_harness.cli.main import main

    out = tmp_path / name
    try:
        main(["synth", "--task", "code-chat", "--limit", "3", "--assistant", assistant, "--candidates", "3",
              "--samples", "1", "--window", "1", "--max-turns", "2", "--no-cache", "--no-progress", "--out",
              str(out), *extra])
    except SystemExit as e:
        assert not e.code, f"synth exited with {e.code}"
    lines = (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines if x.strip()]


@needs_ray
@pytest.mark.slow
def test_code_chat_synth_with_executor_ray_matches_the_local_run(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripted_model: Callable[..., str]
) -> None:
    monkeypatch.setenv("COLLAB_HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    from collab_harness.rundir import read_manifest

    assistant = scripted_model(_coder(sample_examples()))
    local = _synth(tmp_path, "local", assistant)
    assert executors.scoring_backend() == "local"
    remote = _synth(tmp_path, "ray", assistant, "--executor", "ray", "--ray-address", cluster.address)
    assert executors.scoring_backend() == "ray"
    executors.configure_scoring("local")
    assert len(local) == len(remote) == 3
    # Records are appended as conversations finish: compare them by example, not by line.
    diffs = _diff([_strip(r) for r in sorted(remote, key=lambda r: r["example_id"])],
                  [_strip(r) for r in sorted(local, key=lambda r: r["example_id"])])
    assert not diffs, "ray vs local records differ at:\n" + "\n".join(diffs[:20])
    # Real verdicts on both sides: canonical candidates pass, the others fail.
    values = _pass_rates(local)
    assert 1.0 in values and 0.0 in values
    assert read_manifest(tmp_path / "ray").config["executor"] == "ray"
    assert read_manifest(tmp_path / "local").config["executor"] == "local"


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Every path where ``a`` and ``b`` differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {str(a)[:200]!r} != {str(b)[:200]!r}"]


def _pass_rates(records: list[dict[str, Any]]) -> list[float]:
    """Every pass_rate value anywhere in the records."""
    out: list[float] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            if o.get("component") == "pass_rate" and isinstance(o.get("value"), float):
                out.append(o["value"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(records)
    return out


@needs_ray
@pytest.mark.slow
def test_backpressure_follows_the_cluster_cpus(ray_backend: Any, cluster: Any) -> None:
    """Other work on the cluster lowers the verdicts allowed in flight; a node joining raises them. (Last of the
    cluster's tests: it changes the cluster.)"""
    import ray

    from collab_harness.ray_executor import RayScoring, scoring_task

    def settle(backend: RayScoring, want: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while backend.capacity != want and time.monotonic() < deadline:
            time.sleep(0.05)
        return backend.capacity

    # A second connection object (sharing the process's Ray connection) that re-reads the cluster every 0.2 s.
    follower = RayScoring(cluster.address, refresh_s=0.2)
    follower.connect()
    try:
        assert settle(follower, 2) == 2
        # Another job's task holds one CPU: one verdict at a time until it ends.
        other = ray.remote(scoring_task).options(num_cpus=1).remote(time.sleep, (4,), {})
        assert settle(follower, 1) == 1
        ray.get(other)
        assert settle(follower, 2) == 2
        # A node with two more CPUs joins: four in flight.
        cluster.add_node(2)
        cluster.wait_for_cpus(4)
        assert settle(follower, 4) == 4
        assert settle(ray_backend, 4) == 4  # the run's backend follows too (every refresh_s = 2 s)
    finally:
        follower.close()  # it did not join the cluster: the process stays connected


# ------------------------------------------------------------------------------------------ without Ray


def test_executor_ray_without_the_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from collab_harness.errors import PrerequisiteError

    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(PrerequisiteError) as err:
        asyncio.run(executors.start_scoring("ray", address="127.0.0.1:1"))
    msg = str(err.value)
    assert "\n" not in msg and "'ray'" in msg and "pip install 'collab-harness[ray]'" in msg
    assert executors.scoring_backend() == "local"


def test_cli_executor_ray_without_the_extra_exits_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import builtins

    from collab_harness.cli.main import main

    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.setenv("COLLAB_HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as e:
        main(["run", "--task", "code-chat", "--limit", "1", "--assistant", "scripted/echo", "--executor", "ray",
              "--out", str(tmp_path / "r"), "--no-progress"])
    assert e.value.code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "collab-harness[ray]" in err[0], err


def test_config_fields_are_operational() -> None:
    from collab_harness.config import OPERATIONAL_FIELDS, make_config

    a = make_config({"task": "code-chat"})
    b = make_config({"task": "code-chat", "executor": "ray", "ray_address": "10.0.0.1:6379"})
    assert a.executor == "local" and a.ray_address is None and b.executor == "ray"
    assert {"executor", "ray_address"} <= OPERATIONAL_FIELDS
    assert a.identity() == b.identity()  # a resume may switch executors: verdicts are the same
