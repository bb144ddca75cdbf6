"""Synthesis wall time against its critical path: 4 examples x 3 turns x 3 candidates, MR with S=3, W=2.

Every model (assistant, LLM user, judge) is a scripted provider with a latency per call, and the scorers are the
interactivity judge and token counts (no CPU-heavy checker: the sandbox and math checks scale out separately), so the
time is the dependency structure's. Per example the critical path is: the user's opening message, then per turn one
candidate generation plus the slowest candidate's MR (its slowest future: 2W simulated calls, then the judge /
extraction call). Examples are independent, so with enough concurrency the whole run can take as little as the
slowest example's critical path — that is the bound.

- Fixed latency (100 ms): the bound is computed from the records (the calls each future actually made).
- Lognormal latency (mean 100 ms, sigma 1; the latency is a hash of the request, so a request costs the same every
  time it is made): the realised critical path of an example is its wall time when it runs alone (everything inside
  it concurrent); the bound is the largest of those.

The reference implementation scored a turn's candidates one after another: 2.83x the critical path for one
conversation. The last line is the headline (fixed latency), goal <= 1.2; the lognormal line's goal is <= 1.3.

    .venv/bin/python benchmarks/synth_critical_path.py [--examples 4] [--turns 3] [--candidates 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def assistant(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    n = sum(1 for m in messages if m["role"] == "assistant")
    return f"Reply {n} (seed {params.seed}): could you tell me which part matters most?"


def user(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    # The LLM user never ends the chat: every turn and every future runs to its full length.
    return json.dumps({"thought": "keep going", "message": f"Here is more detail ({len(messages)}).",
                       "terminate": False})


def judge(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    if messages[0]["role"] == "system" and "extract" in messages[0]["content"].lower():
        return "\\boxed{1}"
    h = int(hashlib.sha256(messages[-1]["content"].encode()).hexdigest()[:6], 16)
    return json.dumps({"rationale": "scripted", "score": (h % 5) / 4})


def lognormal_latency(mean_s: float, sigma: float) -> Any:
    mu = math.log(mean_s) - sigma**2 / 2

    def latency(messages: list[dict[str, Any]], params: Any, sample_index: int) -> float:
        key = json.dumps([messages, params.seed, params.temperature, sample_index], sort_keys=True, default=str)
        u = [int(hashlib.sha256(f"{i}:{key}".encode()).hexdigest()[:12], 16) / 16**12 for i in (1, 2)]
        z = math.sqrt(-2 * math.log(max(u[0], 1e-12))) * math.cos(2 * math.pi * u[1])  # Box-Muller
        return math.exp(mu + sigma * z)

    return latency


def critical_calls(rec: Any, scoring_depth: int) -> int:
    """Calls on the critical path of one synthesised conversation (fixed latency: x latency = its duration)."""
    calls = 1  # the user's opening message
    for t in rec.turns:
        slowest = 0
        for c in t.candidates:
            for f in c.futures:
                slowest = max(slowest, (len(f.conversation) - f.forward_start - 1) + scoring_depth)
        calls += 1 + slowest
    return calls


async def synth(limit: int, offset: int | None, args: argparse.Namespace, models: dict[str, str]) -> tuple[float, Any]:
    from collab_harness import build_plugin_manager
    from collab_harness.config import make_config
    from collab_harness.evaluation import open_client
    from collab_harness.synthesize import run_synthesis_async

    host = build_plugin_manager()
    cfg = make_config({"task": "math-chat", "split": "train", "limit": limit, "assistant": models["assistant"],
                       "user": models["user"], "judge": models["judge"], "cache": False, "concurrency": 64,
                       "metrics": ["interactivity", "token_amount"],
                       "mr": {"samples": 3, "window": 2},
                       "synth": {"candidates": args.candidates, "max_turns": args.turns}})
    client = open_client(cfg)
    client.limits.update({"scripted": 1024})
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        out = await run_synthesis_async(cfg, host, os.path.join(d, "s"), client=client)
        wall = time.perf_counter() - t0
        from collab_harness.rundir import read_records

        recs = read_records(os.path.join(d, "s", "samples.jsonl")).records
    await client.aclose()
    assert out.status == "success", out.results.errors_by_component
    return wall, recs


async def one_alone(example_id: str, args: argparse.Namespace, models: dict[str, str]) -> float:
    """Wall time of one example run alone: pick it by limiting to the examples and filtering."""
    from collab_harness import build_plugin_manager
    from collab_harness.config import build_components, make_config
    from collab_harness.evaluation import open_client
    from collab_harness.mr_run import mr_config_of
    from collab_harness.synthesize import SynthRun

    host = build_plugin_manager()
    cfg = make_config({"task": "math-chat", "split": "train", "assistant": models["assistant"],
                       "user": models["user"], "judge": models["judge"], "cache": False,
                       "metrics": ["interactivity", "token_amount"], "mr": {"samples": 3, "window": 2},
                       "synth": {"candidates": args.candidates, "max_turns": args.turns}})
    built = build_components(host, cfg)
    ex = next(e for e in built.task.load("train") if e.id == example_id)
    client = open_client(cfg)
    client.limits.update({"scripted": 1024})
    runner = SynthRun(cfg, built, client, mr_config_of(cfg, built))
    t0 = time.perf_counter()
    rec = await runner.process(ex, 1)
    wall = time.perf_counter() - t0
    await client.aclose()
    assert not rec.errors, rec.errors
    return wall


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=4)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--candidates", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.1)
    args = ap.parse_args()
    from collab_harness.models.scripted import register_script

    fixed = {"assistant": register_script("cp-assistant", assistant, latency_s=args.latency),
             "user": register_script("cp-user", user, latency_s=args.latency),
             "judge": register_script("cp-judge", judge, latency_s=args.latency)}
    # Warm-up (imports, the math checker's worker processes, tokenizer files): not part of any measurement.
    await synth(1, None, argparse.Namespace(turns=1, candidates=1), fixed)
    wall, recs = await synth(args.examples, None, args, fixed)
    bound = max(critical_calls(r, scoring_depth=1) for r in recs) * args.latency
    n_calls = sum(1 + sum(len(t.candidates) * (1 + sum(len(c.futures) * 5 for c in t.candidates[:1])) for t in r.turns)
                  for r in recs)
    print(f"fixed {args.latency * 1000:.0f} ms: {len(recs)} examples x {args.turns} turns x {args.candidates} "
          f"candidates, S=3, W=2 (~{n_calls} calls): wall {wall:.2f}s, critical-path bound {bound:.2f}s, "
          f"ratio {wall / bound:.3f} (one call after another would take ~{n_calls * args.latency:.0f}s)")

    lat = lognormal_latency(args.latency, 1.0)
    logn = {"assistant": register_script("cpl-assistant", assistant, latency_s=lat),
            "user": register_script("cpl-user", user, latency_s=lat),
            "judge": register_script("cpl-judge", judge, latency_s=lat)}
    wall_l, recs_l = await synth(args.examples, None, args, logn)
    alone = [await one_alone(r.example_id, args, logn) for r in recs_l]
    bound_l = max(alone)
    print(f"lognormal (mean {args.latency * 1000:.0f} ms, sigma 1): wall {wall_l:.2f}s, realised critical path "
          f"(slowest example alone) {bound_l:.2f}s, ratio {wall_l / bound_l:.3f}")
    print(f"synth_wall_over_bound_lognormal: {wall_l / bound_l:.3f}")
    print(f"synth_wall_over_bound: {wall / bound:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
