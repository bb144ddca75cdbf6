"""``doc-chat``: document creation, MediumDocEdit-Chat (SPEC §3).

The user wants an article of fewer than 500 words on a title; the simulator holds the real Medium article as its
goal and the assistant's final document is scored by word-level BLEU against it.

Data (hub ``Kamaljp/medium_articles``; records ``title, text, url, authors, timestamp, tags``), as in the paper:
records without a parseable timestamp are dropped, the most recent 2.5% (by timestamp; url, then title break ties)
are kept, articles over 512 tokens are dropped, and the rest is split by a seeded shuffle 80/20 into train / test
(≈ 2% / 0.5% of the full set). A local file in the hub schema goes through the same filter.

Token counting: ``token_counter="approx"`` (default) counts whitespace words × 1.3 (rounded up), a common ratio
of cl100k tokens to English words; it is deterministic and needs no download. On this project's sample articles
(plain prose) it overestimates cl100k counts by 6–17% (mean 12%), so it is conservative near the 512 limit.
``"tiktoken"`` uses cl100k_base like the reference code; it needs the encoding file cached locally (tiktoken
fetches it on first use), else a ConfigError says to use ``"approx"``.

Differences from the reference code, on purpose: it took the most recent 0.5% as test and the 2% before it as
train, then dropped long articles in each; we take the most recent 2.5%, drop long articles, and split the kept
ones by a seeded shuffle (SPEC §3: "train 2%, test 0.5% (seeded)").
"""

from __future__ import annotations

import ast
import hashlib
import math
import random
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from collab_harness import hookimpl
from collab_harness.components import ComponentOptions, TaskOptions
from collab_harness.errors import ConfigError
from collab_harness.types import Conversation, Example

from ._common import DatasetTask, ExampleMetadata, StrictRecord

__all__ = [
    "DocChatMetadata",
    "DocChatOptions",
    "DocChatTask",
    "MediumRecord",
    "approx_tokens",
    "extract_document",
    "make_shards",
]

EXTRACTION_REQUIREMENT = (
    "Return the complete final article only (title line allowed), merging every revision the user accepted; "
    "no commentary before or after it."
)


class DocChatOptions(TaskOptions):
    token_counter: Literal["approx", "tiktoken"] = "approx"
    max_tokens: int = 512
    #: Share of the (timestamped) full set kept, the most recent first.
    recent_fraction: float = 0.025
    #: Share of the kept articles that go to test (0.2 of 2.5% = 0.5% of the full set).
    test_share: float = 0.2
    #: Word-BLEU (0–1) at which ``check_success`` says the document meets the goal.
    success_bleu: float = 0.5


class MediumRecord(StrictRecord):
    """One record of ``Kamaljp/medium_articles``. ``title``, ``text`` and ``timestamp`` must be present (null is
    allowed: such records are dropped by the filter), so a file with other column names is an error, not an empty
    task. ``authors`` and ``tags`` are Python-literal strings on the hub; lists are accepted too."""

    title: str | None
    text: str | None
    timestamp: str | datetime | int | float | None
    url: str | None = None
    authors: str | list[str] | None = None
    tags: str | list[str] | None = None


class DocChatMetadata(ExampleMetadata):
    title: str | None = None
    tags: list[str] | None = None
    url: str | None = None
    timestamp: str | None = None


def approx_tokens(text: str) -> int:
    """Tokenizer-free token estimate: whitespace words × 1.3, rounded up."""
    return math.ceil(len(text.split()) * 1.3)


def _tiktoken_counter() -> Any:
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base")
    except Exception as e:  # offline without a cached encoding file, or tiktoken missing
        raise ConfigError(
            f"task 'doc-chat': token_counter='tiktoken' needs the cl100k_base encoding, which could not be loaded "
            f"({type(e).__name__}); use token_counter='approx' offline"
        ) from e
    return lambda s: len(enc.encode(s, disallowed_special=()))


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)):
        dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    # Naive timestamps are taken as UTC so that mixed records still compare.
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        v = value.strip()
        if v.startswith("["):
            try:
                return [str(t) for t in ast.literal_eval(v)]
            except (ValueError, SyntaxError):
                pass
        return [t.strip() for t in v.split(",") if t.strip()]
    return [str(t) for t in value]


def _paragraphs(text: str) -> list[str]:
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paras) > 1:
        return paras
    # One block of text: group its sentences by three so the shards still walk through the article.
    sents = _sentences(text)
    return [" ".join(sents[i : i + 3]) for i in range(0, len(sents), 3)]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def _key_point(paragraph: str, max_words: int = 45) -> str:
    sents = _sentences(paragraph)
    point = " ".join(sents[:2]) if len(" ".join(sents[:2]).split()) <= max_words else sents[0]
    words = point.split()
    return point if len(words) <= max_words else " ".join(words[:max_words]) + " ..."


def make_shards(title: str, text: str, tags: Sequence[str] = ()) -> list[str]:
    """Ordered goal pieces for ``shard-user``: a vague opening, one key point per paragraph, style preferences."""
    shards = [f'I want to write a blog post, working title "{title.strip()}". Can you help me?']
    for i, para in enumerate(_paragraphs(text), 1):
        if para.startswith("#") or len(para.split()) < 4:
            continue  # headings and one-word lines carry no key point
        lead = "It should open with this idea" if i == 1 else "Another point I want in it"
        shards.append(f"{lead}: {_key_point(para)}")
    n_words = len(text.split())
    tag_text = f" for readers interested in {', '.join(tags[:3])}" if tags else ""
    shards.append(
        f'Style: keep it under 500 words (about {n_words}), titled "{title.strip()}", written in a clear, '
        f"conversational Medium tone{tag_text}, with short paragraphs."
    )
    return shards


