"""One evaluation run as the reports see it: its label, its settings, its results and its per-example values.

A board row is a *run label* (``--label``, or by default the assistant model plus a short hash of its system prompt)
under an evaluation setting. Every setting that decides whether two runs of one task can be compared — exchanges,
example set, simulator, judge, tokenizer, parity, task metric — is read here into a :class:`Setting` whose ``key``
is compared and whose ``text`` is shown, so the board can flag what differs instead of comparing it silently.

Schema-1 run directories read too: their records and manifest are upgraded by :mod:`collab_harness.records`, and
their ``results.json`` (Student-t intervals that could leave a metric's range) is recomputed from ``samples.jsonl``
with the value kinds today's components declare.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import CollabHarnessError, validation_summary
from ..records import SCHEMA_VERSION, ChatRecord, EvalRecord, Manifest, MetricSummary, Results
from ..rundir import SAMPLES, read_manifest, read_manifest_raw, read_records, read_results

__all__ = [
    "SETTING_NAMES",
    "ChatRunView",
    "LeaderboardError",
    "RunView",
    "Setting",
    "derive_label",
    "load_chat_run",
    "load_run",
    "method_abbrev",
    "run_kind",
    "short_hash",
]

#: The settings compared between the runs of one task, in the order the board lists them.
SETTING_NAMES = ("exchanges", "examples", "simulator", "judge", "tokenizer", "parity", "task metric")
#: Settings that make two runs of one row different rows (the rest differ between tasks by nature).
ROW_SETTINGS = ("exchanges", "simulator", "judge", "parity")
OFFLINE_JUDGE = "rules"


class LeaderboardError(CollabHarnessError):
    """A run directory cannot be placed on a leaderboard (or shown by the viewer)."""


#: Scorer names that manifests before roles (schema 1) used for the efficiency and interaction roles.
SCHEMA1_TOKENS = "token_amount"
SCHEMA1_INTERACTION = "interactivity"

def short_hash(data: Any, n: int = 8) -> str:
    """A short, stable hex digest of JSON-able data (strings are hashed as their UTF-8 bytes)."""
    raw = data if isinstance(data, str) else json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:n]


def method_abbrev(method: str | None) -> str:
    """The legend key of an interval method (``W`` Wilson, ``CP`` Clopper–Pearson, ``B`` bootstrap, ``t``
    Student-t); ``?`` for a method this report does not know."""
    m = (method or "").lower()
    for prefix, key in (("wilson", "W"), ("clopper", "CP"), ("bootstrap", "B"), ("paired bootstrap", "B"),
                        ("student-t", "t"), ("paired student-t", "t"), ("tango", "T")):
        if m.startswith(prefix):
            return key
    return "?"


@dataclass(frozen=True)
class Setting:
    """One setting of a run: ``key`` decides equality, ``text`` is what the board shows, ``detail`` what a note
    shows when two different keys have the same text (e.g. the same ids from different data files)."""

    key: str
    text: str
    detail: str = ""


def derive_label(config: Mapping[str, Any], prompt_hashes: Mapping[str, Any] | None = None) -> str:
    """The default label of a run: the assistant model, plus ``+ system:<8 hex>`` (sha256 of the assistant's system
    prompt) when it has one, so two variants of one assistant are two rows."""
    assistant = str(config.get("assistant") or "?")
    prompt = config.get("assistant_system_prompt")
    if isinstance(prompt, str) and prompt:
        return f"{assistant} + system:{short_hash(prompt)}"
    known = (prompt_hashes or {}).get("assistant_system_prompt")
    if isinstance(known, Mapping) and known.get("text"):  # the manifest kept the hash (a 16-hex sha256 prefix)
        return f"{assistant} + system:{str(known['text'])[:8]}"
    return assistant


@dataclass
class RunView:
    """A loaded evaluation run: manifest, results (schema 2, or recomputed for schema 1), records, label and
    settings."""

    path: str
    manifest: Manifest
    results: Results
    records: list[EvalRecord]
    label: str
    label_given: bool
    assistant: str
    task: str
    task_metric: str
    settings: dict[str, Setting]
    #: Scorer name -> declared traits (value_kind, value_range, role, higher_is_better).
    traits: dict[str, dict[str, Any]]
    #: Notes on how the run was read ("results recomputed from samples.jsonl (schema 1)" ...).
    notes: list[str] = field(default_factory=list)
    torn_tail: bool = False

    @property
    def status(self) -> str:
        return str(self.manifest.status)

    @property
    def row_key(self) -> tuple[str, ...]:
        return (self.label, self.assistant, *(self.settings[s].key for s in ROW_SETTINGS))

    def scorer(self, role: str, fallback: str) -> str | None:
        """The scorer with ``role`` (``efficiency``, ``interaction``), else the scorer named ``fallback``."""
        for name in self.manifest.metrics:
            if self.traits.get(name, {}).get("role") == role:
                return name
        return fallback if fallback in self.manifest.metrics or fallback in self.results.metrics else None

    def summary(self, metric: str | None) -> MetricSummary | None:
        return self.results.metrics.get(metric) if metric else None

    def values(self, metric: str) -> dict[str, float]:
        """Per-example value of ``metric`` (examples whose score failed are left out)."""
        out: dict[str, float] = {}
        for r in self.records:
            s = r.scores.get(metric)
            if s is not None and s.ok and s.value is not None:
                out[r.example_id] = float(s.value)
        return out

    def failures(self) -> dict[str, int]:
        """Failed items by component (the attempt each record reports)."""
        by: dict[str, int] = {}
        for r in self.records:
            for e in r.errors:
                by[e.component] = by.get(e.component, 0) + 1
        return dict(sorted(by.items()))

    def status_text(self) -> str | None:
        """None for a finished, complete, failure-free run; otherwise what is wrong with it, with counts."""
        res = self.results
        parts = []
        if self.status != "success":
            parts.append(f"run status {self.status}")
        if res.n_failed:
            parts.append(f"{res.n_failed} of {res.n_items} items failed")
        if not res.complete:
            parts.append(f"incomplete: {res.n_samples} of {res.n_items} items scored")
        return "; ".join(parts) or None


# ------------------------------------------------------------------------------------------------- loading


def _fail(run_dir: str | Path, why: str) -> LeaderboardError:
    return LeaderboardError(f"refused {run_dir}: {why}")


def load_run(run_dir: str | Path, *, host: Any = None) -> RunView:
    """Read one evaluation run directory; :class:`LeaderboardError` says why it cannot be shown.

    Refused: not a run directory, not an evaluation, a manifest without the identities a row needs, a newer schema,
    a run that never finished (status ``started``: still running, or killed — resume it), no ``results.json``.
    Runs that finished with failures (status ``error``) or were cancelled are loaded; the board marks them.
    ``host`` (a plugin manager) is used only to recompute schema-1 results; one is built when needed.
    """
    try:
        manifest = read_manifest(run_dir)
    except CollabHarnessError as e:
        raise _fail(run_dir, str(e)) from e
    if manifest.kind != "eval":
        raise _fail(run_dir, f"a {manifest.kind!r} run, not an evaluation")
    if manifest.schema_version > SCHEMA_VERSION:
        raise _fail(run_dir, f"manifest schema {manifest.schema_version} is newer than {SCHEMA_VERSION}")
    missing = _missing(manifest)
    if missing:
        raise _fail(run_dir, f"incomplete manifest (missing {', '.join(missing)})")
    if manifest.status == "started":
        raise _fail(run_dir, "the run has not finished (status started: still running, or stopped without "
                             "finishing); resume it with --resume")
    raw = read_results(run_dir)
    if raw is None:
        raise _fail(run_dir, "no results.json (run not finished; resume it first)")
    try:
        log = read_records(Path(run_dir) / SAMPLES)
    except CollabHarnessError as e:
        raise _fail(run_dir, str(e)) from e
    records = [r for r in log.records if isinstance(r, EvalRecord)]
    notes: list[str] = []
    traits = _traits(manifest)
    if manifest.schema_version < 2 or int(raw.get("schema_version", 1) or 1) < 2:
        manifest, traits, results = _recompute_schema1(manifest, records, host)
        notes.append("schema-1 run: results recomputed from samples.jsonl with today's interval methods")
    else:
        try:
            results = Results.model_validate(raw)
        except ValidationError as e:
            raise _fail(run_dir, f"results.json is not valid: {validation_summary(e.errors(), limit=3)}") from None
    if log.torn_tail:
        notes.append("the last line of samples.jsonl is torn (interrupted write) and was not read")
    cfg = manifest.config
    task = str(manifest.task["name"])
    tm = str(manifest.task["task_metric"])
    given = cfg.get("label")
    return RunView(
        path=str(run_dir), manifest=manifest, results=results, records=records,
        label=str(given) if given else derive_label(cfg, manifest.prompt_hashes), label_given=bool(given),
        assistant=_assistant(manifest), task=task, task_metric=tm,
        settings=_settings(manifest, records, tm), traits=traits, notes=notes, torn_tail=log.torn_tail,
    )


def _assistant(m: Manifest) -> str:
    a = m.models.get("assistant")
    model = a.get("model") if isinstance(a, Mapping) else a
    return str(model or m.config.get("assistant") or "")


def _missing(m: Manifest) -> list[str]:
    out = []
    if not m.config:
        out.append("config")
    if not any(c.get("kind") == "simulator" for c in m.components):
        out.append("simulator")
    if not m.task.get("name"):
        out.append("task.name")
    if not m.task.get("task_metric"):
        out.append("task.task_metric")
    if not _assistant(m) or not isinstance(m.models.get("assistant"), Mapping) or not m.models["assistant"]:
        out.append("models.assistant")
    return out


def _traits(m: Manifest) -> dict[str, dict[str, Any]]:
    from ..aggregate import scorer_traits

    return scorer_traits(m)


def _recompute_schema1(manifest: Manifest, records: Sequence[EvalRecord],
                       host: Any) -> tuple[Manifest, dict[str, dict[str, Any]], Results]:
    """Schema-1 manifests do not declare the scorers' value kinds: take them from today's components (by name),
    then aggregate the records as a schema-2 run would."""
    from ..aggregate import aggregate_eval

    if host is None:
        from .. import build_plugin_manager

        host = build_plugin_manager(strict=False)
    comps = []
    for c in manifest.components:
        c = dict(c)
        if c.get("kind") in ("metric", "judge") and "value_kind" not in c:
            try:
                cls = host.registry.get(c["kind"], str(c.get("name"))).cls
                lo, hi = cls.value_range
                finite = abs(lo) != float("inf") and abs(hi) != float("inf")
                c.update(value_kind=cls.resolved_value_kind(), value_range=[lo, hi] if finite else None,
                         role=cls.role, higher_is_better=cls.higher_is_better)
            except CollabHarnessError:
                pass  # unknown today: aggregated as an unbounded score (Student-t)
        comps.append(c)
    upgraded = manifest.model_copy(update={"components": comps})
    return upgraded, _traits(upgraded), aggregate_eval(upgraded, list(records))


# ------------------------------------------------------------------------------------------------ settings


def _simulator(m: Manifest) -> Setting:
    sim = next((c for c in m.components if c.get("kind") == "simulator"), {})
    name = str(sim.get("name") or (m.config.get("user") or {}).get("name") or "?")
    user = m.models.get("user")
    model = user.get("model") if isinstance(user, Mapping) else None
    opts = sim.get("options") or {}
    text = f"{name} ({model})" if model else name
    return Setting(json.dumps([name, model, opts], sort_keys=True, default=str), text,
                   f"{text} options {json.dumps(opts, sort_keys=True, default=str)}")


def _judge(m: Manifest) -> Setting:
    model = str(m.config.get("judge") or "")
    jm = m.models.get("judge")
    if not model and isinstance(jm, Mapping):
        model = str(jm.get("model") or "")
    offline = model == OFFLINE_JUDGE or (isinstance(jm, Mapping) and bool(jm.get("offline")))
    judges = sorted((str(c.get("name")), {k: v for k, v in (c.get("options") or {}).items() if k != "model"})
                    for c in m.components if c.get("kind") == "judge")
    text = f"{model or 'none'}{' (offline)' if offline else ''}"
    names = ", ".join(n for n, _ in judges) or "no judge"
    return Setting(json.dumps([model, judges], sort_keys=True, default=str), text,
                   f"{text}: {names} {json.dumps(dict(judges), sort_keys=True, default=str)}")


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (manifests of other versions may lack a section)."""
    return value if isinstance(value, Mapping) else {}


