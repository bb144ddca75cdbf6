"""Dynamic batching of the local provider: 8 concurrent requests vs the same 8 one at a time, greedy and sampled.

Both modes go through the real client (cache off) to ``local/smollm2``, 64 new tokens each (``min_new_tokens`` so
every request produces exactly 64). Two cases: greedy, and sampled (temperature 0.7, every request with its own
seed: they still share a batch, and each row's text must be the same in both modes). Rounds alternate the order of
the two modes; the best round of each is reported, which filters out bursts from other processes on a shared
machine. The last line is the headline: the sampled case's ratio.

    .venv/bin/python benchmarks/local_batching.py [--rounds 2] [--requests 8] [--tokens 64] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collab_harness.models.client import Client
from collab_harness.models.protocol import Completion, GenerationParams

MODEL = "local/smollm2"
TOPICS = ["a cat", "a lighthouse", "a river", "the moon", "a bakery", "a robot", "a storm", "an old map",
          "a violin", "a garden", "a train", "a mountain", "a library", "a comet", "a fox", "a bridge"]


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a short story about {TOPICS[i % len(TOPICS)]}."}]


def params(base: GenerationParams, i: int) -> GenerationParams:
    return base if base.temperature == 0 else base.with_(seed=1000 + i)  # sampled: every request its own seed


async def one_at_a_time(c: Client, n: int, p: GenerationParams) -> tuple[float, list[Completion]]:
    t0 = time.perf_counter()
    out = [await c.complete(MODEL, messages(i), params=params(p, i)) for i in range(n)]
    return time.perf_counter() - t0, out


async def concurrent(c: Client, n: int, p: GenerationParams) -> tuple[float, list[Completion]]:
    t0 = time.perf_counter()
    out = await asyncio.gather(*(c.complete(MODEL, messages(i), params=params(p, i)) for i in range(n)))
    return time.perf_counter() - t0, list(out)


async def case(c: Client, label: str, p: GenerationParams, args: argparse.Namespace) -> float:
    batcher = await c._provider(MODEL).batcher(MODEL)  # type: ignore[attr-defined]
    seen = len(batcher.batch_sizes)
    best_seq = best_bat = 0.0
    same = 0
    for r in range(args.rounds):
        order = (one_at_a_time, concurrent) if r % 2 == 0 else (concurrent, one_at_a_time)
        results = {}
        for fn in order:
            dt, out = await fn(c, args.requests, p)
            toks = sum(o.usage.completion_tokens for o in out)
            results[fn.__name__] = out
            tps = toks / dt
            print(f"{label} round {r + 1} {fn.__name__:>13}: {toks} tokens in {dt:6.2f} s = {tps:6.1f} tokens/s")
            if fn is concurrent:
                best_bat = max(best_bat, tps)
            else:
                best_seq = max(best_seq, tps)
        same = sum(a.text == b.text for a, b in zip(results["one_at_a_time"], results["concurrent"], strict=True))
    print(f"{label}: batch sizes seen by the worker: {batcher.batch_sizes[seen:]}")
    print(f"{label}: outputs identical in both modes: {same}/{args.requests}")
    print(f"{label}: one at a time: {best_seq:.1f} tokens/s; batched: {best_bat:.1f} tokens/s "
          f"(best of {args.rounds} rounds, {os.cpu_count()} cores)")
    return best_bat / best_seq


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads during generation (default: torch's)")
    args = ap.parse_args()
    greedy = GenerationParams(max_tokens=args.tokens, extra=(("min_new_tokens", args.tokens),))
    sampled = greedy.with_(temperature=0.7)
    async with Client(use_cache=False, local_threads=args.threads) as c:
        await c.complete(MODEL, messages(0), params=GenerationParams(max_tokens=4))  # load (and convert once)
        greedy_ratio = await case(c, "greedy", greedy, args)
        sampled_ratio = await case(c, "sampled", sampled, args)
    print(f"local_batching_speedup: {greedy_ratio:.2f}")
    print(f"local_batching_sampled_speedup: {sampled_ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
