"""Run configuration: one pydantic model for YAML files, the CLI and Python alike (``extra="forbid"``).

:func:`build_components` resolves every component name against the registry and builds every component without
calling a model; ``collab-harness validate`` is exactly that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .components import Component, Judge, Metric, Task, TrainerBackend, UserSimulator
from .errors import ConfigError, validation_summary
from .plugins import PluginHost

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "OFFLINE_JUDGE",
    "OPERATIONAL_FIELDS",
    "BuiltRun",
    "ComponentRef",
    "MRSettings",
    "RunConfig",
    "SynthSettings",
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


class MRSettings(_Strict):
    """How MR is computed (``mr`` and ``synth``; an evaluation is MR with window 0 and one sample)."""

    #: Futures S per candidate.
    samples: int = Field(3, ge=1)
    #: Window W in exchanges (a user message and the assistant's reply) after the candidate; 0 scores h + r.
    window: int = Field(2, ge=0)
    form: Literal["weighted", "paper"] = "weighted"
    #: λ of the paper form; None = the task's.
    penalty_lambda: float | None = Field(None, ge=0.0)
    #: T of the paper form: the assistant's tokens in the forward part (the reference's count) or all tokens.
    token_count: Literal["assistant", "all"] = "assistant"
    #: Assistant prompt variant in the futures.
    variant: Literal["plain", "proactive"] = "plain"
    #: Assistant temperature in the futures.
    temperature: float = Field(0.7, ge=0.0)
    extraction: Literal["auto", "llm", "rule"] = "auto"
    extraction_max_tokens: int = Field(1024, ge=1)
    #: Successful futures MR needs (None = all S); fewer is a recorded failure, never a mean over survivors.
    min_futures: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _min_futures(self) -> MRSettings:
        if self.min_futures is not None and self.min_futures > self.samples:
            raise ValueError(f"min_futures ({self.min_futures}) cannot exceed samples ({self.samples})")
        return self


class SynthSettings(_Strict):
    """How training conversations are synthesised (SPEC §5; ``synth``)."""

    #: Candidate responses N per turn.
    candidates: int = Field(3, ge=1)
    #: Turns (assistant messages) per conversation at most; a user who ends the chat stops it earlier.
    max_turns: int = Field(3, ge=1)
    #: Share of the candidates sampled with the proactive-collaborator instruction (the rest: plain).
    proactive_share: float = Field(0.5, ge=0.0, le=1.0)
    #: Sampling temperatures of the candidates, cycled over them (diversity).
    temperatures: list[float] = Field(default_factory=lambda: [0.7, 1.0])
    #: Where the next user message comes from: ``sample`` = the first future (in seed order) of the chosen
    #: candidate that reached a user message — an unbiased draw of the user's reaction; ``best`` = the chosen
    #: candidate's highest-reward future; ``lowest-nonterminated`` = its lowest-reward future whose user did not end
    #: the chat (the older reference implementation's rule). Without such a future (W = 0) the simulator is asked.
    next_user: Literal["sample", "best", "lowest-nonterminated"] = "sample"

    @field_validator("temperatures")
    @classmethod
    def _temps(cls, v: list[float]) -> list[float]:
        if not v or any((not math.isfinite(t)) or t < 0 for t in v):
            raise ValueError("temperatures must be a non-empty list of finite numbers >= 0")
        return v


def _bases(v: Any) -> Any:
    if v is None or v == "" or v == []:
        return None
    if isinstance(v, str):
        v = [b.strip() for b in v.split(",") if b.strip()]
    return v


class RunConfig(_Strict):
    """Options of ``run`` / ``mr`` / ``synth``: one settings tree for YAML files, the CLI and Python. Each option has
    a CLI flag and an env var ``COLLAB_HARNESS_<OPTION>``. Everything but :data:`OPERATIONAL_FIELDS` decides the
    records, so a resume with any of it changed is refused, naming the setting."""

    task: ComponentRef
    split: str = "test"
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    out: str | None = None
    #: Board label of the run (default: derived from the assistant and its system prompt).
    label: str | None = None
    assistant: str = DEFAULT_LOCAL_MODEL
    assistant_system_prompt: str | None = None
    #: A simulator name (``shard-user``, ``llm-user``), or a model string meaning the simulator that plays model
    #: strings (``llm-user``) played by that model; None = the task's ``default_user``.
    user: ComponentRef | None = None
    #: Model for LLM judges and artefact extraction, or "rules" for the offline judge (rule-based extraction too).
    judge: str = OFFLINE_JUDGE
    #: OpenAI-compatible endpoint(s) per role (vLLM, llama.cpp's server, TGI ...); several = replicas behind
    #: litellm's Router. A comma-separated string or a list.
    assistant_api_base: list[str] | None = None
    user_api_base: list[str] | None = None
    judge_api_base: list[str] | None = None
    #: Metrics and judges to score with; None = the task's defaults.
    metrics: list[ComponentRef] | None = None
    #: Weights in the MR sum (component name -> weight); None = the task's defaults, 1.0 for extra metrics.
    weights: dict[str, float] | None = None
    max_exchanges: int = Field(default=7, ge=1)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    mr: MRSettings = Field(default_factory=MRSettings)
    synth: SynthSettings = Field(default_factory=SynthSettings)
    parity: bool = False
    # -- operational: how the run is carried out, not what it computes --------------------------------------
    concurrency: int = Field(default=8, ge=1)
    cache: bool = True
    fail_on_error: float | None = Field(default=None, ge=0)
    retry_on_error: int = Field(default=0, ge=0)
    #: Seconds per model-call attempt (API and scripted models; local models have their own bound).
    timeout: float = Field(default=120.0, gt=0)
    #: Seconds one item (example, row) may take in all, retries of its model calls included; None = no budget.
    sample_timeout: float | None = Field(default=None, gt=0)
    #: Named executor limits, e.g. {sandbox: 4, metrics: 2, io: 4} (see collab_harness.executors).
    executors: dict[str, int] | None = None
    #: torch threads of local generation (None: torch's own choice).
    local_threads: int | None = Field(default=None, ge=1)
    #: Where CPU-bound verdicts (sandboxed test runs) run: ``local`` (the bounded ``sandbox`` pool) or ``ray`` (Ray
    #: tasks on a cluster; extra ``ray``). Verdicts are the same either way (see collab_harness.executors).
    executor: Literal["local", "ray"] = "local"
    #: The Ray cluster of ``executor: ray`` (``HOST:PORT``, ``ray://HOST:10001``, ``auto``); None: Ray's own rule
    #: (``RAY_ADDRESS``, else a cluster started on this machine, else a new local one).
    ray_address: str | None = None

    _norm_bases = field_validator("assistant_api_base", "user_api_base", "judge_api_base", mode="before")(
        classmethod(lambda cls, v: _bases(v)))

    @field_validator("weights")
    @classmethod
    def _finite_weights(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for name, w in (v or {}).items():
            if not math.isfinite(w):
                raise ValueError(f"weight of {name!r} must be a finite number, got {w}")
        return v

    @field_validator("executors")
    @classmethod
    def _executor_limits(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        for name, n in (v or {}).items():
            if n < 1:
                raise ValueError(f"executor {name!r}: limit must be >= 1, got {n}")
        return v

    @model_validator(mode="after")
    def _check_models(self) -> RunConfig:
        check_model_string(self.assistant, "assistant")
        if self.judge != OFFLINE_JUDGE:
            check_model_string(self.judge, "judge")
        if self.user is not None and "/" in self.user.name:
            check_model_string(self.user.name, "user")
        return self

    def user_model(self) -> str | None:
        return self.user.name if self.user is not None and "/" in self.user.name else None

    def endpoints(self) -> dict[str, list[str]]:
        """Model string -> api bases, from the per-role settings (one model with two sets of bases is an error)."""
        out: dict[str, list[str]] = {}
        for role, model, bases in (("assistant", self.assistant, self.assistant_api_base),
                                   ("user", self.user_model(), self.user_api_base),
                                   ("judge", None if self.judge == OFFLINE_JUDGE else self.judge, self.judge_api_base)):
            if not bases:
                continue
            if model is None:
                raise ConfigError(f"{role}_api_base is set but the {role} is not a model string")
            if model.split("/", 1)[0] in ("local", "scripted"):
                raise ConfigError(f"{role}_api_base is set but {model!r} runs in-process; serve the model with an "
                                  "OpenAI-compatible server and name it e.g. hosted_vllm/NAME or openai/NAME")
            if model in out and sorted(out[model]) != sorted(bases):
                raise ConfigError(f"model {model!r} is given two different api bases (by {role} and another role); "
                                  "use one set of endpoints per model string")
            out[model] = list(bases)
        return out

    def identity(self) -> dict[str, Any]:
        """The settings that decide the records (everything but :data:`OPERATIONAL_FIELDS`), as JSON data."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in OPERATIONAL_FIELDS}


