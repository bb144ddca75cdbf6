"""``abg-coqa``: clarify-or-answer on questions about a story (Abg-CoQA, SPEC §3, optional task).

The user asks a question about a short story; some questions are ambiguous. A good assistant asks for
clarification exactly when the question is ambiguous (metric ``clarify_or_answer`` reads its first reply).

Data: local files only (the release is not on the hub). ``data`` may be
- a file in the Abg-CoQA release format: ``{"data": [{"id", "story", "source", "history_turns": [{"turn_id",
  "question", "answer"}], "target_turn": {"question", "answer"}, "clarification_turn": {"question", "answers":
  [{"clr_ans", "org_ans"}]}, "ambiguity": "ambiguous" | "non_ambiguous"}]}``. A name containing ``train`` / ``val``
  / ``test`` (e.g. ``coqa_abg_val.json``) puts its records in that split; otherwise the file is every split;
- a directory holding ``coqa_abg_{train,val,test}.json``;
- a JSONL in our own example schema.
``source="auto"`` uses ``data`` when given, else the shipped sample (written by this project).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from collab_harness import hookimpl
from collab_harness.errors import ConfigError
from collab_harness.types import Example

from ._common import DatasetTask, ExampleMetadata, Row, StrictRecord, read_json

__all__ = ["AbgCoQAMetadata", "AbgCoQARecord", "AbgCoQATask", "make_example_fields"]

_SPLIT_IN_NAME = re.compile(r"(?:^|[_\-.])(train|val|dev|test)(?:[_\-.]|$)")


class _Turn(StrictRecord):
    turn_id: int = 0
    question: str
    answer: str


class _TargetTurn(StrictRecord):
    question: str
    answer: str | None = None


class _Reading(StrictRecord):
    clr_ans: str = ""
    org_ans: str = ""


class _Clarification(StrictRecord):
    question: str | None = None
    answers: list[_Reading] | None = None


class AbgCoQARecord(StrictRecord):
    """One record of the Abg-CoQA release format (checked before conversion; types strict)."""

    id: str
    story: str
    source: str | None = None
    history_turns: list[_Turn] | None = None
    target_turn: _TargetTurn
    clarification_turn: _Clarification | None = None
    ambiguity: Literal["ambiguous", "non_ambiguous"]


class _Interpretation(StrictRecord):
    clarification: str
    answer: str


class AbgCoQAMetadata(ExampleMetadata):
    story: str | None = None
    question: str | None = None
    ambiguous: bool | None = None
    history: list[dict[str, str]] | None = None
    clarification_question: str | None = None
    intended_interpretation: str | None = None
    interpretations: list[_Interpretation] | None = None
    source: str | None = None


def make_example_fields(
    *,
    story: str,
    question: str,
    answer: str,
    ambiguous: bool,
    history: Sequence[Mapping[str, str]] = (),
    clarification_question: str | None = None,
    interpretations: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Prompt, reference and metadata of one example (shared by the release-format loader and the sample builder).

    ``interpretations`` are the readings of an ambiguous question as ``{"clarification", "answer"}``; the first is
    the one the simulated user means.
    """
    hist_text = "".join(f"Q: {t['question']}\nA: {t['answer']}\n" for t in history)
    opening = (
        f"Can you help me answer a question about the following story?\n\n{story.strip()}\n\n"
        + (f"Earlier questions and answers:\n{hist_text}\n" if hist_text else "")
        + f"My question is: {question.strip()}"
    )
    intended = interpretations[0] if (ambiguous and interpretations) else None
    prompt = opening
    if intended is not None:
        prompt += (
            "\n\n(The question can be read in more than one way. You mean: "
            f"{intended['clarification']} The answer you expect is: {intended['answer']})"
        )
    shards = [opening]
    if intended is not None:
        shards.append(f"I mean {intended['clarification'][0].lower()}{intended['clarification'][1:]}")
    return {
        "prompt": prompt,
        "reference": answer,
        "metadata": {
            "story": story,
            "question": question,
            "ambiguous": ambiguous,
            "history": [dict(t) for t in history],
            "clarification_question": clarification_question,
            "intended_interpretation": intended["clarification"] if intended else None,
            "interpretations": [dict(i) for i in interpretations],
            "shards": shards,
        },
    }


