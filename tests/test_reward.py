"""Multiturn-aware reward: futures, W = 0, weights, the paper form, shared extraction, failures, seeds, many at once.

Real client, scripted models, real metrics (bleu, char_bleu, token_amount) and judges (interactivity) where they fit;
doubles from collab_harness.testing (ToyTask, ScriptedUser, FixedJudge) for the rest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from collab_harness_plugins.judges.llm_judges import InteractivityJudge
from collab_harness_plugins.metrics.text import BleuMetric, CharBleuMetric
from collab_harness_plugins.metrics.token_amount import TokenAmount

from collab_harness.components import Metric, ScoringContext, SimulationContext, UserSimulator
from collab_harness.errors import ConfigError
from collab_harness.models.client import Client
from collab_harness.models.scripted import script_stats
from collab_harness.reward import MRConfig, MRFailure, MRItem, MRResult, multiturn_reward, score_many
from collab_harness.testing import FixedJudge, ScriptedUser, ToyTask
from collab_harness.types import Conversation, Score, UserTurn

TASK = ToyTask()
EXAMPLE = TASK.load("test")[0]  # reference "waves salt gulls"
HISTORY = Conversation.of(("user", "I'd like a short poem."))
CANDIDATE = "Sure. What should it mention?"


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    async with Client(cache_dir=tmp_path / "cache") as c:
        yield c


def user(n: int = 10) -> ScriptedUser:
    return ScriptedUser(turns=[f"It should mention thing {i}." for i in range(n)], terminate_at=10_000)


def per_sample(messages: list[dict[str, Any]], params: Any, sample_index: int) -> str:
    return f"poem {sample_index} {params.seed}: waves salt"


async def mr(client: Any, *, assistant: str, extractor: str | None = None, scorers: Any = None,
             simulator: Any = None, seed: int = 0, **cfg: Any) -> MRResult:
    cfg.setdefault("extraction_model", extractor)
    return await multiturn_reward(
        HISTORY, CANDIDATE, example=EXAMPLE, task=TASK, simulator=simulator or user(),
        scorers=scorers if scorers is not None else [FixedJudge(value=0.5)], assistant_model=assistant,
        client=client, config=MRConfig(**cfg), seed=seed,
    )


async def test_futures_shape_and_mean(client: Any, scripted_model: Callable[..., str]) -> None:
    a = scripted_model(per_sample)
    res = await mr(client, assistant=a, samples=3, window_exchanges=2)
    assert res.n_total == 3 and res.n_ok == 3 and res.mean == pytest.approx(0.5) and res.std == 0.0
    for f in res.futures:
        # history (1) + candidate (1) + 2 exchanges (4 messages)
        assert len(f.conversation) == 6 and f.exchanges == 2 and f.forward_start == 1
        assert f.conversation.messages[1].content == CANDIDATE
    assert script_stats(a).calls == 6  # S × W assistant generations
    json.dumps(res.model_dump(mode="json"))  # every record is JSON-serialisable


async def test_window_zero_scores_history_plus_candidate(client: Any, scripted_model: Callable[..., str]) -> None:
    a = scripted_model("never called")
    res = await mr(client, assistant=a, samples=5, window_exchanges=0, scorers=[TokenAmount(), FixedJudge()],
                   weights={"token_amount": 0.0})
    assert res.samples == 1 and res.n_total == 1 and res.n_ok == 1
    f = res.futures[0]
    assert f.conversation == HISTORY.append("assistant", CANDIDATE) and f.exchanges == 0
    assert script_stats(a).calls == 0
    # token_amount counted only the forward part: the candidate, no user tokens
    assert f.scores["token_amount"].values["user_tokens"] == 0
    assert f.scores["token_amount"].values["assistant_tokens"] > 0
    # Opting out of the collapse keeps S futures.
    res_s = await mr(client, assistant=a, samples=3, window_exchanges=0, single_future_at_w0=False)
    assert res_s.n_total == 3


class ConstMetric(Metric):
    """Returns the number of assistant messages in the forward part (so futures can differ)."""

    name: ClassVar[str] = "const"
    value_range: ClassVar[tuple[float, float]] = (0.0, 100.0)

    def compute(self, ctx: ScoringContext) -> Score:
        return Score(component=self.name, value=float(len(ctx.forward.by_role("assistant"))))


async def test_weighted_form(client: Any, scripted_model: Callable[..., str]) -> None:
    a = scripted_model(per_sample)
    res = await mr(client, assistant=a, samples=2, window_exchanges=1,
                   scorers=[ConstMetric(), FixedJudge(value=0.25)], weights={"const": 2.0, "fixed-judge": 4.0})
    # const = 2 assistant messages in the forward part (candidate + 1 reply)
    assert res.weights == {"const": 2.0, "fixed-judge": 4.0}
    assert res.mean == pytest.approx(2.0 * 2 + 4.0 * 0.25)
    assert res.per_metric == {"const": 2.0, "fixed-judge": 0.25}
    assert res.futures[0].reward_parts == {"const": 4.0, "fixed-judge": 1.0}


async def test_unknown_weight_and_bad_history_are_config_errors(
    client: Any, scripted_model: Callable[..., str]
) -> None:
    a = scripted_model("x")
    with pytest.raises(ConfigError, match="not in this run"):
        await mr(client, assistant=a, weights={"nope": 1.0})
    with pytest.raises(ConfigError, match="ends with a user message"):
        await multiturn_reward(
            HISTORY.append("assistant", "x"), "y", example=EXAMPLE, task=TASK, simulator=user(),
            scorers=[FixedJudge()], assistant_model=a, client=client,
        )


async def test_paper_form(client: Any, scripted_model: Callable[..., str]) -> None:
    a = scripted_model(per_sample)
    ext = scripted_model("waves salt gulls")
    scorers = [BleuMetric(), FixedJudge(value=0.5), TokenAmount(tokenizer="cl100k_base")]
    res = await mr(client, assistant=a, extractor=ext, samples=2, window_exchanges=1, scorers=scorers,
                   form="paper", penalty_lambda=0.01)
    assert res.form == "paper" and res.penalty_lambda == 0.01 and res.n_ok == 2
    for f in res.futures:
        # T is the assistant's tokens of the forward part (the candidate and its future replies), as the reference
        # counts them; the simulated user's tokens are not the assistant's cost.
        t = f.scores["token_amount"].values["assistant_tokens"]
        assert 0 < t < f.scores["token_amount"].values["total_tokens"]
        parts = f.reward_parts
        assert parts["tokens"] == t and parts["penalty"] == pytest.approx(min(0.01 * t, 1.0))
        assert parts["task"] == pytest.approx(f.scores["bleu"].value)
        assert parts["judge"] == pytest.approx(0.5)
        assert f.reward == pytest.approx(parts["task"] + parts["judge"] - parts["penalty"])
    every = await mr(client, assistant=a, extractor=ext, samples=1, window_exchanges=1, scorers=scorers,
                     form="paper", penalty_lambda=0.01, token_count="all")
    assert every.futures[0].reward_parts["tokens"] == every.futures[0].scores["token_amount"].values["total_tokens"]
    # The penalty is capped at 1.
    big = await mr(client, assistant=a, extractor=ext, samples=1, window_exchanges=1, scorers=scorers,
                   form="paper", penalty_lambda=10.0)
    assert big.futures[0].reward_parts["penalty"] == 1.0
    # Without token_amount, T is counted from the forward part; λ defaults to the task's (0 for the toy task).
    nota = await mr(client, assistant=a, extractor=ext, samples=1, window_exchanges=1,
                    scorers=[BleuMetric(), FixedJudge(value=0.5)], form="paper")
    assert nota.futures[0].reward_parts["tokens"] > 0 and nota.penalty_lambda == 0.0


async def test_extraction_shared_by_two_metrics(client: Any, scripted_model: Callable[..., str]) -> None:
    a = scripted_model(per_sample)
    ext = scripted_model("waves salt gulls", latency_s=0.02)
    res = await mr(client, assistant=a, extractor=ext, samples=1, window_exchanges=1,
                   scorers=[BleuMetric(), CharBleuMetric()])
    assert script_stats(ext).calls == 1  # one extraction for two metrics on one artefact type
    f = res.futures[0]
    assert f.artefact == "waves salt gulls" and f.extraction_method == "llm"
    assert f.scores["bleu"].value == pytest.approx(1.0) and f.scores["char_bleu"].value == pytest.approx(1.0)
    # Two futures with different conversations: one extraction each, still shared by both metrics.
    await mr(client, assistant=a, extractor=ext, samples=2, window_exchanges=1, seed=5,
             scorers=[BleuMetric(), CharBleuMetric()])
    assert script_stats(ext).calls == 3


class FailOnSample(UserSimulator):
    name: ClassVar[str] = "fail-on-sample"

    def __init__(self, bad: set[int]) -> None:
        super().__init__()
        self.bad = bad

    async def respond(self, ctx: SimulationContext) -> UserTurn:
        if ctx.sample_index in self.bad:
            raise RuntimeError(f"simulator broke on sample {ctx.sample_index}")
        return UserTurn(message="go on")


async def test_failing_future_recorded_and_excluded(client: Any, scripted_model: Callable[..., str]) -> None:
    a = scripted_model(per_sample)
    res = await mr(client, assistant=a, samples=3, window_exchanges=2, simulator=FailOnSample({1}),
                   scorers=[ConstMetric()])
    assert res.n_total == 3 and res.n_ok == 2
    bad = res.futures[1]
    assert not bad.ok and bad.errors[0].component == "user:fail-on-sample" and bad.scores == {}
    assert res.errors() == ["future 1: user:fail-on-sample: RuntimeError: simulator broke on sample 1"]
    # By default MR needs every future: a mean over the two survivors would hide a path-dependent failure.
    assert res.mean is None and res.min_futures == 3 and "2/3 futures succeeded, 3 needed" in (res.error or "")
    assert res.per_metric == {"const": 3.0} and res.per_metric_n == {"const": 2}
    with pytest.raises(MRFailure):
        res.require()
    # min_futures=2 accepts it, and says so in the result.
    res2 = await mr(client, assistant=a, samples=3, window_exchanges=2, simulator=FailOnSample({1}),
                    scorers=[ConstMetric()], min_futures=2)
    assert res2.mean == pytest.approx(3.0) and res2.min_futures == 2  # candidate + 2 replies in each future


async def test_no_future_succeeded_is_typed_failure(client: Any, scripted_model: Callable[..., str]) -> None:
    a = scripted_model("x", fatal_rate=1.0)
    res = await mr(client, assistant=a, samples=2, window_exchanges=1)
    assert res.mean is None and res.std is None and res.n_ok == 0 and res.n_total == 2
    assert res.error is not None and "assistant" in res.error
    with pytest.raises(MRFailure, match="0/2 futures succeeded"):
        res.require()


class Exploding(Metric):
    name: ClassVar[str] = "exploding"

    def compute(self, ctx: ScoringContext) -> Score:
        raise ZeroDivisionError("bug in metric")


async def test_failed_scores(client: Any, scripted_model: Callable[..., str]) -> None:
    a = scripted_model(per_sample)
    # A weighted scorer failing fails the future, naming it; MR has no value.
    res = await mr(client, assistant=a, samples=2, window_exchanges=1,
                   scorers=[ConstMetric(), FixedJudge(fail="judge model unreachable")])
    assert res.n_ok == 0 and res.mean is None
    assert res.futures[0].errors[0].component == "judge:fixed-judge"
    # Per-metric means cover the futures behind MR (none here); the others are kept apart.
    assert res.per_metric == {"const": None, "fixed-judge": None}
    assert res.per_metric_other == {"const": 2.0, "fixed-judge": None}
    # The same failure with weight 0 is recorded but does not fail the future.
    res0 = await mr(client, assistant=a, samples=2, window_exchanges=1, weights={"fixed-judge": 0.0},
                    scorers=[ConstMetric(), FixedJudge(fail="judge model unreachable")])
    assert res0.n_ok == 2 and res0.mean == pytest.approx(2.0)
    assert not res0.futures[0].scores["fixed-judge"].ok
    # A scorer that raises becomes a failed score naming it; the others still count.
    resx = await mr(client, assistant=a, samples=1, window_exchanges=1, scorers=[ConstMetric(), Exploding()])
    sc = resx.futures[0].scores["exploding"]
    assert not sc.ok and "metric:exploding raised ZeroDivisionError" in (sc.error or "")
    assert resx.futures[0].errors[0].component == "metric:exploding"


async def test_seeds_reproduce_futures(tmp_path: Path, scripted_model: Callable[..., str]) -> None:
    a = scripted_model(per_sample)
    async with Client(use_cache=False) as c1, Client(use_cache=False) as c2:
        r1 = await mr(c1, assistant=a, samples=3, window_exchanges=2, seed=11)
        r2 = await mr(c2, assistant=a, samples=3, window_exchanges=2, seed=11)
        r3 = await mr(c2, assistant=a, samples=3, window_exchanges=2, seed=12)
    convs = [[f.conversation for f in r.futures] for r in (r1, r2, r3)]
    assert convs[0] == convs[1]
    assert convs[0] != convs[2]
    assert len({c.messages[3].content for c in convs[0]}) == 3  # sibling futures differ


async def test_judge_and_extraction_run_concurrently_per_future(
    client: Any, scripted_model: Callable[..., str]
) -> None:
    lat = 0.1
    a = scripted_model(per_sample, latency_s=lat)
    ext = scripted_model("waves salt gulls", latency_s=lat)
    judge = scripted_model('{"rationale": "asked", "score": 0.75}', latency_s=lat)
    u = scripted_model('{"thought": "", "message": "more waves", "terminate": false}', latency_s=lat)
    from collab_harness_plugins.simulators.llm_user import LLMUser

    t0 = time.perf_counter()
    res = await mr(client, assistant=a, extractor=ext, samples=3, window_exchanges=2, simulator=LLMUser(model=u),
                   scorers=[BleuMetric(), CharBleuMetric(), InteractivityJudge(model=judge)])
    wall = time.perf_counter() - t0
    assert res.n_ok == 3 and res.per_metric["interactivity"] == pytest.approx(0.75)
    bound = (2 * 2 + 1) * lat  # W × (user + assistant), then extraction ∥ judge
    assert wall < bound * 1.6, (wall, bound)  # generous: shared CI machine
    assert script_stats(ext).calls == 3 and script_stats(judge).calls == 3


async def test_score_many(client: Any, scripted_model: Callable[..., str]) -> None:
    a = scripted_model(per_sample, latency_s=0.02)
    items = [
        MRItem(HISTORY, "cand A", EXAMPLE),
        MRItem(HISTORY.append("assistant", "oops"), "bad", EXAMPLE),  # not ending with a user message
        MRItem(HISTORY, "cand B", EXAMPLE),
    ]
    seen: list[int] = []
    out = await score_many(items, task=TASK, simulator=user(), scorers=[ConstMetric()], assistant_model=a,
                           client=client, config=MRConfig(samples=2, window_exchanges=1, extraction_model=None),
                           seed=3, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2]
    assert isinstance(out[0], MRResult) and isinstance(out[2], MRResult)
    assert isinstance(out[1], ConfigError)
    # Common random numbers: candidates for the same history get the same item seed.
    assert out[0].seed == out[2].seed
    assert out[0].candidate == "cand A" and out[2].candidate == "cand B"
