"""End to end: ``safety-chat`` runs with scripted assistants, the adversarial user and the offline judges; what
results.json, the board's safety group and the terminal show."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from collab_harness_plugins.judges import harm
from collab_harness_plugins.metrics import refusal
from collab_harness_plugins.simulators import adversarial_user
from collab_harness_plugins.tasks import safety_chat

from collab_harness import build_plugin_manager
from collab_harness.config import make_config
from collab_harness.evaluation import run_evaluation
from collab_harness.models.scripted import register_script, unregister_script
from collab_harness.plugins import PluginHost
from collab_harness.records import EvalRecord
from collab_harness.report.runs import load_run
from collab_harness.report.safety import (
    SAFETY_COLUMNS,
    column_title,
    load_safety_groups,
    safety_group,
    safety_markdown,
    safety_notes,
    task_columns,
)
from collab_harness.rundir import read_records

HARMFUL = [e.prompt for e in safety_chat.SafetyChat({"source": "sample"}).load("test")]
REFUSAL = "I'm sorry, but I can't help with that."
HELPFUL = "Here is a clear answer: the usual way is to follow the standard steps, and it takes a few minutes."


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next(str(m["content"]) for m in reversed(messages) if m["role"] == "user")


def always_refuses(messages: list[dict[str, Any]], params: Any, i: int) -> str:
    return REFUSAL


def always_complies(messages: list[dict[str, Any]], params: Any, i: int) -> str:
    return f"Sure, here is exactly how: {_last_user(messages)}\n1. Start with the first part.\n2. Then do the rest."


def refuses_only_harmful(messages: list[dict[str, Any]], params: Any, i: int) -> str:
    said = " ".join(str(m["content"]) for m in messages if m["role"] == "user")
    return REFUSAL if any(p in said for p in HARMFUL) else HELPFUL


def safety_host() -> PluginHost:
    """The installed plugins plus the safety modules (unless their entry points already registered them)."""
    host = build_plugin_manager()
    for mod, kind, name in [(safety_chat, "task", "safety-chat"), (harm, "judge", "harm"),
                            (refusal, "judge", "over_refusal"), (adversarial_user, "simulator", "adversarial-user")]:
        if name not in host.registry.names(kind):  # type: ignore[arg-type]
            host.add_plugin(mod)
        assert name in host.registry.names(kind)  # type: ignore[arg-type]
    return host


@pytest.fixture
def scripted() -> Any:
    names: list[str] = []

    def make(name: str, fn: Callable[..., str]) -> str:
        names.append(name)
        return register_script(name, fn)

    yield make
    for n in names:
        unregister_script(n)


def _run(tmp_path: Path, assistant: str, *, limit: int = 8) -> dict[str, Any]:
    cfg = make_config({"task": {"name": "safety-chat", "options": {"source": "sample"}}, "assistant": assistant,
                       "user": "adversarial-user", "judge": "rules", "limit": limit, "max_exchanges": 3,
                       "max_tokens": 64, "cache": False, "concurrency": 4})
    out = run_evaluation(cfg, safety_host(), tmp_path / "run")
    assert out.results.status == "success" and out.results.n_failed == 0, out.results.errors_by_component
    return json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]


def _check_intervals(m: dict[str, Any]) -> None:
    for name in ("safe_response", "over_refusal"):
        assert m[name]["value_kind"] == "proportion" and m[name]["ci_method"].lower().startswith("wilson")
        assert m[name]["ci_low"] <= m[name]["mean"] <= m[name]["ci_high"]
    assert m["harm"]["ci_method"].lower().startswith("bootstrap") and m["harm"]["value_range"] == [0.0, 7.0]


def test_always_refuses(tmp_path: Path, scripted: Any) -> None:
    m = _run(tmp_path, scripted("safety-refuses", always_refuses))
    assert m["safe_response"]["mean"] == 1.0 and m["safe_response"]["n"] == 8
    assert m["over_refusal"]["mean"] == 1.0, "refusing everything is not safe for free"
    assert m["harm"]["mean"] == 0.0
    _check_intervals(m)
    assert m["safe_response"]["ci_low"] < 1.0, "a Wilson interval, not a degenerate [1, 1]"
    # The adversarial user kept trying after each refusal: every conversation used its three exchanges.
    recs = [r for r in read_records(tmp_path / "run" / "samples.jsonl").records if isinstance(r, EvalRecord)]
    assert len(recs) == 8 and all(sum(1 for msg in r.conversation if msg.role == "user") == 3 for r in recs)


def test_always_complies(tmp_path: Path, scripted: Any) -> None:
    m = _run(tmp_path, scripted("safety-complies", always_complies))
    assert m["safe_response"]["mean"] == 0.0
    assert m["over_refusal"]["mean"] == 0.0
    assert m["harm"]["mean"] >= 6.0
    _check_intervals(m)


def test_refuses_only_harmful(tmp_path: Path, scripted: Any) -> None:
    m = _run(tmp_path, scripted("safety-selective", refuses_only_harmful))
    assert m["safe_response"]["mean"] == 1.0
    assert m["over_refusal"]["mean"] == 0.0
    _check_intervals(m)
    # The board's safety group, read back from the run directory, with its per-category breakdown.
    run = load_run(tmp_path / "run")
    assert task_columns(run.manifest) == SAFETY_COLUMNS
    g = safety_group(run)
    assert g is not None and g.detector.startswith("offline rules") and g.threshold == 3
    assert (g.cells["safe_rate"].mean, g.cells["over_refusal_rate"].mean, g.cells["severity"].mean) == (1.0, 0.0, 0.0)
    assert g.cells["safe_rate"].ci_method and g.cells["safe_rate"].ci_method.lower().startswith("wilson")
    assert set(g.by_category) <= {"violence", "sexual", "self_harm", "hate"} and g.by_category
    assert sum(c["safe_rate"].n for c in g.by_category.values()) == 8
    md = safety_markdown(load_safety_groups([tmp_path / "run"]))
    assert column_title("safe_rate") in md and "offline rules" in md
    assert any("over-refusal" in n for n in safety_notes(run))


def test_terminal_shows_ids_and_scores_only(tmp_path: Path, scripted: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's terminal output names examples and scores; the conversations stay in samples.jsonl."""
    from click.testing import CliRunner

    from collab_harness.cli import _common
    from collab_harness.cli.main import cli

    model = scripted("safety-echo", always_complies)
    monkeypatch.setattr(_common, "build_plugin_manager", lambda **kw: safety_host())
    result = CliRunner().invoke(cli, ["run", "--task", "safety-chat", "--assistant", model, "--user",
                                      "adversarial-user", "--limit", "4", "--max-exchanges", "2", "--no-cache",
                                      "--out", str(tmp_path / "run")])
    shown = result.output + (getattr(result, "stderr", "") or "")
    assert "safe_response" in shown and "safety-chat/" in shown, shown
    recs = [r for r in read_records(tmp_path / "run" / "samples.jsonl").records if isinstance(r, EvalRecord)]
    texts = [m.content for r in recs for m in r.conversation]
    assert any(p in t for p in HARMFUL for t in texts), "the conversations are kept on disk"
    for t in texts:
        for line in t.splitlines():
            if len(line) > 20:
                assert line not in shown, f"conversation text reached the terminal: {line[:60]!r}"


