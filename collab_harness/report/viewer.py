"""A static, self-contained HTML conversation viewer for a run directory.

Per sample it shows what a reviewer needs to judge a score: the conversation, the **reference** (read back from the
task through the plugin host, since records do not copy it — with a note when the task cannot be loaded), the
**extracted artefact** (method, model, error), every score with each **judge's rationale**, the **models** (from the
manifest) and **seeds** (run seed and the record's), and failures with their component and category, including
the failures of earlier attempts that a retry got past. Results per metric are shown with their interval and its
method.

Everything is rendered server-side (the page reads without JavaScript and a DOM dump shows it); inline JavaScript
adds search and filters and renders LaTeX with the bundled KaTeX (:mod:`collab_harness.report.katex`, fonts
inlined). Fenced code blocks are shown as code and never as math. The page loads no external asset.

Synthesis runs (``synth``) get the candidate tree instead (``viewer_synth.html.j2``): per conversation and per turn,
every candidate with how it was sampled, its MR (mean ± std over the futures, n_ok/n_total) and per-metric means,
which one was chosen and why each other one was not (its MR, or its error), the next user message and the future it
came from, and under each candidate its futures (simulated exchanges, scores, reward, failures). Candidates and
futures are folded by default and their LaTeX is typeset when they are opened, so a page with many of them stays
usable. ``mr`` runs get the same page with one candidate (the row's) per item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..records import (
    AnyRecord,
    ComponentFailure,
    EvalRecord,
    ExtractionInfo,
    FutureRecord,
    Manifest,
    MRRecord,
    Results,
    SynthCandidate,
    SynthRecord,
    SynthTurn,
)
from ..rundir import SAMPLES, read_manifest, read_records, read_results
from .katex import katex_assets
from .runs import mapping, method_abbrev

__all__ = [
    "CandidateView",
    "ConversationView",
    "FutureView",
    "MessageView",
    "References",
    "Segment",
    "TurnView",
    "ViewerSample",
    "load_references",
    "render_viewer",
    "segments",
    "write_viewer",
]

_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_TEX_HINT = re.compile(r"[\\^_{}]")
#: Score details shown in the collapsed "details" of a score (big diagnostic blobs are left to samples.jsonl).
_DETAIL_SKIP = {"rationale", "evidence", "raw", "components"}


@dataclass(frozen=True)
class Segment:
    """A piece of a message: prose (may hold LaTeX) or a fenced code block (never rendered as math)."""

    kind: Literal["text", "code"]
    text: str
    lang: str = ""


def segments(text: str, *, code: bool = False) -> list[Segment]:
    """``text`` cut into prose and fenced code blocks (``code=True``: the whole text is code)."""
    if code:
        m = _FENCE.search(text)
        body = m.group(2) if m and not text[: m.start()].strip() and not text[m.end():].strip() else text
        return [Segment("code", body.rstrip("\n"))]
    out: list[Segment] = []
    pos = 0
    for m in _FENCE.finditer(text):
        if m.start() > pos:
            out.append(Segment("text", text[pos:m.start()]))
        out.append(Segment("code", m.group(2).rstrip("\n"), m.group(1)))
        pos = m.end()
    if pos < len(text):
        out.append(Segment("text", text[pos:]))
    out = [s for s in out if s.text.strip()] or [Segment("text", text)]
    return [Segment("text", _wrap_bare_boxed(s.text)) if s.kind == "text" else s for s in out]


def _wrap_bare_boxed(text: str) -> str:
    """``\\boxed{...}`` written outside any math delimiter (models often do) gets ``\\(...\\)`` so it is typeset;
    prose that already has delimiters is left as written."""
    if "\\boxed{" not in text or "$" in text or "\\(" in text or "\\[" in text:
        return text
    out, pos = [], 0
    while (i := text.find("\\boxed{", pos)) >= 0:
        depth, j = 0, i + len("\\boxed")
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
            if depth == 0:
                break
        if depth:  # unbalanced: leave the rest as it is
            break
        out += [text[pos:i], "\\(", text[i:j], "\\)"]
        pos = j
    return "".join(out) + text[pos:]


@dataclass(frozen=True)
class References:
    """Examples of the run's task, read back through the plugin host: id -> (prompt, reference, worked solution
    when the task's metadata has one)."""

    examples: dict[str, tuple[str, str, str | None]]
    artefact_type: str | None
    #: Why references are missing or may differ from the run's (None: loaded and checked).
    note: str | None = None


