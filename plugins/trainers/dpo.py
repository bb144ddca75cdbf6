"""``dpo``: offline DPO on the exported pairs (TRL ``DPOTrainer``). The rows are TRL's conversational preference format
as exported (``prompt`` messages, ``chosen`` / ``rejected`` one assistant message each); the score columns ride
along unused. With LoRA the reference model is the base with the adapter switched off (no second copy in memory)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from collab_harness import ComponentOptions, hookimpl

from ._common import TrainingSession, TrainOptions, TRLBackend, collab_errors, peft_config

__all__ = ["DPOBackend", "DPOOptions"]


class DPOOptions(TrainOptions):
    #: Deviation from the reference model (higher = closer to it).
    beta: float = Field(0.1, gt=0)
    #: TRL loss type(s): sigmoid (DPO), ipo, hinge, robust, apo_zero ...; several are summed with ``loss_weights``.
    loss_type: list[str] = Field(default_factory=lambda: ["sigmoid"])
    loss_weights: list[float] | None = None
    max_length: int | None = 1024

    @field_validator("loss_type", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class DPOBackend(TRLBackend):
    """Offline DPO on the exported chosen/rejected pairs (TRL DPOTrainer)."""

    name: ClassVar[str] = "dpo"
    version: ClassVar[str] = "1.0.0"
    data_format: ClassVar[str] = "dpo"
    Options: ClassVar[type[ComponentOptions]] = DPOOptions

    def build_trainer(self, session: TrainingSession) -> Any:
        from trl import DPOConfig, DPOTrainer

        opts: DPOOptions = self.options  # type: ignore[assignment]
        keep = ["prompt", "chosen", "rejected"]
        train = session.train_dataset.select_columns(keep)
        evals = session.eval_dataset.select_columns(keep) if session.eval_dataset is not None else None
        with collab_errors("dpo"):
            args = DPOConfig(**session.trl_args(beta=opts.beta, loss_type=list(opts.loss_type),
                                                loss_weights=opts.loss_weights, max_length=opts.max_length))
            return DPOTrainer(model=session.model, args=args, train_dataset=train,
                              eval_dataset=evals if args.eval_strategy != "no" else None,
                              processing_class=session.tokenizer, peft_config=peft_config(opts))


@hookimpl
def register_trainers(register: Any) -> None:
    register(DPOBackend)
