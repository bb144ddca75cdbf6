"""Scripted models for the evaluation tests, and a CLI driver that registers them in a fresh process.

``python tests/evaluate_scripts.py [--latency S] [--error-rate P] [--timeout-rate P] [--malformed-rate P] -- ARGS``
registers ``scripted/ev-assistant`` and ``scripted/ev-judge`` and then runs ``collab-harness ARGS`` in the same
process (scripts live in the process that registers them).

The assistant asks a clarifying question first, then writes a draft out of what the user told it (so BLEU against
the article is not trivially 0) with a boxed answer (so math answers get checked). The judge model serves both
artefact extraction (returns the last assistant message) and judging (JSON whose score depends on the transcript, so
scores vary between examples). Everything depends only on the request: deterministic under any concurrency.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

ASSISTANT = "ev-assistant"
JUDGE = "ev-judge"


def assistant_reply(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    n = sum(1 for m in messages if m.get("role") == "assistant")
    if n == 0:
        return "Happy to help. Who is it for, and what should it cover?"
    told = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    return f"Here is a draft based on what you said: {told[-1200:]}\n\nFinal answer: \\boxed{{{len(told) % 7}}}"


def judge_reply(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    system = str(messages[0].get("content", "")) if messages else ""
    body = "\n".join(str(m.get("content", "")) for m in messages)
    if "extract" in system.lower():
        # Extraction: the last assistant message of the transcript.
        part = body.rsplit("ASSISTANT:", 1)[-1]
        return part.split("CONVERSATION>>>", 1)[0].strip() or "NO_ARTEFACT"
    digest = int(hashlib.sha256(body.encode()).hexdigest()[:8], 16)
    return json.dumps({"rationale": "scripted verdict", "score": (digest % 5) / 4})


def register(*, latency_s: float = 0.0, error_rate: float = 0.0, timeout_rate: float = 0.0,
             malformed_rate: float = 0.0, seed: int = 0, suffix: str = "") -> tuple[str, str]:
    """Register both scripts (names get ``suffix``); returns their model strings."""
    from collab_harness.models.scripted import register_script

    faults = dict(latency_s=latency_s, error_rate=error_rate, timeout_rate=timeout_rate,
                  malformed_rate=malformed_rate)
    a = register_script(ASSISTANT + suffix, assistant_reply, seed=seed, **faults)
    j = register_script(JUDGE + suffix, judge_reply, seed=seed + 1, **faults)
    return a, j


def main(argv: list[str]) -> Any:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--error-rate", type=float, default=0.0)
    ap.add_argument("--timeout-rate", type=float, default=0.0)
    ap.add_argument("--malformed-rate", type=float, default=0.0)
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    ns = ap.parse_args(argv)
    register(latency_s=ns.latency, error_rate=ns.error_rate, timeout_rate=ns.timeout_rate,
             malformed_rate=ns.malformed_rate)
    rest = ns.rest[1:] if ns.rest[:1] == ["--"] else ns.rest
    from collab_harness.cli.main import main as cli_main

    return cli_main(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