def load_references(manifest: Manifest, host: Any = None, *, example_ids: Sequence[str] | None = None,
                    all_splits: bool = False) -> References:
    """Load the run's task with the manifest's options and data source, and return its examples by id.

    ``example_ids``: the ids to look for (default: the manifest's items); ``all_splits``: look in every split of
    the task (``mr`` rows name examples of any split), not only the run's.

    Never raises: a task that cannot be loaded (plugin missing, hub unreachable, data file gone) gives no
    references and a note saying why; a data file whose digest differs from the run's gives a note too."""
    task_cfg = mapping(manifest.config.get("task"))
    name = str(task_cfg.get("name") or manifest.task.get("name") or "")
    options = dict(mapping(task_cfg.get("options")))
    data = mapping(manifest.task.get("data"))
    recorded = str(manifest.task.get("data_source") or data.get("source") or "")
    split = str(manifest.task.get("split") or manifest.config.get("split") or "test")
    try:
        if host is None:
            from .. import build_plugin_manager

            host = build_plugin_manager(strict=False)
        spec = host.registry.get("task", name)
        if recorded in ("sample", "local", "hub") and "source" in spec.cls.Options.model_fields:
            options["source"] = recorded  # the source the run used, not "auto" (which may choose differently now)
        task = spec.create(options)
        splits = list(task.splits()) if all_splits else [split]
        loaded = {ex.id: (ex.prompt, ex.reference, _solution(ex.metadata)) for sp in splits for ex in task.load(sp)}
        artefact_type = getattr(task.info(), "artefact_type", None)
    except Exception as e:  # any plugin error: the viewer still shows the run, and says why references are absent
        msg = str(e).splitlines()[0] if str(e) else ""
        return References({}, None, f"references not shown: task {name!r} could not be loaded "
                                    f"({type(e).__name__}: {msg[:300]})")
    notes = []
    wanted = list(manifest.item_ids if example_ids is None else dict.fromkeys(example_ids))
    missing = [i for i in wanted if i not in loaded]
    if missing:
        where = "data (any split)" if all_splits else f"{split} data"
        notes.append(f"{len(missing)} of {len(wanted)} example ids are not in the task's {where} today "
                     f"(e.g. {missing[0]})")
    want = data.get("sha256")
    if want:
        try:
            now = task.data_provenance().get("sha256")
        except Exception:  # provenance is optional for third-party tasks
            now = None
        if now and now != want:
            notes.append(f"the task's data file changed since the run (sha256 {str(want)[:12]}… then, "
                         f"{str(now)[:12]}… now): references are today's")
    return References(loaded, artefact_type, "; ".join(notes) or None)


def _solution(metadata: Mapping[str, Any]) -> str | None:
    sol = metadata.get("solution")
    return sol if isinstance(sol, str) and sol.strip() else None


@dataclass(frozen=True)
class ScoreView:
    name: str
    value: float | None
    values: dict[str, float]
    error: str | None
    rationale: str | None
    model: str | None
    details: str


@dataclass(frozen=True)
class ViewerSample:
    id: str
    record_id: str
    seed: int
    attempt: int
    exchanges: int
    terminated: bool
    reward: float | None
    conversation: list[tuple[str, list[Segment]]]
    scores: list[ScoreView]
    errors: list[ComponentFailure]
    retried: list[ComponentFailure]
    extraction: ExtractionInfo | None
    artefact: list[Segment] | None
    reference: list[Segment] | None
    solution: list[Segment] | None
    prompt: str | None
    search_text: str
    score_attrs: dict[str, str]
    extra: list[str] = field(default_factory=list)


