"""Every backend trains >= 2 steps on the tiny random Llama on CPU: finite losses, changed weights, a checkpoint that
reloads, a merged model at ``out`` that ``collab-harness run --assistant local/<out>`` evaluates; the manifest holds
what it promises."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from train_helpers import FAST, FAST_MR

from collab_harness.cli.main import main

pytest.importorskip("trl")

ONLINE = {"online-dpo", "ppo", "grpo"}


def _cli(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as e:
        assert not e.code, f"collab-harness {' '.join(args)} exited {e.code}"


def _tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _options(name: str) -> dict[str, Any]:
    opts: dict[str, Any] = dict(FAST)
    if name in ONLINE:
        opts.update(FAST_MR, metrics=["reply-length"])
    if name == "grpo":
        opts["num_generations"] = 2
    if name == "ppo":
        opts["num_ppo_epochs"] = 1
    return opts


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sft", "dpo", "online-dpo", "ppo", "grpo"])
def test_backend_trains_saves_reloads_and_is_evaluated(name: str, tiny: Path, exports: dict[str, Path],
                                                       tmp_path: Path, mr_host: Any) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    backend = mr_host.registry.create("trainer", name, _options(name))
    data = exports[backend.data_format]
    out = tmp_path / "out"
    result = backend.train(data=str(data), model=str(tiny), out=out, host=mr_host)
    assert result.steps == 2

    man = json.loads((out / "training_manifest.json").read_text())
    assert man["status"] == "success" and man["steps"] == 2
    assert len(man["losses"]) == 2 and all(math.isfinite(x) for x in man["losses"])
    assert man["data"]["files"][data.name] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert man["base_model"]["fingerprint"].startswith("dir-")
    assert man["backend"]["name"] == name and man["backend"]["options"]["max_steps"] == 2
    assert {"torch", "transformers", "trl", "peft", "accelerate"} <= set(man["versions"])
    lora = man["finetune"]
    assert lora["mode"] == "lora" and lora["r"] == 32 and lora["alpha"] == 16 and lora["dropout"] == 0.1
    # peft's "all-linear": attention and MLP projections of this architecture, never the output layer
    projections = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert {t.rsplit(".", 1)[-1] for t in lora["target_modules"]} == projections

    base, merged = _tensors(tiny), _tensors(out)
    changed = [k for k in base if k in merged and base[k].shape == merged[k].shape
               and not torch.equal(base[k], merged[k])]
    assert changed, "training changed no weight of the merged model"

    ckpt = out / "checkpoints" / "checkpoint-2"
    assert (ckpt / "adapter_config.json").exists()
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), str(ckpt))
    ids = torch.tensor([[1, 3, 90]])
    assert torch.isfinite(reloaded(input_ids=ids).logits).all()
    assert (out / "adapter" / "adapter_config.json").exists()

    if name in ONLINE:
        assert man["rewards"]["scored"] > 0 and man["rewards"]["failed"] == 0
        assert man["live_policy"]["version"] == 2 and man["live_policy"]["updates_signalled"] == 2
        rewards = [json.loads(x) for x in (out / "rewards.jsonl").read_text().splitlines()]
        assert {r["policy_version"] for r in rewards} == {0, 1}  # step 2's futures saw the weights after step 1

    _cli(["run", "--task", "math-chat", "--limit", "1", "--max-exchanges", "1", "--max-tokens", "8", "--assistant",
          f"local/{out}", "--out", str(tmp_path / "eval"), "--no-progress"])
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["n_samples"] == 1 and results["n_failed"] == 0


def test_list_trainers_shows_all_five(capsys: pytest.CaptureFixture[str]) -> None:
    _cli(["list", "trainers", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"sft", "dpo", "online-dpo", "ppo", "grpo"}
    by = {r["name"]: r for r in rows}
    assert by["grpo"]["description"] and by["sft"]["version"]
