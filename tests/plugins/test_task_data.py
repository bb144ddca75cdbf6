"""Task data honesty: bad data is one line naming file, row and field (no coercion); a hub that cannot be loaded is an
error naming ``--source sample`` (never a silent fallback); every load records its source, reason, sizes and files."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from collab_harness_plugins.tasks._common import DatasetTask, read_rows, sample_path
from collab_harness_plugins.tasks.abg_coqa import AbgCoQATask
from collab_harness_plugins.tasks.code_chat import CodeChatTask
from collab_harness_plugins.tasks.doc_chat import DocChatTask
from collab_harness_plugins.tasks.math_chat import MathChat

from collab_harness.cli.main import main
from collab_harness.errors import ConfigError

TASKS: list[type[DatasetTask]] = [DocChatTask, MathChat, CodeChatTask, AbgCoQATask]
CLI = Path(sys.executable).with_name("collab-harness")


def _native(task: type[DatasetTask]) -> dict[str, Any]:
    """The first record of a task's shipped sample: a valid record in our own example schema."""
    return dict(read_rows(sample_path(task.sample_file))[0].record)


def _write(path: Path, *lines: Any) -> Path:
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def _error(task: type[DatasetTask], data: Path, **options: Any) -> str:
    """The ConfigError of loading ``data``; asserts it is one line."""
    with pytest.raises(ConfigError) as exc:
        t = task(source="local", data=str(data), **options)
        for split in t.splits():
            t.load(split)
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


# ------------------------------------------------------------------------------------------ the shipped samples

#: Sizes and sha256 (first 16 hex) of the newline-joined example ids per split, taken before the strict loader
#: replaced the lenient one: the shipped samples must load exactly as before.
SAMPLE_IDS = {
    "doc-chat": {"train": (10, "391714512f827ad6"), "test": (21, "306cd0f040aba1c4")},
    "math-chat": {"train": (13, "14c141a2580d4b0a"), "test": (27, "9a34f8bc294074e1")},
    "code-chat": {"train": (10, "3fb117bae1252e96"), "test": (20, "8386c030a94d8dfc")},
    "abg-coqa": {"train": (10, "77b6fa6c9a3127d7"), "test": (22, "3a063ff0d2743950")},
}


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_shipped_samples_load_as_before(task: type[DatasetTask]) -> None:
    t = task(source="sample")
    got = {
        s: (len(t.load(s)), hashlib.sha256("\n".join(e.id for e in t.load(s)).encode()).hexdigest()[:16])
        for s in t.splits()
    }
    assert got == SAMPLE_IDS[task.name]


# ---------------------------------------------------------------------------------- bad files, any task


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_line_that_is_not_an_object(task: type[DatasetTask], tmp_path: Path) -> None:
    f = _write(tmp_path / "bad.jsonl", _native(task), [1, 2])
    assert _error(task, f) == f"{f}: row 2: expected a JSON object, got list"


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_not_utf8(task: type[DatasetTask], tmp_path: Path) -> None:
    f = tmp_path / "latin1.jsonl"
    first = json.dumps(_native(task)).encode() + b"\n"
    f.write_bytes(first + b'{"prompt": "caf\xe9"}\n')
    assert _error(task, f) == f"{f}: row 2: not valid UTF-8 (byte 0xe9 at offset {len(first) + 15})"


def test_invalid_json_line_and_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    f = _write(tmp_path / "bad.jsonl", _native(MathChat), "", "{oops")
    msg = _error(MathChat, f)
    assert msg.startswith(f"{f}: row 3: not valid JSON (")


def test_bad_json_array_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"problem": "x"},\n  {"problem": \n')
    assert _error(MathChat, broken).startswith(f"{broken}: line 4: not valid JSON (")
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([_native(MathChat), "just text"]))
    assert _error(MathChat, mixed) == f"{mixed}: row 2: expected a JSON object, got str"
    obj = tmp_path / "obj.json"
    obj.write_text('{\n  "problem": "x"\n}\n')
    assert _error(MathChat, obj) == f"{obj}: expected a JSON array of objects (or one object per line), got object"


def test_json_array_and_json_lines_under_a_json_name_load(tmp_path: Path) -> None:
    recs = [_native(MathChat), {**_native(MathChat), "id": "math-chat/other"}]
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps(recs, indent=2))
    lines = _write(tmp_path / "lines.json", *recs)
    for f in (arr, lines):
        assert [e.id for e in MathChat(source="local", data=str(f)).load("test")] == [r["id"] for r in recs]


def test_bad_parquet_file(tmp_path: Path) -> None:
    f = tmp_path / "data.parquet"
    f.write_text("this is not parquet")
    msg = _error(DocChatTask, f)
    assert msg.startswith(f"{f}: not a readable parquet file (ArrowInvalid")


