"""Typed, versioned run records: what a run directory holds, for every kind of run.

A run directory holds ``manifest.json`` (:class:`Manifest`), ``samples.jsonl`` (one record per item, of the model
for the run's kind: :class:`EvalRecord`, :class:`MRRecord`, later ``synth`` and ``chat``) and ``results.json``
(:class:`Results`, recomputable from the records). Every record carries ``kind`` and ``schema_version``; every
failure anywhere is one :class:`ComponentFailure`. ``collab-harness schema KIND`` prints the JSON Schema of a kind's
record, generated from these models.

Schema history:

- 1 (collab-harness 0.1.0): evaluation only, untyped dicts, no ``kind`` on records. Read by :func:`upgrade_record`
  and :func:`upgrade_manifest` (leaderboards and viewers keep working); a schema-1 run cannot be resumed.
- 2: this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .types import Message, Score

__all__ = [
    "RECORD_MODELS",
    "SCHEMA_VERSION",
    "ChatRating",
    "ChatRecord",
    "ChatSegment",
    "ChatTurn",
    "ComponentFailure",
    "EvalRecord",
    "ExtractionInfo",
    "MRRecord",
    "Manifest",
    "MetricSummary",
    "Record",
    "Results",
    "ResumeInfo",
    "RunKind",
    "RunStatus",
    "SynthCandidate",
    "SynthRecord",
    "SynthTurn",
    "UsageCounters",
    "record_schema",
    "upgrade_manifest",
    "upgrade_record",
]

SCHEMA_VERSION = 2

RunKind = Literal["eval", "mr", "synth", "chat"]
RunStatus = Literal["started", "success", "error", "cancelled"]
FailureCategory = Literal["component", "environment", "timeout", "auth", "input", "engine"]


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentFailure(_Rec):
    """One failure of one component: who failed (``assistant``, ``user:shard-user``, ``metric:pass_rate``,
    ``judge:interactivity``, ``extract``, ``engine`` ...), on which sample, at which attempt, and why."""

    component: str
    message: str
    sample_id: str | None = None
    attempt: int = Field(1, ge=1)
    #: ``environment``: the machine lacks something (a module, a key) — not the model's fault; ``timeout``: a time
    #: budget ran out; ``auth``: credentials or configuration; ``input``: a bad input row; ``engine``: the harness.
    category: FailureCategory = "component"

    def __str__(self) -> str:
        return f"{self.component}: {self.message}"


class UsageCounters(_Rec):
    """Model usage of one component (or model): answered calls, cache hits, attempts that reached a provider,
    retries, failed calls, tokens and cost (None when some paid call had no known price)."""

    calls: int = 0
    cache_hits: int = 0
    provider_calls: int = 0
    retries: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0


class ExtractionInfo(_Rec):
    """How the artefact scored by the metrics was obtained (``method``: llm, rule or none)."""

    method: Literal["llm", "rule", "none"]
    model: str | None = None
    error: str | None = None
    artefact: str | None = None


class _ItemRecord(_Rec):
    kind: str
    schema_version: int = SCHEMA_VERSION
    #: The record's own id (stable: derived from the item id and its seed, never from positions).
    id: str
    attempt: int = Field(1, ge=1)
    seed: int
    #: Failures of the attempt this record reports; non-empty means the item failed.
    errors: list[ComponentFailure] = Field(default_factory=list)
    #: Failures of earlier attempts that a retry (``retry_on_error``) got past.
    retried: list[ComponentFailure] = Field(default_factory=list)
    usage: dict[str, UsageCounters] = Field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.errors)


class EvalRecord(_ItemRecord):
    """One evaluated example: the simulated conversation and its scores (MR with W = 0, S = 1)."""

    kind: Literal["eval"] = "eval"
    schema_version: Literal[2] = 2
    example_id: str
    conversation: list[Message]
    exchanges: int = 0
    terminated: bool = False
    scores: dict[str, Score] = Field(default_factory=dict)
    reward: float | None = None
    extraction: ExtractionInfo | None = None

    @property
    def item_id(self) -> str:
        return self.example_id


class FutureRecord(_Rec):
    """One sampled future of an MR: the whole conversation (history, candidate, simulated exchanges), its scores,
    its reward, and its failures."""

    index: int
    seed: int
    conversation: list[Message]
    forward_start: int
    exchanges: int
    terminated: bool
    scores: dict[str, Score] = Field(default_factory=dict)
    artefact: str | None = None
    extraction_method: str | None = None
    extraction_error: str | None = None
    reward: float | None = None
    reward_parts: dict[str, float] = Field(default_factory=dict)
    errors: list[ComponentFailure] = Field(default_factory=list)


class MRRecord(_ItemRecord):
    """The multiturn-aware reward of one (history, candidate) row."""

    kind: Literal["mr"] = "mr"
    schema_version: Literal[2] = 2
    #: The input row's id (unique in the input).
    row_id: str
    example_id: str
    history: list[Message] = Field(default_factory=list)
    candidate: str = ""
    mr: float | None = None
    std: float | None = None
    n_ok: int = 0
    n_total: int = 0
    #: Mean of each scorer over the same futures as ``mr`` (None if it never succeeded there).
    per_metric: dict[str, float | None] = Field(default_factory=dict)
    per_metric_n: dict[str, int] = Field(default_factory=dict)
    form: Literal["weighted", "paper"] = "weighted"
    weights: dict[str, float] = Field(default_factory=dict)
    penalty_lambda: float | None = None
    samples: int = 0
    window_exchanges: int = 0
    min_futures: int | None = None
    futures: list[FutureRecord] = Field(default_factory=list)

    @property
    def item_id(self) -> str:
        return self.row_id


class SynthCandidate(_Rec):
    """One candidate response of a synthesis turn, with its MR and the futures behind it."""

    index: int
    text: str | None = None
    #: How it was sampled: prompt variant ("plain" or "proactive"), temperature and seed.
    variant: str = "plain"
    temperature: float = 0.0
    seed: int = 0
    mr: float | None = None
    std: float | None = None
    n_ok: int = 0
    n_total: int = 0
    per_metric: dict[str, float | None] = Field(default_factory=dict)
    futures: list[FutureRecord] = Field(default_factory=list)
    #: Why this candidate has no MR (its generation or its MR failed).
    error: str | None = None


class SynthTurn(_Rec):
    """One turn: the conversation so far ended with ``messages[prefix - 1]`` (a user message); every candidate was
    scored on the same future seeds (common random numbers); ``chosen`` continued the conversation."""

    index: int
    #: Length of the conversation (in ``SynthRecord.conversation``) before this turn's assistant message.
    prefix: int
    mr_seed: int
    candidates: list[SynthCandidate]
    chosen: int | None = None
    #: The user's next message and where it came from (``future <i> of candidate <c>`` or ``simulator``).
    next_user: str | None = None
    next_user_source: str | None = None
    terminated: bool = False


class SynthRecord(_ItemRecord):
    """One synthesised conversation: the best path (``conversation``) and every turn's scored candidates."""

    kind: Literal["synth"] = "synth"
    schema_version: Literal[2] = 2
    example_id: str
    task: str = ""
    conversation: list[Message] = Field(default_factory=list)
    turns: list[SynthTurn] = Field(default_factory=list)
    terminated: bool = False
    #: Why the conversation stopped: "terminated" (the user ended it), "max_turns", or "failed".
    stop_reason: str = "max_turns"

    @property
    def item_id(self) -> str:
        return self.example_id


