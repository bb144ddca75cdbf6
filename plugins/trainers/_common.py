"""Shared plumbing of the trainer backends: options, exported data, the base model, LoRA, checkpoints, the final
save and the training manifest. Each algorithm module (``sft``, ``dpo``, ``online_dpo``, ``ppo``, ``grpo``) only
builds its TRL trainer from these parts; there is no framework on top of TRL.

A training run writes into ``out``:

- ``checkpoints/``: TRL / transformers checkpoints (``--resume`` continues from the last one);
- ``adapter/``: the LoRA adapter (LoRA runs);
- the final model at ``out`` itself: base + LoRA merged (or the fully fine-tuned model) with its tokenizer, so that
  ``collab-harness run --assistant local/<out>`` evaluates it;
- ``training_manifest.json``: data path and sha256 of every data file, base model and its fingerprint, the backend's
  options, library versions, seed, steps, losses, final metrics and status (scrubbed of secrets);
- ``rewards.jsonl`` (online backends): one line per scored completion (MR, failures, policy version).

Heavy imports (torch, transformers, trl, peft) happen inside functions: plugin loading stays light.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from collab_harness.components import ComponentOptions, TrainerBackend, TrainResult
from collab_harness.errors import CollabHarnessError, ConfigError, PrerequisiteError
from collab_harness.scrub import scrub

__all__ = [
    "ACCELERATE_CONFIGS",
    "ADAPTER_DIR",
    "CHECKPOINT_DIR",
    "MANIFEST",
    "TRLBackend",
    "TrainOptions",
    "TrainingSession",
    "accelerate_config",
    "data_digest",
    "load_export",
    "resolve_model",
]

MANIFEST = "training_manifest.json"
CHECKPOINT_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
MANIFEST_SCHEMA_VERSION = 1

#: Columns each export kind must have (what ``collab-harness export KIND`` writes).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "sft": ("messages",),
    "dpo": ("prompt", "chosen", "rejected"),
    "rl": ("prompt", "example_id", "task"),
}

#: Shipped ``accelerate`` configs: name -> file under ``plugins/trainers/accelerate/``.
ACCELERATE_CONFIGS: dict[str, str] = {"multi-gpu": "multi_gpu.yaml", "zero2": "zero2.yaml", "zero3": "zero3.yaml"}

#: Options a resume may change (how long and how often, not what is trained).
RESUMABLE_CHANGES = frozenset({"max_steps", "num_train_epochs", "logging_steps", "save_steps", "save_total_limit"})


def accelerate_config(name: str) -> Path:
    """Path of a shipped accelerate config (``multi-gpu``, ``zero2``, ``zero3``), for ``accelerate launch
    --config_file``."""
    if name not in ACCELERATE_CONFIGS:
        raise ConfigError(f"no shipped accelerate config {name!r}; known: {', '.join(ACCELERATE_CONFIGS)}")
    return Path(__file__).with_name("accelerate") / ACCELERATE_CONFIGS[name]


def _split_bases(v: Any) -> Any:
    if isinstance(v, str):
        return [b.strip() for b in v.split(",") if b.strip()] or None
    return v


class TrainOptions(ComponentOptions):
    """Options every backend shares. ``trl_args`` passes any other field of the TRL config through verbatim (TRL
    validates it; it wins over the values derived here)."""

    seed: int = 0
    #: Optimizer steps; -1 = run ``num_train_epochs`` epochs.
    max_steps: int = Field(-1, ge=-1)
    num_train_epochs: float = Field(1.0, gt=0)
    per_device_train_batch_size: int = Field(2, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    #: None = 1e-4 with LoRA (TRL's defaults are tuned for full fine-tuning), TRL's algorithm default otherwise.
    learning_rate: float | None = Field(None, gt=0)
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    save_total_limit: int | None = Field(2, ge=1)
    #: ``lora`` (default) trains a LoRA adapter; ``full`` fine-tunes every weight.
    finetune: Literal["lora", "full"] = "lora"
    lora_r: int = Field(32, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    #: ``all-linear``: peft resolves the attention and MLP projections of any architecture (the output layer
    #: excluded); or explicit module names.
    lora_target_modules: Literal["all-linear"] | list[str] = "all-linear"
    #: Save base + LoRA merged at ``out`` (loadable as ``local/<out>``); the adapter is always in ``out/adapter``.
    merge: bool = True
    #: ``auto``: bf16 mixed precision on a GPU that supports it, else fp32.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    #: None = TRL's default (on).
    gradient_checkpointing: bool | None = None
    trl_args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, v: int) -> int:
        if v == 0:
            raise ValueError("max_steps must be -1 (use num_train_epochs) or >= 1")
        return v


# ------------------------------------------------------------------------------------------------------- data


def _files_of(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                          p.relative_to(path).parts))


def data_digest(path: str | Path) -> dict[str, Any]:
    """sha256 of every file of a dataset (a file or a directory), and one digest over all of them."""
    p = Path(path)
    files: dict[str, str] = {}
    total = hashlib.sha256()
    for f in _files_of(p):
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        rel = str(f.relative_to(p)) if p.is_dir() else f.name
        files[rel] = h.hexdigest()
        total.update(f"{rel}\0{files[rel]}\n".encode())
    return {"path": str(p.resolve()), "files": files, "sha256": total.hexdigest()}


def _find_split(root: Path, split: str) -> Path | None:
    for ext in ("parquet", "jsonl", "json"):
        f = root / f"{split}.{ext}"
        if f.is_file():
            return f
    return None


def _load_file(f: Path) -> Any:
    import datasets

    kind = "parquet" if f.suffix == ".parquet" else "json"
    return datasets.load_dataset(kind, data_files=str(f), split="train")


def load_export(path: str | Path, kind: str) -> tuple[Any, Any | None]:
    """(train, eval or None) of an export: a ``save_to_disk`` directory, a directory with ``train.parquet`` /
    ``train.jsonl`` (+ ``eval.*``), or one parquet / JSONL file. Checks the columns ``kind`` needs."""
    import datasets

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"--data {p}: no such file or directory")
    train: Any
    evals: Any = None
    if p.is_dir() and ((p / "dataset_dict.json").exists() or (p / "dataset_info.json").exists()):
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise ConfigError(f"--data {p}: no 'train' split (splits: {', '.join(ds)})")
            train, evals = ds["train"], ds.get("eval")
        else:
            train = ds
    elif p.is_dir():
        f = _find_split(p, "train")
        if f is None:
            raise ConfigError(f"--data {p}: neither a saved dataset nor a directory with train.parquet / train.jsonl")
        train = _load_file(f)
        e = _find_split(p, "eval")
        evals = _load_file(e) if e is not None else None
    elif p.suffix in (".parquet", ".jsonl", ".json"):
        train = _load_file(p)
    else:
        raise ConfigError(f"--data {p}: expected a dataset directory, a .parquet or a .jsonl file")
    missing = [c for c in REQUIRED_COLUMNS[kind] if c not in train.column_names]
    if missing:
        raise ConfigError(f"--data {p}: a {kind} dataset needs the column(s) {', '.join(missing)} (found: "
                          f"{', '.join(train.column_names)}); make one with `collab-harness export {kind} SYNTH_DIR "
                          f"--out PATH`")
    if len(train) == 0:
        raise ConfigError(f"--data {p}: the train split is empty")
    return train, evals


# ------------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class BaseModel:
    model: str
    path: Path
    fingerprint: str


def resolve_model(model: str) -> BaseModel:
    """``local/smollm2`` (the embedded model), ``local/<dir>`` or a plain model directory."""
    from collab_harness.models._provider import ProviderError
    from collab_harness.models.local import model_fingerprint, resolve_local

    try:
        if model.startswith("local/"):
            path = resolve_local(model)
            return BaseModel(model, path, model_fingerprint(model))
        p = Path(model).expanduser()
        if p.is_dir() and (p / "config.json").exists():
            p = p.resolve()
            return BaseModel(model, p, model_fingerprint(f"local/{p}"))
    except ProviderError as e:
        raise ConfigError(f"--model {model}: {e}") from None
    raise ConfigError(f"--model {model!r}: expected local/smollm2, local/<model dir> or a transformers model directory "
                      "(download hub models first, e.g. with `hf download`, and pass the directory)")


def _precision(opts: TrainOptions) -> str:
    if opts.precision != "auto":
        return opts.precision
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def peft_config(opts: TrainOptions) -> Any:
    """The LoRA config (None for full fine-tuning)."""
    if opts.finetune == "full":
        return None
    from peft import LoraConfig

    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules=opts.lora_target_modules, task_type="CAUSAL_LM")


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("collab-harness", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _peak_memory() -> dict[str, float | None]:
    """Peak resident memory of this process and peak GPU memory allocated by torch (MiB)."""
    import resource

    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"process_rss_mib": round(rss, 1), "gpu_allocated_mib": round(gpu, 1) if gpu is not None else None}


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:2000]


# ------------------------------------------------------------------------------------------------- session


@dataclass
class TrainingSession:
    """Everything of one training run, built up to (not including) ``trainer.train()``. Tests inspect it (the
    collated batch, the live policy) before or instead of training."""

    backend: TRLBackend
    out: Path
    data_path: Path
    train_dataset: Any
    eval_dataset: Any
    base: BaseModel
    tokenizer: Any
    model: Any
    resume_from: str | None
    host: Any = None
    callbacks: Sequence[Any] = ()
    trainer: Any = None
    #: Backend-specific facts for the manifest (loss mask strategy, MR settings, reward counts ...).
    extra: dict[str, Any] = field(default_factory=dict)
    #: Called once at the end, in reverse order, whatever happened (event loops, live-model registrations).
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    #: Called at every manifest write; their dicts are merged into it (reward counts, live-policy updates).
    reporters: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    _started: float = field(default_factory=time.monotonic)
    _closed: bool = False

    @property
    def options(self) -> Any:
        return self.backend.options

    @property
    def is_main(self) -> bool:
        t = self.trainer
        if t is not None and hasattr(t, "accelerator"):
            return bool(t.accelerator.is_main_process)
        return int(os.environ.get("RANK", "0")) == 0

    def trl_args(self, **algorithm: Any) -> dict[str, Any]:
        """Keyword arguments of the TRL config: the shared options, then the algorithm's, then ``trl_args``."""
        o: TrainOptions = self.options
        prec = _precision(o)
        lr = o.learning_rate if o.learning_rate is not None else (1e-4 if o.finetune == "lora" else None)
        args: dict[str, Any] = {
            "output_dir": str(self.out / CHECKPOINT_DIR), "seed": o.seed, "data_seed": o.seed,
            "max_steps": o.max_steps, "num_train_epochs": o.num_train_epochs,
            "per_device_train_batch_size": o.per_device_train_batch_size,
            "gradient_accumulation_steps": o.gradient_accumulation_steps, "logging_steps": o.logging_steps,
            "save_strategy": "steps", "save_steps": o.save_steps, "save_total_limit": o.save_total_limit,
            "report_to": [], "bf16": prec == "bf16", "fp16": prec == "fp16",
        }
        if lr is not None:
            args["learning_rate"] = lr
        if o.gradient_checkpointing is not None:
            args["gradient_checkpointing"] = o.gradient_checkpointing
        args.update(algorithm)
        args.update(o.trl_args)
        self.extra["trl_args"] = {k: v for k, v in args.items() if k != "output_dir"}
        return args

    def policy(self) -> Any:
        """The model being trained (unwrapped; a peft model with LoRA)."""
        return self.backend.policy_of(self)

    # --------------------------------------------------------------------------------------------- manifest
    def write_manifest(self, status: str, **update: Any) -> None:
        if not self.is_main:
            return
        self.manifest.update(update)
        self.manifest["status"] = status
        self.manifest.update({k: v for k, v in self.extra.items() if k != "trl_args"})
        for report in self.reporters:
            self.manifest.update(report())
        self.manifest["trainer_args"] = self.extra.get("trl_args")
        path = self.out / MANIFEST
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(scrub(self.manifest), indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self.cleanups:
            fn = self.cleanups.pop()
            with contextlib.suppress(Exception):
                fn()

    # ----------------------------------------------------------------------------------------------- train
    def run(self) -> TrainResult:
        """Train, save the final model, finish the manifest."""
        status, error = "failed", None
        try:
            train_out = self.trainer.train(resume_from_checkpoint=self.resume_from) if self.resume_from \
                else self.trainer.train()
            outputs = self.backend.save_final(self)
            state = self.trainer.state
            logs = [h for h in state.log_history if isinstance(h, dict)]
            # PPO's own loop returns nothing and logs "loss/policy_avg": fall back on its last log entry.
            metrics = dict(getattr(train_out, "metrics", None) or (logs[-1] if logs else {}))
            losses = [float(h["loss"] if "loss" in h else h["loss/policy_avg"]) for h in logs
                      if "loss" in h or "loss/policy_avg" in h]
            status = "success"
            self.write_manifest(status, steps=int(state.global_step), losses=losses,
                                final_metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                                outputs=outputs, finished_at=_now(),
                                wall_seconds=round(time.monotonic() - self._started, 3), peak_memory=_peak_memory())
            return TrainResult(output_dir=self.out, steps=int(state.global_step),
                               metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted"
            raise
        except BaseException as e:
            error = _one_line(e)
            raise
        finally:
            self.close()
            if status != "success":
                state = getattr(self.trainer, "state", None)
                with contextlib.suppress(Exception):
                    self.write_manifest(status, error=error, steps=int(getattr(state, "global_step", 0) or 0),
                                        finished_at=_now())


# ------------------------------------------------------------------------------------------------- backend


class TRLBackend(TrainerBackend):
    """Template of every built-in backend: load the export and the base model, let the algorithm module build its
    TRL trainer (:meth:`build_trainer`), train, save the merged model and the adapter, write the manifest."""

    Options: ClassVar[type[ComponentOptions]] = TrainOptions
    #: Whether ``--resume`` can continue a run (TRL's PPO loop cannot restore its state).
    supports_resume: ClassVar[bool] = True

    def train(self, *, data: str, model: str, out: Path | str, resume: bool = False, host: Any = None,
              callbacks: Sequence[Any] = ()) -> TrainResult:
        """Train on the export ``data`` starting from ``model``; everything is written under ``out``.
        ``resume`` continues from the last checkpoint in ``out/checkpoints``; ``host`` is the plugin host the
        online backends build their MR components from (default: a fresh one); ``callbacks`` are extra
        ``transformers.TrainerCallback`` objects."""
        session = self.open(data=data, model=model, out=out, resume=resume, host=host, callbacks=callbacks)
        return session.run()

    def open(self, *, data: str | Path, model: str, out: Path | str, resume: bool = False, host: Any = None,
             callbacks: Sequence[Any] = ()) -> TrainingSession:
        """Everything up to ``trainer.train()`` (see :class:`TrainingSession`)."""
        try:
            import peft  # noqa: F401
            import transformers
            import trl  # noqa: F401
        except ImportError as e:
            raise PrerequisiteError(f"training needs {e.name}", install="pip install 'collab-harness[train]'") from None
        out = Path(out)
        data_path = Path(data)
        resume_from = self._check_out(out, resume)
        _barrier()  # every process checks --out before the main one writes into it
        train_ds, eval_ds = load_export(data_path, self.data_format)
        base = resolve_model(model)
        manifest: dict[str, Any] = {
            "kind": "train", "schema_version": MANIFEST_SCHEMA_VERSION, "status": "running",
            "backend": self.describe(),
            "data": {**data_digest(data_path), "kind": self.data_format,
                     "rows": {"train": len(train_ds), "eval": len(eval_ds) if eval_ds is not None else 0}},
            "base_model": {"model": base.model, "path": str(base.path), "fingerprint": base.fingerprint},
            "seed": self.options.seed,  # type: ignore[attr-defined]
            "versions": versions(),
            "host": {"platform": platform.platform(), "argv": [os.path.basename(sys.argv[0]), *sys.argv[1:]]},
            "started_at": _now(), "resumed_from": resume_from,
        }
        if resume_from:
            self._check_resume(out, manifest)
        out.mkdir(parents=True, exist_ok=True)
        transformers.set_seed(self.options.seed)  # type: ignore[attr-defined]  # LoRA init, value heads, sampling
        tokenizer = self.load_tokenizer(base)
        mdl = self.load_model(base)
        session = TrainingSession(backend=self, out=out, data_path=data_path, train_dataset=train_ds,
                                  eval_dataset=eval_ds, base=base, tokenizer=tokenizer, model=mdl,
                                  resume_from=resume_from, host=host, callbacks=list(callbacks), manifest=manifest)
        try:
            session.write_manifest("running")
            session.trainer = self.build_trainer(session)
            for cb in session.callbacks:
                session.trainer.add_callback(cb)
            self._record_lora(session)
            session.write_manifest("running")
        except BaseException as e:
            session.close()
            with contextlib.suppress(Exception):
                session.write_manifest("failed", error=_one_line(e), finished_at=_now())
            raise
        return session

    # ------------------------------------------------------------------------------------------- hooks
    @abstractmethod
    def build_trainer(self, session: TrainingSession) -> Any:
        """The TRL trainer for this algorithm, ready to ``train()``."""

    def policy_of(self, session: TrainingSession) -> Any:
        return session.trainer.model

    def load_tokenizer(self, base: BaseModel) -> Any:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(base.path)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return tok

    def load_model(self, base: BaseModel) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        # float32 weights; mixed precision (bf16 on a GPU) is the trainer's business.
        return AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)

    def save_final(self, session: TrainingSession) -> dict[str, Any]:
        """Save the adapter in ``out/adapter`` and the merged model at ``out`` (LoRA), or the model at ``out``."""
        trainer, out = session.trainer, session.out
        policy = self.policy_of(session)
        is_peft = hasattr(policy, "peft_config")
        if not is_peft:
            self._save(session, out)
            outputs = {"model": str(out), "adapter": None, "merged": False}
        else:
            self._save(session, out / ADAPTER_DIR)
            outputs = {"model": None, "adapter": str(out / ADAPTER_DIR), "merged": False}
            if self.options.merge:  # type: ignore[attr-defined]
                trainer.accelerator.wait_for_everyone()
                if session.is_main:
                    _merge(session.base.path, out / ADAPTER_DIR, out, session.tokenizer)
                outputs.update({"model": str(out), "merged": True})
        return outputs

    def _save(self, session: TrainingSession, where: Path) -> None:
        # Trainer.save_model gathers sharded weights (DeepSpeed ZeRO-3, FSDP) and writes on the main process only.
        session.trainer.save_model(str(where))
        if session.is_main:
            session.tokenizer.save_pretrained(str(where))

    # ------------------------------------------------------------------------------------------ helpers
    def _check_out(self, out: Path, resume: bool) -> str | None:
        from transformers.trainer_utils import get_last_checkpoint

        ckpt_dir = out / CHECKPOINT_DIR
        if resume and not self.supports_resume:
            raise ConfigError(f"--resume: the {self.name} backend cannot resume (its TRL trainer does not restore "
                              "its state from a checkpoint); start a new run")
        if resume:
            last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
            if last is None:
                raise ConfigError(f"--resume: no checkpoint in {ckpt_dir} to resume from")
            return str(last)
        if out.exists() and any(out.iterdir()):
            raise ConfigError(f"--out {out} exists and is not empty; pass --resume to continue it or choose another "
                              "--out")
        return None

    def _check_resume(self, out: Path, manifest: Mapping[str, Any]) -> None:
        """A resume must train the same thing: same backend, data, base model and options (how long and how often
        may change)."""
        path = out / MANIFEST
        if not path.exists():
            return
        old = json.loads(path.read_text(encoding="utf-8"))
        checks = {"backend": (old.get("backend", {}).get("name"), manifest["backend"]["name"]),
                  "data": (old.get("data", {}).get("sha256"), manifest["data"]["sha256"]),
                  "base model": (old.get("base_model", {}).get("fingerprint"),
                                 manifest["base_model"]["fingerprint"])}
        for what, (a, b) in checks.items():
            if a != b:
                raise ConfigError(f"--resume: the {what} differs from the run in {out} ({a} != {b}); resume with the "
                                  "same settings or choose another --out")
        before = old.get("backend", {}).get("options", {})
        now = manifest["backend"]["options"]
        changed = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES
                         and before.get(k) != now.get(k))
        if changed:
            raise ConfigError(f"--resume: option(s) {', '.join(changed)} differ from the run in {out}; only "
                              f"{', '.join(sorted(RESUMABLE_CHANGES))} may change on resume")

    def _record_lora(self, session: TrainingSession) -> None:
        policy = self.policy_of(session)
        cfg = getattr(policy, "peft_config", None)
        if not cfg:
            session.extra["finetune"] = {"mode": "full"}
            return
        c = next(iter(cfg.values()))
        targets = c.target_modules
        session.extra["finetune"] = {
            "mode": "lora", "r": c.r, "alpha": c.lora_alpha, "dropout": c.lora_dropout,
            "target_modules": sorted(targets) if isinstance(targets, (set, list, tuple)) else targets,
            "trainable_parameters": sum(p.numel() for p in policy.parameters() if p.requires_grad),
        }


def _barrier() -> None:
    """Wait for every process of a distributed launch (``accelerate launch`` / ``torchrun``); nothing when alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _merge(base_path: Path, adapter: Path, out: Path, tokenizer: Any) -> None:
    """Base + adapter merged into plain weights at ``out`` (reloaded from disk: works whatever sharding trained
    the adapter)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


@contextlib.contextmanager
def collab_errors(what: str) -> Iterator[None]:
    """Turn TRL's / transformers' configuration ``ValueError`` into a one-line :class:`ConfigError`."""
    try:
        yield
    except CollabHarnessError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{what}: {_one_line(e)}") from e
