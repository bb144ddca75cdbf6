"""math_accuracy: math-verify equivalence in time-bounded worker processes, safe from worker threads."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from collab_harness_plugins.metrics import math_accuracy
from collab_harness_plugins.metrics.math_accuracy import CheckTimeout, MathAccuracy, check_equivalent
from collab_harness_plugins.tasks.math_chat import MathChat

from collab_harness.components import ScoringContext
from collab_harness.testing import MetricContract
from collab_harness.types import Conversation, Example


@pytest.fixture(scope="module")
def task() -> MathChat:
    return MathChat(source="sample")


class TestMathAccuracyContract(MetricContract):
    @pytest.fixture
    def component(self) -> MathAccuracy:
        return MathAccuracy()

    @pytest.fixture
    def example(self) -> Example:
        return MathChat(source="sample").load("test")[1]  # reference "(-6,6)"

    @pytest.fixture
    def scoring_task(self) -> MathChat:
        return MathChat(source="sample")


def _ex(reference: str) -> Example:
    return Example(id=f"t-{reference}", task="math-chat", prompt="p", reference=reference)


def _score(reference: str, answer: str | None, conv: Conversation | None = None, task: MathChat | None = None,
           **opts: float) -> tuple[float | None, dict]:
    ctx = ScoringContext(example=_ex(reference), conversation=conv or Conversation(), artefact=answer, task=task)
    s = asyncio.run(MathAccuracy(**opts).score(ctx))
    assert s.component == "math_accuracy"
    return s.value, dict(s.details) | ({"error": s.error} if s.error else {})


EQUIVALENT = [
    ("\\frac{1}{2}", "0.5"),
    ("\\frac{1}{2}", "1/2"),
    ("0.5", "\\frac{1}{2}"),
    ("\\frac{1}{2}", "\\dfrac12"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{\\sqrt{6}-\\sqrt{2}}{4}", "\\frac{\\sqrt{2}(\\sqrt{3}-1)}{4}"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("(0,1]", "(0, 1]"),
    ("(x+1)^2", "x^2+2x+1"),
    ("\\frac{x-3}{x-2}", "\\frac{3-x}{2-x}"),
    ("26\\pi", "$26\\pi$"),
    ("-2, -1, 1, 2", "2, 1, -1, -2"),
    ("122", "The answer is 122."),
    ("1024", "We get $2^{10} = \\boxed{1024}$."),
]
NOT_EQUIVALENT = [
    ("122", "121"),
    ("122", "123"),
    ("(0,1]", "(0,1)"),
    ("(0,1]", "[0,1]"),
    ("\\{1,2\\}", "\\{1,3\\}"),
    ("\\frac{1}{2}", "\\frac{1}{3}"),
    ("2\\sqrt{2}", "2\\sqrt{3}"),
    ("x^2+2x+1", "x^2+2x-1"),
    ("-2, -1, 1, 2", "-1, 1, 2"),
]


@pytest.mark.parametrize(("reference", "answer"), EQUIVALENT)
def test_equivalent(reference: str, answer: str) -> None:
    value, details = _score(reference, answer)
    assert value == 1.0, details


@pytest.mark.parametrize(("reference", "answer"), NOT_EQUIVALENT)
def test_not_equivalent(reference: str, answer: str) -> None:
    value, details = _score(reference, answer)
    assert value == 0.0, details


def test_every_sample_reference_matches_itself_and_not_a_neighbour(task: MathChat) -> None:
    examples = [e for s in ("train", "test") for e in task.load(s)]
    refs = [e.reference for e in examples]
    for i, r in enumerate(refs):
        assert check_equivalent(r, r).equal, r
        other = refs[(i + 1) % len(refs)]
        assert not check_equivalent(r, other).equal, (r, other)


def test_falls_back_to_task_rule_then_last_boxed(task: MathChat) -> None:
    conv = Conversation.of(("user", "hi"), ("assistant", "I think it is \\boxed{\\frac{2}{4}}."),
                           ("user", "ok"), ("assistant", "Glad to help."))
    value, details = _score("\\frac12", None, conv, task)
    assert value == 1.0 and details["answer_source"] == "task rule"
    value, details = _score("\\frac12", None, conv, None)
    assert value == 1.0 and details["answer_source"] == "last boxed"


def test_no_answer_is_a_wrong_answer_not_a_failure(task: MathChat) -> None:
    conv = Conversation.of(("user", "hi"), ("assistant", "What would you like to know?"))
    value, details = _score("5", None, conv, task)
    assert value == 0.0 and details["reason"] == "no answer found"


def test_missing_reference_is_a_failure() -> None:
    value, details = _score("", "5")
    assert value is None and "no reference" in details["error"]


def test_concurrent_checks_from_worker_threads() -> None:
    cases = [(r, a, 1.0) for r, a in EQUIVALENT[:8]] + [(r, a, 0.0) for r, a in NOT_EQUIVALENT[:8]]

    async def run_all() -> list[float | None]:
        metric = MathAccuracy()
        ctxs = [ScoringContext(example=_ex(r), conversation=Conversation(), artefact=a) for r, a, _ in cases]
        # Metric.score uses asyncio.to_thread: math-verify's signal-based timeout would raise there.
        return [s.value for s in await asyncio.gather(*(metric.score(c) for c in ctxs))]

    assert asyncio.run(run_all()) == [w for _, _, w in cases]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda c: check_equivalent(c[0], c[1]).equal, cases * 2))
    assert got == [bool(w) for _, _, w in cases] * 2


def test_pathological_input_is_time_bounded_and_worker_replaced() -> None:
    t0 = time.perf_counter()
    value, details = _score("5", "9^{9^{9^{9^{9}}}}", timeout_s=1.0)
    elapsed = time.perf_counter() - t0
    assert value is None and "exceeded" in details["error"], details
    assert elapsed < 15, elapsed  # 1 s budget + worker start-up on a loaded 2-core machine
    with pytest.raises(CheckTimeout):
        check_equivalent("5", "(x+1)^{100000}", timeout_s=0.5)
    # The pool recovers: killed workers are replaced and later checks succeed.
    assert check_equivalent("\\frac{1}{2}", "0.5").equal
    pool = math_accuracy._get_pool()
    assert pool._live <= pool.size


def test_options_validated() -> None:
    from collab_harness.errors import ConfigError

    with pytest.raises(ConfigError):
        MathAccuracy(timeout_s=0)
    assert MathAccuracy(timeout_s=2, float_rounding=4).options.model_dump()["float_rounding"] == 4
