"""``collab-harness run`` end to end on scripted models: run directory, secrets, config file, resume refusal,
env-var options, progress lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from evaluate_scripts import register

from collab_harness.evaluation import recompute_results
from collab_harness.records import record_schema
from collab_harness.rundir import read_records

DRIVER = str(Path(__file__).with_name("evaluate_scripts.py"))
SCRIPTED = ["--assistant", "scripted/ev-assistant", "--judge", "scripted/ev-judge"]
PLANTED = "sk-planted-XYZ987abc"


def drive(*args: str, env: dict[str, str] | None = None, driver_args: tuple[str, ...] = (),
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, DRIVER, *driver_args, "--", *args], capture_output=True, text=True,
                          env=full, timeout=timeout)


def cli_inproc(args: list[str]) -> int:
    from collab_harness.cli.main import main

    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAB_HARNESS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def scripts() -> Any:
    from collab_harness.models.scripted import unregister_script

    register()
    yield
    unregister_script("ev-assistant")
    unregister_script("ev-judge")


def _metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())["metrics"]


def test_run_end_to_end_writes_a_complete_run_dir_without_secrets(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = drive("run", "--task", "doc-chat", "--limit", "4", "--max-exchanges", "2", *SCRIPTED, "--out", str(out),
              env={"OPENAI_API_KEY": PLANTED})
    assert r.returncode == 0, r.stderr
    assert "run directory:" in r.stdout and "bleu:" in r.stdout
    # Plain progress lines (stderr is not a terminal here), with an ETA.
    assert "[4/4]" in r.stderr and "eta" in r.stderr

    man = json.loads((out / "manifest.json").read_text())
    for key in ("schema_version", "kind", "status", "harness_version", "plugins", "config", "task", "models",
                "components", "prompt_hashes", "seeds", "item_ids", "summary"):
        assert man[key] not in (None, ""), key
    assert man["kind"] == "eval" and man["status"] == "success" and man["schema_version"] == 2
    assert man["models"]["assistant"]["model"] == "scripted/ev-assistant"
    kinds = {c["kind"]: c for c in man["components"]}
    assert kinds["simulator"]["name"] == "shard-user"
    judges = [c for c in man["components"] if c["kind"] == "judge"]
    assert [j["name"] for j in judges] == ["interactivity"] and judges[0]["options"]["model"] == "scripted/ev-judge"
    assert man["task"]["task_metric"] == "bleu" and len(man["item_ids"]) == 4
    assert any(k.startswith("judge:interactivity") for k in man["prompt_hashes"])
    assert {c["name"] for c in man["components"]} == {"doc-chat", "shard-user", "bleu", "interactivity",
                                                       "token_amount"}

    log = read_records(out / "samples.jsonl")
    assert len(log.records) == 4 and not log.duplicates
    jsonschema = pytest.importorskip("jsonschema")
    schema = record_schema("eval")
    for line in (out / "samples.jsonl").read_text().splitlines():
        jsonschema.validate(json.loads(line), schema)  # every record the engine wrote validates
    for rec in log.records:
        assert rec.errors == []
        assert set(rec.scores) == {"bleu", "interactivity", "token_amount"}
        assert rec.conversation[0].role == "user" and rec.exchanges >= 1
        u = rec.usage["assistant"]
        assert u.calls == rec.exchanges and u.provider_calls == rec.exchanges  # real provider calls, counted
    res = json.loads((out / "results.json").read_text())
    assert res == recompute_results(out).model_dump(mode="json")
    jsonschema.validate(res, record_schema("results"))
    jsonschema.validate(man, record_schema("manifest"))
    assert res["metrics"]["interactivity"]["n"] == 4 and res["metrics"]["token_amount.exchanges"]["n"] == 4
    assert res["metrics"]["bleu"]["mean"] > 0
    assert res["metrics"]["bleu"]["ci_method"].startswith("bootstrap")

    for f in out.rglob("*"):
        if f.is_file():
            assert PLANTED not in f.read_text(errors="replace"), f


def test_secret_echoed_by_a_model_never_reaches_disk(tmp_path: Path, scripts: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from collab_harness.models.scripted import register_script, unregister_script

    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
    m = register_script("leaky", lambda msgs, p, i: f"my key is {os.environ['OPENAI_API_KEY']}, what do you need?")
    out = tmp_path / "leak"
    try:
        code = cli_inproc(["run", "--task", "math-chat", "--limit", "2", "--max-exchanges", "1", "--assistant", m,
                           "--judge", "scripted/ev-judge", "--out", str(out), "--no-progress"])
    finally:
        unregister_script("leaky")
    assert code == 0
    text = (out / "samples.jsonl").read_text()
    assert "my key is ***" in text and PLANTED not in text


def test_config_file_gives_the_same_run_as_flags(tmp_path: Path, scripts: Any) -> None:
    flags = ["--task", "math-chat", "--limit", "3", "--max-exchanges", "2", "--seed", "5", *SCRIPTED]
    assert cli_inproc(["run", *flags, "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"task": "math-chat", "limit": 3, "max_exchanges": 2, "seed": 5,
                                   "assistant": "scripted/ev-assistant", "judge": "scripted/ev-judge",
                                   "out": str(tmp_path / "b")}))
    assert cli_inproc(["validate", str(cfg)]) == 0
    assert cli_inproc(["run", "--config", str(cfg), "--no-progress"]) == 0
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    ids_a = sorted(r.item_id for r in read_records(tmp_path / "a" / "samples.jsonl").records)
    ids_b = sorted(r.item_id for r in read_records(tmp_path / "b" / "samples.jsonl").records)
    assert ids_a == ids_b


def test_existing_run_needs_resume_and_resume_checks_the_config(tmp_path: Path, scripts: Any,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "r")
    base = ["run", "--task", "math-chat", "--limit", "2", "--max-exchanges", "1", *SCRIPTED, "--out", out,
            "--no-progress"]
    assert cli_inproc(base) == 0
    capsys.readouterr()
    assert cli_inproc(base) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli_inproc([*base, "--resume", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "seed: 0 -> 1" in err and len(err.strip().splitlines()) == 1
    # Resuming a finished run does nothing and changes nothing.
    before = (Path(out) / "samples.jsonl").read_bytes()
    assert cli_inproc([*base, "--resume"]) == 0
    assert "0 new, 2 resumed" in capsys.readouterr().out
    assert (Path(out) / "samples.jsonl").read_bytes() == before


def test_options_from_environment_variables(tmp_path: Path, scripts: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAB_HARNESS_MAX_EXCHANGES", "1")
    monkeypatch.setenv("COLLAB_HARNESS_LIMIT", "2")
    out = tmp_path / "env"
    assert cli_inproc(["run", "--task", "math-chat", *SCRIPTED, "--out", str(out), "--no-progress"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"]["max_exchanges"] == 1 and man["config"]["limit"] == 2
    assert all(r.exchanges <= 1 for r in read_records(out / "samples.jsonl").records)  # type: ignore[union-attr]


def test_missing_task_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_inproc(["run"]) == 2
    assert "--task is required" in capsys.readouterr().err


@pytest.mark.realmodel
@pytest.mark.slow
def test_run_offline_on_embedded_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No model flag: local/smollm2 answers, the offline judge ("rules") judges and extracts, shard-user plays the
    user. Kept tiny (two examples, two exchanges, short replies)."""
    out = tmp_path / "real"
    assert cli_inproc(["run", "--task", "math-chat", "--limit", "2", "--max-exchanges", "2", "--max-tokens", "64",
                       "--out", str(out), "--no-progress"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["models"]["assistant"]["model"] == "local/smollm2" and man["models"]["judge"]["offline"] is True
    assert man["models"]["assistant"]["resolved"] == "SmolLM2-135M-Instruct"
    assert man["models"]["assistant"]["fingerprint"]  # the weights' fingerprint, in the manifest and cache keys
    comps = {c["kind"]: c for c in man["components"]}
    assert comps["judge"]["options"]["model"] == "rules" and comps["simulator"]["name"] == "shard-user"
    recs = read_records(out / "samples.jsonl").records
    assert len(recs) == 2
    for rec in recs:
        d = rec.model_dump(mode="json")
        assert d["conversation"][1]["role"] == "assistant" and d["conversation"][1]["content"].strip()
        assert d["usage"]["assistant"]["completion_tokens"] > 0
        assert set(d["usage"]) == {"assistant"}  # the offline judge and rule extraction call no model
        for name in ("math_accuracy", "interactivity", "token_amount"):
            s = d["scores"][name]
            # Either a score or a failure recorded with the component, never a silent 0.
            assert s["value"] is not None or any(e["component"].endswith(":" + name) for e in d["errors"])
        assert d["scores"]["interactivity"]["details"]["judge"] == "rules"
        assert d["scores"]["token_amount"]["value"] > 0
    assert json.loads((out / "results.json").read_text()) == recompute_results(out).model_dump(mode="json")
