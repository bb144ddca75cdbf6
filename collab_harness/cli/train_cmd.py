"""``collab-harness train NAME --data PATH --model M --out DIR``: train with a trainer backend.

Backends (``collab-harness list trainers``): ``sft``, ``dpo`` (offline, on the SFT / DPO exports), ``online-dpo``,
``ppo``, ``grpo`` (online, on the RL-prompt export, with MR as the reward). Options are the backend's (``list trainers
--json --schema`` shows them), given as ``--option KEY=VALUE`` (repeatable; the value is read as YAML, so numbers,
booleans and lists work: ``-o max_steps=100 -o lora_target_modules=[q_proj,v_proj]``; a dotted key sets a nested
one: ``-o trl_args.warmup_ratio=0.1``) or in ``--config train.yaml``::

    data: exports/sft          # flags win over the file
    model: local/smollm2
    out: runs/train-sft
    options: {max_steps: 100, learning_rate: 1.0e-4}

The final model is saved at ``--out`` (base + LoRA merged) so ``collab-harness run --assistant local/<out>`` evaluates
it; the adapter is in ``<out>/adapter``, checkpoints in ``<out>/checkpoints`` (``--resume`` continues from the last),
and ``<out>/training_manifest.json`` records data hashes, base model, options, versions, seed, losses and status.
Multi-GPU: ``accelerate launch --config_file CONFIG $(which collab-harness) train ...`` with a shipped config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ._common import echo_json, env, state


def parse_option(text: str) -> tuple[list[str], Any]:
    """``"a.b=1"`` -> (["a", "b"], 1): the value read as YAML (a plain string when it is not valid YAML)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--option: expected KEY=VALUE, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return [k.strip() for k in key.split(".")], value


def merge_options(base: dict[str, Any], pairs: tuple[str, ...]) -> dict[str, Any]:
    out = dict(base)
    for text in pairs:
        path, value = parse_option(text)
        node = out
        for k in path[:-1]:
            child = node.get(k)
            node[k] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[path[-1]] = value
    return out


def _read_config(path: str) -> dict[str, Any]:
    from ..config import read_yaml_mapping

    data = read_yaml_mapping(path)
    unknown = set(data) - {"trainer", "data", "model", "out", "options"}
    if unknown:
        raise ConfigError(f"--config {path}: unknown key(s) {', '.join(sorted(unknown))} (known: trainer, data, "
                          "model, out, options)")
    if not isinstance(data.get("options", {}), dict):
        raise ConfigError(f"--config {path}: 'options' must be a mapping")
    return data


@click.command("train")
@click.argument("name", metavar="sft|dpo|online-dpo|ppo|grpo")
@click.option("--data", envvar=env("train_data"), help="Exported dataset (directory or .parquet / .jsonl file).")
@click.option("--model", envvar=env("train_model"),
              help="Base model: local/smollm2, local/<dir> or a model directory (default local/smollm2).")
@click.option("--out", envvar=env("train_out"), help="Output directory (model, adapter, checkpoints, manifest).")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="A backend option (repeatable); the value is read as YAML.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar=env("train_config"),
              help="YAML file with data, model, out and options; flags win over it.")
@click.option("--resume", is_flag=True, envvar=env("train_resume"), help="Continue from the last checkpoint in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train(name: str, data: str | None, model: str | None, out: str | None, options: tuple[str, ...],
          config_path: str | None, resume: bool, as_json: bool) -> None:
    """Train a model on an exported dataset with a trainer backend."""
    from ..config import build_trainer

    file: dict[str, Any] = _read_config(config_path) if config_path else {}
    if file.get("trainer") not in (None, name):
        raise ConfigError(f"--config names trainer {file['trainer']!r} but the command trains {name!r}")
    data = data or file.get("data")
    model = model or file.get("model") or "local/smollm2"
    out = out or file.get("out")
    if not data:
        raise click.UsageError("--data is required (an export: collab-harness export sft|dpo|rl ...)")
    if not out:
        raise click.UsageError("--out is required")
    opts = merge_options(dict(file.get("options") or {}), options)
    backend = build_trainer(state().host, name, opts)
    # Only a resume is passed as a keyword: a third-party backend without one still trains.
    extra: dict[str, Any] = {"resume": True} if resume else {}
    try:
        result = backend.train(data=str(data), model=str(model), out=Path(out), **extra)
    except TypeError as e:
        if resume and "resume" in str(e):
            raise ConfigError(f"trainer {name!r} does not support --resume") from None
        raise
    manifest = Path(out) / "training_manifest.json"
    if as_json:
        echo_json({"trainer": name, "output_dir": str(result.output_dir), "steps": result.steps,
                   "metrics": dict(result.metrics), "manifest": str(manifest)})
        return
    loss = result.metrics.get("train_loss")
    shown = f", train loss {loss:.4g}" if isinstance(loss, float) else ""
    click.echo(f"trained {name}: {result.steps} steps{shown}; model in {result.output_dir} (evaluate it with "
               f"--assistant local/{result.output_dir}); manifest {manifest}")
