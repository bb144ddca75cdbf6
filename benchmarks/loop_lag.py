"""Event-loop lag during a code-chat evaluation: the user simulator's success check and ``pass_rate`` run sandboxed
test suites (subprocesses), the cache does sqlite I/O, records are fsynced — none of it may stall the event loop.

A ticker coroutine sleeps 5 ms in a loop and records how late each wake-up is; a probe makes a cached model call
every 100 ms and records its latency (it waited 5,189 ms for a free thread when sandboxes shared asyncio's default
pool). The evaluation: ``--examples`` code-chat examples, shard-user, a scripted assistant that answers with code
(so every user turn and every score runs the sandbox), a fresh cache, all examples concurrently. The last line is the
headline, the worst lag while the run's items are in flight (from the engine's progress start to the end); the worst
lag of the preparation before it (building components, each scorer's one-time setup off the loop: loading a
tokenizer imports litellm/tiktoken, whose C extensions hold the GIL in long chunks) is printed on the line before.

    .venv/bin/python benchmarks/loop_lag.py [--examples 12] [--exchanges 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CODE = ("Here is my attempt:\n```python\ndef task_func(*args, **kwargs):\n    import time\n    total = 0\n"
        "    for i in range(20000):\n        total += i\n    return None\n```\nDoes that do what you need?")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=12)
    ap.add_argument("--exchanges", type=int, default=3)
    args = ap.parse_args()
    os.environ["COLLAB_HARNESS_CACHE_DIR"] = tempfile.mkdtemp(prefix="loop-lag-cache-")

    from collab_harness import build_plugin_manager
    from collab_harness.config import make_config
    from collab_harness.evaluation import open_client, run_evaluation_async
    from collab_harness.models.scripted import register_script

    assistant = register_script("lag-assistant", CODE, latency_s=0.01)
    probe_model = register_script("lag-probe", "pong")
    host = build_plugin_manager()
    cfg = make_config({"task": "code-chat", "limit": args.examples, "max_exchanges": args.exchanges,
                       "assistant": assistant, "concurrency": args.examples})
    lags: list[float] = []
    probes: list[float] = []
    done = asyncio.Event()

    prep_lags: list[float] = []
    in_flight = asyncio.Event()

    class Started:
        """The engine's progress hook: ``start`` is called when the items begin."""

        def start(self, done: int, total: int) -> None:
            in_flight.set()

        def update(self, done: int, total: int, record: object) -> None:
            pass

        def stop(self) -> None:
            pass

    async def ticker() -> None:
        step = 0.005
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(step)
            (lags if in_flight.is_set() else prep_lags).append(max(0.0, time.perf_counter() - t0 - step))

    client = open_client(cfg)

    async def probe() -> None:
        msgs = [{"role": "user", "content": "ping"}]
        await client.complete(probe_model, msgs)  # fill the cache once
        while not done.is_set():
            t0 = time.perf_counter()
            await client.complete(probe_model, msgs)
            probes.append(time.perf_counter() - t0)
            await asyncio.sleep(0.1)

    tasks = [asyncio.ensure_future(ticker()), asyncio.ensure_future(probe())]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        out = await run_evaluation_async(cfg, host, os.path.join(d, "run"), client=client, progress=Started())
    wall = time.perf_counter() - t0
    done.set()
    await asyncio.gather(*tasks)
    await client.aclose()
    n_sandbox = out.results.n_samples
    lags_ms = sorted(x * 1000 for x in lags)
    p99 = lags_ms[int(0.99 * (len(lags_ms) - 1))]
    print(f"code-chat evaluation: {n_sandbox} examples x up to {args.exchanges} exchanges, all concurrent, "
          f"wall {wall:.1f}s, status {out.status}")
    print(f"cached model call during the run: median {statistics.median(probes) * 1000:.1f} ms, "
          f"max {max(probes) * 1000:.1f} ms over {len(probes)} probes")
    print(f"event-loop lag with items in flight: median {statistics.median(lags_ms):.2f} ms, p99 {p99:.1f} ms over "
          f"{len(lags_ms)} ticks")
    print(f"preparation (before the first item; one-time imports and tokenizer loads): worst lag "
          f"{max(prep_lags, default=0.0) * 1000:.1f} ms over {len(prep_lags)} ticks")
    print(f"loop_lag_max_ms: {lags_ms[-1]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
