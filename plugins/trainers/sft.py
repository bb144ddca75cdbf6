"""``sft``: supervised fine-tuning on the SFT export (TRL ``SFTTrainer``), loss on the assistant's tokens only.

How the loss mask is made, in order of preference (the choice is recorded in the manifest as ``loss_mask``):

1. ``template-markers``: the chat template has ``{% generation %}`` markers; TRL's ``assistant_only_loss`` uses them.
2. ``trl-training-template``: TRL ships a training version of the template (``get_training_chat_template``: Llama 3,
   Qwen, Gemma, Phi ...); ``assistant_only_loss`` swaps it in for tokenisation.
3. ``own-mask``: any other prefix-preserving template (e.g. the embedded SmolLM2's ChatML): each conversation is
   rendered once, the character span of every assistant turn is found by rendering the prefixes (the history with
   the generation prompt, then the history with the turn), and tokens starting inside a span keep their ids as labels;
   every other token is -100. The rows reach ``SFTTrainer`` tokenised with ``labels``, which it then uses as is.
   A template that is not prefix-preserving is refused with a one-line error rather than mis-masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from collab_harness import ComponentOptions, hookimpl
from collab_harness.errors import ConfigError

from ._common import TrainingSession, TrainOptions, TRLBackend, collab_errors, peft_config

__all__ = ["SFTBackend", "SFTOptions", "assistant_only_labels", "loss_mask_strategy"]

LossMask = Literal["template-markers", "trl-training-template", "own-mask"]


class SFTOptions(TrainOptions):
    #: Longest tokenised conversation; longer ones are truncated (None: no truncation).
    max_length: int | None = 1024
    #: Force the own mask even when the template has markers (for checks and comparisons).
    loss_mask: Literal["auto", "own-mask"] = "auto"


def loss_mask_strategy(tokenizer: Any, requested: str = "auto") -> LossMask:
    """Which way assistant-only masking is done for this tokenizer (see the module docstring)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ConfigError("sft: the model's tokenizer has no chat template, so assistant turns cannot be told apart")
    if requested == "own-mask":
        return "own-mask"
    if has_generation_markers(template):
        return "template-markers"
    try:
        get_training_chat_template(tokenizer)
    except ValueError:
        return "own-mask"
    return "trl-training-template"


def _render(tokenizer: Any, messages: Sequence[Mapping[str, str]], *, generation_prompt: bool = False) -> str:
    return str(tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False,
                                             add_generation_prompt=generation_prompt))


def assistant_only_labels(tokenizer: Any, messages: Sequence[Mapping[str, str]], row: str = "?") -> dict[str, Any]:
    """``input_ids`` of the rendered conversation and ``labels`` that keep only the assistant turns' tokens
    (the turn's content and its end-of-turn marker); -100 elsewhere."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("sft: the own assistant mask needs a fast tokenizer (character offsets)")
    full = _render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        through = _render(tokenizer, messages[: i + 1])
        if not (through.startswith(before) and full.startswith(through)):
            raise ConfigError(f"sft: row {row}: the chat template is not prefix-preserving (rendering a prefix of "
                              "the conversation changes earlier text), so the assistant tokens cannot be located; "
                              "use a template with {% generation %} markers")
        spans.append((len(before), len(through)))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [tid if any(s <= start < e for s, e in spans) else -100
              for tid, (start, _end) in zip(ids, enc["offset_mapping"], strict=True)]
    if all(x == -100 for x in labels):
        raise ConfigError(f"sft: row {row} has no assistant tokens to learn from")
    return {"input_ids": ids, "labels": labels}


class SFTBackend(TRLBackend):
    """Supervised fine-tuning on the SFT export (TRL SFTTrainer), loss on assistant tokens only."""

    name: ClassVar[str] = "sft"
    version: ClassVar[str] = "1.0.0"
    data_format: ClassVar[str] = "sft"
    Options: ClassVar[type[ComponentOptions]] = SFTOptions

    def build_trainer(self, session: TrainingSession) -> Any:
        from trl import SFTConfig, SFTTrainer

        opts: SFTOptions = self.options  # type: ignore[assignment]
        tok = session.tokenizer
        strategy = loss_mask_strategy(tok, opts.loss_mask)
        session.extra["loss_mask"] = strategy
        train, evals = session.train_dataset, session.eval_dataset
        if strategy == "own-mask":
            train = self._own_mask(train, tok)
            evals = self._own_mask(evals, tok) if evals is not None else None
        else:
            keep = ["messages"]
            train = train.select_columns(keep)
            evals = evals.select_columns(keep) if evals is not None else None
        with collab_errors("sft"):
            args = SFTConfig(**session.trl_args(assistant_only_loss=strategy != "own-mask", max_length=opts.max_length))
            wants_eval = args.eval_strategy != "no"
            return SFTTrainer(model=session.model, args=args, train_dataset=train,
                              eval_dataset=evals if wants_eval else None, processing_class=tok,
                              peft_config=peft_config(opts))

    @staticmethod
    def _own_mask(ds: Any, tok: Any) -> Any:
        ids = ds["id"] if "id" in ds.column_names else [str(i) for i in range(len(ds))]
        rows = [assistant_only_labels(tok, msgs, row=str(rid)) for msgs, rid in zip(ds["messages"], ids, strict=True)]
        import datasets

        return datasets.Dataset.from_list(rows)


@hookimpl
def register_trainers(register: Any) -> None:
    register(SFTBackend)
