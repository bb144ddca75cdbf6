"""Persistent response cache: an identical second run makes zero paid (provider) calls.

A workload shaped like MR (conversations x sampled futures x turns, plus a structured judge call each) runs twice
against a fresh cache directory, each time in a new client. The scripted model sleeps per call like a remote API.
Pass ``--model local/smollm2`` to use the embedded model instead (slower). The last line is the headline figure.

    .venv/bin/python benchmarks/cache.py [--conversations 20] [--samples 3] [--turns 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from collab_harness.models.client import Client
from collab_harness.models.protocol import GenerationParams
from collab_harness.models.scripted import register_script


class Verdict(BaseModel):
    score: int
    reason: str


def reply(messages: list[dict], params: GenerationParams, sample_index: int) -> str:
    if "JSON" in messages[-1]["content"]:
        return f'{{"score": {len(messages) % 3}, "reason": "ok"}}'
    return f"turn {len(messages)} of sample {sample_index}: {messages[-1]['content'][:40]}"


async def workload(c: Client, model: str, args: argparse.Namespace) -> None:
    params = GenerationParams(temperature=1.0, max_tokens=32)

    async def future(conv: int, s: int) -> None:
        msgs = [{"role": "user", "content": f"Conversation {conv}: help me with task {conv}."}]
        for _ in range(args.turns):
            r = await c.complete(model, msgs, params=params, sample_index=s, component="assistant")
            msgs += [{"role": "assistant", "content": r.text}, {"role": "user", "content": "go on"}]
        v = await c.structured(model, [*msgs[:-1], {"role": "user", "content": "Rate it."}], Verdict,
                               params=GenerationParams(max_tokens=32), sample_index=s, component="judge")
        if not v.ok and model.startswith("scripted/"):
            raise SystemExit(f"unexpected structured failure: {v.error}")

    await asyncio.gather(*(future(i, s) for i in range(args.conversations) for s in range(args.samples)))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=20)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per scripted call")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    model = args.model or register_script("bench-cache", reply, latency_s=args.latency)
    with tempfile.TemporaryDirectory() as d:
        paid = []
        for run in (1, 2):
            async with Client(cache_dir=Path(d)) as c:
                t0 = time.perf_counter()
                await workload(c, model, args)
                dt = time.perf_counter() - t0
                tot = c.usage.totals()
                paid.append(c.paid_calls)
                print(f"run {run}: {tot['calls']} calls, {tot['cache_hits']} cache hits, {c.paid_calls} paid calls, "
                      f"{dt:.2f} s")
    print(f"paid_calls_second_run: {paid[1]}")


if __name__ == "__main__":
    asyncio.run(main())