def _score_view(name: str, s: Any) -> ScoreView:
    details = dict(s.details)
    rationale = details.get("rationale")
    shown = {k: v for k, v in details.items() if k not in _DETAIL_SKIP}
    return ScoreView(name=name, value=s.value, values=dict(s.values), error=s.error,
                     rationale=str(rationale) if rationale else None,
                     model=str(details["model"]) if details.get("model") else None,
                     details=json.dumps(shown, ensure_ascii=False, default=str, sort_keys=True)[:4000])


def _reference(ref: str, artefact_type: str | None) -> list[Segment]:
    if artefact_type == "code":
        return segments(ref, code=True)
    if artefact_type == "answer" and "$" not in ref and "\\(" not in ref and _TEX_HINT.search(ref):
        ref = f"\\({ref}\\)"  # a bare LaTeX answer (e.g. \frac{1}{2}): typeset it
    return segments(ref)


def _sample(rec: AnyRecord, refs: References) -> ViewerSample:
    extra: list[str] = []
    conv: list[tuple[str, list[Segment]]]
    if isinstance(rec, EvalRecord):
        conv = [(str(m.role), segments(m.content)) for m in rec.conversation]
        scores = [_score_view(n, s) for n, s in rec.scores.items()]
        eid, exchanges, terminated, reward, ext = (rec.example_id, rec.exchanges, rec.terminated, rec.reward,
                                                   rec.extraction)
    elif isinstance(rec, MRRecord):
        conv = [(str(m.role), segments(m.content)) for m in rec.history] + [("assistant", segments(rec.candidate))]
        scores, eid, exchanges, terminated, reward, ext = [], rec.example_id, 0, False, rec.mr, None
        extra.append(f"MR {rec.mr if rec.mr is not None else 'failed'} over {rec.n_ok}/{rec.n_total} futures "
                     f"(row {rec.row_id}); futures are in samples.jsonl")
    else:
        conv = [(str(m.role), segments(m.content)) for m in rec.conversation]
        scores, eid, exchanges, terminated, reward, ext = [], rec.example_id, len(rec.turns), rec.terminated, None, None
    prompt, ref, solution = refs.examples.get(eid, (None, None, None))
    code = refs.artefact_type == "code"
    artefact = segments(ext.artefact, code=code) if ext is not None and ext.artefact else None
    attrs = {s.name: ("" if s.value is None or s.error else repr(float(s.value))) for s in scores}
    text_parts = [eid, *(seg.text for _, segs in conv for seg in segs)]
    return ViewerSample(
        id=eid, record_id=rec.id, seed=rec.seed, attempt=rec.attempt, exchanges=exchanges, terminated=terminated,
        reward=reward, conversation=conv, scores=scores, errors=list(rec.errors), retried=list(rec.retried),
        extraction=ext, artefact=artefact, reference=_reference(ref, refs.artefact_type) if ref else None,
        solution=segments(solution) if solution else None, prompt=prompt,
        search_text=" ".join(text_parts).lower(), score_attrs=attrs, extra=extra,
    )


# ------------------------------------------------------------------------------------ synthesis: candidate trees


@dataclass(frozen=True)
class FutureView:
    """One sampled future of a candidate: the simulated part after the candidate, its scores, reward and failures."""

    index: int
    seed: int
    anchor: str
    exchanges: int
    terminated: bool
    reward: float | None
    reward_parts: dict[str, float]
    #: The messages after the candidate (the history and the candidate are shown once, above).
    messages: list[tuple[str, list[Segment]]]
    scores: list[ScoreView]
    artefact: list[Segment] | None
    extraction_method: str | None
    extraction_error: str | None
    errors: list[ComponentFailure]
    #: This future gave the conversation its next user message.
    gave_next_user: bool = False


@dataclass(frozen=True)
class CandidateView:
    """One candidate response: how it was sampled, its MR over its futures, and why it was (not) chosen."""

    index: int
    anchor: str
    text: list[Segment] | None
    variant: str
    temperature: float | None
    seed: int | None
    mr: float | None
    std: float | None
    n_ok: int
    n_total: int
    per_metric: dict[str, float | None]
    error: str | None
    chosen: bool
    #: Why it was chosen, or why not: the MR it lost by, or the error that left it without an MR.
    why: str
    futures: list[FutureView]


