"""MR for the online backends: the reward adapters and the live-policy callback.

- :class:`MRScorer` scores (history, completion) pairs with :func:`collab_harness.reward.multiturn_reward` on one
  event loop that it owns, in a background thread: a batch is one ``asyncio.gather`` over every completion (so the
  local provider batches the futures' generations, and API calls overlap), submitted from the training thread with
  ``run_coroutine_threadsafe``. Components (task, simulator, metrics, judges) are built once per task through the
  plugin host, from a :class:`~collab_harness.config.RunConfig` made of the backend's options. Examples are looked up
  by the rows' ``example_id`` in the task the row names. Every score is appended to ``out/rewards.jsonl`` (MR, std,
  futures ok/total, failures, the policy version the futures were played with).
- :class:`MRRewardFunc` is the TRL ``reward_funcs`` callable (GRPO, online DPO): ``(prompts, completions, **columns)
  -> list[float | None]``.
- :func:`make_reward_model` (in :mod:`.ppo`) wraps the scorer in the reward-*model* shape PPO's ``get_reward`` calls.
- :class:`LivePolicyCallback` keeps the futures on the current weights: the policy is served as ``local/live:<name>``
  (:func:`collab_harness.models.local.register_live_model`), every optimizer step runs inside
  ``LiveModel.updating()`` (entered in ``on_pre_optimizer_step``, left in ``on_optimizer_step``: the step waits for a
  running generation batch and bumps the served version, so the response cache never serves the old weights' reply).
  Trainers with their own loop (PPO calls ``optimizer.step()`` without those hooks) get the version bump in
  ``on_step_end``, before the next rollout; no generation runs while they step (MR finishes before the update phase).

Failure policy (a failed MR is never a silent 0): ``none`` returns None (GRPO excludes the completion from its group
baseline and gives it no advantage); ``raise`` fails the step with a one-line error naming the sample (online DPO and
PPO by default: their TRL trainers would turn None into 0); ``penalty`` uses the explicit ``mr_failure_penalty``
value, counted in the manifest and marked in ``rewards.jsonl``.

Seeds: a completion's futures use ``derive_seed(row_seed(seed, row), "step", global_step)``: completions of the same
prompt in one step (a GRPO group, an online-DPO pair) share their futures' seeds (common random numbers), and a prompt
seen again in a later step explores fresh futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from collab_harness.errors import CollabHarnessError, ComponentError, ConfigError
from collab_harness.scrub import scrub

from ._common import TrainOptions, _split_bases

__all__ = ["LivePolicyCallback", "MRItem", "MROptions", "MRRewardError", "MRRewardFunc", "MRScorer",
           "completion_text"]

FailurePolicy = Literal["none", "raise", "penalty"]


class MROptions(TrainOptions):
    """Options of the online backends: how the policy samples, and how MR scores its completions (mapped onto a
    :class:`~collab_harness.config.RunConfig`, so they mean what they mean for ``collab-harness mr``)."""

    #: Policy sampling: longest completion (tokens) and temperature; None = TRL's default for the algorithm.
    max_completion_length: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, gt=0)
    #: Who plays the assistant in the futures: None = the current policy (served live, updated every step); or a
    #: model string (e.g. ``hosted_vllm/policy`` with ``futures_api_base`` when a vLLM server holds the policy).
    futures_model: str | None = None
    futures_api_base: list[str] | None = None
    futures_system_prompt: str | None = None
    futures_temperature: float = Field(0.7, ge=0.0)
    futures_max_tokens: int = Field(256, ge=1)
    #: The user simulator (``shard-user``, ``llm-user``) or a model string played by ``llm-user``.
    user: str = "shard-user"
    user_options: dict[str, Any] = Field(default_factory=dict)
    user_api_base: list[str] | None = None
    #: Judge / extraction model, or ``rules`` (the offline judge).
    judge: str = "rules"
    judge_api_base: list[str] | None = None
    #: Metrics and judges (None: the task's defaults) and their weights in MR.
    metrics: list[str] | None = None
    weights: dict[str, float] | None = None
    samples: int = Field(3, ge=1)
    window: int = Field(2, ge=0)
    form: Literal["weighted", "paper"] = "weighted"
    penalty_lambda: float | None = Field(None, ge=0.0)
    min_futures: int | None = Field(None, ge=1)
    #: Options of each task named in the rows, by task name (e.g. {"math-chat": {"source": "sample"}}).
    task_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Model calls in flight, response cache, seconds per call, torch threads of local generation.
    mr_concurrency: int = Field(8, ge=1)
    mr_cache: bool = True
    mr_timeout: float = Field(120.0, gt=0)
    mr_local_threads: int | None = Field(None, ge=1)

    _bases = field_validator("futures_api_base", "user_api_base", "judge_api_base", mode="before")(
        classmethod(lambda cls, v: _split_bases(v)))

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, v: Any) -> Any:
        return [m.strip() for m in v.split(",") if m.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> MROptions:
        if self.futures_api_base and not self.futures_model:
            raise ValueError("futures_api_base needs futures_model (the model string the server serves)")
        if self.min_futures is not None and self.min_futures > self.samples:
            raise ValueError(f"min_futures ({self.min_futures}) cannot exceed samples ({self.samples})")
        return self


class StrictMROptions(MROptions):
    """For trainers that cannot take a missing reward (online DPO, PPO): a failed MR fails the step, unless an
    explicit penalty is set."""

    #: Reward given in place of a failed MR (recorded per completion and counted in the manifest); None = fail the
    #: step with a one-line error naming the sample.
    mr_failure_penalty: float | None = None


class MRRewardError(ComponentError):
    """MR failed for a completion and the backend's failure policy is to stop."""


