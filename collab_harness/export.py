"""Datasets from a synthesis run, in TRL's conversational formats (``collab-harness export sft|dpo|rl``).

- ``sft``: one row per conversation, ``messages`` = the best path (every chosen candidate and the user messages
  between them; a trailing user message with no reply is dropped). ``--min-metric NAME=V`` keeps conversations whose
  last chosen candidate's per-metric MR estimate (over its futures) is at least V; a conversation without that
  value is dropped and counted. TRL's ``SFTTrainer`` takes it as is (with ``assistant_only_loss`` the loss covers
  the assistant turns only).
- ``dpo``: one row per turn, ``prompt`` = the messages before the turn, ``chosen`` / ``rejected`` = the best and
  the worst candidate (by MR) as one assistant message each, when their MR gap is at least ``--min-gap`` (default
  0.02); both scores and the gap are kept. TRL's ``DPOTrainer`` takes it as is.
- ``rl``: one row per (conversation, turn): ``prompt`` = the history up to the user message the policy answers,
  with the example id, task name and reference, for online training (GRPO, online DPO, PPO with MR as reward).

Every row has a stable ``id`` (``<example id>#<seed>/t<turn>``: from the example and its seed, never from positions or
completion order). Rows are split into train / eval by a seeded hash of the example id (all turns of a conversation
land in the same split: no leakage). Formats: ``disk`` (``datasets`` ``save_to_disk``), ``parquet`` or ``jsonl``
(one file per split); a dataset card (``README.md``, YAML front matter as the Hub expects) records the source run,
task, models, prompt hashes, MR settings, counts, score distributions and the source data's license. Everything
written is scrubbed of secrets; ``--push-to-hub REPO`` uploads privately by default, with the token from the
environment only.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError, PrerequisiteError
from .records import Manifest, SynthRecord
from .rundir import SAMPLES, read_manifest, read_records
from .scrub import scrub

__all__ = ["ExportResult", "dpo_rows", "export_run", "load_synth", "rl_rows", "sft_rows", "split_of"]

ExportKind = Literal["sft", "dpo", "rl"]
ExportFormat = Literal["disk", "parquet", "jsonl"]


def load_synth(run_dir: str | Path) -> tuple[Manifest, list[SynthRecord]]:
    man = read_manifest(run_dir)
    if man.kind != "synth":
        raise ConfigError(f"{run_dir} holds a {man.kind!r} run; export needs a synth run directory")
    recs = [r for r in read_records(Path(run_dir) / SAMPLES).records if isinstance(r, SynthRecord)]
    return man, sorted(recs, key=lambda r: r.example_id)


def _msgs(messages: Sequence[Any]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def sft_rows(records: Sequence[SynthRecord], min_metric: Mapping[str, float] | None = None
             ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rows: list[dict[str, Any]] = []
    dropped = {"failed": 0, "no_assistant": 0, "below_threshold": 0, "no_metric": 0}
    for r in records:
        if r.errors:
            dropped["failed"] += 1
            continue
        msgs = _msgs(r.conversation)
        while msgs and msgs[-1]["role"] == "user":
            msgs.pop()
        if not any(m["role"] == "assistant" for m in msgs):
            dropped["no_assistant"] += 1
            continue
        last = next((t for t in reversed(r.turns) if t.chosen is not None), None)
        final = last.candidates[last.chosen] if last is not None and last.chosen is not None else None
        if min_metric:
            vals = {k: (final.per_metric.get(k) if final is not None else None) for k in min_metric}
            if any(v is None for v in vals.values()):
                dropped["no_metric"] += 1
                continue
            if any(float(vals[k]) < t for k, t in min_metric.items()):  # type: ignore[arg-type]
                dropped["below_threshold"] += 1
                continue
        rows.append({"id": f"{r.example_id}#{r.seed}", "example_id": r.example_id, "task": r.task, "messages": msgs,
                     "turns": len(r.turns), "final_mr": final.mr if final is not None else None,
                     "terminated": r.terminated})
    return rows, dropped


def dpo_rows(records: Sequence[SynthRecord], min_gap: float = 0.02) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rows: list[dict[str, Any]] = []
    dropped = {"fewer_than_two_scored": 0, "gap_below_min": 0}
    for r in records:
        for t in r.turns:
            scored = [c for c in t.candidates if c.mr is not None and c.text is not None]
            if t.chosen is None or len(scored) < 2:
                dropped["fewer_than_two_scored"] += 1
                continue
            best = t.candidates[t.chosen]
            worst = min(scored, key=lambda c: (c.mr or 0.0, c.index))
            assert best.mr is not None and worst.mr is not None
            gap = best.mr - worst.mr
            if gap < min_gap or worst.index == best.index:
                dropped["gap_below_min"] += 1
                continue
            rows.append({
                "id": f"{r.example_id}#{r.seed}/t{t.index}", "example_id": r.example_id, "task": r.task,
                "turn": t.index, "prompt": _msgs(r.conversation[: t.prefix]),
                "chosen": [{"role": "assistant", "content": best.text}],
                "rejected": [{"role": "assistant", "content": worst.text}],
                "score_chosen": best.mr, "score_rejected": worst.mr, "gap": gap,
                "chosen_variant": best.variant, "rejected_variant": worst.variant,
            })
    return rows, dropped


def rl_rows(records: Sequence[SynthRecord], references: Mapping[str, str]
            ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rows: list[dict[str, Any]] = []
    dropped = {"no_reference": 0}
    for r in records:
        for t in r.turns:
            prompt = _msgs(r.conversation[: t.prefix])
            if not prompt or prompt[-1]["role"] != "user":
                continue
            if r.example_id not in references:
                dropped["no_reference"] += 1
            rows.append({"id": f"{r.example_id}#{r.seed}/t{t.index}", "example_id": r.example_id, "task": r.task,
                         "turn": t.index, "prompt": prompt, "reference": references.get(r.example_id, "")})
    return rows, dropped


def split_of(example_id: str, eval_fraction: float, seed: int) -> str:
    """``train`` or ``eval`` for an example, by a seeded hash (stable, independent of order and of the other ids)."""
    if eval_fraction <= 0:
        return "train"
    h = int.from_bytes(hashlib.sha256(f"{seed}:{example_id}".encode()).digest()[:8], "big") / 2**64
    return "eval" if h < eval_fraction else "train"


@dataclass
class ExportResult:
    out: Path
    kind: str
    format: str
    counts: dict[str, int]
    dropped: dict[str, int]
    files: list[Path] = field(default_factory=list)


def _distribution(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    qs = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {"n": len(values), "mean": statistics.fmean(values), "min": min(values), "p25": qs[0], "median": qs[1],
            "p75": qs[2], "max": max(values)}


def _card(kind: str, man: Manifest, run_dir: Path, counts: dict[str, int], dropped: dict[str, int],
          rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any], license_: str, fmt: str) -> str:
    import yaml

    scores: dict[str, Any] = {}
    if kind == "dpo":
        scores = {k: _distribution([float(r[k]) for r in rows]) for k in ("score_chosen", "score_rejected", "gap")}
    elif kind == "sft":
        scores = {"final_mr": _distribution([float(r["final_mr"]) for r in rows if r.get("final_mr") is not None])}
    front: dict[str, Any] = {
        "license": license_.split(" ")[0].lower() if license_ else "other",
        "pretty_name": f"collab-harness {kind} export of {man.task.get('name')}",
        "tags": ["collab-harness", "collabllm", "multiturn-aware-reward", kind],
        "task_categories": ["text-generation"],
    }
    if fmt in ("parquet", "jsonl"):  # lets the Hub (and load_dataset on the folder) find the splits
        front["configs"] = [{"config_name": "default",
                             "data_files": [{"split": s, "path": f"{s}.{fmt}"} for s in sorted(counts) if counts[s]]}]
    models = {role: (m.get("model") if isinstance(m, Mapping) else m) for role, m in man.models.items()}
    body = {
        "source_run": {"path": str(run_dir), "run_id": man.run_id, "status": man.status,
                       "harness_version": man.harness_version, "created_at": man.created_at},
        "task": {"name": man.task.get("name"), "split": man.task.get("split"), "data": man.task.get("data")},
        "models": models,
        "mr_settings": man.mr,
        "synth_settings": man.config.get("synth"),
        "prompt_hashes": man.prompt_hashes,
        "export": dict(settings),
        "rows": counts,
        "dropped": dropped,
        "score_distributions": scores,
        "source_data_license": license_,
    }
    text = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
            f"# {front['pretty_name']}", "",
            f"{kind.upper()} rows exported by collab-harness from the synthesis run `{run_dir.name}` (CollabLLM "
            "synthetic multi-turn data: candidates ranked by the multiturn-aware reward). Generated; do not edit.",
            "", "```yaml", yaml.safe_dump(scrub(body), sort_keys=False).strip(), "```", ""]
    return "\n".join(text)


def _references_and_license(man: Manifest) -> tuple[dict[str, str], str]:
    """The task's references (for RL rows) and its data's license, loading the task through the plugin host."""
    from .errors import CollabHarnessError
    from .plugins import build_plugin_manager

    ref = man.config.get("task") or {}
    name = ref.get("name") if isinstance(ref, Mapping) else str(ref)
    opts = ref.get("options", {}) if isinstance(ref, Mapping) else {}
    try:
        task: Any = build_plugin_manager().registry.create("task", str(name), opts)
        refs = {e.id: e.reference for split in task.splits() for e in task.load(split)}
        source = (man.task.get("data") or {}).get("source") or man.task.get("data_source")
        lic = getattr(task, "data_licenses", {}).get(source) or getattr(task, "data_license", None) or "unknown"
        return refs, str(lic)
    except CollabHarnessError:  # the task's plugin is not installed here: rows keep working, references empty
        return {}, "unknown"


def export_run(
    run_dir: str | Path,
    kind: ExportKind,
    out: str | Path,
    *,
    fmt: ExportFormat = "disk",
    min_gap: float = 0.02,
    min_metric: Mapping[str, float] | None = None,
    eval_fraction: float = 0.0,
    split_seed: int = 0,
    push_to_hub: str | None = None,
    public: bool = False,
) -> ExportResult:
    """Export a synthesis run (see the module docstring)."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - a base dependency
        raise PrerequisiteError("export needs the datasets library", install="pip install datasets") from None
    run_dir = Path(run_dir)
    man, records = load_synth(run_dir)
    if not records:
        raise ConfigError(f"{run_dir} holds no finished conversation to export")
    if not 0 <= eval_fraction < 1:
        raise ConfigError("--eval-fraction must be in [0, 1)")
    references, license_ = _references_and_license(man)
    if kind == "sft":
        rows, dropped = sft_rows(records, min_metric)
    elif kind == "dpo":
        rows, dropped = dpo_rows(records, min_gap)
    elif kind == "rl":
        rows, dropped = rl_rows(records, references)
    else:
        raise ConfigError(f"unknown export kind {kind!r}; known: sft, dpo, rl")
    rows = [scrub(r) for r in rows]
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
    for r in rows:
        splits[split_of(r["example_id"], eval_fraction, split_seed)].append(r)
    counts = {s: len(v) for s, v in splits.items()}
    if not rows:
        raise ConfigError(f"no {kind} row survived the filters ({', '.join(f'{k}: {v}' for k, v in dropped.items())})")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    dd = datasets.DatasetDict({s: datasets.Dataset.from_list(v) for s, v in splits.items() if v})
    files: list[Path] = []
    if fmt == "disk":
        dd.save_to_disk(str(out))
        files.append(out)
    elif fmt == "parquet":
        for s, ds in dd.items():
            ds.to_parquet(str(out / f"{s}.parquet"))
            files.append(out / f"{s}.parquet")
    elif fmt == "jsonl":
        for s, ds in dd.items():
            p = out / f"{s}.jsonl"
            with open(p, "w", encoding="utf-8") as fh:
                for r in ds:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            files.append(p)
    else:
        raise ConfigError(f"unknown format {fmt!r}; known: disk, parquet, jsonl")
    settings = {"kind": kind, "format": fmt, "min_gap": min_gap if kind == "dpo" else None,
                "min_metric": dict(min_metric or {}) or None, "eval_fraction": eval_fraction, "split_seed": split_seed}
    (out / "README.md").write_text(_card(kind, man, run_dir, counts, dropped, rows, settings, license_, fmt),
                                   encoding="utf-8")
    if push_to_hub:
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
        if not token:
            raise ConfigError("--push-to-hub needs HF_TOKEN in the environment (a token is never read from a file)")
        dd.push_to_hub(push_to_hub, private=not public, token=token)
    return ExportResult(out=out, kind=kind, format=fmt, counts=counts, dropped=dropped, files=files)