def test_missing_empty_and_directory(tmp_path: Path) -> None:
    assert _error(MathChat, tmp_path / "nope.jsonl") == f"data file not found: {tmp_path / 'nope.jsonl'}"
    empty = _write(tmp_path / "empty.jsonl", "", "")
    assert _error(MathChat, empty) == f"{empty}: no records"
    assert _error(MathChat, tmp_path).startswith(f"{tmp_path}: is a directory")


# ------------------------------------------------------------------------- our own example schema, strictly


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_native_missing_field(task: type[DatasetTask], tmp_path: Path) -> None:
    rec = _native(task)
    broken = {k: v for k, v in rec.items() if k != "prompt"}
    f = _write(tmp_path / "mine.jsonl", rec, rec | {"id": f"{task.name}/x"}, broken)
    assert _error(task, f) == f"{f}: row 3 (id {rec['id']!r}): field 'prompt': missing"


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_native_wrong_types_not_coerced(task: type[DatasetTask], tmp_path: Path) -> None:
    rec = _native(task)
    f = _write(tmp_path / "ref.jsonl", rec | {"reference": 122})
    assert _error(task, f) == f"{f}: row 1 (id {rec['id']!r}): field 'reference': expected a string, got int"
    shards = {**rec["metadata"], "shards": ["fine", 3]}
    g = _write(tmp_path / "shards.jsonl", rec | {"metadata": shards})
    assert _error(task, g) == f"{g}: row 1 (id {rec['id']!r}): field 'metadata.shards[1]': expected a string, got int"
    h = _write(tmp_path / "id.jsonl", rec | {"id": 7})
    assert _error(task, h) == f"{h}: row 1: field 'id': expected a string, got int"


def test_native_task_specific_metadata(tmp_path: Path) -> None:
    rec = _native(AbgCoQATask)
    f = _write(tmp_path / "amb.jsonl", rec | {"metadata": {**rec["metadata"], "ambiguous": "yes"}})
    assert _error(AbgCoQATask, f).endswith("field 'metadata.ambiguous': expected true or false, got str")
    doc = _native(DocChatTask)
    g = _write(tmp_path / "tags.jsonl", doc | {"metadata": {**doc["metadata"], "tags": "Life"}})
    assert _error(DocChatTask, g).endswith("field 'metadata.tags': expected a list, got str")


def test_native_unknown_field_wrong_task_and_partial_split(tmp_path: Path) -> None:
    rec = _native(MathChat)
    f = _write(tmp_path / "extra.jsonl", rec | {"answer": "3"})
    allowed = "id, prompt, reference, metadata, task, split"
    assert _error(MathChat, f).endswith(f"field 'answer': unknown field (allowed: {allowed})")
    g = _write(tmp_path / "doc.jsonl", _native(DocChatTask))
    assert _error(MathChat, g).endswith("field 'task': 'doc-chat' is not this task ('math-chat')")
    no_split = {k: v for k, v in rec.items() if k != "split"} | {"id": "math-chat/y"}
    h = _write(tmp_path / "split.jsonl", rec, no_split)
    assert _error(MathChat, h) == f"{h}: row 2 (id 'math-chat/y'): field 'split': missing (other records have one)"
    k = _write(tmp_path / "split2.jsonl", rec | {"split": 1})
    assert _error(MathChat, k).endswith("field 'split': expected a non-empty string, got int")


# ------------------------------------------------------------------------------------ the hub's schema, strictly


def _medium(i: int = 0, **over: Any) -> dict[str, Any]:
    rec = {"title": f"Post {i}", "text": "Some words here. " * 20, "url": f"https://medium.com/p/{i}",
           "authors": "['A']", "timestamp": f"2020-01-01 00:{i % 60:02d}:00", "tags": "['Life']"}
    return rec | over


def test_hub_schema_wrong_type_is_rejected_not_coerced(tmp_path: Path) -> None:
    recs = [_medium(i) for i in range(200)]
    recs[6]["title"] = 3
    f = _write(tmp_path / "medium.jsonl", *recs)
    assert _error(DocChatTask, f) == f"{f}: row 7: field 'title': expected a string, got int"


