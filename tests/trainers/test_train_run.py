"""The training run around the backends: end to end from synthesis to evaluation of the trained checkpoint, resume,
the manifest's scrubbing, CLI option parsing, the shipped accelerate configs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from train_helpers import FAST

from collab_harness.cli.main import main
from collab_harness.errors import ConfigError

pytest.importorskip("trl")


def _cli(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as e:
        assert not e.code, f"collab-harness {' '.join(args)} exited {e.code}"


def _asks_or_answers(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    turn = sum(1 for m in messages if m["role"] == "assistant")
    if messages[0]["role"] == "system":
        return f"Turn {turn}: which part of the problem is unclear to you?"
    return f"Turn {turn}: the answer is 42."


@pytest.mark.slow
def test_synth_export_train_sft_then_run_the_checkpoint(tmp_path: Path, tiny: Path,
                                                         scripted_model: Callable[..., str]) -> None:
    a = scripted_model(_asks_or_answers)
    synth, sft, out = tmp_path / "synth", tmp_path / "sft", tmp_path / "model"
    _cli(["synth", "--task", "math-chat", "--limit", "2", "--assistant", a, "--samples", "1", "--window", "1",
          "--candidates", "2", "--max-turns", "2", "--out", str(synth), "--no-progress"])
    _cli(["export", "sft", str(synth), "--out", str(sft)])
    _cli(["train", "sft", "--data", str(sft), "--model", str(tiny), "--out", str(out), "-o", "max_steps=2",
          "-o", "per_device_train_batch_size=1", "-o", "gradient_checkpointing=false",
          "-o", "trl_args.disable_tqdm=true"])
    man = json.loads((out / "training_manifest.json").read_text())
    assert man["status"] == "success" and man["steps"] == 2 and man["loss_mask"] == "template-markers"
    assert man["data"]["kind"] == "sft" and "dataset_dict.json" in man["data"]["files"]
    _cli(["run", "--task", "math-chat", "--limit", "1", "--max-exchanges", "1", "--max-tokens", "8",
          "--assistant", f"local/{out}", "--out", str(tmp_path / "eval"), "--no-progress"])
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert res["n_samples"] == 1 and res["n_failed"] == 0
    run_man = json.loads((tmp_path / "eval" / "manifest.json").read_text())
    assert str(out) in json.dumps(run_man["models"])


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint_and_refuses_changes(tiny: Path, exports: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    from collab_harness_plugins.trainers.ppo import PPOBackend
    from collab_harness_plugins.trainers.sft import SFTBackend

    out = tmp_path / "o"
    SFTBackend(FAST).train(data=str(exports["sft"]), model=str(tiny), out=out)
    with pytest.raises(ConfigError, match="not empty; pass --resume"):
        SFTBackend(FAST).train(data=str(exports["sft"]), model=str(tiny), out=out)
    with pytest.raises(ConfigError, match="lora_r"):
        SFTBackend({**FAST, "max_steps": 3, "lora_r": 8}).train(data=str(exports["sft"]), model=str(tiny), out=out,
                                                                 resume=True)
    res = SFTBackend({**FAST, "max_steps": 3}).train(data=str(exports["sft"]), model=str(tiny), out=out, resume=True)
    assert res.steps == 3
    man = json.loads((out / "training_manifest.json").read_text())
    assert man["status"] == "success" and man["resumed_from"].endswith("checkpoint-2") and len(man["losses"]) == 3
    with pytest.raises(ConfigError, match="no checkpoint"):
        SFTBackend(FAST).train(data=str(exports["sft"]), model=str(tiny), out=tmp_path / "empty", resume=True)
    with pytest.raises(ConfigError, match="ppo backend cannot resume"):
        PPOBackend(FAST).train(data=str(exports["rl"]), model=str(tiny), out=out, resume=True)


def test_manifest_is_written_first_and_scrubbed(tiny: Path, exports: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from collab_harness_plugins.trainers.dpo import DPOBackend

    secret = "sk-test-0123456789abcdefghij"
    monkeypatch.setenv("SOME_SERVICE_API_KEY", secret)
    session = DPOBackend({**FAST, "beta": 0.2, "loss_type": "ipo", "trl_args": {"run_name": secret}}).open(
        data=exports["dpo"], model=str(tiny), out=tmp_path / "o")
    try:
        assert session.trainer.args.beta == 0.2 and session.trainer.args.loss_type == ["ipo"]
        text = (tmp_path / "o" / "training_manifest.json").read_text()
    finally:
        session.close()
    assert secret not in text and "***" in text
    man = json.loads(text)
    assert man["status"] == "running" and man["seed"] == 0 and man["versions"]["trl"].startswith("1.12")


def test_options_are_validated_and_parsed() -> None:
    from collab_harness_plugins.trainers.grpo import GRPOBackend

    from collab_harness.cli.train_cmd import merge_options

    opts = merge_options({"trl_args": {"warmup_ratio": 0.1}}, ("max_steps=5", "lora_target_modules=[q_proj,v_proj]",
                                                             "trl_args.lr_scheduler_type=cosine", "user=shard-user"))
    assert opts == {"trl_args": {"warmup_ratio": 0.1, "lr_scheduler_type": "cosine"}, "max_steps": 5,
                    "lora_target_modules": ["q_proj", "v_proj"], "user": "shard-user"}
    assert GRPOBackend(opts).options.lora_target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ConfigError, match="max_step"):
        GRPOBackend({"max_step": 5})
    with pytest.raises(ConfigError, match="futures_api_base needs futures_model"):
        GRPOBackend({"futures_api_base": "http://localhost:8000/v1"})
    b = GRPOBackend({"futures_model": "hosted_vllm/policy", "futures_api_base": "http://a:8000/v1,http://b:8000/v1"})
    assert b.options.futures_api_base == ["http://a:8000/v1", "http://b:8000/v1"]


def test_futures_model_and_api_base_map_onto_the_run_config(plugin_host: Any) -> None:
    from collab_harness_plugins.trainers._mr import MROptions, MRScorer

    o = MROptions(futures_model="hosted_vllm/policy", futures_api_base=["http://gpu:8000/v1"], samples=2, window=1,
                  user="shard-user", judge="rules", weights={"math_accuracy": 1.0, "interactivity": 0.5})
    scorer = MRScorer(o, assistant_model="hosted_vllm/policy", host=plugin_host)
    try:
        cfg = scorer.run_config("math-chat")
    finally:
        scorer.close()
    assert cfg.assistant == "hosted_vllm/policy" and cfg.assistant_api_base == ["http://gpu:8000/v1"]
    assert cfg.endpoints() == {"hosted_vllm/policy": ["http://gpu:8000/v1"]}
    assert cfg.mr.samples == 2 and cfg.mr.window == 1 and cfg.weights == {"math_accuracy": 1.0, "interactivity": 0.5}


@pytest.mark.parametrize(("name", "kind", "stage"), [("multi-gpu", "MULTI_GPU", None), ("zero2", "DEEPSPEED", 2),
                                                     ("zero3", "DEEPSPEED", 3)])
def test_shipped_accelerate_configs_parse(name: str, kind: str, stage: int | None) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from collab_harness_plugins.trainers._common import accelerate_config

    cfg = load_config_from_file(str(accelerate_config(name)))
    assert isinstance(cfg, ClusterConfig) and cfg.distributed_type == kind
    if stage is not None:
        assert cfg.deepspeed_config["zero_stage"] == stage


def test_train_cli_reports_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "train.yaml"
    cases = [
        ("trainer: dpo\ndata: x\n", ["train", "sft", "--out", str(tmp_path / "o")], "names trainer 'dpo'"),
        ("data: x\nepochs: 3\n", ["train", "sft", "--out", str(tmp_path / "o")], "unknown key(s) epochs"),
        ("data: x\n", ["train", "sft", "--out", str(tmp_path / "o"), "-o", "max_steps"], "expected KEY=VALUE"),
        ("data: x\n", ["train", "sft", "--out", str(tmp_path / "o"), "-o", "lora_rank=8"], "lora_rank"),
        ("data: x\n", ["train", "nope", "--out", str(tmp_path / "o")], "unknown trainer 'nope'"),
    ]
    for text, args, message in cases:
        cfg.write_text(text)
        with pytest.raises(SystemExit) as e:
            main([*args, "--config", str(cfg)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and err.count("\n") == 1, err
