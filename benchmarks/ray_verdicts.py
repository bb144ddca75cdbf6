"""Overhead of the Ray scoring backend: the same batch of sandbox verdicts through the local pool and through a
local Ray cluster with the same cores, in one run.

The batch: every shipped code-chat task's canonical solution and a wrong one (``pass_rate``'s verdict function,
sandbox and all), ``--repeat`` times. Both backends are warmed up first (Ray starts its worker processes, each
process probes the sandbox once), then they alternate for ``--rounds`` rounds so a change in the machine's load
hits both alike. Every round's verdicts are checked against the first local round's (the random sandbox paths a
failure message quotes aside). The cluster is ``--nodes`` ``ray start`` processes sharing ``--cores`` CPUs (one
node by default), started in a temporary directory and ended by session id afterwards.

    .venv/bin/python benchmarks/ray_verdicts.py [--cores N] [--nodes 1] [--repeat 2] [--rounds 2]

The last line is the headline: ``ray_over_local: <Ray wall time / local wall time>`` (goal <= 1.2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from collab_harness_plugins.metrics.pass_rate import sandbox_verdict
from collab_harness_plugins.metrics.sandbox import SandboxLimits

from collab_harness import executors
from collab_harness.types import Example, Score

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "plugins" / "tasks" / "data" / "code_chat.jsonl"
WRONG = "def task_func(*args, **kwargs):\n    return None\n"
_TMP = re.compile(r"/tmp/ch-sandbox-[^/\s]+(/work/tmp/tmp[^/\s]+)?")


def batch(repeat: int) -> list[tuple[Any, ...]]:
    rows = [json.loads(x) for x in SAMPLE.read_text(encoding="utf-8").splitlines() if x.strip()]
    exs = [Example(**{k: r[k] for k in ("id", "task", "prompt", "reference", "metadata")}) for r in rows]
    one = [(e, code, str(e.metadata["test"]), SandboxLimits(), "task_func", "artefact")
           for e in exs for code in (e.reference, WRONG)]
    return one * repeat


def key(s: Score) -> tuple[Any, ...]:
    d = s.details
    return (s.value, dict(s.values), s.error, d.get("status"), _TMP.sub("<box>", str(d.get("reason"))),
            d.get("isolation"))


async def run_batch(jobs: list[tuple[Any, ...]]) -> tuple[float, list[Score], int]:
    t = time.perf_counter()
    out = await asyncio.gather(*(executors.run_scoring("sandbox", sandbox_verdict, *j) for j in jobs))
    return time.perf_counter() - t, [o.value for o in out], sum(o.retries for o in out)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (processes that ended are not counted)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)), help="CPUs for both backends")
    ap.add_argument("--nodes", type=int, default=1, help="ray nodes sharing the cores (head first)")
    ap.add_argument("--repeat", type=int, default=2, help="copies of the 60-verdict batch per round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating local/ray rounds")
    args = ap.parse_args()
    if not 1 <= args.nodes <= args.cores:
        ap.error("--nodes must be between 1 and --cores")
    from collab_harness.ray_executor import LocalCluster

    jobs = batch(args.repeat)
    warm = batch(1)[: 2 * args.cores]
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{len(jobs)} verdicts per round, {args.cores} cores each way")
    executors.configure({"sandbox": args.cores})
    cpus = [args.cores // args.nodes + (1 if i < args.cores % args.nodes else 0) for i in range(args.nodes)]
    t0 = time.perf_counter()
    with LocalCluster(cpus) as cluster:
        asyncio.run(executors.start_scoring("ray", address=cluster.address))
        cluster.wait_for_cpus(args.cores)
        while executors.scoring_capacity() < args.cores:
            time.sleep(0.1)
        print(f"ray cluster: {len(cpus)} node(s) {cpus} up and joined in {time.perf_counter() - t0:.1f}s")

        def on(backend: str) -> None:
            if backend == "ray":
                asyncio.run(executors.start_scoring("ray", address=cluster.address))
            else:
                executors.configure_scoring("local")

        for backend in ("local", "ray"):
            on(backend)
            dt, _, _ = asyncio.run(run_batch(warm))
            print(f"warm-up {backend}: {len(warm)} verdicts in {dt:.1f}s")
        totals = {"local": 0.0, "ray": 0.0}
        reference: list[tuple[Any, ...]] | None = None
        ray_cpu = 0.0
        for r in range(args.rounds):
            for backend in ("local", "ray"):
                on(backend)
                pids = cluster.processes() if backend == "ray" else []
                before = cpu_seconds(pids)
                dt, scores, retries = asyncio.run(run_batch(jobs))
                if backend == "ray":
                    ray_cpu += cpu_seconds(pids) - before
                keys = [key(s) for s in scores]
                if reference is None:
                    reference = keys
                    passed = sum(1 for s in scores if s.value == 1.0)
                    print(f"verdicts: {passed} pass, {len(scores) - passed} fail "
                          f"(expected {len(jobs) // 2} each)")
                    if passed != len(jobs) // 2:
                        print("a canonical solution failed or a wrong one passed: the machine is too loaded for the "
                              "sandbox's limits?", file=sys.stderr)
                same = keys == reference
                totals[backend] += dt
                print(f"round {r + 1} {backend:5s}: {dt:6.2f}s  {len(jobs) / dt:5.2f} verdicts/s  "
                      f"retries {retries}  verdicts {'identical' if same else 'DIFFER'}")
                if not same:
                    print("verdicts differ between backends", file=sys.stderr)
                    return 1
        executors.close_scoring()
    print(f"ray cluster processes (raylet, GCS, agents, workers) used {ray_cpu:.1f} CPU-s during the Ray rounds "
          f"({totals['ray']:.1f}s of wall time on {args.cores} cores)")
    print(f"totals: local {totals['local']:.2f}s, ray {totals['ray']:.2f}s; load average now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"ray_over_local: {totals['ray'] / totals['local']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
