"""MR in the online backends: exact rewards with scripted user and judge, one concurrent batch per call, the failure
policies (None / one-line error / recorded penalty), and futures that see a weight change at the next call."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from train_helpers import EXAMPLES, FAST, FAST_MR

from collab_harness.errors import ConfigError

pytest.importorskip("trl")

USER_REPLY = '{"thought": "", "message": "ok, go on", "terminate": false}'
VERDICT = '{"rationale": "It asked what the user needs.", "score": 0.75}'


def _items(n: int) -> list[Any]:
    from collab_harness_plugins.trainers._mr import MRItem

    return [MRItem(row_id=f"r{i}", example_id=EXAMPLES[i % len(EXAMPLES)], task="math-chat",
                   history=({"role": "user", "content": "Can you help me with a math problem?"},),
                   candidate=f"Sure, which problem? ({i})") for i in range(n)]


def _scorer(host: Any, tmp_path: Path, assistant: str, **opts: Any) -> Any:
    from collab_harness_plugins.trainers._mr import MROptions, MRScorer

    o = MROptions(**{**FAST_MR, **opts})
    return MRScorer(o, assistant_model=assistant, host=host, log_path=tmp_path / "rewards.jsonl")


def test_scripted_user_and_judge_give_exact_rewards_in_one_concurrent_batch(
        plugin_host: Any, scripted_model: Callable[..., str], tmp_path: Path) -> None:
    from collab_harness_plugins.trainers._mr import MRRewardFunc

    from collab_harness.models.scripted import script_stats

    user = scripted_model(USER_REPLY, latency_s=0.3)
    judge = scripted_model(VERDICT)
    assistant = scripted_model("Here is how to start.")
    scorer = _scorer(plugin_host, tmp_path, assistant, futures_model=assistant, user=user, judge=judge,
                     metrics=["interactivity"])
    try:
        items = _items(4)
        func = MRRewardFunc(scorer, policy="none")
        t0 = time.monotonic()
        values = func([list(it.history) for it in items], [[{"role": "assistant", "content": it.candidate}]
                                                          for it in items],
                      example_id=[it.example_id for it in items], task=["math-chat"] * 4,
                      id=[it.row_id for it in items])
        wall = time.monotonic() - t0
    finally:
        scorer.close()
    assert values == [0.75] * 4
    assert script_stats(user).max_in_flight == 4  # the batch's futures ran at once, not one prompt at a time
    assert wall < 4 * 0.3 + 1.0
    log = [json.loads(x) for x in (tmp_path / "rewards.jsonl").read_text().splitlines()]
    assert [r["mr"] for r in log] == [0.75] * 4 and all(r["per_metric"]["interactivity"] == 0.75 for r in log)


@pytest.mark.parametrize("policy", ["none", "raise", "penalty"])
def test_a_failed_mr_is_never_a_silent_zero(policy: str, plugin_host: Any, scripted_model: Callable[..., str],
                                            tmp_path: Path) -> None:
    from collab_harness_plugins.trainers._mr import MRRewardError, MRRewardFunc

    judge = scripted_model(VERDICT, malformed_rate=1.0)  # every verdict is unreadable: the judge's score fails
    assistant = scripted_model("Here is how to start.")
    scorer = _scorer(plugin_host, tmp_path, assistant, futures_model=assistant, judge=judge,
                     metrics=["interactivity"])
    items = _items(2)
    func = MRRewardFunc(scorer, policy=policy, penalty=-1.0 if policy == "penalty" else None)
    args = ([list(it.history) for it in items], [it.candidate for it in items])
    kw = {"example_id": [it.example_id for it in items], "task": ["math-chat"] * 2, "id": ["row-a", "row-b"]}
    try:
        if policy == "raise":
            with pytest.raises(MRRewardError) as err:
                func(*args, **kw)
            msg = str(err.value)
            assert "\n" not in msg and "row-a" in msg and "interactivity" in msg and "mr_failure_penalty" in msg
        elif policy == "none":
            assert func(*args, **kw) == [None, None]
        else:
            assert func(*args, **kw) == [-1.0, -1.0]
            assert scorer.stats.penalised == 2
    finally:
        scorer.close()
    log = [json.loads(x) for x in (tmp_path / "rewards.jsonl").read_text().splitlines()]
    scored = [r for r in log if "mr" in r]
    assert len(scored) == 2 and all(r["mr"] is None and r["errors"] for r in scored)  # recorded with the reason
    if policy == "penalty":
        assert [r["penalty_applied"] for r in log if "penalty_applied" in r] == [-1.0, -1.0]


def test_weight_change_is_visible_to_the_next_future(tiny: Path, plugin_host: Any, tmp_path: Path) -> None:
    """The policy plays the futures as ``local/live:...``; an optimizer step signalled by the callback changes the
    next future's assistant turn (same seed, cache on), and nothing changes without a step."""
    import torch
    from collab_harness_plugins.trainers._mr import live_callback
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from collab_harness.models.local import register_live_model, unregister_live_model

    model, tok = AutoModelForCausalLM.from_pretrained(tiny), AutoTokenizer.from_pretrained(tiny)
    handle = register_live_model("test-policy-weights", model, tok)
    scorer = _scorer(plugin_host, tmp_path, handle.model_string, metrics=["token_amount"], mr_cache=True)
    scorer.live = handle
    cb = live_callback(handle)

    def future_reply() -> str:
        res = scorer.score(_items(1), step=0)[0]
        msgs = res.futures[0].conversation.messages
        assert msgs[-1].role == "assistant"  # the future's own assistant turn, played by the live policy
        return msgs[-1].content

    try:
        before = future_reply()
        assert future_reply() == before  # same seed, same weights: same future
        cb.on_pre_optimizer_step(None, None, None)
        with torch.no_grad():  # what an optimizer step does: change the weights in place
            for p in model.parameters():
                p.add_(torch.randn_like(p, generator=torch.Generator().manual_seed(1)) * 0.5)
        cb.on_optimizer_step(None, None, None)
        after = future_reply()
        assert handle.version == 1 and cb.updates == 1
        assert after != before
    finally:
        scorer.close()
        unregister_live_model("test-policy-weights")
    versions = [json.loads(x)["policy_version"] for x in (tmp_path / "rewards.jsonl").read_text().splitlines()]
    assert versions == [0, 0, 1]