@dataclass(frozen=True)
class TurnView:
    index: int
    anchor: str
    prefix: int
    mr_seed: int
    candidates: list[CandidateView]
    chosen: CandidateView | None
    metric_names: list[str]
    next_user: list[Segment] | None
    next_user_source: str | None
    #: Anchor of the future the next user message came from (None: the simulator wrote it, or no future matched).
    next_user_anchor: str | None
    terminated: bool


@dataclass(frozen=True)
class MessageView:
    """A message of the best path; a user message taken from a future says which (``source``, ``source_anchor``)."""

    role: str
    segments: list[Segment]
    source: str | None = None
    source_anchor: str | None = None
    next_user: bool = False
    ends: bool = False


@dataclass(frozen=True)
class ConversationView:
    """One synthesised conversation (``synth``) or one MR row (``mr``, a single candidate and no turns).

    ``items`` is the best path in order: ``("message", MessageView)`` for the messages between turns (the opening,
    the next user messages), ``("turn", TurnView)`` where a turn's candidates were sampled (its chosen candidate is
    the path's assistant message)."""

    id: str
    record_id: str
    seed: int
    attempt: int
    summary: str
    stop_reason: str
    items: list[tuple[str, Any]]
    errors: list[ComponentFailure]
    retried: list[ComponentFailure]
    n_candidate_failures: int
    reference: list[Segment] | None
    solution: list[Segment] | None
    prompt: str | None
    search_text: str
    #: ``mr`` rows: the row's candidate with its futures (shown open).
    candidate: CandidateView | None = None
    extra: list[str] = field(default_factory=list)


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def _future_view(f: FutureRecord, anchor: str, gave_next_user: bool, code: bool) -> FutureView:
    return FutureView(
        index=f.index, seed=f.seed, anchor=anchor, exchanges=f.exchanges, terminated=f.terminated, reward=f.reward,
        reward_parts=dict(f.reward_parts),
        messages=[(str(m.role), segments(m.content)) for m in f.conversation[f.forward_start + 1:]],
        scores=[_score_view(n, sc) for n, sc in f.scores.items()],
        artefact=segments(f.artefact, code=code) if f.artefact else None,
        extraction_method=f.extraction_method, extraction_error=f.extraction_error, errors=list(f.errors),
        gave_next_user=gave_next_user)


def _why(c: SynthCandidate, best: SynthCandidate | None, tied: list[int]) -> str:
    if best is not None and c.index == best.index:
        others = [i for i in tied if i != c.index]
        return ("chosen: highest MR" + (f" (tied with candidate {', '.join(map(str, others))}; the lower index wins)"
                                        if others else ""))
    if c.mr is None:
        return f"not chosen: no MR — {c.error or 'no reason recorded'}"
    if best is None or best.mr is None:
        return "not chosen: the turn has no chosen candidate"
    gap = best.mr - c.mr
    if gap <= 0:
        return f"not chosen: MR {c.mr:.3f} ties candidate {best.index}'s; the lower index wins"
    return f"not chosen: MR {c.mr:.3f} < {best.mr:.3f} of candidate {best.index} (gap {gap:.3f})"


_SOURCE = re.compile(r"future (\d+) of candidate (\d+)")


