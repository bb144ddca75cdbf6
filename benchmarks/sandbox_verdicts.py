"""Seconds per sandbox verdict over the shipped code-chat sample: passing (canonical), failing (wrong) and
timing-out (infinite loop, a few only) solutions, run one at a time.

Usage: ``.venv/bin/python benchmarks/sandbox_verdicts.py [--timeouts N] [--timeout-s S]``
"""

from __future__ import annotations

import argparse
import statistics
import time

from collab_harness_plugins.metrics.sandbox import SandboxLimits, isolation_support, run_tests
from collab_harness_plugins.tasks.code_chat import CodeChatTask

WRONG = "def task_func(*args, **kwargs):\n    return None\n"
LOOP = "def task_func(*args, **kwargs):\n    while True:\n        pass\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeouts", type=int, default=3, help="number of timeout cases (each costs ~timeout-s)")
    ap.add_argument("--timeout-s", type=float, default=2.0)
    args = ap.parse_args()
    task = CodeChatTask({"source": "sample"})
    examples = [e for s in ("test", "train") for e in task.load(s)]
    print("isolation:", isolation_support())
    times: dict[str, list[float]] = {"pass": [], "fail": [], "timeout": []}
    limits = SandboxLimits(timeout_s=args.timeout_s)
    cases = [("pass", e, e.reference) for e in examples] + [("fail", e, WRONG) for e in examples]
    cases += [("timeout", e, LOOP) for e in examples[: args.timeouts]]
    for expected, ex, code in cases:
        t0 = time.perf_counter()
        res = run_tests(code, ex.metadata["test"], limits)
        times[expected].append(time.perf_counter() - t0)
        if res.status != expected:
            print(f"unexpected status for {ex.id} ({expected}): {res.status} {res.reason}")
    for kind, ts in times.items():
        if ts:
            print(f"{kind:8s} n={len(ts):3d} mean={statistics.fmean(ts):.3f}s median={statistics.median(ts):.3f}s")
    pf = times["pass"] + times["fail"]
    print(f"pass+fail mean={statistics.fmean(pf):.3f}s median={statistics.median(pf):.3f}s")
    print(f"sandbox_seconds_per_verdict: {statistics.median(pf):.3f}")


if __name__ == "__main__":
    main()
