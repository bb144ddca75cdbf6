"""clarify_or_answer: 1.0 iff the first assistant reply asks for clarification exactly on ambiguous input."""

from __future__ import annotations

import pytest
from collab_harness_plugins.metrics import clarify_or_answer
from collab_harness_plugins.metrics.clarify_or_answer import ClarifyOrAnswerMetric, detect_clarification
from collab_harness_plugins.tasks.abg_coqa import AbgCoQATask

from collab_harness import build_plugin_manager
from collab_harness.components import ScoringContext
from collab_harness.testing import MetricContract
from collab_harness.types import Conversation, Example

CLARIFY = "Happy to help! Do you mean the cat or the dog?"
ANSWER = "Her cat is called Pepper."


def _ex(ambiguous: bool | None) -> Example:
    meta = {} if ambiguous is None else {"ambiguous": ambiguous}
    return Example(id="abg-coqa/t", task="abg-coqa", prompt="story + question", reference="Pepper", metadata=meta)


def _conv(*replies: str) -> Conversation:
    msgs: list[tuple[str, str]] = []
    for r in replies:
        msgs += [("user", "What is the name of her pet?"), ("assistant", r)]
    return Conversation.of(*msgs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ambiguous", "reply", "want", "asked"),
    [
        (True, CLARIFY, 1.0, True),  # ambiguous, asks: right
        (True, ANSWER, 0.0, False),  # ambiguous, answers straight away: wrong
        (False, ANSWER, 1.0, False),  # clear, answers: right
        (False, CLARIFY, 0.0, True),  # clear, asks anyway: wrong
    ],
)
def test_four_cases(ambiguous: bool, reply: str, want: float, asked: bool) -> None:
    s = ClarifyOrAnswerMetric().compute(ScoringContext(example=_ex(ambiguous), conversation=_conv(reply)))
    assert s.value == want
    assert s.details["asked_clarification"] is asked and s.details["ambiguous"] is ambiguous


def test_reads_the_first_reply_by_default_and_the_forward_one_on_request() -> None:
    conv = _conv(CLARIFY, ANSWER)  # asked first, answered after the user clarified
    ctx = ScoringContext(example=_ex(True), conversation=conv, forward_start=3)
    assert ClarifyOrAnswerMetric().compute(ctx).value == 1.0
    assert ClarifyOrAnswerMetric(reply="forward").compute(ctx).value == 0.0


@pytest.mark.parametrize(
    "reply",
    [
        "Are you asking about Tom's sister or his mother?",
        "Which bakery are you asking about?",
        "Could you clarify whether you mean the morning walk?",
        "Please clarify which trip you mean.",
        "Is it the red car or the blue one?",
        "Do you want to know her age?",
    ],
)
def test_detects_clarification(reply: str) -> None:
    assert detect_clarification(reply).asked


@pytest.mark.parametrize(
    "reply",
    [
        "The answer is Paris.",
        "She went to the park. Hope this helps! Anything else?",
        "He was twelve. Would you like to know more about him?",
        "Why did she leave? Because she was tired.",
        "",
    ],
)
def test_answers_are_not_clarification(reply: str) -> None:
    assert not detect_clarification(reply).asked


def test_failures_are_named() -> None:
    m = ClarifyOrAnswerMetric()
    no_label = m.compute(ScoringContext(example=_ex(None), conversation=_conv(ANSWER)))
    assert no_label.value is None and "ambiguous" in (no_label.error or "")
    no_reply = m.compute(ScoringContext(example=_ex(True), conversation=Conversation()))
    assert no_reply.value is None and "abg-coqa/t" in (no_reply.error or "")


def test_scores_the_shipped_sample_sensibly() -> None:
    # Asking the sample's own clarification question is right exactly on the ambiguous examples.
    m = ClarifyOrAnswerMetric()
    for ex in AbgCoQATask(source="sample").load("test"):
        reply = ex.metadata["clarification_question"] or f"The answer: {ex.reference}"
        s = m.compute(ScoringContext(example=ex, conversation=_conv(reply)))
        assert s.value == 1.0, (ex.id, reply)


def test_registered() -> None:
    host = build_plugin_manager(strict=True, load_entry_points=False, plugins=[clarify_or_answer])
    assert isinstance(host.registry.create("metric", "clarify_or_answer"), ClarifyOrAnswerMetric)


class TestClarifyOrAnswerContract(MetricContract):
    @pytest.fixture
    def component(self) -> ClarifyOrAnswerMetric:
        return ClarifyOrAnswerMetric()

    @pytest.fixture
    def example(self) -> Example:
        return AbgCoQATask(source="sample").load("test")[1]
