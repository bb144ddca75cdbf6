"""A static, self-contained HTML conversation viewer for a run directory.

Every conversation is rendered server-side (so the page reads fine without JavaScript, and a DOM dump shows it);
a few lines of inline JavaScript add search (text of the conversation and its id) and filters (a metric with a
minimum / maximum value, "only samples with errors"). No external asset is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..rundir import read_manifest, read_records, read_results

__all__ = ["ViewerSample", "render_viewer", "write_viewer"]


@dataclass(frozen=True)
class ViewerSample:
    id: str
    conversation: list[dict[str, str]]
    scores: dict[str, dict[str, Any]]
    errors: list[dict[str, Any]]
    exchanges: int
    terminated: bool
    reward: float | None
    attempt: int
    search_text: str
    score_attrs: dict[str, str]


def _sample(rec: dict[str, Any]) -> ViewerSample:
    scores = rec.get("scores") or {}
    conv = [m for m in rec.get("conversation") or [] if isinstance(m, dict)]
    # data-* attributes carry the primary values for the client-side filter ("" = failed / missing).
    attrs = {
        name: ("" if s.get("value") is None or s.get("error") else repr(float(s["value"])))
        for name, s in scores.items()
    }
    text = " ".join([str(rec.get("example_id", ""))] + [m.get("content", "") for m in conv]).lower()
    reward = rec.get("reward")
    return ViewerSample(
        id=str(rec.get("example_id")),
        conversation=conv,
        scores=scores,
        errors=list(rec.get("errors") or []),
        exchanges=int(rec.get("exchanges") or 0),
        terminated=bool(rec.get("terminated")),
        reward=float(reward) if isinstance(reward, int | float) else None,
        attempt=int(rec.get("attempt") or 1),
        search_text=text,
        score_attrs=attrs,
    )


def render_viewer(run_dir: str | Path) -> str:
    """The viewer page of ``run_dir`` as one HTML string."""
    from .leaderboard import _jinja_env

    log = read_records(Path(run_dir) / "samples.jsonl")
    manifest = read_manifest(run_dir).model_dump(mode="json")
    results = read_results(run_dir)
    samples = sorted((_sample(r.model_dump(mode="json")) for r in log.records), key=lambda s: s.id)
    metric_names = sorted({n for s in samples for n in s.scores})
    models = manifest.get("models") or {}
    tmpl = _jinja_env().get_template("viewer.html.j2")
    return str(
        tmpl.render(
            run_dir=str(run_dir),
            manifest=manifest,
            models=models,
            results=results,
            samples=samples,
            metric_names=metric_names,
            manifest_json=json.dumps(
                {k: manifest.get(k) for k in ("harness_version", "created_at", "task", "models", "simulator",
                                             "judges", "seeds", "parity")},
                indent=2, default=str,
            ),
            torn=log.torn_tail,
        )
    )


def write_viewer(run_dir: str | Path, out: str | Path) -> Path:
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_viewer(run_dir), encoding="utf-8")
    return p
