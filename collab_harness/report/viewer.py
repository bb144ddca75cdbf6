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
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..records import AnyRecord, ComponentFailure, EvalRecord, ExtractionInfo, Manifest, MRRecord, Results
from ..rundir import SAMPLES, read_manifest, read_records, read_results
from .katex import katex_assets
from .runs import mapping, method_abbrev

__all__ = ["References", "Segment", "ViewerSample", "load_references", "render_viewer", "segments", "write_viewer"]

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


def load_references(manifest: Manifest, host: Any = None) -> References:
    """Load the run's task with the manifest's options and data source, and return its examples by id.

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
        loaded = {ex.id: (ex.prompt, ex.reference, _solution(ex.metadata)) for ex in task.load(split)}
        artefact_type = getattr(task.info(), "artefact_type", None)
    except Exception as e:  # any plugin error: the viewer still shows the run, and says why references are absent
        msg = str(e).splitlines()[0] if str(e) else ""
        return References({}, None, f"references not shown: task {name!r} could not be loaded "
                                    f"({type(e).__name__}: {msg[:300]})")
    notes = []
    missing = [i for i in manifest.item_ids if i not in loaded]
    if missing:
        notes.append(f"{len(missing)} of {len(manifest.item_ids)} example ids are not in the task's {split} data "
                     f"today (e.g. {missing[0]})")
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
    refs = (load_references(manifest, host) if references and manifest.kind in ("eval", "synth")
            else References({}, None, None if references else "references not loaded (--no-references)"))
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
