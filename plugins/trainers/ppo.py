"""``ppo``: PPO with MR as the scalar reward (TRL ``trl.experimental.ppo.PPOTrainer``, the 1.12 line's PPO).

TRL's PPO reads its reward from a reward *model* through ``trl.experimental.utils.get_reward``: it calls
``getattr(model, model.base_model_prefix)(input_ids=..., attention_mask=..., ...)`` on the query + response tokens,
takes ``.hidden_states[-1]`` and applies ``model.score`` to it, then reads the value at each sequence's last token.
:func:`make_reward_model` builds a module of exactly that shape with no weights: its backbone strips the padding,
finds the RL prompt each sequence starts with (an index of the rows' tokenised prompts), decodes the response, scores
every response of the rollout with MR in one concurrent batch (:class:`~._mr.MRScorer`), and returns the MR value at
every position; ``score`` is the identity. The value model is a sequence-classification head on the base model (what
TRL expects); the reference model is the base with the LoRA adapter switched off (or a frozen copy when fine-tuning
fully). The policy's futures are played by the current policy (``local/live:...``), its version bumped after each
PPO update.

Failure policy: a failed MR fails the rollout with a one-line error naming the sample, unless ``mr_failure_penalty``
sets the reward given instead (recorded per completion in ``rewards.jsonl``, counted in the manifest).

TRL masks the pad token everywhere in PPO (``query_responses != pad_token_id``); when the tokenizer's pad token is
its end-of-turn token (SmolLM2), the prompts' turn ends would vanish, so a distinct ``<|pad|>`` token is added and the
embeddings resized (recorded as ``added_pad_token``). PPO cannot ``--resume`` (its loop restores no state).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

from pydantic import Field

from collab_harness import ComponentOptions, hookimpl
from collab_harness.errors import ConfigError

from ._common import TrainingSession, TRLBackend, collab_errors, peft_config, resolve_model
from ._mr import MRItem, MRScorer, StrictMROptions, failure_policy, go_live, prepare_mr

__all__ = ["PPOBackend", "PPOOptions", "make_reward_model"]


class PPOOptions(StrictMROptions):
    #: PPO epochs over each rollout batch.
    num_ppo_epochs: int = Field(4, ge=1)
    num_mini_batches: int = Field(1, ge=1)
    kl_coef: float = Field(0.05, ge=0.0)
    #: Base of the value model (None: the policy's base model).
    value_model: str | None = None


def make_reward_model(scorer: MRScorer, tokenizer: Any, prompts: Mapping[tuple[int, ...], Mapping[str, Any]], *,
                      policy: Any, penalty: float | None) -> Any:
    """A weightless reward-model-shaped module whose "reward" is MR (see the module docstring). ``prompts`` maps a
    prompt's token ids (padding removed) to its row (``id``, ``example_id``, ``task``, ``prompt``)."""
    import torch

    pad_id = tokenizer.pad_token_id
    lengths = sorted({len(k) for k in prompts}, reverse=True)

    class _Backbone(torch.nn.Module):
        def __init__(self, owner: Any) -> None:
            super().__init__()
            self._owner = [owner]  # a list: not registered as a submodule (no cycle in .modules())

        def forward(self, input_ids: Any, attention_mask: Any = None, **_: Any) -> Any:
            return self._owner[0].mr_hidden(input_ids, attention_mask)

    class MRRewardModel(torch.nn.Module):
        base_model_prefix = "backbone"

        def __init__(self) -> None:
            super().__init__()
            self.backbone = _Backbone(self)
            self.score = torch.nn.Identity()
            self.trainer_state: Any = None

        def mr_hidden(self, input_ids: Any, attention_mask: Any) -> Any:
            mask = attention_mask.bool() if attention_mask is not None else input_ids != pad_id
            items = []
            for row in range(input_ids.shape[0]):
                toks = input_ids[row][mask[row]].tolist()
                found = next(((n, prompts[key]) for n in lengths if (key := tuple(toks[:n])) in prompts), None)
                if found is None:
                    raise ConfigError("ppo: a rollout's query matches none of the RL prompts (was the tokenizer "
                                      "changed after the prompts were indexed?)")
                n, info = found
                items.append(MRItem(row_id=str(info["id"]), example_id=str(info["example_id"]),
                                    task=str(info["task"]), history=tuple(info["prompt"]),
                                    candidate=tokenizer.decode(toks[n:], skip_special_tokens=True)))
            step = int(getattr(self.trainer_state, "global_step", 0) or 0)
            results = scorer.score(items, step)
            values = scorer.values(items, results, policy, penalty, step)
            t = torch.tensor(values, dtype=torch.float32, device=input_ids.device)
            return SimpleNamespace(hidden_states=(t[:, None, None].expand(-1, input_ids.shape[1], 1),))

    return MRRewardModel()


