"""doc-chat task: the Medium hub-schema loader (recency window, token filter, seeded split), goal shards, rule
extraction, the success check and the shipped sample."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from collab_harness_plugins.tasks import doc_chat
from collab_harness_plugins.tasks.doc_chat import DocChatTask, approx_tokens, extract_document, make_shards

from collab_harness import build_plugin_manager
from collab_harness.errors import ConfigError
from collab_harness.testing import TaskContract
from collab_harness.types import Conversation

N = 2000
T0 = datetime(2018, 1, 1, tzinfo=timezone.utc)


def _medium_records() -> list[dict[str, Any]]:
    """2,000 records in the hub schema, timestamps shuffled; every 5th recent one is too long (600 words)."""
    rng = random.Random(1)
    recs: list[dict[str, Any]] = []
    for i in range(N):
        long = i % 5 == 0
        words = 600 if long else 120
        recs.append(
            {
                "title": f"Article {i}",
                "text": f"Paragraph one of article {i}. "
                + "word " * (words // 2)
                + f"\n\nSecond part {i}. "
                + "more " * (words // 2 - 10),
                "url": f"https://medium.com/@writer/article-{i}",
                "authors": "['Writer']",
                # article i is i hours after T0: the most recent are the highest i
                "timestamp": (T0 + timedelta(hours=i)).isoformat(sep=" "),
                "tags": "['Tech', 'Life']",
            }
        )
    recs.append({"title": "No date", "text": "short", "url": "u", "authors": "[]", "timestamp": None, "tags": "[]"})
    rng.shuffle(recs)
    return recs


@pytest.fixture(scope="module")
def medium_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("medium") / "medium.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in _medium_records()))
    return p


def test_recency_and_token_filter(medium_file: Path) -> None:
    task = DocChatTask(source="local", data=str(medium_file))
    examples = [*task.load("train"), *task.load("test")]
    # 2,000 dated records -> the 50 most recent (2.5%), minus the 10 of them over 512 tokens
    idx = sorted(int(e.metadata["title"].split()[1]) for e in examples)
    recent = range(N - 50, N)
    assert idx == [i for i in recent if i % 5 != 0]
    assert all(approx_tokens(e.reference) <= 512 for e in examples)
    assert len(task.load("test")) == 8 and len(task.load("train")) == 32  # 80/20 of the 40 kept


def test_tiktoken_counter_or_clear_error(medium_file: Path) -> None:
    task = DocChatTask(source="local", data=str(medium_file), token_counter="tiktoken")
    try:
        kept = [*task.load("train"), *task.load("test")]
    except ConfigError as e:  # no cached cl100k_base file and no network
        assert "approx" in str(e)
        return
    # 600-word articles exceed 512 cl100k tokens and ~130-word ones do not, whichever counter is used
    approx = DocChatTask(source="local", data=str(medium_file))
    assert sorted(e.id for e in kept) == sorted(e.id for s in ("train", "test") for e in approx.load(s))


def test_split_is_seeded_and_deterministic(medium_file: Path) -> None:
    a = DocChatTask(source="local", data=str(medium_file))
    b = DocChatTask(source="local", data=str(medium_file))
    c = DocChatTask(source="local", data=str(medium_file), seed=1)
    test_a = [e.id for e in a.load("test")]
    assert test_a == [e.id for e in b.load("test")]
    assert set(test_a) != {e.id for e in c.load("test")}
    assert not set(test_a) & {e.id for e in a.load("train")}


def test_hub_record_mapping() -> None:
    rec = {
        "title": "Why Bees Matter",
        "text": "Bees pollinate crops. They matter a lot.\n\nWild bees do much of the work.",
        "url": "https://medium.com/x/bees",
        "authors": "['A']",
        "timestamp": "2020-12-26 03:38:10.479000+00:00",
        "tags": "['Nature', 'Science']",
    }
    task = DocChatTask(source="sample")
    e = task.from_hub_record(rec, 0)
    assert e.id == task.from_hub_record(dict(rec), 7).id and e.id.startswith("doc-chat/")
    assert e.reference == rec["text"] and rec["text"] in e.prompt and "Why Bees Matter" in e.prompt
    assert e.metadata["tags"] == ["Nature", "Science"]
    assert task.extraction_requirement(e)
    shards = task.goal_shards(e)
    assert shards[0].startswith("I want to write a blog post")
    assert "Bees pollinate crops." in shards[1] and "Wild bees" in shards[2]
    assert shards[-1].startswith("Style:") and "500 words" in shards[-1]


def test_shards_for_a_single_block_article() -> None:
    text = " ".join(f"Sentence number {i} says something." for i in range(9))
    shards = make_shards("One block", text)
    assert len(shards) == 1 + 3 + 1  # opening, one point per three sentences, style


def test_extract_rule() -> None:
    article = "Title line\n\n" + "A long paragraph of the draft. " * 30
    revised = "Revised draft.\n\n" + "A better paragraph of the text. " * 30
    conv = Conversation.of(
        ("user", "I want a post."),
        ("assistant", "Sure, what should it cover?"),
        ("user", "Bees."),
        ("assistant", "Here is your article:\n\n" + article + "\n\nWould you like any changes?"),
        ("user", "Shorter intro."),
        ("assistant", revised),
        ("user", "Thanks!"),
        ("assistant", "Glad to help."),
    )
    assert extract_document(conv) == revised.strip()  # the last full draft, not the chit-chat after it
    first_only = Conversation.of(*conv.messages[:4])
    assert extract_document(first_only) == article.strip()  # lead-in and closing question dropped
    short = Conversation.of(("user", "x"), ("assistant", "Tiny."), ("assistant", "A bit longer reply here."))
    assert extract_document(short) == "A bit longer reply here."
    assert extract_document(Conversation.of(("user", "x"))) is None


def test_check_success_threshold() -> None:
    task = DocChatTask(source="sample")
    ex = task.load("test")[0]
    assert task.check_success(ex, ex.reference) is True
    assert task.check_success(ex, "Octopuses change colour quickly.") is False
    assert task.check_success(ex, "") is False
    lenient = DocChatTask(source="sample", success_bleu=0.0)
    assert lenient.check_success(ex, "Octopuses change colour quickly.") is True


def test_shipped_sample_offline() -> None:
    task = DocChatTask()  # conftest sets HF_HUB_OFFLINE=1
    assert task.resolved_source == "sample"
    train, test = task.load("train"), task.load("test")
    assert len(train) + len(test) >= 30 and len(test) > len(train)
    ids = [e.id for e in [*train, *test]]
    assert len(set(ids)) == len(ids) and all(i.startswith("doc-chat/sample-") for i in ids)
    titles = set()
    for e in [*train, *test]:
        n = len(e.reference.split())
        assert 150 <= n <= 350, (e.id, n)
        assert e.reference in e.prompt and e.metadata["tags"] and e.metadata["extraction_requirement"]
        assert len(e.metadata["shards"]) >= 4
        titles.add(e.metadata["title"])
    assert len(titles) == len(ids)


def test_registered() -> None:
    host = build_plugin_manager(strict=True, load_entry_points=False, plugins=[doc_chat])
    task = host.registry.create("task", "doc-chat", {"source": "sample"})
    assert isinstance(task, DocChatTask)
    info = task.info()
    assert info.default_metrics == {"bleu": 1.0, "interactivity": 1.0, "token_amount": 0.0}
    assert info.penalty_lambda == 1e-4 and info.artefact_type == "document"


class TestDocChatContract(TaskContract):
    @pytest.fixture
    def component(self) -> DocChatTask:
        return DocChatTask(source="sample")
