"""Run configuration: one pydantic model for YAML files, the CLI and Python alike (``extra="forbid"``).

:func:`build_components` resolves every component name against the registry and builds every component without
calling a model; ``collab-harness validate`` is exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .components import Component, Judge, Metric, Task, TrainerBackend, UserSimulator
from .errors import ConfigError, validation_summary
from .plugins import PluginHost

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "OFFLINE_JUDGE",
    "BuiltRun",
    "ComponentRef",
    "RunConfig",
    "build_components",
    "check_model_string",
    "load_config",
]

DEFAULT_LOCAL_MODEL = "local/smollm2"
#: The offline judge: LLM judges score with their documented deterministic rubrics and artefacts are extracted by
#: the tasks' rules. It is the default because the embedded 135M model cannot follow a judge's JSON format (measured:
#: 0 valid verdicts in 10 tries); name an LLM with ``--judge`` for model-based judging and extraction.
OFFLINE_JUDGE = "rules"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentRef(_Strict):
    """A component by name with its options; a bare string is shorthand for ``{name: ...}``."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"name": v}
        return v


class RunConfig(_Strict):
    """Options of ``run`` / ``mr`` / ``synth``. Each has a CLI flag and an env var ``COLLAB_HARNESS_<OPTION>``."""

    task: ComponentRef
    split: str = "test"
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    out: str | None = None
    assistant: str = DEFAULT_LOCAL_MODEL
    assistant_system_prompt: str | None = None
    #: A simulator name (``shard-user``, ``llm-user``), or a model string meaning ``llm-user`` played by that model.
    user: ComponentRef = ComponentRef(name="shard-user")
    #: Model for LLM judges and artefact extraction, or "rules" for the offline judge (rule-based extraction too).
    judge: str = OFFLINE_JUDGE
    #: Metrics and judges to score with; None = the task's defaults.
    metrics: list[ComponentRef] | None = None
    #: Weights in the MR sum (component name -> weight); None = the task's defaults, 1.0 for extra metrics.
    weights: dict[str, float] | None = None
    max_exchanges: int = Field(default=7, ge=0)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    concurrency: int = Field(default=8, ge=1)
    cache: bool = True
    fail_on_error: float | None = Field(default=None, ge=0)
    retry_on_error: int = Field(default=0, ge=0)
    parity: bool = False

    @model_validator(mode="after")
    def _check_models(self) -> RunConfig:
        check_model_string(self.assistant, "assistant")
        if self.judge != OFFLINE_JUDGE:
            check_model_string(self.judge, "judge")
        if "/" in self.user.name:
            check_model_string(self.user.name, "user")
        return self


def check_model_string(model: str, label: str = "model") -> str:
    """Syntactic check of a model string (``provider/name``); nothing is called or downloaded."""
    provider, sep, rest = model.partition("/")
    if not sep or not provider or not rest:
        raise ValueError(
            f"{label} model {model!r} is not of the form provider/name (e.g. local/smollm2, openai/gpt-4o-mini,"
            " hosted_vllm/NAME, scripted/echo)"
        )
    return model


def load_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read a YAML run config; ``overrides`` (from the CLI) win over the file; None means "not given"."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return make_config(data, source=str(p))


def make_config(data: Mapping[str, Any], *, source: str = "options") -> RunConfig:
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as e:
        errs = validation_summary(e.errors(), root="(top)")
        raise ConfigError(f"invalid configuration in {source}: {errs}") from e


@dataclass
class BuiltRun:
    """Every component of a run, built and ready (no model called yet)."""

    config: RunConfig
    task: Task
    simulator: UserSimulator
    scorers: list[Metric | Judge] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)

    def manifest_components(self, host: PluginHost) -> list[dict[str, Any]]:
        out = []
        for c in [self.task, self.simulator, *self.scorers]:
            spec = host.registry.get(c.kind, c.name)
            out.append({**c.describe(), "plugin": spec.plugin, "distribution": spec.distribution,
                        "plugin_version": spec.plugin_version})
        return out


def _build(host: PluginHost, kind: Any, ref: ComponentRef) -> Component:
    return host.registry.create(kind, ref.name, ref.options)


def build_components(host: PluginHost, config: RunConfig) -> BuiltRun:
    """Resolve and build the task, the simulator and every metric / judge of ``config``."""
    task = _build(host, "task", config.task)
    assert isinstance(task, Task)
    if "/" in config.user.name:
        # A model string as --user means the LLM-prompted user played by that model.
        sim = host.registry.create("simulator", "llm-user", {**config.user.options, "model": config.user.name})
    else:
        sim = _build(host, "simulator", config.user)
    assert isinstance(sim, UserSimulator)
    refs = config.metrics if config.metrics is not None else [ComponentRef(name=n) for n in task.default_metrics]
    scorers: list[Metric | Judge] = []
    for ref in refs:
        if ref.name in host.registry.names("metric"):
            c = _build(host, "metric", ref)
        elif ref.name in host.registry.names("judge"):
            opts = dict(ref.options)
            judge_cls = host.registry.get("judge", ref.name).cls
            if "model" in judge_cls.Options.model_fields and "model" not in opts:
                opts["model"] = config.judge
            c = host.registry.create("judge", ref.name, opts)
        else:
            # Neither: raise the metric lookup error, listing judges too.
            from .errors import ComponentNotFound

            raise ComponentNotFound(
                "metric or judge",
                ref.name,
                host.registry.names("metric") + host.registry.names("judge"),
                load_errors=host.registry.load_errors,
            )
        assert isinstance(c, Metric | Judge)
        scorers.append(c)
    weights = {s.name: float(task.default_metrics.get(s.name, 1.0)) for s in scorers}
    if config.weights:
        unknown = set(config.weights) - set(weights)
        if unknown:
            raise ConfigError(f"weights given for metrics not in this run: {', '.join(sorted(unknown))}")
        weights.update(config.weights)
    return BuiltRun(config=config, task=task, simulator=sim, scorers=scorers, weights=weights)


def build_trainer(host: PluginHost, name: str, options: Mapping[str, Any] | None = None) -> TrainerBackend:
    t = host.registry.create("trainer", name, options)
    assert isinstance(t, TrainerBackend)
    return t
