"""``interactivity`` and ``accuracy`` judges, driven by scripted models through the real model client."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from collab_harness_plugins.judges.llm_judges import AccuracyJudge, InteractivityJudge, parity_rescale

from collab_harness import Conversation, Example, ScoringContext
from collab_harness.testing import JudgeContract, ToyTask


def _verdict(score: Any, rationale: str = "asked about the key missing details") -> str:
    return json.dumps({"rationale": rationale, "score": score})


class _Recorder:
    """A scripted model body that records every call and serves replies in order (the last one repeats)."""

    def __init__(self, *replies: str) -> None:
        self.replies = replies
        self.calls: list[Sequence[Mapping[str, str]]] = []

    def __call__(self, messages: Sequence[Mapping[str, str]], params: Any, sample_index: int) -> str:
        self.calls.append(messages)
        return self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]

    @property
    def prompt(self) -> str:
        return "\n".join(m["content"] for m in self.calls[-1])


@pytest.fixture
def client() -> Any:
    from collab_harness.models.client import Client

    return Client(use_cache=False)


@pytest.fixture
def ex() -> Example:
    return Example(id="j-1", task="toy", prompt="Write a poem mentioning waves and salt.", reference="waves salt")


CONV = Conversation.of(
    ("user", "I need a poem."),
    ("assistant", "Happy to! What should it be about, and how long?"),
    ("user", "The sea. Short."),
    ("assistant", "Waves and salt, a short sea poem: ..."),
)


def _ctx(ex: Example, client: Any, conv: Conversation = CONV, **kw: Any) -> ScoringContext:
    return ScoringContext(example=ex, conversation=conv, client=client, task=ToyTask(), **kw)


class TestInteractivityContract(JudgeContract):
    @pytest.fixture
    def component(self, scripted_model: Any) -> InteractivityJudge:
        return InteractivityJudge({"model": scripted_model(_verdict(0.5))})


class TestAccuracyContract(JudgeContract):
    @pytest.fixture
    def component(self, scripted_model: Any) -> AccuracyJudge:
        return AccuracyJudge({"model": scripted_model(_verdict(1))})


async def test_interactivity_success(scripted_model: Any, client: Any, ex: Example) -> None:
    rec = _Recorder(_verdict(0.5))
    model = scripted_model(rec)
    score = await InteractivityJudge({"model": model}).score(_ctx(ex, client))
    assert score.ok and score.value == 0.5 and score.component == "interactivity"
    assert score.details["rationale"] == "asked about the key missing details"
    assert score.details["model"] == model and score.details["attempts"] == 1 and '"score"' in score.details["raw"]
    assert len(rec.calls) == 1
    # The prompt holds the task description and the whole transcript, with no context/forward split at 0.
    assert "short writing" in rec.prompt and "What should it be about" in rec.prompt
    assert "PART TO GRADE" not in rec.prompt


async def test_forward_part_marked(scripted_model: Any, client: Any, ex: Example) -> None:
    rec = _Recorder(_verdict(1.0))
    score = await InteractivityJudge({"model": scripted_model(rec)}).score(_ctx(ex, client, forward_start=2))
    assert score.ok and score.details["forward_start"] == 2
    user_msg = rec.calls[-1][-1]["content"]
    context, graded = user_msg.split("<<<PART TO GRADE")
    assert "What should it be about" in context and "What should it be about" not in graded
    assert "Waves and salt" in graded and "only on the assistant's messages in the part to grade" in user_msg


@pytest.mark.parametrize("judge_cls", [InteractivityJudge, AccuracyJudge])
async def test_malformed_output_fails_after_max_attempts(judge_cls: Any, scripted_model: Any, client: Any,
                                                         ex: Example) -> None:
    rec = _Recorder("I think this deserves a solid 4/5, nice poem.")
    judge = judge_cls({"model": scripted_model(rec), "max_attempts": 3})
    score = await judge.score(_ctx(ex, client, artefact="waves salt"))
    assert not score.ok and score.value is None
    assert score.component == judge.name
    assert "after 3 attempt" in score.error and "solid 4/5" in score.error
    assert score.details["attempts"] == 3 and len(rec.calls) == 3


async def test_malformed_rate_fails(scripted_model: Any, client: Any, ex: Example) -> None:
    judge = InteractivityJudge({"model": scripted_model(_verdict(1.0), malformed_rate=1.0), "max_attempts": 2})
    score = await judge.score(_ctx(ex, client))
    assert score.value is None and score.error and score.details["attempts"] == 2


async def test_out_of_range_rejected(scripted_model: Any, client: Any, ex: Example) -> None:
    rec = _Recorder(_verdict(1.7))
    score = await InteractivityJudge({"model": scripted_model(rec), "max_attempts": 2}).score(_ctx(ex, client))
    assert score.value is None and len(rec.calls) == 2
    # Out of range first, valid on the retry: accepted, with the attempts recorded.
    rec = _Recorder(_verdict(5), _verdict(0.25))
    score = await InteractivityJudge({"model": scripted_model(rec)}).score(_ctx(ex, client))
    assert score.value == 0.25 and score.details["attempts"] == 2


async def test_parity_rescale(scripted_model: Any, client: Any, ex: Example) -> None:
    assert [parity_rescale(s) for s in (1, 2, 2.5, 3)] == [-3.0, -1.0, 0.0, 1.0]
    for raw, want in ((3, 1.0), (2, -1.0), (1, -3.0)):
        rec = _Recorder(_verdict(raw))
        judge = InteractivityJudge({"model": scripted_model(rec), "parity": True})
        assert judge.value_range == (-3.0, 1.0) and InteractivityJudge.value_range == (0.0, 1.0)
        score = await judge.score(_ctx(ex, client))
        assert score.value == want and score.details["raw_score"] == raw and score.details["parity"] is True
        assert "1 to 3" in rec.prompt
        assert judge.check_range(score).ok
    # 0.5 is not on the 1-3 scale: rejected in parity mode.
    judge = InteractivityJudge({"model": scripted_model(_verdict(0.5)), "parity": True, "max_attempts": 1})
    assert (await judge.score(_ctx(ex, client))).value is None
    # Parity switched on through the scoring context.
    judge = InteractivityJudge({"model": scripted_model(_verdict(3))})
    score = await judge.score(_ctx(ex, client, extra={"parity": True}))
    assert score.value == 1.0 and score.details["value_range"] == [-3.0, 1.0]


async def test_accuracy_binary_and_graded(scripted_model: Any, client: Any, ex: Example) -> None:
    rec = _Recorder(_verdict(1, "mentions waves and salt"))
    score = await AccuracyJudge({"model": scripted_model(rec)}).score(_ctx(ex, client, artefact="Waves, salt."))
    assert score.value == 1.0 and score.details["rationale"] == "mentions waves and salt"
    assert "waves salt" in rec.prompt and "Waves, salt." in rec.prompt  # reference and extracted answer shown
    score = await AccuracyJudge({"model": scripted_model(_verdict(0))}).score(_ctx(ex, client))
    assert score.ok and score.value == 0.0
    # Binary by default: partial credit rejected; accepted when graded.
    failed = await AccuracyJudge({"model": scripted_model(_verdict(0.5)), "max_attempts": 1}).score(_ctx(ex, client))
    assert failed.value is None and "0 or 1" in (failed.error or "")
    graded = await AccuracyJudge({"model": scripted_model(_verdict(0.5)), "graded": True}).score(_ctx(ex, client))
    assert graded.value == 0.5


async def test_unjudgeable_inputs_fail_not_zero(scripted_model: Any, client: Any, ex: Example) -> None:
    model = scripted_model(_verdict(1))
    no_ref = ex.model_copy(update={"reference": ""})
    s = await AccuracyJudge({"model": model}).score(_ctx(no_ref, client))
    assert s.value is None and "no reference" in (s.error or "")
    s = await InteractivityJudge({"model": model}).score(_ctx(ex, client, conv=Conversation()))
    assert s.value is None and s.error
    s = await InteractivityJudge({"model": model}).score(_ctx(ex, None))
    assert s.value is None and "no model client" in (s.error or "")


async def test_model_errors_become_failed_scores(scripted_model: Any, client: Any, ex: Example) -> None:
    score = await InteractivityJudge({"model": scripted_model(_verdict(1), fatal_rate=1.0)}).score(_ctx(ex, client))
    assert score.value is None and score.component == "interactivity" and score.error


def test_registered(plugin_host: Any) -> None:
    assert plugin_host.registry.get("judge", "interactivity").cls is InteractivityJudge
    assert plugin_host.registry.get("judge", "accuracy").cls is AccuracyJudge
