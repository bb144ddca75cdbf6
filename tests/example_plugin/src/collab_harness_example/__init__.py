"""Example collab-harness plugin: the ``keyword-note`` task and the ``keyword_recall`` metric."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

from collab_harness import (
    ComponentOptions,
    Conversation,
    Example,
    Metric,
    Score,
    ScoringContext,
    Task,
    TaskOptions,
    hookimpl,
)

__version__ = "0.2.0"


class KeywordNoteTask(Task):
    """Write a short note that mentions the user's keywords (revealed one by one)."""

    name: ClassVar[str] = "keyword-note"
    version: ClassVar[str] = __version__
    description: ClassVar[str] = "Write a short note mentioning the user's keywords."
    task_desc: ClassVar[str] = "short note writing"
    artefact_type: ClassVar[str | None] = "document"
    default_metrics: ClassVar[Mapping[str, float]] = {"keyword_recall": 1.0}
    default_user: ClassVar[str | None] = "shard-user"  # reveals the keywords one by one
    Options: ClassVar[type[ComponentOptions]] = TaskOptions

    def _rows(self) -> list[dict[str, Any]]:
        text = resources.files(__package__).joinpath("data", "notes.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def splits(self) -> Mapping[str, int | None]:
        rows = self._rows()
        return {s: sum(r["split"] == s for r in rows) for s in ("train", "test")}

    def load(self, split: str) -> Sequence[Example]:
        return [
            Example(
                id=f"keyword-note/{r['id']}",
                task=self.name,
                prompt=f"Write a note about {r['topic']} that mentions: {', '.join(r['keywords'])}.",
                reference=" ".join(r["keywords"]),
                metadata={
                    "keywords": r["keywords"],
                    "shards": [f"I need a short note about {r['topic']}."]
                    + [f"Please mention {k}." for k in r["keywords"]],
                },
            )
            for r in self._rows()
            if r["split"] == split
        ]

    def check_success(self, example: Example, answer: str) -> bool | None:
        return _recall(example.metadata["keywords"], answer) == 1.0

    def extract_rule(self, example: Example, conversation: Conversation) -> str | None:
        replies = conversation.by_role("assistant")
        return replies[-1].content if replies else None


def _recall(keywords: Sequence[str], text: str) -> float:
    words = set(re.findall(r"[a-z0-9']+", text.lower()))
    return sum(k.lower() in words for k in keywords) / len(keywords) if keywords else 0.0


class KeywordRecallOptions(ComponentOptions):
    #: Where the keywords come from: example metadata key.
    keywords_key: str = "keywords"


class KeywordRecall(Metric):
    """Fraction of the example's keywords that the extracted document mentions."""

    name: ClassVar[str] = "keyword_recall"
    version: ClassVar[str] = __version__
    needs_artefact: ClassVar[bool] = True
    Options: ClassVar[type[ComponentOptions]] = KeywordRecallOptions

    def compute(self, ctx: ScoringContext) -> Score:
        key: str = self.options.keywords_key  # type: ignore[attr-defined]
        keywords = ctx.example.metadata.get(key) or ctx.example.reference.split()
        if ctx.artefact is None:
            return Score(component=self.name, value=0.0, details={"reason": "no document in the conversation"})
        value = _recall(keywords, ctx.artefact)
        return Score(component=self.name, value=value, details={"keywords": list(keywords)})


@hookimpl
def register_tasks(register):  # type: ignore[no-untyped-def]
    register(KeywordNoteTask)


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(KeywordRecall)