@dataclass(frozen=True)
class MRItem:
    """One completion to score: the row it came from and the text."""

    row_id: str
    example_id: str
    task: str
    history: tuple[Mapping[str, str], ...]
    candidate: str


@dataclass
class _TaskRuntime:
    config: Any
    built: Any
    mr_config: Any
    examples: dict[str, Any]


@dataclass
class RewardStats:
    scored: int = 0
    failed: int = 0
    penalised: int = 0
    total: float = 0.0
    batches: int = 0

    def as_dict(self) -> dict[str, Any]:
        ok = self.scored - self.failed
        return {"scored": self.scored, "failed": self.failed, "penalised": self.penalised, "batches": self.batches,
                "mean_mr": self.total / ok if ok else None}


def completion_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a conversational list of messages (the assistant's)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, Mapping))
    return str(completion)


class MRScorer:
    """Scores completions with MR on a private event loop (see the module docstring)."""

    def __init__(self, options: MROptions, *, assistant_model: str, host: Any = None, log_path: Path | None = None,
                 live: Any = None, rank: int = 0) -> None:
        self.options = options
        self.assistant_model = assistant_model
        self.live = live
        self.log_path = log_path
        self.rank = rank
        self._host = host
        self._tasks: dict[str, _TaskRuntime] = {}
        self._client: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="collab-mr-loop", daemon=True)
        self._thread.start()
        self._closed = False
        self.stats = RewardStats()
        self._log_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- setup
    @property
    def host(self) -> Any:
        if self._host is None:
            from collab_harness.plugins import build_plugin_manager

            self._host = build_plugin_manager()
        return self._host

    def run_config(self, task: str) -> Any:
        """The run configuration MR uses for rows of ``task``."""
        from collab_harness.config import make_config

        o = self.options
        data: dict[str, Any] = {
            "task": {"name": task, "options": dict(o.task_options.get(task, {}))},
            "assistant": self.assistant_model, "assistant_api_base": o.futures_api_base,
            "assistant_system_prompt": o.futures_system_prompt,
            "user": {"name": o.user, "options": dict(o.user_options)}, "user_api_base": o.user_api_base,
            "judge": o.judge, "judge_api_base": o.judge_api_base, "weights": o.weights,
            "max_tokens": o.futures_max_tokens, "seed": o.seed,
            "mr": {"samples": o.samples, "window": o.window, "form": o.form, "penalty_lambda": o.penalty_lambda,
                   "temperature": o.futures_temperature, "min_futures": o.min_futures},
            "concurrency": o.mr_concurrency, "cache": o.mr_cache, "timeout": o.mr_timeout,
            "local_threads": o.mr_local_threads,
        }
        if o.metrics is not None:
            data["metrics"] = list(o.metrics)
        return make_config(data, source="trainer options")

    def runtime(self, task: str) -> _TaskRuntime:
        rt = self._tasks.get(task)
        if rt is None:
            from collab_harness.config import build_components
            from collab_harness.mr_run import mr_config_of

            config = self.run_config(task)
            built = build_components(self.host, config)
            examples = {e.id: e for split in built.task.splits() for e in built.task.load(split)}
            rt = self._tasks[task] = _TaskRuntime(config, built, mr_config_of(config, built), examples)
        return rt

    def check_rows(self, rows: Any) -> None:
        """Build every task the rows name and check every example id exists, before any training step."""
        tasks, ids, rids = rows["task"], rows["example_id"], rows["id"] if "id" in rows.column_names else None
        for i, (task, ex) in enumerate(zip(tasks, ids, strict=True)):
            rt = self.runtime(str(task))
            if str(ex) not in rt.examples:
                from difflib import get_close_matches

                close = get_close_matches(str(ex), list(rt.examples), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                rid = rids[i] if rids is not None else f"row {i}"
                raise ConfigError(f"RL row {rid!r}: task {task!r} has no example {ex!r}{hint} (set task_options if "
                                  "the export was made from another data source)")
        for rt in self._tasks.values():  # a missing key or model fails here, not at the first step
            self._call(self._preflight(rt.config))

    async def _preflight(self, config: Any) -> None:
        from collab_harness.preflight import preflight

        await preflight(config, self._ensure_client())

    def _ensure_client(self) -> Any:
        if self._client is None:
            from collab_harness.evaluation import open_client

            first = next(iter(self._tasks.values())).config
            self._client = open_client(first)
        return self._client

    def _call(self, coro: Any) -> Any:
        if self._closed:
            raise RuntimeError("MR scorer is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # ----------------------------------------------------------------------------------------- scoring
    def score(self, items: Sequence[MRItem], step: int) -> list[Any]:
        """MR of every item (an :class:`~collab_harness.reward.MRResult`, or the
        :class:`~collab_harness.errors.CollabHarnessError` that made it impossible), all at once."""
        for it in items:
            self.runtime(it.task)  # blocking builds happen here, in the calling thread, not on the loop
        version = self.live.version if self.live is not None else None
        results: list[Any] = self._call(self._score_all(list(items), step))
        self.stats.batches += 1
        self._log(items, results, step, version)
        return results

    async def _score_all(self, items: list[MRItem], step: int) -> list[Any]:
        client = self._ensure_client()
        return list(await asyncio.gather(*(self._score_one(client, it, step) for it in items)))

    async def _score_one(self, client: Any, item: MRItem, step: int) -> Any:
        from collab_harness.mr_run import MRRow, row_seed
        from collab_harness.reward import multiturn_reward
        from collab_harness.simulate import derive_seed
        from collab_harness.types import Conversation

        rt = self._tasks[item.task]
        try:
            example = rt.examples[item.example_id]
            history = Conversation.of(*[{"role": m["role"], "content": m["content"]} for m in item.history])
            seed = derive_seed(row_seed(rt.config.seed, MRRow(id=item.row_id, history=history, candidate="",
                                                              example=example)), "step", step)
            return await multiturn_reward(
                history, item.candidate, example=example, task=rt.built.task, simulator=rt.built.simulator,
                scorers=rt.built.scorers, assistant_model=rt.config.assistant, client=client, config=rt.mr_config,
                seed=seed)
        except CollabHarnessError as e:
            return e
        except KeyError:
            return ConfigError(f"task {item.task!r} has no example {item.example_id!r}")

    def _log(self, items: Sequence[MRItem], results: Sequence[Any], step: int, version: int | None) -> None:
        lines = []
        for it, r in zip(items, results, strict=True):
            ok = not isinstance(r, BaseException) and r.mean is not None
            self.stats.scored += 1
            if ok:
                self.stats.total += float(r.mean)
            else:
                self.stats.failed += 1
            rec: dict[str, Any] = {"step": step, "row_id": it.row_id, "example_id": it.example_id, "task": it.task,
                                   "policy_version": version, "candidate": it.candidate}
            if isinstance(r, BaseException):
                rec.update({"mr": None, "errors": [f"{type(r).__name__}: {r}"]})
            else:
                rec.update({"mr": r.mean, "std": r.std, "n_ok": r.n_ok, "n_total": r.n_total,
                            "per_metric": r.per_metric, "errors": ([r.error] if r.error else []) + r.errors()})
            lines.append(json.dumps(scrub(rec), ensure_ascii=False, default=str))
        if self.log_path is not None and lines:
            with self._log_lock, open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")

    def log_note(self, **record: Any) -> None:
        """Append one more line to the reward log (e.g. a penalty applied)."""
        if self.log_path is not None:
            with self._log_lock, open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(scrub(record), ensure_ascii=False, default=str) + "\n")

    def values(self, items: Sequence[MRItem], results: Sequence[Any], policy: FailurePolicy,
               penalty: float | None, step: int) -> list[float | None]:
        """Rewards under the failure policy (see the module docstring)."""
        out: list[float | None] = []
        for it, r in zip(items, results, strict=True):
            if not isinstance(r, BaseException) and r.mean is not None:
                out.append(float(r.mean))
                continue
            reason = str(r) if isinstance(r, BaseException) else (r.error or "; ".join(r.errors()) or "no MR")
            reason = " ".join(reason.split())[:500]
            if policy == "none":
                out.append(None)
            elif policy == "penalty" and penalty is not None:
                self.stats.penalised += 1
                self.log_note(step=step, row_id=it.row_id, penalty_applied=penalty, reason=reason)
                out.append(float(penalty))
            else:
                raise MRRewardError("mr", f"MR failed for example {it.example_id!r} at step {step} ({reason}); "
                                          "set mr_failure_penalty to train on with an explicit penalty",
                                    sample_id=it.row_id)
        return out

    def close(self) -> None:
        if self._closed:
            return
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._call(self._client.aclose())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._loop.close()


def _row_ids(kwargs: Mapping[str, Any], n: int) -> list[str]:
    ids = kwargs.get("id")
    if ids is None:
        return [f"row-{i}" for i in range(n)]
    return [str(x) for x in ids]


class MRRewardFunc:
    """TRL ``reward_funcs`` entry: MR of every completion of a batch, concurrently. The dataset's ``example_id``,
    ``task`` and ``id`` columns arrive as keyword arguments (TRL passes every extra column)."""

    __name__ = "mr"

    def __init__(self, scorer: MRScorer, *, policy: FailurePolicy, penalty: float | None = None) -> None:
        self.scorer = scorer
        self.policy: FailurePolicy = policy
        self.penalty = penalty

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None,
                 **kwargs: Any) -> list[float | None]:
        n = len(prompts)
        state = kwargs.get("trainer_state")
        step = int(getattr(state, "global_step", 0) or 0)
        rids = _row_ids(kwargs, n)
        items = [MRItem(row_id=rids[i], example_id=str(kwargs["example_id"][i]), task=str(kwargs["task"][i]),
                        history=tuple(prompts[i]), candidate=completion_text(completions[i])) for i in range(n)]
        results = self.scorer.score(items, step)
        return self.scorer.values(items, results, self.policy, self.penalty, step)


