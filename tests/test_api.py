"""The notebook API (``collab_harness.mr`` / ``evaluate`` and their async twins) and ``collab-harness schema``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import collab_harness as ch
from collab_harness.cli.main import main
from collab_harness.rundir import read_records

HISTORY = [{"role": "user", "content": "I need help with an algebra problem."}]
CANDIDATES = ["Happy to help! What is the problem?", "The answer is \\boxed{42}."]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAB_HARNESS_CACHE_DIR", str(tmp_path / "cache"))


def test_mr_in_one_call_matches_the_cli(tmp_path: Path, scripted_model: Callable[..., str]) -> None:
    a = scripted_model(lambda m, p, i: f"Could you tell me more? ({p.seed})")
    results = ch.mr("math-chat", example="math-chat/sample-000", history=HISTORY, candidates=CANDIDATES,
                    assistant=a, samples=2, window=1)
    assert [type(r).__name__ for r in results] == ["MRResult", "MRResult"]
    assert all(r.ok and r.n_total == 2 and r.samples == 2 and r.window_exchanges == 1 for r in results)
    # Common random numbers: both candidates' futures used the same seeds.
    assert [f.seed for f in results[0].futures] == [f.seed for f in results[1].futures]
    # The CLI on the same rows and settings gives the same MRs.
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"c{i}", "example_id": "math-chat/sample-000", "history": HISTORY,
                                        "candidate": c}) + "\n" for i, c in enumerate(CANDIDATES)))
    main(["mr", "--task", "math-chat", "--input", str(rows), "--out", str(tmp_path / "mr"), "--assistant", a,
          "--samples", "2", "--window", "1", "--no-progress"])
    by_id = {r.item_id: r for r in read_records(tmp_path / "mr" / "samples.jsonl").records}
    assert [by_id["c0"].mr, by_id["c1"].mr] == [r.mean for r in results]  # type: ignore[union-attr]


def test_mr_defaults_are_the_clis() -> None:
    from collab_harness.api import _config
    from collab_harness.config import build_components

    cfg = _config("math-chat", {})
    # No --user: the task's default user simulator plays the user.
    assert (cfg.assistant, cfg.user, cfg.judge) == ("local/smollm2", None, "rules")
    assert build_components(ch.api._host(None), cfg).simulator.name == "shard-user"
    assert (cfg.mr.samples, cfg.mr.window, cfg.mr.min_futures) == (3, 2, None)
    assert _config("math-chat", {"samples": 5, "seed": 2}).mr.samples == 5


def test_evaluate_in_one_call_and_inside_a_running_loop(tmp_path: Path, scripted_model: Callable[..., str]) -> None:
    a = scripted_model("What is the problem exactly?")
    out = ch.evaluate("math-chat", out=tmp_path / "e", limit=2, max_exchanges=1, assistant=a)
    assert out.status == "success" and out.results.n_samples == 2 and out.manifest.kind == "eval"

    async def notebook_cell() -> Any:
        # A notebook runs cells inside an event loop: the sync API must still work there...
        res = ch.mr("math-chat", example="math-chat/sample-000", history=HISTORY, candidates=CANDIDATES[:1],
                    assistant=a, samples=1, window=1)
        # ...and the async twins run in the caller's loop, any number of times (a training loop calls them).
        outs = [await ch.aevaluate("math-chat", out=tmp_path / f"loop{i}", limit=1, max_exchanges=1, assistant=a)
                for i in range(2)]
        more = await ch.amr("math-chat", example="math-chat/sample-000", history=HISTORY, candidates=CANDIDATES,
                            assistant=a, samples=1, window=1)
        return res, outs, more

    res, outs, more = asyncio.run(notebook_cell())
    assert res[0].ok and all(o.status == "success" for o in outs) and len(more) == 2


def test_api_errors_are_one_line_collab_harness_errors() -> None:
    with pytest.raises(ch.ConfigError, match="no example 'nope'"):
        ch.mr("math-chat", example="nope", history=HISTORY, candidates=["x"])
    with pytest.raises(ch.ConfigError, match="list of strings"):
        ch.mr("math-chat", example="math-chat/sample-000", history=HISTORY, candidates="x")  # type: ignore[arg-type]
    with pytest.raises(ch.ConfigError, match="samples"):
        ch.mr("math-chat", example="math-chat/sample-000", history=HISTORY, candidates=["x"], samples=0)


@pytest.mark.parametrize("kind", ["eval", "mr", "manifest", "results"])
def test_schema_command_prints_a_json_schema(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["schema", kind])
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object" and "properties" in schema and schema["$id"].endswith(f"{kind}-2.json")
    if kind in ("eval", "mr"):
        assert schema["properties"]["kind"]["const"] == kind
        assert "ComponentFailure" in json.dumps(schema)
