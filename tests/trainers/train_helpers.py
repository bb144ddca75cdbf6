"""Shared data of the trainer-backend tests: small datasets in the exact export formats, fast settings, and a metric
that makes MR vary between random completions. (A module with a unique name: tests import it, not the conftest.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from collab_harness import Metric, Score, ScoringContext, hookimpl

#: Conversations in the SFT export's shape (system, user and assistant turns; one with two assistant turns).
CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "I need help with an algebra problem."},
     {"role": "assistant", "content": "What is the problem you are working on?"},
     {"role": "user", "content": "Solve x + 1 = 8."},
     {"role": "assistant", "content": "The final answer is \\boxed{7}."}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Write a short article about the sea and the gulls."},
     {"role": "assistant", "content": "Which audience is the article for, and how long should it be?"}],
    [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hello! How can I help you today?"}],
    [{"role": "user", "content": "Let me think step by step about this question."},
     {"role": "assistant", "content": "Sure, here is a draft of the document you asked for."}],
]
#: math-chat examples of the shipped offline sample (train split) the RL rows point at.
EXAMPLES = ["math-chat/sample-002", "math-chat/sample-005", "math-chat/sample-008", "math-chat/sample-011"]

#: Settings that keep a training test to a few seconds.
FAST: dict[str, Any] = {"max_steps": 2, "save_steps": 1, "per_device_train_batch_size": 2, "logging_steps": 1,
                        "gradient_checkpointing": False, "trl_args": {"disable_tqdm": True}}
#: MR settings for the online backends: one future of one exchange, short replies, the offline user and judge.
FAST_MR: dict[str, Any] = {"samples": 1, "window": 1, "futures_max_tokens": 8, "max_completion_length": 8,
                           "futures_temperature": 0.0, "user": "shard-user", "judge": "rules"}


def write_exports(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = {k: root / f"{k}.jsonl" for k in ("sft", "dpo", "rl")}
    with open(paths["sft"], "w", encoding="utf-8") as fh:
        for i, c in enumerate(CONVERSATIONS):
            fh.write(json.dumps({"id": f"{EXAMPLES[i]}#0", "example_id": EXAMPLES[i], "task": "math-chat",
                                 "messages": c, "turns": 1, "final_mr": 0.5, "terminated": True}) + "\n")
    with open(paths["dpo"], "w", encoding="utf-8") as fh:
        for i, c in enumerate(CONVERSATIONS):
            fh.write(json.dumps({"id": f"{EXAMPLES[i]}#0/t0", "example_id": EXAMPLES[i], "task": "math-chat",
                                 "turn": 0, "prompt": c[:-1], "chosen": [c[-1]],
                                 "rejected": [{"role": "assistant", "content": "The answer is 42."}],
                                 "score_chosen": 1.0, "score_rejected": 0.0, "gap": 1.0, "chosen_variant": "proactive",
                                 "rejected_variant": "plain"}) + "\n")
    with open(paths["rl"], "w", encoding="utf-8") as fh:
        for i, c in enumerate(CONVERSATIONS):
            last_user = max(j for j, m in enumerate(c) if m["role"] == "user")
            fh.write(json.dumps({"id": f"{EXAMPLES[i]}#0/t0", "example_id": EXAMPLES[i], "task": "math-chat",
                                 "turn": 0, "prompt": c[: last_user + 1], "reference": "7"}) + "\n")
    return paths


class ReplyLength(Metric):
    """Length of the candidate (the first assistant message of the forward part) in characters / 64, at most 1: a
    real, cheap metric on which random completions differ, so online training gets a non-zero advantage."""

    name: ClassVar[str] = "reply-length"

    def compute(self, ctx: ScoringContext) -> Score:
        first = next((m for m in ctx.conversation.messages[ctx.forward_start:] if m.role == "assistant"), None)
        return Score(component=self.name, value=min(1.0, len(first.content) / 64) if first else 0.0)


class LengthPlugin:
    @hookimpl
    def register_metrics(self, register: Any) -> None:
        register(ReplyLength)
