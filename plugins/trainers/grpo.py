"""``grpo``: GRPO with MR as the reward (TRL ``GRPOTrainer``), on the RL-prompt export.

For every prompt the policy samples ``num_generations`` completions; :class:`~._mr.MRRewardFunc` scores the whole
batch with MR at once (futures played by the current policy by default) and returns ``list[float | None]``: a failed MR
is None, which TRL 1.12 excludes from the group's baseline and gives no advantage — never a 0. Completions of one
prompt share their futures' seeds in a step (common random numbers), so the group's reward differences are not
sampling noise of the futures.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from collab_harness import ComponentOptions, hookimpl

from ._common import TrainingSession, TRLBackend, collab_errors, peft_config
from ._mr import MROptions, MRRewardFunc, go_live, prepare_mr

__all__ = ["GRPOBackend", "GRPOOptions"]


class GRPOOptions(MROptions):
    #: Completions per prompt (the group); the generation batch (per-device batch x steps per generation x
    #: processes) must be a multiple of it.
    num_generations: int = Field(4, ge=2)
    per_device_train_batch_size: int = Field(4, ge=1)
    #: KL coefficient against the reference model (TRL's default 0: no reference model is kept).
    beta: float = Field(0.0, ge=0.0)


class GRPOBackend(TRLBackend):
    """GRPO with the multiturn-aware reward (TRL GRPOTrainer); a failed MR is None, never 0."""

    name: ClassVar[str] = "grpo"
    version: ClassVar[str] = "1.0.0"
    data_format: ClassVar[str] = "rl"
    Options: ClassVar[type[ComponentOptions]] = GRPOOptions

    def build_trainer(self, session: TrainingSession) -> Any:
        from trl import GRPOConfig, GRPOTrainer

        opts: GRPOOptions = self.options  # type: ignore[assignment]
        mr = prepare_mr(session)
        reward = MRRewardFunc(mr.scorer, policy="none")
        algo: dict[str, Any] = {"num_generations": opts.num_generations, "beta": opts.beta}
        if opts.max_completion_length is not None:
            algo["max_completion_length"] = opts.max_completion_length
        if opts.temperature is not None:
            algo["temperature"] = opts.temperature
        with collab_errors("grpo"):
            args = GRPOConfig(**session.trl_args(**algo))
            session.trainer = GRPOTrainer(model=session.model, reward_funcs=[reward], args=args,
                                          train_dataset=session.train_dataset, processing_class=session.tokenizer,
                                          peft_config=peft_config(opts))
        go_live(session, mr, session.trainer.model)
        return session.trainer


@hookimpl
def register_trainers(register: Any) -> None:
    register(GRPOBackend)
