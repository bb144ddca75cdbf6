"""MR wall time against its critical path (goal: ratio <= 1.15).

Setup (scripted models throughout, every call 100 ms): 3 candidate responses scored at once (``score_many``),
S = 3 futures, W = 2 exchanges; the user is ``llm-user`` played by a scripted model; scorers: ``bleu`` and
``char_bleu`` (both read the extracted document: one shared extraction per future) plus the ``interactivity``
judge (one call per future).

Critical path of one future: W × (user call + assistant call), then max(extraction -> metrics, judge) — extraction
and judge run in parallel — so ``(2W + 1) × latency``. All futures of all candidates run concurrently, so the whole
batch has the same bound. Calls by kind come from the client's usage counters.

    .venv/bin/python benchmarks/mr_critical_path.py [--latency 0.1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from collab_harness_plugins.judges.llm_judges import InteractivityJudge
from collab_harness_plugins.metrics.text import BleuMetric, CharBleuMetric
from collab_harness_plugins.simulators.llm_user import LLMUser

from collab_harness.models.client import Client
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.reward import MRConfig, MRItem, MRResult, score_many
from collab_harness.testing import ToyTask
from collab_harness.types import Conversation

CANDIDATES = 3
S = 3
W = 2


def _assistant(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    return f"Here is a draft (future {sample_index}, seed {params.seed}): waves and salt by the harbor."


async def _run(latency: float, seed: int) -> tuple[float, dict[str, dict[str, Any]], list[MRResult]]:
    assistant = register_script("bench-assistant", _assistant, latency_s=latency)
    user = register_script(
        "bench-user", '{"thought": "", "message": "Please add gulls and the tide.", "terminate": false}',
        latency_s=latency,
    )
    extractor = register_script("bench-extract", "Waves and salt by the harbor, gulls over the tide.",
                                latency_s=latency)
    judge = register_script("bench-judge", '{"rationale": "asks what the user wants", "score": 0.8}',
                            latency_s=latency)
    task = ToyTask()
    example = task.load("test")[0]
    history = Conversation.of(("user", "I'd like a short poem."))
    items = [MRItem(history, f"Candidate {i}: what should the poem mention?", example) for i in range(CANDIDATES)]
    scorers = [BleuMetric(), CharBleuMetric(), InteractivityJudge(model=judge)]
    config = MRConfig(samples=S, window_exchanges=W, extraction_model=extractor)
    try:
        # No cache: every call pays its latency; limits high enough that the client never queues these calls.
        async with Client(use_cache=False, concurrency=256) as client:
            t0 = time.perf_counter()
            results = await score_many(items, task=task, simulator=LLMUser(model=user), scorers=scorers,
                                       assistant_model=assistant, client=client, config=config, seed=seed)
            wall = time.perf_counter() - t0
            usage = client.usage.snapshot()
    finally:
        for name in ("bench-assistant", "bench-user", "bench-extract", "bench-judge"):
            unregister_script(name)
    ok = [r for r in results if isinstance(r, MRResult)]
    if len(ok) != CANDIDATES or any(r.n_ok != S for r in ok):
        raise SystemExit(f"benchmark run failed: {results}")
    return wall, usage, ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.1, help="seconds per scripted call")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    lat = args.latency
    asyncio.run(_run(lat, seed=-1))  # warm-up: imports (sacrebleu, nltk), worker threads
    walls = []
    usage: dict[str, dict[str, Any]] = {}
    results: list[MRResult] = []
    for r in range(args.repeat):
        wall, usage, results = asyncio.run(_run(lat, seed=r))
        walls.append(wall)
    wall = statistics.median(walls)
    chain = 2 * W + 1
    bound = chain * lat
    total_calls = sum(int(u["provider_calls"]) for u in usage.values())
    print(f"setup: {CANDIDATES} candidates x S={S} futures x W={W} exchanges, latency {lat * 1000:.0f} ms/call, "
          "scorers bleu + char_bleu (shared extraction) + interactivity judge")
    print("calls by kind:")
    for kind, u in sorted(usage.items()):
        print(f"  {kind:16s} {int(u['provider_calls']):3d}")
    expected = {"assistant": CANDIDATES * S * W, "user": CANDIDATES * S * W, "extract": CANDIDATES * S,
                "judge": CANDIDATES * S}
    print(f"  expected: assistant {expected['assistant']}, user {expected['user']}, "
          f"extraction {expected['extract']}, judge {expected['judge']} (total {sum(expected.values())})")
    print(f"MR means: {', '.join(f'{r.mean:.3f}' for r in results if r.mean is not None)}")
    print(f"all calls one after another: {total_calls * lat:.2f} s")
    print(f"wall time (median of {args.repeat}): {wall:.3f} s  [{', '.join(f'{w:.3f}' for w in walls)}]")
    print(f"critical-path bound: {chain} dependent calls x {lat:.3f} s = {bound:.3f} s")
    print(f"mr_critical_path_ratio: {wall / bound:.2f}")


if __name__ == "__main__":
    main()
