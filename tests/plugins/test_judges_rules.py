"""The offline judge (``model="rules"``): rubric anchors, determinism, parity, accuracy normalisation, no model call."""

from __future__ import annotations

from typing import Any

import pytest
from collab_harness_plugins.judges.llm_judges import OFFLINE_JUDGE, AccuracyJudge, InteractivityJudge
from collab_harness_plugins.judges.rules import content_words, normalise_answer, questions, stem

from collab_harness import Conversation, Example, ScoringContext
from collab_harness.testing import JudgeContract, ToyTask

GOAL = "Write a short poem about the sea that mentions waves and salt."


@pytest.fixture
def ex() -> Example:
    return Example(id="r-1", task="toy", prompt=GOAL, reference="Paris")


def _ctx(ex: Example, conv: Conversation, client: Any = None, **kw: Any) -> ScoringContext:
    return ScoringContext(example=ex, conversation=conv, client=client, task=ToyTask(), **kw)


async def _interactivity(ex: Example, conv: Conversation, **kw: Any) -> Any:
    opts = {"model": OFFLINE_JUDGE, **kw.pop("options", {})}
    return await InteractivityJudge(opts).score(_ctx(ex, conv, **kw))


GOOD = Conversation.of(
    ("user", "I need a poem."),
    ("assistant", "Happy to! What should the poem be about, and how long should it be?"),
    ("user", "About the sea, short, and mention waves and salt."),
    ("assistant", "Here is a short sea poem with waves and salt: Waves roll in, salt on the wind, the sea sings."),
)
NO_QUESTION = Conversation.of(
    ("user", "I need a poem."),
    ("assistant", "Here is a poem: roses are red, violets are blue, sugar is sweet and so are you."),
)
IRRELEVANT = Conversation.of(
    ("user", "I need a poem."),
    ("assistant", "Do you like pizza? What is your favourite colour?"),
    ("user", "Pepperoni. Blue."),
    ("assistant", "Here is a lovely verse: roses are red, violets are blue, sugar is sweet and so are you."),
)
ANSWER_THEN_FOLLOW_UP = Conversation.of(
    ("user", "I need a poem."),
    ("assistant", "Here is a poem: roses are red, violets are blue, sugar is sweet and so are you. "
                  "Would you like a different poem topic?"),
)


# ------------------------------------------------------------------------------------------------ contracts


class TestInteractivityRulesContract(JudgeContract):
    @pytest.fixture
    def component(self) -> InteractivityJudge:
        return InteractivityJudge({"model": OFFLINE_JUDGE})

    @pytest.fixture
    def model_client(self) -> Any:
        return None  # the offline judge needs no client


class TestInteractivityRulesParityContract(JudgeContract):
    @pytest.fixture
    def component(self) -> InteractivityJudge:
        return InteractivityJudge({"model": OFFLINE_JUDGE, "parity": True})


class TestAccuracyRulesContract(JudgeContract):
    @pytest.fixture
    def component(self) -> AccuracyJudge:
        return AccuracyJudge({"model": OFFLINE_JUDGE})

    @pytest.fixture
    def model_client(self) -> Any:
        return None


class TestAccuracyRulesGradedContract(JudgeContract):
    @pytest.fixture
    def component(self) -> AccuracyJudge:
        return AccuracyJudge({"model": OFFLINE_JUDGE, "graded": True})


# ------------------------------------------------------------------------------------------- text helpers


def test_text_helpers() -> None:
    assert stem("waves") == stem("wave") and stem("mentioning") == stem("mentions") == stem("mentioned")
    assert stem("writing") == stem("write") and stem("stories") == stem("story") and stem("running") == "run"
    assert content_words("Could you please tell me about THE Waves?") == {stem("waves")}
    assert questions("Sure. What length? And the tone?\nOk!") == ["What length?", "And the tone?"]


# ----------------------------------------------------------------------------------- interactivity anchors


async def test_no_question_scores_zero(ex: Example) -> None:
    s = await _interactivity(ex, NO_QUESTION)
    assert s.ok and s.value == 0.0
    assert s.details["judge"] == "rules" and s.details["evidence"]["n_questions"] == 0
    assert "no engagement" in s.details["rationale"]