class ChatTurn(_Rec):
    """One turn of a human chat session: the person's message and the assistant's reply, with their times.

    ``user_s`` runs from the moment the person was asked for the message (the previous reply on screen) to the
    moment it was sent: reading, thinking and typing. ``assistant_s`` is the assistant's reply time."""

    #: 1-based turn number.
    index: int = Field(ge=1)
    user: str
    assistant: str
    started_at: str
    user_s: float = Field(0.0, ge=0.0)
    assistant_s: float = Field(0.0, ge=0.0)
    #: When the person took this turn back with ``/undo`` (only in ``ChatRecord.undone``).
    undone_at: str | None = None


class ChatRating(_Rec):
    """One rating the person gave: which question (``key``: ``turn`` for the every-K-turns rating, else the final
    question's key, e.g. ``outcome`` / ``interaction``), its text, the value on its scale, the turn it followed."""

    key: str
    question: str
    value: int
    scale: tuple[int, int] = (1, 10)
    after_turn: int = Field(ge=0)
    at: str
    response_s: float = Field(0.0, ge=0.0)


class ChatSegment(_Rec):
    """One sitting of a session (a session interrupted and resumed has several): start, last activity, active
    seconds, and how it ended (``running`` while it goes on; ``interrupted`` when the process died: the time after
    the last journal write is lost)."""

    started_at: str
    last_at: str
    active_s: float = Field(0.0, ge=0.0)
    end: Literal["running", "paused", "interrupted", "finished"] = "running"


