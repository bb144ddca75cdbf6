"""Wall time of `collab-harness --help` (goal: <= 1.0 s on 2 cores), beside a bare interpreter start-up and
`collab-harness list metrics` measured in the same run, and a check that torch stays out of sys.modules.

    .venv/bin/python benchmarks/cli_help.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _time(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr[-500:]}")
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    exe = shutil.which("collab-harness") or str(Path(sys.executable).with_name("collab-harness"))
    baseline = _time([sys.executable, "-c", "pass"], args.repeat)
    help_s = _time([exe, "--help"], args.repeat)
    list_s = _time([exe, "list", "metrics", "--json"], args.repeat)
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys, runpy\nsys.argv=['collab-harness','--help']\n"
         "try:\n runpy.run_module('collab_harness.cli.main', run_name='__main__')\nexcept SystemExit: pass\n"
         "print('torch' in sys.modules)"],
        capture_output=True, text=True,
    )
    torch_loaded = probe.stdout.strip().splitlines()[-1]
    print(f"python -c pass (median of {args.repeat}): {baseline:.3f} s")
    print(f"collab-harness --help:               {help_s:.3f} s  ({help_s / baseline:.1f}x bare start-up)")
    print(f"collab-harness list metrics --json:  {list_s:.3f} s  ({list_s / baseline:.1f}x bare start-up)")
    print(f"torch imported by --help: {torch_loaded}")
    print(f"goal <= 1.0 s: {'met' if help_s <= 1.0 else 'MISSED'}")
    print(f"cli_help_seconds: {help_s:.3f}")


if __name__ == "__main__":
    main()