class AbgCoQATask(DatasetTask):
    """Answer a question about a story, asking for clarification iff the question is ambiguous."""

    name: ClassVar[str] = "abg-coqa"
    description: ClassVar[str] = "Abg-CoQA: a story question that may be ambiguous; ask for clarification iff it is"
    task_desc: ClassVar[str] = "question answering about a story"
    artefact_type: ClassVar[str | None] = None
    default_metrics: ClassVar[Mapping[str, float]] = {
        "clarify_or_answer": 1.0,
        "interactivity": 1.0,
        "token_amount": 0.0,
    }
    hub_id: ClassVar[str] = ""  # not on the hub: "auto" resolves to `data` or the shipped sample
    sample_file: ClassVar[str] = "abg_coqa.jsonl"
    HubRecord: ClassVar[type[BaseModel] | None] = AbgCoQARecord
    Metadata: ClassVar[type[BaseModel]] = AbgCoQAMetadata

    def from_hub_record(self, record: Mapping[str, Any], index: int) -> Example:
        """One record of the Abg-CoQA release format (already checked against :class:`AbgCoQARecord` by the
        loader; a missing key here is reported with the record's file and row)."""
        target = record["target_turn"]
        history = sorted(record.get("history_turns") or [], key=lambda t: t.get("turn_id", 0))
        clar = record.get("clarification_turn") or {}
        interpretations = [
            {"clarification": a.get("clr_ans", ""), "answer": a.get("org_ans", "")} for a in (clar.get("answers") or [])
        ]
        answer = target.get("answer") or (interpretations[0]["answer"] if interpretations else "")
        fields = make_example_fields(
            story=record["story"],
            question=target["question"],
            answer=answer,
            ambiguous=record["ambiguity"] == "ambiguous",
            history=[{"question": t["question"], "answer": t["answer"]} for t in history],
            clarification_question=clar.get("question") or None,
            interpretations=interpretations,
        )
        fields["metadata"]["source"] = record.get("source")
        return Example(id=f"abg-coqa/{record['id']}", task=self.name, **fields)

    def _load_all(self, source: str) -> dict[str, list[Example]]:
        opts: Any = self.options
        if source == "local":
            path = Path(str(opts.data))
            if path.is_dir():
                files = sorted(path.glob("coqa_abg_*.json"))
                if not files:
                    raise ConfigError(f"task {self.name!r}: no coqa_abg_*.json file in {path}")
                out: dict[str, list[Example]] = {}
                for f in files:
                    for split, examples in self._load_release(f).items():
                        out.setdefault(split, []).extend(examples)
                return out
            if path.suffix == ".json" and path.exists():
                return self._load_release(path)
        return super()._load_all(source)

    def _load_release(self, path: Path) -> dict[str, list[Example]]:
        """A release file; its rows are the 1-based positions in its ``data`` list."""
        blob = read_json(path)
        if not isinstance(blob, dict) or not isinstance(blob.get("data"), list):
            raise ConfigError(f"{path}: not in the Abg-CoQA release format (a JSON object with a 'data' list)")
        if not blob["data"]:
            raise ConfigError(f"{path}: no records in its 'data' list")
        self.record_file(path)
        examples = self.hub_examples([Row(i, r) for i, r in enumerate(blob["data"], 1)], str(path))
        m = _SPLIT_IN_NAME.search(path.stem)
        if m:
            split = {"dev": "val"}.get(m.group(1), m.group(1))
            return {split: examples}
        return {s: list(examples) for s in self.split_names}

    def check_success(self, example: Example, answer: str) -> bool | None:
        """Whether the reply contains the reference answer (normalised substring); None without a reference."""
        ref = _norm(example.reference)
        if not ref:
            return None
        return ref in _norm(answer)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@hookimpl
def register_tasks(register: Any) -> None:
    register(AbgCoQATask)