class PPOBackend(TRLBackend):
    """PPO with MR as the scalar reward through a reward-model adapter (TRL experimental PPOTrainer)."""

    name: ClassVar[str] = "ppo"
    version: ClassVar[str] = "1.0.0"
    data_format: ClassVar[str] = "rl"
    Options: ClassVar[type[ComponentOptions]] = PPOOptions
    supports_resume: ClassVar[bool] = False

    def policy_of(self, session: TrainingSession) -> Any:
        return session.trainer.policy_model

    def build_trainer(self, session: TrainingSession) -> Any:
        import datasets
        import torch
        from transformers import AutoModelForSequenceClassification
        from trl.experimental.ppo import PPOConfig, PPOTrainer

        opts: PPOOptions = self.options  # type: ignore[assignment]
        tok = copy.deepcopy(session.tokenizer)
        tok.padding_side = "left"  # responses are appended to the queries
        added_pad = tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id
        if added_pad:
            tok.add_special_tokens({"pad_token": "<|pad|>"})
            session.tokenizer = tok  # saved with the model: its vocabulary grows by the pad token
        session.extra["added_pad_token"] = added_pad
        value_base = resolve_model(opts.value_model) if opts.value_model else session.base
        value = AutoModelForSequenceClassification.from_pretrained(value_base.path, num_labels=1, dtype=torch.float32)
        if added_pad:
            session.model.resize_token_embeddings(len(tok))
            value.resize_token_embeddings(len(tok))
        value.config.pad_token_id = tok.pad_token_id
        session.extra["value_model"] = {"model": value_base.model, "fingerprint": value_base.fingerprint}

        rows = session.train_dataset
        index: dict[tuple[int, ...], Mapping[str, Any]] = {}
        input_ids = []
        for i, r in enumerate(rows):
            ids = list(tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True,
                                               return_dict=False))
            input_ids.append(ids)
            info = {"id": r.get("id") or f"row-{i}", "example_id": r["example_id"], "task": r["task"],
                    "prompt": r["prompt"]}
            index.setdefault(tuple(t for t in ids if t != tok.pad_token_id), info)
        queries = datasets.Dataset.from_dict({"input_ids": input_ids})

        mr = prepare_mr(session)
        policy, penalty = failure_policy(opts, "raise")
        reward_model = make_reward_model(mr.scorer, tok, index, policy=policy, penalty=penalty)
        algo: dict[str, Any] = {"num_ppo_epochs": opts.num_ppo_epochs, "num_mini_batches": opts.num_mini_batches,
                                "kl_coef": opts.kl_coef, "stop_token": "eos", "num_sample_generations": 0}
        if opts.max_steps > 0:  # PPO counts episodes: one step = one rollout batch
            algo["total_episodes"] = opts.max_steps * opts.per_device_train_batch_size \
                * opts.gradient_accumulation_steps * int(os.environ.get("WORLD_SIZE", "1"))
        if opts.max_completion_length is not None:
            algo["response_length"] = opts.max_completion_length
        if opts.temperature is not None:
            algo["temperature"] = opts.temperature
        with collab_errors("ppo"):
            args = PPOConfig(**session.trl_args(**algo))
            trainer = PPOTrainer(args=args, processing_class=tok, model=session.model, ref_model=None,
                                 reward_model=reward_model, train_dataset=queries, value_model=value,
                                 eval_dataset=queries, peft_config=peft_config(opts))
        session.trainer = trainer
        reward_model.trainer_state = trainer.state
        go_live(session, mr, trainer.policy_model)
        return trainer


@hookimpl
def register_trainers(register: Any) -> None:
    register(PPOBackend)