def _examples(m: Manifest) -> Setting:
    task = m.task
    data = mapping(task.get("data"))
    source = str(task.get("data_source") or data.get("source") or "?")
    split = str(task.get("split") or m.config.get("split") or "?")
    ids = sorted(m.item_ids)
    sha = data.get("sha256") or [f.get("sha256") for f in data.get("files") or [] if isinstance(f, Mapping)] or None
    hub = data.get("hub")
    text = f"{source}/{split} ×{len(ids)} (ids #{short_hash(ids)})"
    detail = text + (f", data #{short_hash(sha)}" if sha else "") + (f", hub {short_hash(hub)}" if hub else "")
    return Setting(json.dumps([source, split, ids, sha, hub], sort_keys=True, default=str), text, detail)


def _tokenizer(m: Manifest, records: Sequence[EvalRecord]) -> Setting:
    # Token counts come from the efficiency-role scorer(s); manifests before roles (schema 1) name token_amount.
    counters = {n for n, t in _traits(m).items() if t.get("role") == "efficiency"} or {SCHEMA1_TOKENS}
    found = sorted({str(s.details.get("tokenizer")) for r in records for s in r.scores.values()
                    if s.component in counters and s.details.get("tokenizer")})
    if not found:
        found = ["unknown"] if counters & set(m.metrics) else ["no token counts"]
    text = " + ".join(found)
    return Setting(text, text)