def _turn_view(t: SynthTurn, conv_anchor: str, metric_order: list[str], code: bool) -> TurnView:
    anchor = f"{conv_anchor}-t{t.index}"
    best = t.candidates[t.chosen] if t.chosen is not None and 0 <= t.chosen < len(t.candidates) else None
    tied = [c.index for c in t.candidates if best is not None and c.mr is not None and c.mr == best.mr]
    src = _SOURCE.fullmatch(t.next_user_source or "")
    src_fc = (int(src.group(2)), int(src.group(1))) if src else None
    next_anchor = f"{anchor}-c{src_fc[0]}-f{src_fc[1]}" if src_fc else None
    cands = []
    for c in t.candidates:
        ca = f"{anchor}-c{c.index}"
        futures = [_future_view(f, f"{ca}-f{f.index}", src_fc == (c.index, f.index), code) for f in c.futures]
        cands.append(CandidateView(
            index=c.index, anchor=ca, text=segments(c.text) if c.text is not None else None, variant=c.variant,
            temperature=c.temperature, seed=c.seed, mr=c.mr, std=c.std, n_ok=c.n_ok, n_total=c.n_total,
            per_metric=dict(c.per_metric), error=c.error, chosen=best is not None and c.index == best.index,
            why=_why(c, best, tied), futures=futures))
    names = {n for c in t.candidates for n in c.per_metric}
    ordered = [n for n in metric_order if n in names] + sorted(names - set(metric_order))
    return TurnView(
        index=t.index, anchor=anchor, prefix=t.prefix, mr_seed=t.mr_seed, candidates=cands,
        chosen=next((c for c in cands if c.chosen), None), metric_names=ordered,
        next_user=segments(t.next_user) if t.next_user is not None else None, next_user_source=t.next_user_source,
        next_user_anchor=next_anchor if next_anchor and any(
            f.anchor == next_anchor for c in cands for f in c.futures) else None,
        terminated=t.terminated)


def _conversation_view(rec: SynthRecord, refs: References, metric_order: list[str], n: int) -> ConversationView:
    code = refs.artefact_type == "code"
    anchor = f"s{n}"
    turns = [_turn_view(t, anchor, metric_order, code) for t in rec.turns]
    at = {t.prefix: t for t in turns}
    after = {t.prefix + 1: t for t in turns if t.next_user is not None}
    items: list[tuple[str, Any]] = []
    for i in range(len(rec.conversation) + 1):
        if i in at:
            items.append(("turn", at[i]))
            if at[i].chosen is not None and i < len(rec.conversation):
                continue  # the chosen candidate is this message: the turn shows it
        if i == len(rec.conversation):
            break
        m = rec.conversation[i]
        src = after.get(i)
        if src is not None:
            label = ("written by the simulator (no future of the chosen candidate reached a user message)"
                     if src.next_user_source == "simulator" else
                     f"from {src.next_user_source or 'an unrecorded source'}")
            items.append(("message", MessageView(
                str(m.role), segments(m.content), label,
                src.next_user_anchor, next_user=True, ends=src.terminated)))
        else:
            items.append(("message", MessageView(
                str(m.role), segments(m.content),
                "the simulator's opening" if i == 0 and m.role == "user" else None,
                ends=i == len(rec.conversation) - 1 and m.role == "user" and rec.stop_reason == "terminated")))
    chosen_mrs = " · ".join(f"t{t.index} {_fmt(t.chosen.mr)}" for t in turns if t.chosen is not None)
    n_cand_fail = sum(1 for t in turns for c in t.candidates if c.mr is None)
    summary = (f"{len(turns)} turn{'s' if len(turns) != 1 else ''}, stopped: {rec.stop_reason}"
               + (f" — chosen MR {chosen_mrs}" if chosen_mrs else ""))
    prompt, ref, solution = refs.examples.get(rec.example_id, (None, None, None))
    text = [rec.example_id, *(m.content for m in rec.conversation),
            *(c.text or "" for t in rec.turns for c in t.candidates)]
    return ConversationView(
        id=rec.example_id, record_id=rec.id, seed=rec.seed, attempt=rec.attempt, summary=summary,
        stop_reason=rec.stop_reason, items=items, errors=list(rec.errors), retried=list(rec.retried),
        n_candidate_failures=n_cand_fail, reference=_reference(ref, refs.artefact_type) if ref else None,
        solution=segments(solution) if solution else None, prompt=prompt, search_text=" ".join(text).lower())