def failure_policy(options: Any, default: FailurePolicy) -> tuple[FailurePolicy, float | None]:
    penalty = getattr(options, "mr_failure_penalty", None)
    return ("penalty", float(penalty)) if penalty is not None else (default, None)


def _callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class LivePolicyCallback:
    """Signals every optimizer step to the live model (see the module docstring). Built by :func:`live_callback`
    (a ``transformers.TrainerCallback`` subclass made at run time, so importing this module needs no torch)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._hold: contextlib.ExitStack | None = None
        self._stepped = False
        self.updates = 0

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._release()
        self._hold = contextlib.ExitStack()
        self._hold.enter_context(self.handle.updating())  # waits for a running batch; bumps the version on exit

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._release():
            self.updates += 1
            self._stepped = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._stepped:  # a trainer that steps its optimizer without the hooks (PPO)
            self.handle.update()
            self.updates += 1
        self._stepped = False

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._release()

    def _release(self) -> bool:
        hold, self._hold = self._hold, None
        if hold is None:
            return False
        hold.close()
        return True


def live_callback(handle: Any) -> Any:
    """A :class:`LivePolicyCallback` that is also a ``transformers.TrainerCallback``."""
    cls = type("LivePolicyTrainerCallback", (LivePolicyCallback, _callback_base()), {})
    return cls(handle)


@dataclass
class OnlineMR:
    """MR wiring of one online training run: the scorer, and the live policy it plays futures with (None when a
    named ``futures_model`` plays them)."""

    scorer: MRScorer
    live_name: str | None
    callback: Any = None
    handle: Any = None


def prepare_mr(session: Any) -> OnlineMR:
    """Before the trainer exists: reserve the live model's name, build the MR components of every task the rows
    name, check every example id and every model (a typo fails here, not at the first step)."""
    import os
    import uuid

    opts: MROptions = session.options
    live_name = None if opts.futures_model else f"policy-{uuid.uuid4().hex[:12]}"
    assistant = opts.futures_model or f"local/live:{live_name}"
    rank = int(os.environ.get("RANK", "0"))
    log = session.out / ("rewards.jsonl" if rank == 0 else f"rewards.rank{rank}.jsonl")
    scorer = MRScorer(opts, assistant_model=assistant, host=session.host, log_path=log, rank=rank)
    session.cleanups.append(scorer.close)
    scorer.check_rows(session.train_dataset)
    mr = OnlineMR(scorer=scorer, live_name=live_name)
    session.extra["mr"] = {
        "futures_played_by": "current policy (live)" if live_name else opts.futures_model,
        "futures_model": assistant, "futures_api_base": opts.futures_api_base,
        "run_config": {t: rt.config.identity() for t, rt in scorer._tasks.items()},
        "mr_config": {t: rt.mr_config.model_dump(mode="json") for t, rt in scorer._tasks.items()},
        "reward_log": log.name,
    }

    def report() -> dict[str, Any]:
        out: dict[str, Any] = {"rewards": scorer.stats.as_dict()}
        if mr.handle is not None:
            out["live_policy"] = {"model": mr.handle.model_string, "version": mr.handle.version,
                                  "updates_signalled": getattr(mr.callback, "updates", 0)}
        return out

    session.reporters.append(report)
    return mr


def go_live(session: Any, mr: OnlineMR, policy: Any) -> None:
    """After the trainer exists: serve ``policy`` (the very object being trained) as the futures' assistant and
    signal every optimizer step to it."""
    if mr.live_name is None:
        return
    from collab_harness.models.local import register_live_model, unregister_live_model

    name = mr.live_name
    mr.handle = register_live_model(name, policy, session.tokenizer)
    session.cleanups.append(lambda: unregister_live_model(name))
    mr.scorer.live = mr.handle
    mr.callback = live_callback(mr.handle)
    session.trainer.add_callback(mr.callback)