def make_prompt(title: str, text: str) -> str:
    return (
        f'Write an article of fewer than 500 words titled "{title.strip()}".\n\n'
        "The article you have in mind (your goal: the finished document should match it in content, order and "
        f"tone):\n\n{text.strip()}"
    )


def _is_chatter(paragraph: str, *, ending: str, max_words: int) -> bool:
    return paragraph.rstrip().endswith(ending) and len(paragraph.split()) < max_words


def extract_document(conversation: Conversation, min_words: int = 100) -> str | None:
    """The document in a conversation, by rule.

    The *last* assistant message of at least ``min_words`` words is taken (a later full draft supersedes earlier
    ones); when none is that long, the longest assistant message. A short lead-in ending in ":" ("Sure! Here is
    the article:") and a short closing question ("Would you like any changes?") are dropped. None without any
    assistant message. Limit: a long final message that only discusses the draft would be taken as the document.
    """
    replies = [m.content for m in conversation.messages if m.role == "assistant" and m.content.strip()]
    if not replies:
        return None
    long_ones = [r for r in replies if len(r.split()) >= min_words]
    doc = long_ones[-1] if long_ones else max(replies, key=lambda r: len(r.split()))
    paras = [p for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]
    if len(paras) > 1 and _is_chatter(paras[0], ending=":", max_words=25):
        paras = paras[1:]
    if len(paras) > 1 and _is_chatter(paras[-1], ending="?", max_words=40):
        paras = paras[:-1]
    return "\n\n".join(p.strip() for p in paras)


class DocChatTask(DatasetTask):
    """Write a Medium-style article (< 500 words) with a user who holds the real article as the goal."""

    name: ClassVar[str] = "doc-chat"
    description: ClassVar[str] = "MediumDocEdit-Chat: co-write an article on a title; scored by BLEU vs the original"
    task_desc: ClassVar[str] = "document creation"
    artefact_type: ClassVar[str | None] = "document"
    default_metrics: ClassVar[Mapping[str, float]] = {"bleu": 1.0, "interactivity": 1.0, "token_amount": 0.0}
    penalty_lambda: ClassVar[float] = 1e-4
    Options: ClassVar[type[ComponentOptions]] = DocChatOptions

    hub_id: ClassVar[str] = "Kamaljp/medium_articles"
    #: A local copy of the Medium data gets the same recency window, token filter and split as the hub.
    partition_local_files: ClassVar[bool] = True
    sample_file: ClassVar[str] = "doc_chat.jsonl"
    HubRecord: ClassVar[type[BaseModel] | None] = MediumRecord
    Metadata: ClassVar[type[BaseModel]] = DocChatMetadata

    # ------------------------------------------------------------------------------------------------ data
    def _count_tokens(self) -> Any:
        opts: Any = self.options
        return _tiktoken_counter() if opts.token_counter == "tiktoken" else approx_tokens

    def hub_partition(self, raw: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[Mapping[str, Any]]]:
        """Recency window, token filter, then a seeded 80/20 split (see the module docstring)."""
        opts: Any = self.options
        records = [r for split in raw.values() for r in split]
        dated = [(t, r) for r in records if (t := _parse_time(r.get("timestamp"))) is not None]
        dated.sort(key=lambda tr: (tr[0], str(tr[1].get("url") or ""), str(tr[1].get("title") or "")))
        keep_n = int(len(dated) * opts.recent_fraction)
        recent = [r for _, r in dated[len(dated) - keep_n :]] if keep_n else []
        count = self._count_tokens()
        kept = [r for r in recent if r.get("text") and r.get("title") and count(str(r["text"])) <= opts.max_tokens]
        order = list(range(len(kept)))
        random.Random(opts.seed).shuffle(order)
        n_test = round(len(kept) * opts.test_share)
        test_idx = sorted(order[:n_test])
        train_idx = sorted(order[n_test:])
        return {"train": [kept[i] for i in train_idx], "test": [kept[i] for i in test_idx]}

    def from_hub_record(self, record: Mapping[str, Any], index: int) -> Example:
        title = str(record.get("title") or "").strip()
        text = str(record.get("text") or "").strip()
        key = str(record.get("url") or "") or title
        tags = _tags(record.get("tags"))
        return Example(
            id=f"doc-chat/{hashlib.sha1(key.encode('utf-8')).hexdigest()[:12]}",
            task=self.name,
            prompt=make_prompt(title, text),
            reference=text,
            metadata={
                "title": title,
                "tags": tags,
                "url": record.get("url"),
                "timestamp": str(record.get("timestamp")) if record.get("timestamp") is not None else None,
                "extraction_requirement": EXTRACTION_REQUIREMENT,
                "shards": make_shards(title, text, tags),
            },
        )

    # ---------------------------------------------------------------------------------------------- goal
    def check_success(self, example: Example, answer: str) -> bool | None:
        """Word-BLEU (0–1) of ``answer`` vs the article ≥ ``success_bleu`` (default 0.5).

        0.5 means the draft follows the article closely, sentence by sentence; a good draft written from the
        revealed key points usually scores 0.1–0.3, so ``shard-user`` mostly ends because its shards run out, and
        says it is satisfied only when the document really is the one it had in mind.
        """
        from collab_harness_plugins.metrics.text import word_bleu

        if not example.reference or not answer.strip():
            return False
        opts: Any = self.options
        return word_bleu(answer, example.reference).value >= opts.success_bleu

    def extract_rule(self, example: Example, conversation: Conversation) -> str | None:
        return extract_document(conversation)


@hookimpl
def register_tasks(register: Any) -> None:
    register(DocChatTask)