def _mr_row_view(rec: MRRecord, refs: References, n: int) -> ConversationView:
    code = refs.artefact_type == "code"
    ca = f"s{n}-c0"
    cand = CandidateView(
        index=0, anchor=ca, text=segments(rec.candidate), variant="from the input", temperature=None, seed=None,
        mr=rec.mr, std=rec.std, n_ok=rec.n_ok, n_total=rec.n_total, per_metric=dict(rec.per_metric),
        error=rec.errors[0].message if rec.mr is None and rec.errors else None, chosen=False,
        why="" if rec.mr is not None else "no MR",
        futures=[_future_view(f, f"{ca}-f{f.index}", False, code) for f in rec.futures])
    items: list[tuple[str, Any]] = [("message", MessageView(str(m.role), segments(m.content))) for m in rec.history]
    prompt, ref, solution = refs.examples.get(rec.example_id, (None, None, None))
    return ConversationView(
        id=rec.row_id, record_id=rec.id, seed=rec.seed, attempt=rec.attempt,
        summary=f"example {rec.example_id} — MR {_fmt(rec.mr)} ± {_fmt(rec.std)} ({rec.n_ok}/{rec.n_total} futures)",
        stop_reason="", items=items, errors=list(rec.errors), retried=list(rec.retried),
        n_candidate_failures=int(rec.mr is None), reference=_reference(ref, refs.artefact_type) if ref else None,
        solution=segments(solution) if solution else None, prompt=prompt,
        search_text=" ".join([rec.row_id, rec.example_id, *(m.content for m in rec.history), rec.candidate]).lower(),
        candidate=cand,
        extra=[f"{rec.form} form, S {rec.samples}, W {rec.window_exchanges} exchanges"
               + (f", weights {', '.join(f'{k} {v:g}' for k, v in rec.weights.items())}" if rec.weights else "")])


def _results(run_dir: str | Path) -> Results | None:
    raw = read_results(run_dir)
    if raw is None or int(raw.get("schema_version", 1) or 1) < 2:
        return None
    try:
        return Results.model_validate(raw)
    except ValueError:
        return None


def render_viewer(run_dir: str | Path, *, host: Any = None, references: bool = True) -> str:
    """The viewer page of ``run_dir`` as one HTML string (``references=False``: do not load the task)."""
    from .leaderboard import _jinja_env
    from .runs import derive_label

    manifest = read_manifest(run_dir)
    log = read_records(Path(run_dir) / SAMPLES)
    results = _results(run_dir)
    if not references:
        refs = References({}, None, "references not loaded (--no-references)")
    elif manifest.kind == "mr":  # rows name examples of any split (or inline ones, whose reference is the input's)
        refs = load_references(manifest, host, all_splits=True,
                               example_ids=[r.example_id for r in log.records if isinstance(r, MRRecord)])
    elif manifest.kind in ("eval", "synth"):
        refs = load_references(manifest, host)
    else:
        refs = References({}, None, None)
    if manifest.kind in ("synth", "mr"):
        return _render_tree(run_dir, manifest, log.records, results, refs, log.torn_tail)
    samples = sorted((_sample(r, refs) for r in log.records), key=lambda s: s.id)
    metric_names = sorted({s.name for smp in samples for s in smp.scores})
    katex = katex_assets()
    cfg = manifest.config
    tmpl = _jinja_env().get_template("viewer.html.j2")
    return str(tmpl.render(
        run_dir=str(run_dir), manifest=manifest, results=results, samples=samples, metric_names=metric_names,
        refs=refs, katex=katex, label=cfg.get("label") or derive_label(cfg, manifest.prompt_hashes),
        models=_models(manifest), settings=_settings_lines(manifest), method_abbrev=method_abbrev,
        manifest_json=json.dumps(manifest.model_dump(mode="json", exclude={"plugins", "prompt_hashes"}), indent=2,
                                 default=str, ensure_ascii=False),
        torn=log.torn_tail,
    ))


def _render_tree(run_dir: str | Path, manifest: Manifest, records: list[AnyRecord], results: Results | None,
                 refs: References, torn: bool) -> str:
    """The candidate-tree page of a ``synth`` run (or of an ``mr`` run: one candidate per row)."""
    from .leaderboard import _jinja_env
    from .runs import derive_label

    order = list(manifest.metrics)
    convs: list[ConversationView] = []
    for n, r in enumerate(sorted(records, key=lambda r: (r.item_id, r.id))):
        if isinstance(r, SynthRecord):
            convs.append(_conversation_view(r, refs, order, n))
        elif isinstance(r, MRRecord):
            convs.append(_mr_row_view(r, refs, n))
    cfg = manifest.config
    tmpl = _jinja_env().get_template("viewer_synth.html.j2")
    return str(tmpl.render(
        run_dir=str(run_dir), manifest=manifest, results=results, samples=convs, refs=refs, katex=katex_assets(),
        label=cfg.get("label") or derive_label(cfg, manifest.prompt_hashes), models=_models(manifest),
        settings=_tree_settings_lines(manifest), method_abbrev=method_abbrev, fmt=_fmt,
        seed_lines=[f"{k}: {v}" for k, v in manifest.seeds.items() if k != "run"],
        noun="conversations" if manifest.kind == "synth" else "rows",
        manifest_json=json.dumps(manifest.model_dump(mode="json", exclude={"plugins", "prompt_hashes"}), indent=2,
                                 default=str, ensure_ascii=False),
        torn=torn,
    ))