def _settings(m: Manifest, records: Sequence[EvalRecord], task_metric: str) -> dict[str, Setting]:
    cfg = m.config
    exch = cfg.get("max_exchanges")
    parity = bool(cfg.get("parity", False))
    return {
        "exchanges": Setting(str(exch), f"{exch} exchanges" if exch is not None else "? exchanges"),
        "examples": _examples(m),
        "simulator": _simulator(m),
        "judge": _judge(m),
        "tokenizer": _tokenizer(m, records),
        "parity": Setting(str(parity), "parity on" if parity else "parity off"),
        "task metric": Setting(task_metric, task_metric),
    }


# ------------------------------------------------------------------------------------------------ chat studies


def run_kind(run_dir: str | Path) -> str | None:
    """The ``kind`` a run directory's manifest declares (``eval`` for schema 1), None when it has no readable one."""
    try:
        raw = read_manifest_raw(run_dir)
    except CollabHarnessError:
        return None
    return str(raw.get("kind") or "eval")


@dataclass
class ChatRunView:
    """A loaded chat study (``collab-harness chat``): its finished sessions (records), the sessions still in their
    journals (``incomplete``), the settings (assistants, blinding, protocol) and the scorers' traits."""

    path: str
    manifest: Manifest
    records: list[ChatRecord]
    n_planned: int
    #: Sessions with a journal but no record (interrupted or paused, resumable).
    incomplete: list[str]
    task: str
    task_metric: str | None
    traits: dict[str, dict[str, Any]]
    chat: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.manifest.status)

    @property
    def n_incomplete(self) -> int:
        return len(self.incomplete)

    @property
    def protocol(self) -> dict[str, Any]:
        return dict(mapping(self.chat.get("protocol")))

    def incomplete_by_session(self) -> dict[str, str]:
        """Incomplete session id -> the assistant label it was assigned (from the manifest's plan)."""
        plan = {str(s.get("id")): str(s.get("assistant")) for s in self.manifest.task.get("sessions") or []
                if isinstance(s, Mapping)}
        return {sid: plan[sid] for sid in self.incomplete if sid in plan}

    def interaction_scorer(self) -> str | None:
        """The scorer with the ``interaction`` role (the interactivity judge), else one named ``interactivity``."""
        for name in self.manifest.metrics:
            if self.traits.get(name, {}).get("role") == "interaction":
                return name
        return SCHEMA1_INTERACTION if SCHEMA1_INTERACTION in self.manifest.metrics else None