async def test_clarify_then_answer_near_one(ex: Example) -> None:
    s = await _interactivity(ex, GOOD)
    assert s.ok and s.value is not None and s.value >= 0.95
    c = s.details["components"]
    assert c["clarify"] == 1.0 and c["engagement"] == 1.0 and c["precision"] == 1.0
    ev = s.details["evidence"]
    q = ev["turns"][0]["questions"][0]
    assert q["relevant"] and stem("poem") in q["shared_words"]
    assert ev["turns"][1]["builds_on_user"] and ev["first_answer_turn"] == 3
    assert set(ev["goal_words_covered"]) >= {stem(w) for w in ("sea", "waves", "salt", "short", "poem")}


async def test_irrelevant_questions_low(ex: Example) -> None:
    s = await _interactivity(ex, IRRELEVANT)
    assert s.ok and s.value is not None and 0.0 <= s.value < 0.2
    ev = s.details["evidence"]
    assert ev["n_questions"] == 2 and ev["n_relevant_questions"] == 0
    assert s.details["components"]["clarify"] == 0.0


async def test_answer_then_follow_up_is_middle(ex: Example) -> None:
    # A follow-up question after an unclarified answer: some engagement, the key clarification missed.
    s = await _interactivity(ex, ANSWER_THEN_FOLLOW_UP)
    assert s.ok and s.value is not None and 0.3 <= s.value <= 0.7
    assert s.details["components"]["clarify"] == 0.0


async def test_ordering_of_anchors(ex: Example) -> None:
    vals = [(await _interactivity(ex, c)).value for c in (NO_QUESTION, IRRELEVANT, ANSWER_THEN_FOLLOW_UP, GOOD)]
    assert vals == sorted(vals) and vals[0] == 0.0 and vals[-1] > 0.9


async def test_fully_informed_user_needs_no_clarification(ex: Example) -> None:
    conv = Conversation.of(
        ("user", GOAL),
        ("assistant", "Waves of salt upon the sea, a short poem: the tide goes out. Should the poem rhyme more?"),
    )
    s = await _interactivity(ex, conv)
    assert s.details["evidence"]["informed_before_answer"] is True and s.details["components"]["clarify"] == 1.0
    assert s.value is not None and s.value >= 0.95


async def test_forward_part_only_with_history_context(ex: Example) -> None:
    # Graded from index 2: the clarifying question sits in the history (context), the forward part answers and
    # follows up; answering right after the clarification earns the clarify credit.
    conv = Conversation.of(*GOOD.messages, ("assistant", "Would you like the sea poem longer or with more salt?"))
    s = await _interactivity(ex, conv, forward_start=2)
    assert s.ok and s.details["forward_start"] == 2
    turns = s.details["evidence"]["turns"]
    assert [t["turn"] for t in turns] == [3, 4]  # only forward assistant turns are graded
    assert s.details["components"]["clarify"] == 1.0
    # The same forward part without a question in it scores 0: nothing asked or checked in the graded part.
    s0 = await _interactivity(ex, GOOD, forward_start=2)
    assert s0.ok and s0.value == 0.0


async def test_unjudgeable_fails_not_zero(ex: Example) -> None:
    for conv, fs in ((Conversation(), 0), (GOOD, 4), (Conversation.of(("user", "hi")), 0)):
        s = await _interactivity(ex, conv, forward_start=fs)
        assert s.value is None and s.error and "no assistant message" in s.error
        assert s.component == "interactivity" and s.details["judge"] == "rules"


async def test_deterministic(ex: Example) -> None:
    a = await _interactivity(ex, GOOD)
    b = await InteractivityJudge({"model": "rules"}).score(_ctx(ex, GOOD))
    assert a == b


async def test_parity_mapping(ex: Example) -> None:
    for conv in (NO_QUESTION, IRRELEVANT, ANSWER_THEN_FOLLOW_UP, GOOD):
        plain = await _interactivity(ex, conv)
        par = await _interactivity(ex, conv, options={"parity": True})
        s = plain.value
        assert s is not None and par.value is not None
        assert par.details["raw_score"] == pytest.approx(1 + 2 * s)
        assert par.value == pytest.approx(2 * (1 + 2 * s - 2.5))  # = 4s - 3
        assert par.details["value_range"] == [-3.0, 1.0] and par.details["parity"] is True
    assert (await _interactivity(ex, NO_QUESTION, options={"parity": True})).value == -3.0
    # Parity switched on per call through the context.
    via_ctx = await _interactivity(ex, GOOD, extra={"parity": True})
    assert via_ctx.details["parity"] is True and via_ctx.value is not None and via_ctx.value > 0.8


