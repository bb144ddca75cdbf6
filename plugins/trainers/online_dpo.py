"""``online-dpo``: online DPO with MR as the judge of each pair (TRL ``trl.experimental.online_dpo.OnlineDPOTrainer``).

The policy samples two completions per RL prompt; :class:`~._mr.MRRewardFunc`, passed as TRL's ``reward_funcs``,
scores both with MR (one concurrent batch per step, futures played by the current policy by default, the pair on the
same futures' seeds); TRL makes the higher-MR completion the chosen one. No private method is patched: this is TRL's
public reward-function path. TRL sums the rewards with ``nansum``, which would turn a missing reward into 0, so a
failed MR fails the step with a one-line error naming the sample, unless ``mr_failure_penalty`` sets an explicit
reward for it (recorded in ``rewards.jsonl`` and counted in the manifest).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from collab_harness import ComponentOptions, hookimpl

from ._common import TrainingSession, TRLBackend, collab_errors, peft_config
from ._mr import MRRewardFunc, StrictMROptions, failure_policy, go_live, prepare_mr

__all__ = ["OnlineDPOBackend", "OnlineDPOOptions"]


class OnlineDPOOptions(StrictMROptions):
    beta: float = Field(0.1, gt=0)
    loss_type: Literal["sigmoid", "ipo"] = "sigmoid"
    #: Longest prompt + completion the loss sees (TRL truncates the prompt's start).
    max_length: int = Field(1024, ge=2)


class OnlineDPOBackend(TRLBackend):
    """Online DPO: two sampled completions per prompt, MR picks chosen/rejected (TRL OnlineDPOTrainer)."""

    name: ClassVar[str] = "online-dpo"
    version: ClassVar[str] = "1.0.0"
    data_format: ClassVar[str] = "rl"
    Options: ClassVar[type[ComponentOptions]] = OnlineDPOOptions

    def build_trainer(self, session: TrainingSession) -> Any:
        from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

        opts: OnlineDPOOptions = self.options  # type: ignore[assignment]
        mr = prepare_mr(session)
        policy, penalty = failure_policy(opts, "raise")
        reward = MRRewardFunc(mr.scorer, policy=policy, penalty=penalty)
        algo: dict[str, Any] = {"beta": opts.beta, "loss_type": opts.loss_type, "max_length": opts.max_length}
        if opts.max_completion_length is not None:
            algo["max_new_tokens"] = opts.max_completion_length
        if opts.temperature is not None:
            algo["temperature"] = opts.temperature
        with collab_errors("online-dpo"):
            args = OnlineDPOConfig(**session.trl_args(**algo))
            session.trainer = OnlineDPOTrainer(model=session.model, reward_funcs=[reward], args=args,
                                               train_dataset=session.train_dataset,
                                               processing_class=session.tokenizer, peft_config=peft_config(opts))
        go_live(session, mr, session.trainer.model)
        return session.trainer


@hookimpl
def register_trainers(register: Any) -> None:
    register(OnlineDPOBackend)
