"""abg-coqa task: the Abg-CoQA release format (file and directory), our native JSONL, the shipped sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from collab_harness_plugins.tasks import abg_coqa
from collab_harness_plugins.tasks.abg_coqa import AbgCoQATask

from collab_harness import build_plugin_manager
from collab_harness.errors import ConfigError
from collab_harness.testing import TaskContract

STORY = "Ann has a cat named Tom and a dog named Rex. Tom sleeps all day; Rex loves long walks in the park."


def _release(records: list[Any]) -> dict[str, Any]:
    return {"version": "1.0", "data": records}


AMBIGUOUS = {
    "id": "3dr23u6we5exclen4th8uq9rb42tel",
    "source": "mctest",
    "story": STORY,
    "history_turns": [
        {"turn_id": 2, "question": "Does Rex like walks?", "answer": "yes"},
        {"turn_id": 1, "question": "Who has pets?", "answer": "Ann"},
    ],
    "target_turn": {"turn_id": 3, "question": "What is its name?", "answer": ""},
    "clarification_turn": {
        "question": "Do you mean the cat or the dog?",
        "answers": [{"clr_ans": "The cat.", "org_ans": "Tom"}, {"clr_ans": "The dog.", "org_ans": "Rex"}],
    },
    "ambiguity": "ambiguous",
}
CLEAR = {
    "id": "3azhrg4cu4ktme1zh7c2ro3pn2430q",
    "source": "mctest",
    "story": STORY,
    "history_turns": [],
    "target_turn": {"turn_id": 1, "question": "What does the dog love?", "answer": "long walks in the park"},
    "ambiguity": "non_ambiguous",
}


def test_release_format_file(tmp_path: Path) -> None:
    f = tmp_path / "coqa_abg_test.json"
    f.write_text(json.dumps(_release([AMBIGUOUS, CLEAR])))
    task = AbgCoQATask(source="local", data=str(f))
    assert dict(task.splits()) == {"test": 2}  # split from the file name
    amb, clear = task.load("test")
    assert amb.id == "abg-coqa/3dr23u6we5exclen4th8uq9rb42tel"
    assert amb.metadata["ambiguous"] is True and clear.metadata["ambiguous"] is False
    # history sorted by turn_id, story and question in the first user message
    assert [t["question"] for t in amb.metadata["history"]] == ["Who has pets?", "Does Rex like walks?"]
    shards = task.goal_shards(amb)
    assert STORY in shards[0] and "What is its name?" in shards[0]
    assert shards[1] == "I mean the cat."
    assert amb.reference == "Tom"  # empty target answer: the intended reading's answer
    assert amb.metadata["intended_interpretation"] == "The cat."
    assert "You mean: The cat." in amb.prompt
    assert clear.reference == "long walks in the park" and len(task.goal_shards(clear)) == 1
    assert "read in more than one way" not in clear.prompt
    assert task.check_success(clear, "She loves Long walks in the park!") is True
    assert task.check_success(clear, "She sleeps.") is False


def test_release_directory_and_unnamed_file(tmp_path: Path) -> None:
    for split, recs in (("train", [CLEAR]), ("val", [AMBIGUOUS]), ("test", [AMBIGUOUS, CLEAR])):
        (tmp_path / f"coqa_abg_{split}.json").write_text(json.dumps(_release(recs)))
    task = AbgCoQATask(source="local", data=str(tmp_path))
    assert dict(task.splits()) == {"test": 2, "train": 1, "val": 1}
    plain = tmp_path / "mine.json"
    plain.write_text(json.dumps(_release([CLEAR])))
    assert dict(AbgCoQATask(data=str(plain)).splits()) == {"train": 1, "test": 1}


def test_bad_release_records_name_the_record(tmp_path: Path) -> None:
    f = tmp_path / "coqa_abg_test.json"
    f.write_text(json.dumps(_release([{"id": "broken", "ambiguity": "ambiguous"}])))
    with pytest.raises(ConfigError, match="broken"):
        AbgCoQATask(source="local", data=str(f)).load("test")
    g = tmp_path / "other.json"
    g.write_text(json.dumps({"stories": []}))
    with pytest.raises(ConfigError, match="release format"):
        AbgCoQATask(source="local", data=str(g)).splits()


def test_native_jsonl_round_trip(tmp_path: Path) -> None:
    sample = AbgCoQATask(source="sample")
    f = tmp_path / "mine.jsonl"
    rows = [{**e.model_dump(mode="json"), "split": "test"} for e in sample.load("test")[:3]]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = AbgCoQATask(source="local", data=str(f))
    assert [e.id for e in task.load("test")] == [e.id for e in sample.load("test")[:3]]


def test_shipped_sample_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # no hub id: auto resolves to the sample even when "online"
    task = AbgCoQATask()
    assert task.resolved_source == "sample"
    examples = [*task.load("train"), *task.load("test")]
    assert len(examples) >= 30
    assert len(task.load("test")) > len(task.load("train"))
    ids = [e.id for e in examples]
    assert len(set(ids)) == len(ids) and all(i.startswith("abg-coqa/sample-") for i in ids)
    amb = [e for e in examples if e.metadata["ambiguous"]]
    assert 0.4 <= len(amb) / len(examples) <= 0.6
    for e in examples:
        words = len(e.metadata["story"].split())
        assert 80 <= words <= 150, (e.id, words)
        assert e.reference.strip()
        if e.metadata["ambiguous"]:
            assert len(e.metadata["interpretations"]) == 2 and e.metadata["clarification_question"]
            assert e.reference == e.metadata["interpretations"][0]["answer"]
            assert len(e.metadata["shards"]) == 2


def test_registered() -> None:
    host = build_plugin_manager(strict=True, load_entry_points=False, plugins=[abg_coqa])
    task = host.registry.create("task", "abg-coqa", {"source": "sample"})
    assert isinstance(task, AbgCoQATask)
    assert task.info().default_metrics == {"clarify_or_answer": 1.0, "interactivity": 1.0, "token_amount": 0.0}
    assert task.artefact_type is None


class TestAbgCoQAContract(TaskContract):
    @pytest.fixture
    def component(self) -> AbgCoQATask:
        return AbgCoQATask(source="sample")