class ChatRecord(_ItemRecord):
    """One human chat session (``collab-harness chat``): a person played the user against one assistant.

    The conversation with per-turn times, the ratings every K turns and the final ratings (each with the turn it
    followed), optional free-text feedback, the sittings, and the automatic scores of the same conversation (the
    task's metrics and judges, as in an evaluation). While the session runs, snapshots of this record with
    ``status: incomplete`` are appended to the session's journal (``sessions/<session_id>.jsonl``); the finished
    session is one record with ``status: complete`` in ``samples.jsonl``. Nothing about the person is recorded
    beyond what they typed."""

    kind: Literal["chat"] = "chat"
    schema_version: Literal[2] = 2
    session_id: str
    example_id: str
    task: str = ""
    #: The assistant's label (the board's row) and what it was: model, prompt variant, system prompt hash.
    assistant: str
    assistant_model: str
    assistant_variant: str = "plain"
    assistant_index: int = 0
    #: Whether the person was kept from knowing which assistant it was.
    blind: bool = False
    #: Where the person's input came from (``terminal``, ``scripted``, a third-party frontend's name).
    frontend: str = "terminal"
    status: Literal["incomplete", "complete"] = "incomplete"
    #: What the person was shown as their task (never the hidden reference).
    brief: str = ""
    conversation: list[Message] = Field(default_factory=list)
    turns: list[ChatTurn] = Field(default_factory=list)
    #: A turn whose message was sent but whose reply had not arrived when the snapshot was written (``assistant``
    #: empty); on resume the message is sent again.
    pending: ChatTurn | None = None
    #: Ratings every K turns (``key`` "turn").
    ratings: list[ChatRating] = Field(default_factory=list)
    final_ratings: list[ChatRating] = Field(default_factory=list)
    #: Free-text answers by question key ("" = asked, left empty).
    feedback: dict[str, str] = Field(default_factory=dict)
    #: The person ended the conversation (``/done``) — as opposed to the turn limit.
    terminated: bool = False
    #: Why the conversation ended: ``person`` or ``max_turns``; None while it goes on.
    ended_by: Literal["person", "max_turns"] | None = None
    #: Turns taken back with ``/undo``, and the ratings that went with them.
    undone: list[ChatTurn] = Field(default_factory=list)
    withdrawn_ratings: list[ChatRating] = Field(default_factory=list)
    #: Assistant calls that failed and were retried by the person (the session went on).
    assistant_errors: list[ComponentFailure] = Field(default_factory=list)
    segments: list[ChatSegment] = Field(default_factory=list)
    #: Seconds the person spent in the session, over all sittings.
    active_s: float = Field(0.0, ge=0.0)
    scores: dict[str, Score] = Field(default_factory=dict)
    reward: float | None = None
    extraction: ExtractionInfo | None = None

    @property
    def item_id(self) -> str:
        return self.session_id

    def rating(self, key: str) -> int | None:
        """The final rating with ``key`` (None if not given)."""
        return next((r.value for r in self.final_ratings if r.key == key), None)


