"""Step time of our ``sft`` backend vs a plain TRL ``SFTTrainer`` script, same model, data and settings, in one run.

Both train the same LoRA (r 32, alpha 16, dropout 0.1, all-linear) with assistant-only loss on the same conversations
(an SFT export's format), same batch size, seed and precision; neither saves a checkpoint inside the timed steps. A
``TrainerCallback`` times every optimizer step (``on_step_begin`` -> ``on_step_end``) in both; the first steps of each
run are warm-up and dropped. Rounds alternate the two (ours, plain, ours, plain ...) so a burst from another process
on a shared machine hits both; the ratio is median(our step times) / median(plain step times) over all rounds. Setup
and total wall time (model load, tokenisation, final save, manifest) are printed too, for information: the goal is
about the training loop. The last line is the headline.

    .venv/bin/python benchmarks/train_overhead.py [--steps 30] [--rounds 2] [--batch 4] [--model local/smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

WARMUP = 3
#: Conversations in the SFT export's shape (system, user and assistant turns).
CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "I need help with an algebra problem."},
     {"role": "assistant", "content": "What is the problem you are working on?"},
     {"role": "user", "content": "Solve x + 1 = 8."},
     {"role": "assistant", "content": "The final answer is \\boxed{7}."}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Write a short article about the sea and the gulls."},
     {"role": "assistant", "content": "Which audience is the article for, and how long should it be?"}],
    [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hello! How can I help you today?"}],
]


def make_data(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            conv = [dict(m, content=f"{m['content']} (#{i})") for m in CONVERSATIONS[i % len(CONVERSATIONS)]]
            fh.write(json.dumps({"id": f"row-{i}", "example_id": f"x-{i}", "task": "math-chat", "messages": conv})
                     + "\n")
    return path


def step_timer() -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._t = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.times.append(time.perf_counter() - self._t)

    return StepTimer()


def common(steps: int, batch: int) -> dict[str, Any]:
    return {"max_steps": steps, "per_device_train_batch_size": batch, "logging_steps": 10, "seed": 0,
            "learning_rate": 1e-4, "gradient_checkpointing": False}


def run_ours(model: str, data: Path, out: Path, steps: int, batch: int) -> tuple[list[float], float]:
    from collab_harness_plugins.trainers.sft import SFTBackend

    timer = step_timer()
    t0 = time.perf_counter()
    SFTBackend({**common(steps, batch), "save_steps": steps + 1, "precision": "fp32",
                "trl_args": {"disable_tqdm": True}}).train(data=str(data), model=model, out=out, callbacks=[timer])
    return timer.times, time.perf_counter() - t0


def run_plain(model_dir: Path, data: Path, out: Path, steps: int, batch: int) -> tuple[list[float], float]:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    timer = step_timer()
    t0 = time.perf_counter()
    set_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ds = datasets.load_dataset("json", data_files=str(data), split="train").select_columns(["messages"])
    args = SFTConfig(output_dir=str(out), **common(steps, batch), save_strategy="no", report_to=[], bf16=False,
                     data_seed=0, assistant_only_loss=True, max_length=1024, disable_tqdm=True)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), args=args,
                         train_dataset=ds, processing_class=tok, callbacks=[timer],
                         peft_config=LoraConfig(r=32, lora_alpha=16, lora_dropout=0.1, target_modules="all-linear",
                                                task_type="CAUSAL_LM"))
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    return timer.times, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--model", default=None, help="a model dir or local/... (default: the tiny random Llama)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both (1: no oversubscription noise on a shared machine)")
    a = ap.parse_args()
    if a.steps <= WARMUP:
        ap.error(f"--steps must exceed the {WARMUP} warm-up steps")
    import torch
    import transformers

    torch.set_num_threads(a.threads)
    transformers.logging.set_verbosity_error()
    from collab_harness_plugins.trainers._common import resolve_model

    from collab_harness.testing.tiny import make_tiny_llama

    with tempfile.TemporaryDirectory(prefix="train-overhead-") as tmp:
        root = Path(tmp)
        model = a.model or str(make_tiny_llama(root / "tiny"))
        model_dir = resolve_model(model).path
        data = make_data(root / "sft.jsonl", a.steps * a.batch)
        ours: list[float] = []
        plain: list[float] = []
        for r in range(a.rounds):
            for which in (("ours", "plain") if r % 2 == 0 else ("plain", "ours")):
                out = root / f"{which}-{r}"
                if which == "ours":
                    times, wall = run_ours(model, data, out, a.steps, a.batch)
                    ours += times[WARMUP:]
                else:
                    times, wall = run_plain(model_dir, data, out, a.steps, a.batch)
                    plain += times[WARMUP:]
                med = statistics.median(times[WARMUP:])
                print(f"round {r + 1} {which:5s}: {len(times)} steps, median step {med:.4f} s, total wall {wall:.2f} s "
                      "(load, tokenise, train, save)", flush=True)
    mo, mp = statistics.median(ours), statistics.median(plain)
    print(f"model {model}; {a.steps} steps x {a.rounds} rounds, batch {a.batch}, {WARMUP} warm-up steps dropped; "
          f"torch threads {a.threads}, cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    print(f"median step: ours {mo:.4f} s, plain TRL {mp:.4f} s")
    print(f"train_overhead_ratio: {mo / mp:.3f}")


if __name__ == "__main__":
    main()