async def test_no_model_call(ex: Example, model_client: Any) -> None:
    # A real client is present but must stay untouched; an unknown model string would fail if it were used.
    await InteractivityJudge({"model": "rules"}).score(_ctx(ex, GOOD, client=model_client))
    await AccuracyJudge({"model": "rules"}).score(_ctx(ex, GOOD, client=model_client, artefact="Paris"))
    totals = model_client.usage.totals()
    assert totals["calls"] == 0 and totals["provider_calls"] == 0 and totals["errors"] == 0


def test_default_model_unchanged() -> None:
    assert InteractivityJudge().options.model == "local/smollm2"
    assert AccuracyJudge().options.model == "local/smollm2"


# ---------------------------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize(("answer", "reference"), [
    ("\\boxed{42}", "42"),
    ("The answer is Paris.", "Paris"),
    ("Final answer: $\\frac{1}{2}$", "0.5"),
    ("1,000 apples", "1000 apples"),
    ("x = 3", "3"),
    ("42.0", "42"),
    ("\\boxed{\\text{Paris}}", "paris"),
    ("So the answer is  the   Eiffel Tower!", "Eiffel tower"),
    ("We get 12 in total, hence \\boxed{12}.", "The total is computed as 7 + 5 = \\boxed{12}"),
])
def test_normalisation_matches(answer: str, reference: str) -> None:
    assert normalise_answer(answer) == normalise_answer(reference, lead_phrases=False)


@pytest.mark.parametrize(("answer", "reference"), [("Lyon", "Paris"), ("41", "42"), ("1/3", "0.5")])
def test_normalisation_differs(answer: str, reference: str) -> None:
    assert normalise_answer(answer) != normalise_answer(reference, lead_phrases=False)


async def _accuracy(ex: Example, answer: str | None, conv: Conversation = GOOD, **opts: Any) -> Any:
    return await AccuracyJudge({"model": OFFLINE_JUDGE, **opts}).score(_ctx(ex, conv, artefact=answer))


async def test_accuracy_binary(ex: Example) -> None:
    ok = await _accuracy(ex, "The answer is Paris.")
    assert ok.value == 1.0 and ok.details["evidence"]["match"] == "exact" and ok.details["judge"] == "rules"
    assert ok.details["answer_source"] == "artefact"
    wrong = await _accuracy(ex, "Lyon")
    assert wrong.ok and wrong.value == 0.0 and wrong.details["evidence"]["f1"] == 0.0
    hedged = await _accuracy(ex, "Paris or Lyon")  # F1 0.5 < 0.8
    assert hedged.value == 0.0 and hedged.details["evidence"]["f1"] == 0.5


async def test_accuracy_graded_and_threshold() -> None:
    ex = Example(id="r-2", task="toy", prompt="Name the tower.", reference="the Eiffel Tower in Paris")
    graded = await _accuracy(ex, "Eiffel Tower", graded=True)
    # tokens eiffel tower | eiffel tower in paris: P = 1, R = 0.5, F1 = 2/3.
    assert graded.value == pytest.approx(0.6667) and graded.details["evidence"]["match"] == "f1"
    assert (await _accuracy(ex, "Eiffel Tower")).value == 0.0
    assert (await _accuracy(ex, "Eiffel Tower", rules_f1_threshold=0.6)).value == 1.0
    # Parity is always binary, even with graded set.
    par = await AccuracyJudge({"model": OFFLINE_JUDGE, "graded": True, "parity": True}).score(
        _ctx(ex, GOOD, artefact="Eiffel Tower"))
    assert par.value == 0.0 and par.details["evidence"]["graded"] is False


async def test_accuracy_falls_back_to_last_forward_assistant_message(ex: Example) -> None:
    conv = Conversation.of(("user", "Capital of France?"), ("assistant", "It is Lyon."), ("user", "Sure?"),
                           ("assistant", "Sorry: the answer is Paris."))
    s = await _accuracy(ex, None, conv)
    assert s.value == 1.0 and s.details["answer_source"] == "last_assistant_message"
    s = await _accuracy(ex, "", conv.model_copy(update={"messages": conv.messages[:2]}))
    assert s.value == 0.0


async def test_accuracy_unjudgeable_fails(ex: Example) -> None:
    s = await _accuracy(ex.model_copy(update={"reference": "  "}), "Paris")
    assert s.value is None and "no reference" in (s.error or "") and s.component == "accuracy"
    s = await _accuracy(ex, None, Conversation.of(("user", "hi")))
    assert s.value is None and "no assistant answer" in (s.error or "")
