"""``collab-harness mr`` end to end: scripted models in-process, input errors, and one short offline run on the
embedded model."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collab_harness.cli._common import parse_weights
from collab_harness.cli.main import main
from collab_harness.errors import ConfigError
from collab_harness.prompts import EXTRACTION_NONE

DATA = Path(__file__).parent / "data" / "mr_histories.jsonl"


def judge_or_extract(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    """One scripted model playing both the extraction model and the interactivity judge."""
    if messages[0]["content"].startswith("You extract the final"):
        boxed = re.findall(r"\\boxed\{([^{}]*)\}", messages[-1]["content"])
        return boxed[-1] if boxed else EXTRACTION_NONE
    return '{"rationale": "fine", "score": 0.5}'


def read(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {r["row_id"]: r for r in map(json.loads, (run_dir / "samples.jsonl").read_text().splitlines())}


def run_mr(*args: str) -> None:
    try:
        main(["mr", "--no-progress", *args])
    except SystemExit as e:
        if e.code:
            raise


def test_mr_scripted_end_to_end(tmp_path: Path, scripted_model: Callable[..., str],
                                capsys: pytest.CaptureFixture[str]) -> None:
    assistant = scripted_model("Could you tell me a bit more about what you need?")
    judge = scripted_model(judge_or_extract)
    out = tmp_path / "mr"
    run_mr("--task", "math-chat", "--input", str(DATA), "--out", str(out), "--samples", "2", "--window", "1",
           "--assistant", assistant, "--judge", judge, "--no-cache", "--seed", "3")
    assert "(4/4 rows, 4 new, 0 resumed; status success)" in capsys.readouterr().out
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == "mr" and man["status"] == "success" and man["input"]["rows"] == 4
    assert man["mr"]["samples"] == 2 and man["mr"]["window_exchanges"] == 1 and man["config"]["mr"]["samples"] == 2
    jsonschema = pytest.importorskip("jsonschema")
    from collab_harness.records import record_schema

    for line in (out / "samples.jsonl").read_text().splitlines():
        jsonschema.validate(json.loads(line), record_schema("mr"))
    recs = read(out)
    assert set(recs) == {"m0-ask", "m0-guess", "m1-solve", "inline"}
    solve, guess = recs["m1-solve"], recs["m0-guess"]
    assert solve["example_id"] == "math-chat/sample-001" and recs["inline"]["example_id"] == "inline/one-plus-one"
    for r in recs.values():
        assert r["n_total"] == 2 and r["n_ok"] == 2 and len(r["futures"]) == 2 and r["mr"] is not None
        assert r["weights"] == {"math_accuracy": 1.0, "interactivity": 1.0, "token_amount": 0.0}
        assert r["per_metric"]["interactivity"] == 0.5
    for rid in ("m0-ask", "m0-guess", "inline"):
        fut = recs[rid]["futures"][0]
        assert fut["exchanges"] == 1 and fut["conversation"][-1]["role"] == "assistant"
    # shard-user is satisfied by the right answer: the future ends on its terminating message, kept
    fut = solve["futures"][0]
    assert fut["terminated"] and fut["exchanges"] == 0
    assert "[[TERMINATE CHAT]]" in fut["conversation"][-1]["content"]
    # the right answer beats the wrong one
    assert solve["per_metric"]["math_accuracy"] == 1.0 and guess["per_metric"]["math_accuracy"] == 0.0
    assert solve["mr"] == pytest.approx(1.5) and guess["mr"] == pytest.approx(0.5)


def test_mr_options_window_zero_weights_paper_env(tmp_path: Path, scripted_model: Callable[..., str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assistant = scripted_model("never called at W=0")
    judge = scripted_model(judge_or_extract)
    out = tmp_path / "mr"
    monkeypatch.setenv("COLLAB_HARNESS_WINDOW", "0")  # every option reads COLLAB_HARNESS_<OPTION>
    run_mr("--task", "math-chat", "--input", str(DATA), "--out", str(out), "--assistant", assistant,
           "--judge", judge, "--weights", "math_accuracy=2,interactivity=0", "--paper-form", "--lambda", "0.001")
    recs = read(out)
    solve = recs["m1-solve"]
    assert solve["n_total"] == 1 and solve["window_exchanges"] == 0 and solve["form"] == "paper"
    parts = solve["futures"][0]["reward_parts"]
    assert parts["task"] == 2.0 and parts["judge"] == 0.0
    assert parts["penalty"] == pytest.approx(0.001 * parts["tokens"])
    assert solve["mr"] == pytest.approx(2.0 - parts["penalty"])


def test_mr_input_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"example_id": "math-chat/sample-0000", "history": [], "candidate": "x"}) + "\n")
    with pytest.raises(SystemExit) as e:
        run_mr("--task", "math-chat", "--input", str(bad), "--out", str(tmp_path / "o"),
               "--assistant", "scripted/echo")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no example 'math-chat/sample-0000'" in err and "did you mean" in err
    bad.write_text("{not json\n")
    with pytest.raises(SystemExit):
        run_mr("--task", "math-chat", "--input", str(bad), "--out", str(tmp_path / "o"))
    assert "bad.jsonl:1: not valid JSON" in capsys.readouterr().err
    dup = json.dumps({"id": "x", "example_id": "math-chat/sample-000", "history": [], "candidate": "c"})
    bad.write_text(dup + "\n" + dup + "\n")
    with pytest.raises(SystemExit):
        run_mr("--task", "math-chat", "--input", str(bad), "--out", str(tmp_path / "o"))
    assert "bad.jsonl:2: row id 'x' is already used on line 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_mr("--task", "math-chat", "--input", str(DATA), "--out", str(tmp_path / "o.jsonl"))
    assert "name a directory" in capsys.readouterr().err


def test_mr_history_not_ending_with_user_is_recorded(tmp_path: Path, scripted_model: Callable[..., str]) -> None:
    assistant = scripted_model("ok")
    judge = scripted_model(judge_or_extract)
    inp = tmp_path / "in.jsonl"
    rows = [
        {"id": "good", "example_id": "math-chat/sample-000", "history": [{"role": "user", "content": "hi"}],
         "candidate": "\\boxed{122}"},
        {"id": "bad", "example_id": "math-chat/sample-000",
         "history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
         "candidate": "x"},
    ]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as e:  # a failed row: the run's status is error, the exit non-zero
        run_mr("--task", "math-chat", "--input", str(inp), "--out", str(out), "--samples", "1", "--window", "1",
               "--assistant", assistant, "--judge", judge)
    assert e.value.code == 1
    recs = read(out)
    assert recs["good"]["mr"] is not None
    err = recs["bad"]["errors"][0]
    assert recs["bad"]["mr"] is None and err["category"] == "input" and "ends with a user message" in err["message"]


def test_parse_weights() -> None:
    assert parse_weights("bleu=1, interactivity=0.5") == {"bleu": 1.0, "interactivity": 0.5}
    assert parse_weights(None) is None
    with pytest.raises(ConfigError, match="name=value"):
        parse_weights("bleu")
    with pytest.raises(ConfigError, match="not a number"):
        parse_weights("bleu=high")


@pytest.mark.realmodel
@pytest.mark.slow
def test_mr_offline_on_embedded_defaults(tmp_path: Path) -> None:
    """Default models (local/smollm2 assistant and extraction, shard-user): no network, no scripted model. Kept short:
    one row, S = 1, W = 1, few tokens, rule extraction and no LLM judge (on a busy 2-core machine each embedded-model
    call takes tens of seconds), so exactly one embedded-model call: the assistant's reply in the future."""
    inp = tmp_path / "one.jsonl"
    inp.write_text(DATA.read_text().splitlines()[0] + "\n")
    out = tmp_path / "o"
    run_mr("--task", "math-chat", "--input", str(inp), "--out", str(out), "--samples", "1", "--window", "1",
           "--max-tokens", "16", "--extraction", "rule", "--metrics", "math_accuracy,token_amount",
           "--no-cache")
    rec = read(out)["m0-ask"]
    assert rec["n_total"] == 1 and rec["n_ok"] == 1, rec["errors"]
    fut = rec["futures"][0]
    assert [m["role"] for m in fut["conversation"]][-2:] == ["user", "assistant"]
    assert fut["scores"]["token_amount"]["details"]["tokenizer"] == "local/smollm2"
    assert rec["mr"] in (0.0, 1.0)


def test_mr_no_row_scored_exits_non_zero(tmp_path: Path, scripted_model: Callable[..., str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    broken = scripted_model("x", fatal_rate=1.0)
    judge = scripted_model(judge_or_extract)
    out = tmp_path / "o"
    inp = tmp_path / "in.jsonl"
    # m1-solve is left out: its future ends at once (the user is satisfied), so it needs no assistant call.
    inp.write_text("".join(line + "\n" for line in DATA.read_text().splitlines() if '"m1-solve"' not in line))
    with pytest.raises(SystemExit) as e:
        run_mr("--task", "math-chat", "--input", str(inp), "--out", str(out), "--samples", "1", "--window", "1",
               "--assistant", broken, "--judge", judge)
    err = capsys.readouterr().err
    assert e.value.code == 1 and "3 of 3 rows failed (assistant 3)" in err and len(err.strip().splitlines()) == 1
    recs = read(out)
    assert len(recs) == 3
    for r in recs.values():
        assert r["mr"] is None and r["n_ok"] == 0 and r["errors"][0]["component"] == "assistant"
    assert json.loads((out / "manifest.json").read_text())["status"] == "error"
