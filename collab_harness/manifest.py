"""The manifest of a run: everything needed to say what produced its records (and to refuse a resume that would
mix two different runs). Shared by every kind of run; never holds a secret (it is scrubbed on write, endpoints are
reduced to ``scheme://host:port``).
"""

from __future__ import annotations

import hashlib
import inspect
import platform
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .components import Component, Task
from .config import OFFLINE_JUDGE, BuiltRun
from .plugins import PluginHost
from .records import Manifest, RunKind

__all__ = ["build_manifest", "prompt_hashes", "task_metric_of"]

#: Core modules whose prompt texts shape every run.
_CORE_PROMPT_MODULES = ("collab_harness.simulate", "collab_harness.extract", "collab_harness.reward",
                        "collab_harness.prompts")


def task_metric_of(task: Task, scorers: Sequence[Any]) -> str | None:
    """The task's own success metric: its first default scorer with the ``task`` role that this run scores, else the
    first such scorer of the run (by role, never by name)."""
    names = {s.name: s for s in scorers}
    for name in list(task.default_metrics) + list(names):
        s = names.get(name)
        if s is not None and getattr(s, "role", "task") == "task":
            return name
    return None


def _module_hashes(mod: Any) -> dict[str, str]:
    """sha256 (16 hex) of every prompt-like constant (text of >= 40 chars, or a tuple of phrases) of a module: a
    changed prompt or rubric shows up even when no version was bumped."""
    out: dict[str, str] = {}
    for name, val in sorted(vars(mod).items()):
        if name.startswith("__"):
            continue
        text: str | None = None
        if isinstance(val, str) and len(val) >= 40:
            text = val
        elif isinstance(val, tuple) and val and all(isinstance(v, str) for v in val):
            text = "\x1f".join(val)
        if text is not None:
            out[name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def prompt_hashes(components: Sequence[Component], *, system_prompt: str | None = None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for c in components:
        mod = sys.modules.get(type(c).__module__)
        h = _module_hashes(mod) if mod is not None else {}
        if h:
            out[f"{c.kind}:{c.name}"] = h
    for name in _CORE_PROMPT_MODULES:
        mod = sys.modules.get(name)
        if mod is not None and inspect.ismodule(mod):
            h = _module_hashes(mod)
            if h:
                out[name] = h
    if system_prompt:
        out["assistant_system_prompt"] = {"text": hashlib.sha256(system_prompt.encode()).hexdigest()[:16]}
    return out


def _embedded_resolution(model: str) -> dict[str, Any]:
    """For the embedded alias: the shipped GGUF file, its size and the wheel's version (cheap: no model load)."""
    if not model.startswith("local/"):
        return {}
    try:
        from importlib.metadata import version

        from .models.local import EMBEDDED_ALIASES, embedded_gguf

        ref = model.removeprefix("local/")
        if ref not in EMBEDDED_ALIASES:
            return {"resolved": ref}
        module, name = EMBEDDED_ALIASES[ref]
        gguf = embedded_gguf(ref)
        dist = module.replace("_", "-")
        return {"resolved": name, "gguf_file": gguf.name, "gguf_bytes": gguf.stat().st_size,
                "package": f"{dist}=={version(dist)}"}
    except Exception as e:  # a model that cannot be described must not stop the run; its calls will say why
        return {"resolve_error": f"{type(e).__name__}: {e}"}


async def _model(client: Any, model: str) -> dict[str, Any]:
    d: dict[str, Any] = await client.describe_model(model) if hasattr(client, "describe_model") else {"model": model}
    return {**d, **_embedded_resolution(model)}


async def build_manifest(
    kind: RunKind,
    host: PluginHost,
    built: BuiltRun,
    *,
    client: Any,
    item_ids: Sequence[str],
    extra_task: Mapping[str, Any] | None = None,
    input_info: Mapping[str, Any] | None = None,
    mr: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Any] | None = None,
) -> Manifest:
    from . import __version__
    from .engine import now_iso

    cfg = built.config
    task_info = built.task.info()
    provenance = getattr(built.task, "data_provenance", None)
    task: dict[str, Any] = {
        "name": built.task.name,
        "split": cfg.split,
        "task_metric": task_metric_of(built.task, built.scorers),
        "n_items": len(item_ids),
        "data_source": task_info.data_source,
        **({"data": provenance()} if callable(provenance) else {}),
        **dict(extra_task or {}),
    }
    models: dict[str, Any] = {"assistant": await _model(client, cfg.assistant)}
    sim_model = getattr(built.simulator.options, "model", None)
    models["user"] = await _model(client, str(sim_model)) if sim_model else {"simulator": built.simulator.name,
                                                                               "model": None}
    if cfg.judge == OFFLINE_JUDGE:
        models["judge"] = {"model": cfg.judge, "offline": True,
                           "description": "deterministic rule-based judge rubrics; artefacts extracted by the tasks' "
                                          "rules"}
    else:
        models["judge"] = await _model(client, cfg.judge)
    return Manifest(
        kind=kind,
        run_id=uuid.uuid4().hex,
        created_at=now_iso(),
        harness_version=__version__,
        python=platform.python_version(),
        platform=platform.platform(terse=True),
        plugins=[{"name": p.name, "distribution": p.distribution, "version": p.version, "builtin": p.builtin}
                 for p in host.plugins],
        config=cfg.model_dump(mode="json"),
        task=task,
        item_ids=list(item_ids),
        input=dict(input_info) if input_info else None,
        models=models,
        components=built.manifest_components(host),
        metrics=[s.name for s in built.scorers],
        weights=built.weights,
        prompt_hashes=prompt_hashes([built.task, built.simulator, *built.scorers],
                                    system_prompt=cfg.assistant_system_prompt),
        seeds={"run": cfg.seed, **dict(seeds or {})},
        mr=dict(mr or {}),
    )