def test_unknown_example_id_fails_before_training(tiny: Path, tmp_path: Path, plugin_host: Any) -> None:
    from collab_harness_plugins.trainers.grpo import GRPOBackend

    rows = tmp_path / "rl.jsonl"
    rows.write_text(json.dumps({"id": "x", "example_id": "math-chat/sample-0002", "task": "math-chat",
                                "prompt": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(ConfigError, match=r"no example 'math-chat/sample-0002'; did you mean"):
        GRPOBackend(**FAST, **FAST_MR, num_generations=2).train(data=str(rows), model=str(tiny),
                                                                 out=tmp_path / "o", host=plugin_host)
    man = json.loads((tmp_path / "o" / "training_manifest.json").read_text())
    assert man["status"] == "failed" and "no example" in man["error"]


@pytest.mark.slow
def test_online_dpo_step_fails_with_one_line_error_on_a_failed_mr(
        tiny: Path, exports: dict[str, Path], tmp_path: Path, plugin_host: Any,
        scripted_model: Callable[..., str]) -> None:
    from collab_harness_plugins.trainers._mr import MRRewardError
    from collab_harness_plugins.trainers.online_dpo import OnlineDPOBackend

    judge = scripted_model(VERDICT, malformed_rate=1.0)
    backend = OnlineDPOBackend(**FAST, **{**FAST_MR, "judge": judge}, metrics=["interactivity"])
    with pytest.raises(MRRewardError, match="MR failed for example"):
        backend.train(data=str(exports["rl"]), model=str(tiny), out=tmp_path / "o", host=plugin_host)
    man = json.loads((tmp_path / "o" / "training_manifest.json").read_text())
    assert man["status"] == "failed" and man["error"].startswith("MRRewardError: mr on sample")
    assert man["rewards"]["failed"] >= 1