def _tree_settings_lines(m: Manifest) -> list[str]:
    cfg, mr = m.config, m.mr
    syn = mapping(cfg.get("synth"))
    sim = next((c for c in m.components if c.get("kind") == "simulator"), {})
    judges = [str(c.get("name")) for c in m.components if c.get("kind") == "judge"]
    weights = mapping(mr.get("weights"))
    lines = [f"MR: S {mr.get('samples')} futures, W {mr.get('window_exchanges')} exchanges, {mr.get('form')} form"
             + (f", weights {', '.join(f'{k} {v}' for k, v in weights.items())}" if weights else "")
             + (f", λ {mr.get('penalty_lambda')}" if mr.get("penalty_lambda") is not None else "")
             + f", min futures {mr.get('min_futures') or 'all'}"]
    if m.kind == "synth":
        lines.append(f"synth: {syn.get('candidates')} candidates per turn (proactive share "
                     f"{syn.get('proactive_share')}, temperatures {syn.get('temperatures')}), up to "
                     f"{syn.get('max_turns')} turns, next user message rule {syn.get('next_user')!r}")
    lines += [f"simulator {sim.get('name', '?')}", f"judge {cfg.get('judge')} ({', '.join(judges) or 'no judge'})",
              f"termination signal {mr.get('termination_signal')!r}",
              f"data {m.task.get('data_source', '?')}/{m.task.get('split', '?')}, {len(m.item_ids)} items",
              f"assistant max tokens {cfg.get('max_tokens')}; futures' assistant temperature "
              f"{mr.get('assistant_temperature')}"]
    if cfg.get("assistant_system_prompt"):
        lines.append(f"assistant system prompt: {cfg['assistant_system_prompt']}")
    return lines


def _models(m: Manifest) -> list[tuple[str, str]]:
    out = []
    for role, info in m.models.items():
        if isinstance(info, Mapping):
            key = "model" if info.get("model") else "simulator" if info.get("simulator") else None
            main = info.get(key) if key else "—"
            rest = ", ".join(f"{k} {v}" for k, v in info.items() if k != key and v not in (None, "", {}))
            out.append((role, f"{main}" + (f" ({rest})" if rest else "")))
        elif info is not None:
            out.append((role, str(info)))
    return out


def _settings_lines(m: Manifest) -> list[str]:
    cfg = m.config
    sim = next((c for c in m.components if c.get("kind") == "simulator"), {})
    judges = [str(c.get("name")) for c in m.components if c.get("kind") == "judge"]
    lines = [f"max exchanges {cfg.get('max_exchanges')}", f"simulator {sim.get('name', '?')}",
             f"judge {cfg.get('judge')} ({', '.join(judges) or 'no judge'})",
             f"parity {'on' if cfg.get('parity') else 'off'}",
             f"data {m.task.get('data_source', '?')}/{m.task.get('split', '?')}, {len(m.item_ids)} items",
             f"assistant temperature {cfg.get('temperature')}, max tokens {cfg.get('max_tokens')}"]
    if cfg.get("assistant_system_prompt"):
        lines.append(f"assistant system prompt: {cfg['assistant_system_prompt']}")
    return lines


def write_viewer(run_dir: str | Path, out: str | Path, *, host: Any = None, references: bool = True) -> Path:
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_viewer(run_dir, host=host, references=references), encoding="utf-8")
    return p
