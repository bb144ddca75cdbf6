"""Build (``--write``) and verify the shipped ``code-chat`` sample.

Verification: every canonical solution passes its suite in the sandbox, and a trivially wrong solution fails it.
Usage: ``.venv/bin/python scripts/check_code_sample.py [--write]``
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from code_sample_tasks import TASKS  # noqa: E402
from collab_harness_plugins.metrics.sandbox import run_tests  # noqa: E402
from collab_harness_plugins.tasks._common import sample_path  # noqa: E402
from collab_harness_plugins.tasks.code_chat import build_shards  # noqa: E402

N_TEST = 20
WRONG = "def task_func(*args, **kwargs):\n    return None\n"


def build() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i, (request, libs, code_prompt, body, tests) in enumerate(TASKS):
        prompt = f"{request}\nYou should write self-contained code starting with:\n```\n{code_prompt}```"
        out.append({
            "id": f"code-chat/sample-{i:03d}",
            "task": "code-chat",
            "split": "test" if i < N_TEST else "train",
            "prompt": prompt,
            "reference": code_prompt + body,
            "metadata": {
                "code_prompt": code_prompt,
                "test": tests,
                "entry_point": "task_func",
                "libs": libs,
                "extraction_requirement": f"The code must start with:\n{code_prompt}",
                "shards": build_shards(prompt, code_prompt),
            },
        })
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help="regenerate the JSONL from code_sample_tasks.py")
    args = ap.parse_args()
    path = sample_path("code_chat.jsonl")
    if args.write:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in build()), encoding="utf-8")
        print(f"wrote {path}")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def check(r: dict) -> str | None:
        good = run_tests(r["reference"], r["metadata"]["test"])
        bad = run_tests(WRONG, r["metadata"]["test"])
        if not good.passed:
            return f"{r['id']}: canonical solution {good.status}: {good.reason}"
        if bad.passed:
            return f"{r['id']}: wrong solution passes"
        if not 3 <= good.tests_total <= 6:
            return f"{r['id']}: {good.tests_total} tests (want 3-6)"
        return None

    with ThreadPoolExecutor(4) as pool:
        problems = [p for p in pool.map(check, records) if p]
    for p in problems:
        print("FAIL", p)
    splits = {s: sum(r["split"] == s for r in records) for s in ("train", "test")}
    print(f"{len(records)} tasks {splits}: {len(records) - len(problems)} ok, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