#: Settings that change how a run is carried out but not what it computes: a resume may change them.
OPERATIONAL_FIELDS = frozenset({"out", "label", "concurrency", "cache", "fail_on_error", "retry_on_error", "timeout",
                                "sample_timeout", "executors", "local_threads", "executor", "ray_address"})


def check_model_string(model: str, label: str = "model") -> str:
    """Syntactic check of a model string (``provider/name``); nothing is called or downloaded."""
    provider, sep, rest = model.partition("/")
    if not sep or not provider or not rest:
        raise ValueError(
            f"{label} model {model!r} is not of the form provider/name (e.g. local/smollm2, openai/gpt-4o-mini,"
            " hosted_vllm/NAME, scripted/echo)"
        )
    return model


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file holding a mapping at the top level (run and training configs), or a one-line ConfigError."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return dict(data)


def load_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read a YAML run config; ``overrides`` (from the CLI) win over the file; None means "not given"."""
    p = Path(path)
    data = read_yaml_mapping(p)
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
    user = config.user
    if user is None:
        # The task says who plays its user (a safety task needs an adversarial one); the core names none.
        if not task.default_user:
            raise ConfigError(f"task {task.name!r} names no default user simulator; choose one with --user "
                              f"(installed: {', '.join(host.registry.names('simulator'))})")
        user = ComponentRef(name=task.default_user)
    if "/" in user.name:
        # A model string as --user means the simulator that declares it plays model strings, with that model.
        players = [n for n in host.registry.names("simulator")
                   if getattr(host.registry.get("simulator", n).cls, "plays_model_strings", False)]
        if len(players) != 1:
            raise ConfigError(
                f"--user {user.name!r} is a model string, but {len(players)} installed simulators play model "
                f"strings ({', '.join(players) or 'none'}); name the simulator and give it the model as an option")
        sim = host.registry.create("simulator", players[0], {**user.options, "model": user.name})
    else:
        sim = _build(host, "simulator", user)
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
                if config.judge == OFFLINE_JUDGE and not getattr(judge_cls, "offline", False):
                    raise ConfigError(f"judge {ref.name!r} has no offline mode; name a judge model with --judge MODEL "
                                      "(or leave it out of --metrics)")
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