def test_hub_schema_unions_and_missing_columns(tmp_path: Path) -> None:
    f = _write(tmp_path / "tags.jsonl", _medium(tags=5))
    assert _error(DocChatTask, f) == f"{f}: row 1: field 'tags': expected a string or a list, got int"
    g = _write(tmp_path / "tags2.jsonl", _medium(tags=["Life", 3]))
    assert _error(DocChatTask, g) == f"{g}: row 1: field 'tags[1]': expected a string, got int"
    renamed = {k: v for k, v in _medium().items() if k != "text"} | {"body": "words"}
    h = _write(tmp_path / "renamed.jsonl", renamed)
    assert _error(DocChatTask, h) == f"{h}: row 1: field 'text': missing"
    few = _write(tmp_path / "few.jsonl", _medium())  # valid, but the 2.5% recency window keeps none of 1
    assert "none of which task 'doc-chat' keeps as an example" in _error(DocChatTask, few)


def test_hub_schema_parquet_names_the_row(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = tmp_path / "medium.parquet"
    pq.write_table(pa.Table.from_pylist([_medium(i) for i in range(200)]), good)
    assert sum(len(DocChatTask(source="local", data=str(good)).load(s)) for s in ("train", "test")) == 5
    bad = tmp_path / "ints.parquet"
    rows = [_medium(i) | {"title": i} for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), bad)
    assert _error(DocChatTask, bad) == f"{bad}: row 1: field 'title': expected a string, got int"


def test_abg_release_records(tmp_path: Path) -> None:
    ok = {"id": "r1", "story": "Ann has a cat.", "target_turn": {"question": "Who?", "answer": "Ann"},
          "ambiguity": "non_ambiguous"}
    f = tmp_path / "coqa_abg_test.json"
    f.write_text(json.dumps({"data": [ok, ok | {"id": "r2", "target_turn": {"question": 5}}]}))
    assert _error(AbgCoQATask, f) == f"{f}: row 2 (id 'r2'): field 'target_turn.question': expected a string, got int"
    f.write_text(json.dumps({"data": [ok | {"ambiguity": "maybe"}]}))
    assert _error(AbgCoQATask, f) == (
        f"{f}: row 1 (id 'r1'): field 'ambiguity': expected 'ambiguous' or 'non_ambiguous', got 'maybe'"
    )
    f.write_text(json.dumps({"data": [ok, [1]]}))
    assert _error(AbgCoQATask, f) == f"{f}: row 2: expected a JSON object, got list"
    f.write_bytes(b'{"data": ["caf\xe9"]}')
    assert _error(AbgCoQATask, f) == f"{f}: row 1: not valid UTF-8 (byte 0xe9 at offset 14)"


def _strict(task: type[DatasetTask]) -> pytest.MarkDecorator:
    return pytest.mark.xfail(task.HubRecord is None, strict=True,
                             reason=f"{task.name} declares no HubRecord model yet (types coerced)")


@pytest.mark.parametrize(
    ("task", "record", "field"),
    [
        pytest.param(MathChat, {"problem": 3, "solution": "\\boxed{3}"}, "problem",
                     id="math-chat", marks=_strict(MathChat)),
        pytest.param(CodeChatTask, {"task_id": "BigCodeBench/1", "instruct_prompt": 3, "code_prompt": "def f():"},
                     "instruct_prompt", id="code-chat", marks=_strict(CodeChatTask)),
    ],
)
def test_hub_schema_strict_for_every_hub_task(task: type[DatasetTask], record: dict[str, Any], field: str,
                                              tmp_path: Path) -> None:
    f = _write(tmp_path / "hub.jsonl", record)
    assert _error(task, f).endswith(f"field {field!r}: expected a string, got int")


# ------------------------------------------------------------------------------------------- the data source


def test_hub_unreachable_is_an_error_naming_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for task in (MathChat, DocChatTask):
        t = task(source="hub")
        assert t.resolved_source == "hub"
        with pytest.raises(ConfigError) as exc:
            t.load("test")
        msg = str(exc.value)
        assert "\n" not in msg and f"could not load hub dataset {task.hub_id!r}" in msg
        assert "--source sample" in msg and "HF_HUB_OFFLINE is set" in msg
    assert MathChat(source="hub").info().splits == {"train": 2304, "test": 1324}  # describing it downloads nothing


def test_option_conflicts() -> None:
    with pytest.raises(ConfigError, match="no hub dataset"):
        AbgCoQATask(source="hub").splits()
    with pytest.raises(ConfigError, match="needs the `data` option"):
        MathChat(source="local").splits()
    with pytest.raises(ConfigError, match="only read with source 'local' or 'auto'"):
        MathChat(source="sample", data="x.jsonl").splits()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_auto_rule_and_its_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert MathChat().source_choice == ("sample", "auto: HF_HUB_OFFLINE is set")
    assert AbgCoQATask().source_choice.reason == "auto: the task has no hub dataset"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    port = _closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    t = MathChat()
    assert t.info().data_source.startswith("auto")  # info() alone never probes the network
    assert t.resolved_source == "sample"
    assert t.data_provenance()["reason"] == f"auto: the hub (127.0.0.1:{port}) refused or did not answer a TCP " \
                                            "connect within 2 s"
    f = _write(tmp_path / "mine.jsonl", _native(MathChat))
    assert MathChat(data=str(f)).source_choice == ("local", "auto: the `data` option is set")


