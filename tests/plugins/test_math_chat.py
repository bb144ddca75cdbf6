"""math-chat task: boxed-answer parsing, goal shards, the shipped sample, the hub loader (on a local file in the
hub's schema), rule extraction and the success check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from collab_harness_plugins.tasks import math_chat
from collab_harness_plugins.tasks._common import read_records, sample_path
from collab_harness_plugins.tasks.math_chat import (
    MathChat,
    conversation_final_answer,
    extract_final_answer,
    last_boxed,
    make_shards,
)

from collab_harness import build_plugin_manager
from collab_harness.testing import TaskContract
from collab_harness.types import Conversation, Example


class TestMathChatContract(TaskContract):
    @pytest.fixture
    def component(self) -> MathChat:
        return MathChat(source="sample")


# ------------------------------------------------------------------------------------------ boxed parsing


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("so $x = \\boxed{5}$.", "5"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("nested \\boxed{\\frac{\\sqrt{3}}{2}} ok", "\\frac{\\sqrt{3}}{2}"),
        ("set \\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("\\fbox{7} is it", "7"),
        ("brace-less \\boxed 9$", "9"),
        ("\\boxed{(-2,3]}", "(-2,3]"),
        ("good \\boxed{4} then broken \\boxed{3", "4"),
        ("no box at all: 42", None),
        ("empty \\boxed{}", None),
    ],
)
def test_last_boxed(text: str, want: str | None) -> None:
    assert last_boxed(text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Therefore the answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("Final answer: 42", "42"),
        ("The answer is 7. I hope this helps.", "7"),
        ("We get \\boxed{3} (the answer is 4).", "3"),  # an aside after a box is not a correction
        ("I am not sure yet, could you tell me more?", None),
        # The last final statement wins: a later explicit "final answer" beats an earlier box (issue 12) ...
        ("So \\boxed{239}. Wait, I miscounted: the final answer is 240.", "240"),
        ("First try: $\\boxed{239}$\n\n**Final Answer:** 240", "240"),
        ("\\boxed{239}\n\nFinal answer: $\\frac{1}{2}$", "\\frac{1}{2}"),
        # ... and a later box beats an earlier statement; a statement holding a box reads the box.
        ("The final answer is 239. Hmm, rechecking the last step: \\boxed{240}", "240"),
        ("The final answer is $\\boxed{240}$.", "240"),
        ("Final answer:\n\n\\[\\boxed{7}\\]", "7"),
        ("The final answer is No.", "No"),
    ],
)
def test_extract_final_answer(text: str, want: str | None) -> None:
    assert extract_final_answer(text) == want


# ------------------------------------------------------------------------------------------- goal shards


def test_shards_order_opening_conditions_question_preferences() -> None:
    problem = (
        "A box holds $3.5$ kg of sand. Each scoop removes $0.25$ kg. How many scoops empty the box? "
        "Express your answer as an integer."
    )
    shards = make_shards(problem, "Prealgebra")
    assert shards[0] == "I need help with a prealgebra problem."
    assert shards[1] == "A box holds $3.5$ kg of sand."  # decimals inside math are not sentence ends
    assert shards[2] == "Each scoop removes $0.25$ kg."
    assert shards[3] == "How many scoops empty the box?"
    assert shards[4] == "Express your answer as an integer."
    assert "simplest form" in shards[-1]


def test_shards_question_first_and_math_with_periods() -> None:
    problem = "Find $x$ if $x \\cdot 2. = 6$ and $x > 0$. Assume $x$ is real."
    shards = make_shards(problem, "Counting & Probability")
    assert shards[0] == "I need help with a counting and probability problem."
    # The condition keeps its place before the question; the question is the sentence that asks.
    assert shards[1:3] == ["Assume $x$ is real.", "Find $x$ if $x \\cdot 2. = 6$ and $x > 0$."]


def test_shards_single_format_sentence_is_the_question() -> None:
    shards = make_shards("Express $0.\\overline{4}$ as a common fraction.", "Number Theory")
    assert shards[1] == "Express $0.\\overline{4}$ as a common fraction."
    assert shards[0].startswith("I need help with a number theory")


def test_shards_cover_the_whole_problem() -> None:
    for e in MathChat(source="sample").load("test"):
        joined = " ".join(e.metadata["shards"][1:])
        for word in e.prompt.split():
            assert word in joined, (e.id, word)


# ------------------------------------------------------------------------------------------ offline sample


def test_sample_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = MathChat()
    assert task.resolved_source == "sample"
    sizes = task.splits()
    assert sizes["test"] + sizes["train"] >= 30
    assert sizes["test"] > sizes["train"] > 0
    types = set()
    for split in ("train", "test"):
        for e in task.load(split):
            assert e.id.startswith("math-chat/sample-")
            assert e.reference == last_boxed(e.metadata["solution"]), e.id
            assert e.metadata["level"] == "Level 5"
            assert e.metadata["extraction_requirement"]
            assert e.metadata["shards"][0].startswith("I need help with")
            assert task.goal_shards(e) == list(e.metadata["shards"])
            # The shipped shards are what the hub loader would compute for the same problem.
            assert list(e.metadata["shards"]) == make_shards(e.prompt, e.metadata["type"]), e.id
            types.add(e.metadata["type"])
    assert types >= {"Algebra", "Counting & Probability", "Geometry", "Number Theory", "Precalculus",
                     "Intermediate Algebra", "Prealgebra"}


def test_sample_file_schema() -> None:
    for r in read_records(sample_path("math_chat.jsonl")):
        assert set(r) == {"id", "task", "split", "prompt", "reference", "metadata"}
        assert r["task"] == "math-chat" and r["split"] in {"train", "test"}
        assert "\\boxed{" in r["metadata"]["solution"], r["id"]


def test_info() -> None:
    info = MathChat(source="sample").info()
    assert info.default_metrics == {"math_accuracy": 1.0, "interactivity": 1.0, "token_amount": 0.0}
    assert info.artefact_type == "answer" and info.penalty_lambda == 5e-4
    assert info.data_source == "sample"


# ---------------------------------------------------------------------------------------------- hub loader


def _hub_records() -> list[dict[str, str]]:
    return [
        {"problem": "Let $a = 2$. Compute $a^{10}$.", "level": "Level 5", "type": "Algebra",
         "solution": "We have $2^{10} = \\boxed{1024}$."},
        {"problem": "What is $\\frac{3}{4} \\div \\frac{9}{8}$? Express your answer as a common fraction.",
         "level": "Level 5", "type": "Prealgebra",
         "solution": "Dividing, $\\frac34\\cdot\\frac89 = \\fbox{$\\frac{2}{3}$}$."},
        {"problem": "Find the set of $x$ with $x^2 = 4$.", "level": "Level 5", "type": "Algebra",
         "solution": "First $\\boxed{x^2=4}$ then $x = \\pm 2$, so the set is $\\boxed{\\{-2, 2\\}}$."},
    ]


def test_hub_schema_local_file(tmp_path: Path) -> None:
    path = tmp_path / "math_hard.jsonl"
    recs = _hub_records()
    splits = ["train", "test", "test"]
    path.write_text("\n".join(json.dumps({**r, "split": s}) for r, s in zip(recs, splits, strict=True)))
    task = MathChat(source="local", data=str(path))
    assert task.splits() == {"train": 1, "test": 2}
    (a,) = task.load("train")
    b, c = task.load("test")
    assert a.reference == "1024"
    assert b.reference == "$\\frac{2}{3}$"
    assert c.reference == "\\{-2, 2\\}"  # the last box, not the first
    assert a.id == "math-chat/" + hashlib.sha1(recs[0]["problem"].encode()).hexdigest()[:12]
    assert a.metadata["shards"] == ["I need help with an algebra problem.", "Let $a = 2$.", "Compute $a^{10}$.",
                                    "Please give the final answer in simplest form."]
    assert b.metadata["shards"][-2] == "Express your answer as a common fraction."
    assert a.metadata["solution"] == recs[0]["solution"] and a.metadata["type"] == "Algebra"
    # Ids depend only on the problem text: reloading (another machine, another order) gives the same ids.
    path.write_text("\n".join(json.dumps(r) for r in reversed(recs)))
    again = MathChat(source="local", data=str(path))
    assert {e.id for e in again.load("test")} == {a.id, b.id, c.id}


def test_hub_partition_uses_hub_splits() -> None:
    task = MathChat(source="sample")
    recs = _hub_records()
    parts = task.hub_partition({"train": recs[:1], "test": recs[1:]})
    assert [len(parts["train"]), len(parts["test"])] == [1, 2]


# ------------------------------------------------------------------------------ extraction and success


def test_extract_rule() -> None:
    task = MathChat(source="sample")
    e = task.load("test")[0]
    conv = Conversation.of(
        ("user", "help"), ("assistant", "Maybe \\boxed{120}?"), ("user", "sure?"),
        ("assistant", "Let me recheck: the term is $6n+2$, so \\boxed{122}."), ("user", "thanks"),
        ("assistant", "You're welcome!"),
    )
    assert task.extract_rule(e, conv) == "122"
    prose = Conversation.of(("user", "help"), ("assistant", "The answer is 122."))
    assert task.extract_rule(e, prose) == "122"
    assert task.extract_rule(e, Conversation.of(("user", "help"), ("assistant", "What do you mean?"))) is None
    assert task.extract_rule(e, Conversation()) is None


def test_stale_box_reads_the_later_answer() -> None:
    """Issue 12: "\\boxed{239}" earlier, "the final answer is 240" later reads 240, in one message or across
    messages, and a later plain "the answer is" in a new message is a correction too."""
    task = MathChat(source="sample")
    e = task.load("test")[0]
    one = Conversation.of(("user", "help"), ("assistant", "So \\boxed{239}. Wait: the final answer is 240."))
    assert task.extract_rule(e, one) == "240"
    across = Conversation.of(
        ("user", "help"), ("assistant", "It is \\boxed{239}."), ("user", "Are you sure? Check the last step."),
        ("assistant", "You're right, I dropped a term. The final answer is 240."), ("user", "thanks"),
        ("assistant", "Glad to help!"),
    )
    assert task.extract_rule(e, across) == "240"
    plain = Conversation.of(("user", "help"), ("assistant", "\\boxed{239}"), ("user", "sure?"),
                            ("assistant", "Sorry, the answer is 240."))
    assert task.extract_rule(e, plain) == conversation_final_answer(plain) == "240"
    # A user message never states the assistant's answer.
    assert task.extract_rule(e, Conversation.of(("assistant", "\\boxed{239}"), ("user", "The final answer is 1"))) \
        == "239"


def test_check_success() -> None:
    task = MathChat(source="sample")
    half = next(e for s in ("train", "test") for e in task.load(s) if e.reference == "\\frac{1}{2}")
    assert task.check_success(half, "So the probability is \\boxed{0.5}.") is True
    assert task.check_success(half, "1/2") is True
    assert task.check_success(half, "The answer is \\boxed{\\frac{1}{3}}") is False
    assert task.check_success(half, "Could you clarify what the dice look like? " * 20) is False
    # A chatty reply is not a bare answer: it is not even sent to the checker.
    assert not math_chat._looks_like_bare_answer("Could you give me 0.5 seconds to think?")
    assert task.check_success(half, "Could you give me 0.5 seconds to think?") is False
    for bare in ("1/2", "x = 1/2", "\\frac{1}{2}", "\\text{Monday}", "(0, 1]"):
        assert math_chat._looks_like_bare_answer(bare), bare
    assert task.check_success(half, "x = 1/2") is True
    # The stale-box rule holds in the success check too (the shard user's "am I satisfied" test).
    assert task.check_success(half, "\\boxed{\\frac{1}{3}} ... no: the final answer is $\\frac{1}{2}$.") is True
    assert task.check_success(half, "The final answer is 1/2. On reflection: \\boxed{\\frac{1}{3}}") is False


def test_check_success_on_prose_references() -> None:
    task = MathChat(source="sample")
    no = Example(id="prose-no", task="math-chat", prompt="Is 91 prime?", reference="No")
    assert task.check_success(no, "No") is True
    assert task.check_success(no, "The final answer is no.") is True
    assert task.check_success(no, "On") is False  # math-verify alone: N*o == O*n


def test_registered_through_entry_point() -> None:
    host = build_plugin_manager(strict=True, load_entry_points=False, plugins=[math_chat])
    task = host.registry.create("task", "math-chat", {"source": "sample"})
    assert isinstance(task, MathChat)