Record = Annotated[EvalRecord | MRRecord | SynthRecord | ChatRecord, Field(discriminator="kind")]

#: The record model of each kind of run.
RECORD_MODELS: dict[str, type[_ItemRecord]] = {"eval": EvalRecord, "mr": MRRecord, "synth": SynthRecord,
                                               "chat": ChatRecord}

_RECORD_ADAPTER: TypeAdapter[Any] = TypeAdapter(Record)


AnyRecord = EvalRecord | MRRecord | SynthRecord | ChatRecord


def parse_record(data: Mapping[str, Any]) -> AnyRecord:
    """Validate one record of any kind (schema 1 evaluation records are upgraded first)."""
    rec: AnyRecord = _RECORD_ADAPTER.validate_python(upgrade_record(data))
    return rec


# ------------------------------------------------------------------------------------------- manifest, results


class ResumeInfo(_Rec):
    at: str
    finished_before: int
    dropped_torn_line: bool = False
    pid: int | None = None
    host: str | None = None
    #: Settings that changed and were accepted with ``--allow-changed`` (empty otherwise).
    allowed_changes: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    """What a run was: versions, the full settings tree, resolved models and endpoints, components with their
    options and plugin versions, prompt hashes, seeds, and the run's status. Never a secret."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    kind: RunKind
    status: RunStatus = "started"
    run_id: str
    created_at: str
    finished_at: str | None = None
    harness_version: str
    python: str
    platform: str
    plugins: list[dict[str, Any]] = Field(default_factory=list)
    #: The whole settings tree of the run (the resume check compares it).
    config: dict[str, Any] = Field(default_factory=dict)
    #: Task, split, data source and provenance, the task metric, the items (example ids or row ids).
    task: dict[str, Any] = Field(default_factory=dict)
    item_ids: list[str] = Field(default_factory=list)
    #: Input file digest for runs over an input (``mr``).
    input: dict[str, Any] | None = None
    #: Role (assistant, user, judge) -> model string, endpoint hosts, fingerprint, resolution.
    models: dict[str, Any] = Field(default_factory=dict)
    components: list[dict[str, Any]] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)
    weights: dict[str, float] = Field(default_factory=dict)
    prompt_hashes: dict[str, dict[str, str]] = Field(default_factory=dict)
    seeds: dict[str, Any] = Field(default_factory=dict)
    #: MR settings (``mr`` and ``synth``; an evaluation is MR with W = 0, S = 1).
    mr: dict[str, Any] = Field(default_factory=dict)
    #: Parameters dropped because a provider does not support them: model -> parameter names.
    param_drops: dict[str, list[str]] = Field(default_factory=dict)
    #: Named executor limits in force.
    executors: dict[str, int] = Field(default_factory=dict)
    resumes: list[ResumeInfo] = Field(default_factory=list)
    #: The summary line of the finished run (status, counts, failures by component).
    summary: dict[str, Any] = Field(default_factory=dict)


class MetricSummary(_Rec):
    """Aggregate of one metric over the records: mean, interval (``ci_method`` says how it was computed), n scored,
    n failed, and the failures that were the environment's (a missing module ...), counted apart."""

    mean: float | None = None
    std: float | None = None
    n: int = 0
    n_failed: int = 0
    n_environment: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = None
    value_kind: str | None = None
    value_range: tuple[float, float] | None = None

    @property
    def ci_half(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2


class Results(_Rec):
    """``results.json``: aggregates of every record, recomputable from ``samples.jsonl`` and the manifest."""

    schema_version: int = SCHEMA_VERSION
    kind: RunKind
    status: RunStatus
    task: str | None = None
    task_metric: str | None = None
    n_items: int
    n_samples: int
    n_failed: int
    complete: bool
    metrics: dict[str, MetricSummary] = Field(default_factory=dict)
    reward: MetricSummary = Field(default_factory=MetricSummary)
    errors_by_component: dict[str, int] = Field(default_factory=dict)
    errors_by_category: dict[str, int] = Field(default_factory=dict)
    usage: dict[str, UsageCounters] = Field(default_factory=dict)
    stopped: str | None = None


def record_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind's record (``manifest`` and ``results`` are accepted too)."""
    models: dict[str, type[BaseModel]] = {**RECORD_MODELS, "manifest": Manifest, "results": Results}
    if kind not in models:
        from .errors import ConfigError

        raise ConfigError(f"unknown record kind {kind!r}; known: {', '.join(models)}")
    schema = models[kind].model_json_schema()
    schema["$id"] = f"https://collab-harness.dev/schema/{kind}-{SCHEMA_VERSION}.json"
    return schema


# --------------------------------------------------------------------------------------------- schema 1


def upgrade_record(data: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-1 evaluation sample (no ``kind``) as a schema-2 :class:`EvalRecord` dict; newer records as is."""
    d = dict(data)
    if "kind" in d:
        return d
    eid = str(d.get("example_id", ""))
    errors = [
        {"component": str(e.get("component", "unknown")), "message": str(e.get("message", "")),
         "sample_id": eid, "attempt": max(1, int(e.get("attempt", 1) or 1))}
        for e in d.get("errors") or [] if isinstance(e, Mapping)
    ]
    final = max(1, int(d.get("attempt", 1) or 1))
    usage = {k: {f: v.get(f, 0) for f in UsageCounters.model_fields if f in v}
             for k, v in (d.get("usage") or {}).items() if isinstance(v, Mapping)}
    ext = d.get("extraction")
    return {
        "kind": "eval",
        "schema_version": 2,
        "id": str(d.get("id", eid)),
        "example_id": eid,
        "attempt": max(1, int(d.get("attempt", 1) or 1)),
        "seed": int(d.get("seed", 0)),
        "conversation": d.get("conversation") or [],
        "exchanges": int(d.get("exchanges") or 0),
        "terminated": bool(d.get("terminated")),
        "scores": d.get("scores") or {},
        "reward": d.get("reward"),
        "extraction": ({k: ext.get(k) for k in ("method", "model", "error")} if isinstance(ext, Mapping) else None),
        "errors": [e for e in errors if e["attempt"] == final],
        "retried": [e for e in errors if e["attempt"] != final],
        "usage": usage,
        "elapsed_s": float(d.get("elapsed_s") or 0.0),
    }


def upgrade_manifest(data: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-1 evaluation manifest as a schema-2 one (for reading; such a run cannot be resumed)."""
    d = dict(data)
    if int(d.get("schema_version", 1)) >= 2:
        return d
    task = dict(d.get("task") or {})
    out = {
        "schema_version": 1,
        "kind": "eval",
        "status": "success",
        "run_id": str(d.get("created_at", "schema-1")),
        "created_at": str(d.get("created_at", "")),
        "harness_version": str(d.get("harness_version", "0.1.0")),
        "python": str(d.get("python", "")),
        "platform": str(d.get("platform", "")),
        "plugins": d.get("plugins") or [],
        "config": d.get("config") or {},
        "task": {k: v for k, v in task.items() if k != "example_ids"},
        "item_ids": list(task.get("example_ids") or []),
        "models": d.get("models") or {},
        "components": d.get("components") or [],
        "metrics": d.get("metrics") or [],
        "weights": d.get("weights") or {},
        "prompt_hashes": d.get("prompt_hashes") or {},
        "seeds": d.get("seeds") or {},
        "mr": d.get("mr") or {},
        "resumes": [],
        "summary": {"upgraded_from_schema": 1, "simulator": d.get("simulator"), "judges": d.get("judges"),
                    "parity": d.get("parity")},
    }
    return out