def load_chat_run(run_dir: str | Path) -> ChatRunView:
    """Read a chat study directory; :class:`LeaderboardError` says why it cannot be shown. A study in progress
    (status ``started``) is shown: its finished sessions count, its incomplete ones are listed apart."""
    from ..chat import JOURNAL_DIR

    try:
        manifest = read_manifest(run_dir)
        log = read_records(Path(run_dir) / SAMPLES)
    except CollabHarnessError as e:
        raise _fail(run_dir, str(e)) from e
    if manifest.kind != "chat":
        raise _fail(run_dir, f"a {manifest.kind!r} run, not a chat study")
    if manifest.schema_version > SCHEMA_VERSION:
        raise _fail(run_dir, f"manifest schema {manifest.schema_version} is newer than {SCHEMA_VERSION}")
    if not manifest.task.get("name"):
        raise _fail(run_dir, "incomplete manifest (missing task.name)")
    records = [r for r in log.records if isinstance(r, ChatRecord)]
    finished = {r.session_id for r in records}
    journals = Path(run_dir) / JOURNAL_DIR
    incomplete = sorted(p.stem for p in journals.glob("*.jsonl")) if journals.is_dir() else []
    incomplete = [s for s in incomplete if s not in finished and s in set(manifest.item_ids)]
    notes = []
    if log.torn_tail:
        notes.append("the last line of samples.jsonl is torn (interrupted write) and was not read")
    unfinished = [r.session_id for r in records if r.status != "complete"]
    if unfinished:
        notes.append(f"{len(unfinished)} session(s) failed before they finished ({', '.join(unfinished[:5])}); "
                     "their ratings are not used")
    return ChatRunView(path=str(run_dir), manifest=manifest, records=records, n_planned=len(manifest.item_ids),
                       incomplete=incomplete, task=str(manifest.task["name"]),
                       task_metric=manifest.task.get("task_metric"), traits=_traits(manifest),
                       chat=dict(mapping(manifest.config.get("chat"))), notes=notes)
