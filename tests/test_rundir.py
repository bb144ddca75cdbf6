"""Run-directory I/O (typed records, torn lines, locks, temp files), record schemas and aggregation."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collab_harness.aggregate import aggregate_eval
from collab_harness.records import (
    ComponentFailure,
    EvalRecord,
    Manifest,
    MRRecord,
    parse_record,
    record_schema,
    upgrade_record,
)
from collab_harness.rundir import (
    LOCK,
    RunDirError,
    RunLock,
    append_record,
    clean_temp_files,
    read_records,
    repair_samples,
    write_json_atomic,
)
from collab_harness.scrub import SecretScrubber
from collab_harness.types import Score


def _rec(eid: str, value: float | None = 1.0, **kw: Any) -> EvalRecord:
    score = Score(component="m", value=value) if value is not None else Score.failed("m", "boom")
    errors = [] if value is not None else [ComponentFailure(component="metric:m", message="boom", sample_id=eid)]
    return EvalRecord(id=f"{eid}#1", example_id=eid, seed=1, conversation=kw.pop("conversation", []),
                      scores={"m": score}, reward=value, errors=errors, **kw)


def _manifest(ids: list[str], metrics: list[str] | None = None, **kw: Any) -> Manifest:
    return Manifest(kind="eval", run_id="r", created_at="t", harness_version="0", python="3", platform="x",
                    item_ids=ids, metrics=metrics or ["m"],
                    components=[{"kind": "metric", "name": "m", "value_kind": "proportion", "value_range": [0, 1]}],
                    **kw)


# ------------------------------------------------------------------------------------------ samples.jsonl


def test_torn_last_line_is_dropped_and_repaired(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    for i in range(3):
        append_record(p, _rec(f"e{i}"))
    whole = p.read_bytes()
    # Simulate kill -9 in the middle of the fourth write.
    line = (_rec("e3").model_dump_json() + "\n").encode()
    p.write_bytes(whole + line[: len(line) // 2])
    log = read_records(p)
    assert [r.item_id for r in log.records] == ["e0", "e1", "e2"]
    assert log.torn_tail and log.valid_bytes == len(whole)
    repair_samples(p)
    assert p.read_bytes() == whole
    append_record(p, _rec("e3"))
    log = read_records(p)
    assert [r.item_id for r in log.records] == ["e0", "e1", "e2", "e3"] and not log.torn_tail


def test_damage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    append_record(p, _rec("a"))
    with open(p, "a") as f:
        f.write("{not json\n")
    append_record(p, _rec("b"))
    with pytest.raises(RunDirError, match="line 2"):
        read_records(p)


def test_a_record_of_the_wrong_shape_is_an_error_naming_the_field(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    append_record(p, _rec("a"))
    with open(p, "a") as f:
        f.write(json.dumps({"kind": "eval", "id": "x", "seed": "not a number", "example_id": "b",
                            "conversation": []}) + "\n")
    append_record(p, _rec("c"))
    with pytest.raises(RunDirError, match=r"line 2.*seed"):
        read_records(p)


def test_duplicates_are_reported(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    append_record(p, _rec("a"))
    append_record(p, _rec("a"))
    assert read_records(p).duplicates == ["a"]


def _writer(path: str, wid: int, n: int) -> None:
    big = "x" * 20000  # larger than a pipe buffer: interleaving would show without the lock
    for i in range(n):
        append_record(path, _rec(f"w{wid}-{i}", conversation=[{"role": "user", "content": big}]))


def test_concurrent_appends_from_processes_never_interleave(tmp_path: Path) -> None:
    p = tmp_path / "samples.jsonl"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(p), w, 25)) for w in range(4)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(60)
        assert pr.exitcode == 0
    log = read_records(p)
    assert len(log.records) == 100 and not log.torn_tail and not log.duplicates


def test_append_takes_typed_records_only(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="typed run record"):
        append_record(tmp_path / "s.jsonl", {"example_id": "x"})  # type: ignore[arg-type]


def test_schema_1_records_are_upgraded_on_read() -> None:
    old = {"id": "e#1", "example_id": "e", "attempt": 2, "seed": 5, "conversation": [{"role": "user", "content": "q"}],
           "scores": {"m": {"component": "m", "value": 1.0, "values": {}, "details": {}, "error": None}},
           "errors": [{"component": "assistant", "message": "503", "attempt": 1}], "usage": {}, "reward": 1.0,
           "exchanges": 1, "terminated": False, "elapsed_s": 0.5}
    rec = parse_record(upgrade_record(old))
    assert isinstance(rec, EvalRecord) and rec.kind == "eval" and rec.schema_version == 2
    # The failure of attempt 1 was got past by attempt 2: it is a retried failure, not a failure of the record.
    assert rec.errors == [] and rec.retried[0].component == "assistant" and rec.retried[0].sample_id == "e"


def test_json_schemas_validate_records() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for kind, rec in (("eval", _rec("a")), ("mr", MRRecord(id="r#1", row_id="r", example_id="e", seed=1))):
        schema = record_schema(kind)
        jsonschema.validate(rec.model_dump(mode="json"), schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**rec.model_dump(mode="json"), "seed": "x"}, schema)


# --------------------------------------------------------------------------------------------- lock, temp


def test_lock_names_the_holder_and_is_released_by_a_dead_process(tmp_path: Path) -> None:
    d = tmp_path / "run"
    # A child takes the lock and stays alive: a second taker gets the holder's pid.
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from collab_harness.rundir import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(60)"), str(d)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=rf"in use by pid {child.pid} on host"):
            RunLock(d).acquire()
    finally:
        child.kill()
        child.wait()
    # kill -9 released the flock: the stale lock file is taken over.
    assert (d / LOCK).exists()
    with RunLock(d):
        pass


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".results.json.12345.tmp").write_text("{")
    (tmp_path / "keep.json").write_text("{}")
    assert clean_temp_files(tmp_path) == [".results.json.12345.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]


def test_a_failed_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "results.json", {"x": float("nan")})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ secrets


def test_scrubber_removes_env_secrets_key_shapes_and_secret_options() -> None:
    s = SecretScrubber({"OPENAI_API_KEY": "planted-XYZ123-value", "HOME": "/root", "SHORT_TOKEN": "abc"})
    out = s({"msg": "failed with key planted-XYZ123-value!", "options": {"api_key": "whatever", "home": "/root",
             "tokenizer": "cl100k_base"}, "list": ["planted-XYZ123-value"],
             "shapes": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv and AKIAABCDEFGHIJKLMNOP and Bearer abcdefghijklmnop1234",
             "kv": 'api_key="zzzzzzzz12345"'})
    text = json.dumps(out)
    for secret in ("planted-XYZ123", "sk-ant-api03", "AKIAABCDEFGHIJKLMNOP", "abcdefghijklmnop1234", "zzzzzzzz12345"):
        assert secret not in text, secret
    # Non-secret env values and look-alike keys ("tokenizer") are kept.
    assert out["options"] == {"api_key": "***", "home": "/root", "tokenizer": "cl100k_base"}
    assert s("abc") == "abc"  # too short to be a credential: not scrubbed (it would mangle ordinary text)


# ------------------------------------------------------------------------------------------- aggregation


def test_aggregate_never_counts_failures_as_zero_and_states_its_interval() -> None:
    recs = [_rec("a", 1.0), _rec("b", 0.0), _rec("c", None)]
    # "d": simulation failed, so it has no score at all.
    recs.append(EvalRecord(id="d#1", example_id="d", seed=1, conversation=[],
                           errors=[ComponentFailure(component="assistant", message="503", sample_id="d")]))
    man = _manifest(["a", "b", "c", "d"])
    res = aggregate_eval(man, recs)
    m = res.metrics["m"]
    assert m.mean == pytest.approx(0.5) and m.n == 2 and m.n_failed == 2
    assert m.value_kind == "proportion" and m.ci_method is not None and m.ci_method.startswith("wilson")
    assert 0.0 < m.ci_low < 0.5 < m.ci_high < 1.0  # type: ignore[operator]
    assert res.errors_by_component == {"assistant": 1, "metric:m": 1}
    assert res.n_samples == 4 and res.n_failed == 2 and res.complete
    # Order-independent (a resumed run appends in another order).
    assert aggregate_eval(man, list(reversed(recs))) == res


def test_a_zero_of_three_proportion_has_a_non_zero_upper_bound() -> None:
    res = aggregate_eval(_manifest(["a", "b", "c"]), [_rec(x, 0.0) for x in "abc"])
    m = res.metrics["m"]
    assert m.mean == 0.0 and m.ci_low == 0.0 and m.ci_high is not None and m.ci_high > 0.5


def test_the_reward_interval_stays_in_the_range_its_weights_allow() -> None:
    from collab_harness.aggregate import reward_range

    comps = [{"kind": "metric", "name": "m", "value_kind": "proportion", "value_range": [0, 1]},
             {"kind": "judge", "name": "j", "value_kind": "bounded", "value_range": [0, 1], "role": "interaction"},
             {"kind": "metric", "name": "t", "value_kind": "unbounded", "value_range": [0, None], "role": "efficiency"}]
    man = Manifest(kind="eval", run_id="r", created_at="t", harness_version="0", python="3", platform="x",
                   item_ids=["a", "b", "c"], metrics=["m", "j"], components=comps, weights={"m": 1.0, "j": 0.5})
    assert reward_range(man) == [0.0, 1.5]
    assert reward_range(man.model_copy(update={"weights": {"m": 1.0, "t": -0.001}})) == [None, 1.0]
    assert reward_range(man.model_copy(update={"weights": {"m": 1.0, "t": -0.001}}), "paper") == [-1.0, 1.0]
    # Rewards 0, 0.5, 1 of three samples: the old Student-t interval was [-0.74, 1.74]; now it stays in [0, 1.5].
    recs = [_rec(x, v) for x, v in zip("abc", (0.0, 0.5, 1.0), strict=True)]
    r = aggregate_eval(man, recs).reward
    assert r.ci_method is not None and r.ci_method.startswith("bootstrap")
    assert 0.0 <= r.ci_low <= r.mean <= r.ci_high <= 1.5  # type: ignore[operator]


def test_environment_failures_are_counted_apart() -> None:
    env = EvalRecord(id="e#1", example_id="e", seed=1, conversation=[],
                     scores={"m": Score.failed("m", "environment: missing module sklearn", failure="environment")},
                     errors=[ComponentFailure(component="metric:m", message="x", category="environment")])
    res = aggregate_eval(_manifest(["a", "e"]), [_rec("a", 1.0), env])
    assert res.metrics["m"].n_failed == 1 and res.metrics["m"].n_environment == 1
    assert res.errors_by_category == {"environment": 1}


def test_no_lock_file_survives_in_a_fresh_directory_listing_as_data(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert (tmp_path / LOCK).read_text() == ""