def test_default_shard_user_also_runs(tmp_path: Path, scripted: Any) -> None:
    """Without --user adversarial-user the run's default simulator hands out the request and its rephrasings."""
    model = scripted("safety-refuses-2", always_refuses)
    cfg = make_config({"task": {"name": "safety-chat", "options": {"source": "sample"}}, "assistant": model,
                       "judge": "rules", "limit": 3, "max_exchanges": 3, "cache": False})
    out = run_evaluation(cfg, safety_host(), tmp_path / "run")
    assert out.results.status == "success" and out.results.metrics["safe_response"].mean == 1.0
    recs = [r for r in read_records(tmp_path / "run" / "samples.jsonl").records if isinstance(r, EvalRecord)]
    task = safety_chat.SafetyChat({"source": "sample"})
    by_id = {e.id: e for e in task.load("test")}
    for r in recs:
        said = [m.content for m in r.conversation if m.role == "user"]
        assert said[0] == by_id[r.example_id].prompt and len(said) >= 2


def test_board_shows_the_safety_group_beside_the_task_columns(tmp_path: Path, scripted: Any) -> None:
    """One row, two tasks: a collaboration task's three columns and the safety task's group, side by side."""
    from collab_harness.report.leaderboard import COLUMNS, build_board, to_markdown

    a = scripted("safety-board", refuses_only_harmful)
    _run(tmp_path / "safety", a, limit=4)
    cfg = make_config({"task": "math-chat", "assistant": a, "limit": 2, "max_exchanges": 1, "cache": False})
    run_evaluation(cfg, safety_host(), tmp_path / "math")
    board = build_board([tmp_path / "math", tmp_path / "safety" / "run"], host=safety_host())
    assert board.columns_of("safety-chat") == SAFETY_COLUMNS and board.columns_of("math-chat") == COLUMNS
    (row,) = board.rows
    assert set(row.cells["safety-chat"]) == set(SAFETY_COLUMNS) and set(row.cells["math-chat"]) == set(COLUMNS)
    assert row.cells["safety-chat"]["safe_rate"].mean == 1.0
    assert row.cells["safety-chat"]["over_refusal_rate"].mean == 0.0
    md = to_markdown(board)
    assert "safety-chat: safe-response rate ↑" in md and "math-chat: math_accuracy ↑" in md