def test_provenance_records_source_sizes_and_files(tmp_path: Path) -> None:
    t = MathChat(source="sample")
    p = t.data_provenance()
    shipped = sample_path("math_chat.jsonl")
    assert p["source"] == "sample" and p["requested"] == "sample" and p["splits"] == {"train": 13, "test": 27}
    assert p["path"] == str(shipped.resolve())
    assert p["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert t.info().data_source == "sample" and t.info().splits == p["splits"]
    f = _write(tmp_path / "two.jsonl", _native(MathChat), _native(MathChat) | {"id": "math-chat/2", "split": "train"})
    local = MathChat(source="local", data=str(f)).data_provenance()
    assert local["splits"] == {"train": 1, "test": 1} and local["path"] == str(f.resolve())
    assert local["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert local["files"][0]["bytes"] == f.stat().st_size
    for split in ("train", "val", "test"):
        (tmp_path / f"coqa_abg_{split}.json").write_text(json.dumps({"data": [
            {"id": split, "story": "s.", "target_turn": {"question": "q?", "answer": "a"}, "ambiguity": "non_ambiguous"}
        ]}))
    abg = AbgCoQATask(source="local", data=str(tmp_path)).data_provenance()
    assert [Path(x["path"]).name for x in abg["files"]] == ["coqa_abg_test.json", "coqa_abg_train.json",
                                                            "coqa_abg_val.json"]
    assert "path" not in abg and abg["splits"] == {"test": 1, "train": 1, "val": 1}


# ------------------------------------------------------------------------------------------ through the CLI


def _run_cli(tmp_path: Path, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str], task: str = "doc-chat") -> tuple[int, list[str]]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLLAB_HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "run.yaml").write_text(json.dumps({"task": {"name": task, "options": options}, "limit": 1}))
    with pytest.raises(SystemExit) as exc:
        main(["run", "--config", "run.yaml", "--out", "out", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert not (tmp_path / "out").exists(), "a data error must not leave a run directory"
    return int(exc.value.code or 0), err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b'{"title": "t"}\n[1, 2]\n', "error: bad.jsonl: row 2: expected a JSON object, got list",
                     id="not-an-object"),
        pytest.param(b'{"title": "caf\xe9"}\n', "error: bad.jsonl: row 1: not valid UTF-8 (byte 0xe9 at offset 14)",
                     id="not-utf8"),
        pytest.param(b'{"title": 3, "text": "t", "timestamp": null}\n',
                     "error: bad.jsonl: row 1: field 'title': expected a string, got int", id="wrong-type"),
        pytest.param(b'{"id": "doc-chat/1", "task": "doc-chat"}\n',
                     "error: bad.jsonl: row 1 (id 'doc-chat/1'): field 'prompt': missing", id="missing-field"),
    ],
)
def test_cli_prints_one_line(content: bytes, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.jsonl").write_bytes(content)
    code, err = _run_cli(tmp_path, {"source": "local", "data": "bad.jsonl"}, monkeypatch, capsys)
    assert code == 2 and err == [expected]


def test_cli_hub_unreachable_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = _run_cli(tmp_path, {"source": "hub"}, monkeypatch, capsys, task="math-chat")
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: task 'math-chat': could not load hub dataset 'lighteval/MATH-Hard'")
    assert "--source sample" in err[0]


class _NotFound(http.server.BaseHTTPRequestHandler):
    """A hub that answers every request with 404: reachable, but it cannot serve the dataset."""

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "not found"}')

    do_HEAD = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing_hub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_auto_never_falls_back_after_the_hub_fails(failing_hub: str, tmp_path: Path) -> None:
    """``auto`` with a reachable hub that errors: the run stops with the hub's error, it does not evaluate on the
    sample. A real HTTP server and the real hub client, in a subprocess so HF_ENDPOINT is read at import."""
    (tmp_path / "run.yaml").write_text(json.dumps({"task": {"name": "math-chat"}, "limit": 1}))
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_ENDPOINT": failing_hub,
           "HF_HOME": str(tmp_path / "hf"), "COLLAB_HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([str(CLI), "run", "--config", "run.yaml", "--out", "out", "--no-progress"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: task 'math-chat': could not load hub dataset"), lines
    assert "--source sample" in lines[0]
    assert not (tmp_path / "out").exists()
