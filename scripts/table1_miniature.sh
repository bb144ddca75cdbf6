#!/usr/bin/env bash
# The paper's Table 1 in miniature (CollabLLM, Wu et al., ICML 2025): the embedded SmolLM2-135M-Instruct, the tasks'
# offline samples, the offline user simulator (shard-user) and the offline rule judge, on one machine's CPUs.
#
#   base -> synth per task (candidates ranked by MR) -> export sft / dpo (pooled over the tasks)
#        -> train sft, then offline dpo on top of it -> run on held-out test examples of every task
#        -> one leaderboard with rows Base, Proactive Base, SFT, Offline DPO and, per task, the task metric,
#           k-tokens and interactivity
#
# Usage (from the repository root):  scripts/table1_miniature.sh
# Sizes come from the environment (defaults in brackets, the committed board's settings): TASKS ["math-chat doc-chat"],
# SYNTH_LIMIT [8] training examples per task, TURNS [2] assistant turns per synthetic conversation, SAMPLES [1] MR
# futures per candidate, EVAL_LIMIT [8] test examples per task, SFT_STEPS [16], DPO_STEPS [16], MAX_TOKENS [64],
# EXCHANGES [2], SEED [0]. THREADS sets torch's threads (OMP_NUM_THREADS) for every step; on a machine shared with
# other work, THREADS=1 avoids oversubscription. Scratch (synthesis runs, exports, trained models) goes to WORK
# [runs/table1-miniature] (not committed); the board, its evaluation runs, the training manifests and the stage
# timings go to BOARD [leaderboards/table1-miniature].
set -euo pipefail
cd "$(dirname "$0")/.."

CH=${CH:-.venv/bin/collab-harness}
PY=${PY:-.venv/bin/python}
TASKS=${TASKS:-"math-chat doc-chat"}
SYNTH_LIMIT=${SYNTH_LIMIT:-8}
TURNS=${TURNS:-2}
SAMPLES=${SAMPLES:-1}
EVAL_LIMIT=${EVAL_LIMIT:-8}
SFT_STEPS=${SFT_STEPS:-16}
DPO_STEPS=${DPO_STEPS:-16}
MAX_TOKENS=${MAX_TOKENS:-64}
EXCHANGES=${EXCHANGES:-2}
SEED=${SEED:-0}
WORK=${WORK:-runs/table1-miniature}
BOARD=${BOARD:-leaderboards/table1-miniature}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false LITELLM_LOCAL_MODEL_COST_MAP=True
if [ -n "${THREADS:-}" ]; then export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS; fi

rm -rf "$WORK" "$BOARD"
mkdir -p "$WORK/data-sft" "$WORK/data-dpo" "$BOARD/runs" "$BOARD/training"
touch "$WORK/data-sft/train.jsonl" "$WORK/data-dpo/train.jsonl"
LOG="$BOARD/timings.txt"
: > "$LOG"
stage() {  # stage NAME COMMAND...: run it, append its wall time and peak memory (GNU time when present) to the log
  local name=$1; shift
  echo "== $name: $*" >&2
  local t0=$SECONDS rc=0
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%M" -o "$WORK/.rss" "$@" || rc=$?
    echo "$name: $((SECONDS - t0)) s, peak RSS $(( $(tail -n 1 "$WORK/.rss") / 1024 )) MiB" >> "$LOG"
  else
    "$@" || rc=$?
    echo "$name: $((SECONDS - t0)) s" >> "$LOG"
  fi
  return $rc  # explicit: set -e does not apply inside a function called as an if condition
}
eval_config() {  # eval_config TASK FILE: the task's default metrics; tokens counted with the base model's tokenizer
  "$PY" - "$1" "$2" <<'EOF'
import sys

import yaml

from collab_harness.plugins import build_plugin_manager

task, path = sys.argv[1], sys.argv[2]
t = build_plugin_manager().registry.create("task", task, {})
# The trained models keep the base tokenizer: one tokenizer for every row keeps k-tokens comparable.
metrics = [{"name": m, "options": {"tokenizer": "local/smollm2"}} if m == "token_amount" else m
           for m in t.default_metrics]
with open(path, "w", encoding="utf-8") as fh:
    yaml.safe_dump({"task": task, "metrics": metrics}, fh, sort_keys=False)
EOF
}

# 1. Synthetic multi-turn data from the base model, per task: 2 candidates per turn (one proactive, one plain), each
#    scored by MR (SAMPLES futures of 1 exchange), up to TURNS turns per conversation; exports pooled over the tasks.
for t in $TASKS; do
  stage "synth $t" "$CH" synth --task "$t" --split train --limit "$SYNTH_LIMIT" --seed "$SEED" --candidates 2 \
    --max-turns "$TURNS" --samples "$SAMPLES" --window 1 --max-tokens "$MAX_TOKENS" --out "$WORK/synth-$t" \
    --no-progress
  stage "export sft $t" "$CH" export sft "$WORK/synth-$t" --out "$WORK/export-sft-$t" --format jsonl
  cat "$WORK/export-sft-$t/train.jsonl" >> "$WORK/data-sft/train.jsonl"
  if stage "export dpo $t" "$CH" export dpo "$WORK/synth-$t" --out "$WORK/export-dpo-$t" --format jsonl \
       --min-gap 0.02; then
    cat "$WORK/export-dpo-$t/train.jsonl" >> "$WORK/data-dpo/train.jsonl"
  else
    echo "export dpo $t: no pair reached the minimum MR gap" >> "$LOG"
  fi
done
echo "rows: sft $(wc -l < "$WORK/data-sft/train.jsonl"), dpo $(wc -l < "$WORK/data-dpo/train.jsonl")" >> "$LOG"

# 2. SFT on the best paths (assistant tokens only), then offline DPO on the best-vs-worst pairs from the SFT model.
stage train-sft "$CH" train sft --data "$WORK/data-sft" --model local/smollm2 --out "$WORK/models/sft" \
  -o max_steps="$SFT_STEPS" -o per_device_train_batch_size=2 -o learning_rate=2e-4 -o max_length=1024 \
  -o seed="$SEED" -o save_steps=1000 -o gradient_checkpointing=false -o trl_args.disable_tqdm=true
stage train-dpo "$CH" train dpo --data "$WORK/data-dpo" --model "$WORK/models/sft" --out "$WORK/models/dpo" \
  -o max_steps="$DPO_STEPS" -o per_device_train_batch_size=2 -o learning_rate=5e-5 -o beta=0.1 -o max_length=1024 \
  -o seed="$SEED" -o save_steps=1000 -o gradient_checkpointing=false -o trl_args.disable_tqdm=true
cp "$WORK/models/sft/training_manifest.json" "$BOARD/training/sft.json"
cp "$WORK/models/dpo/training_manifest.json" "$BOARD/training/dpo.json"

# 3. Held-out evaluation (test split), one run per row and task.
PROACTIVE=$("$PY" -c "from collab_harness.prompts import PROACTIVE_COLLABORATOR as P; print(P)")
RUNS=()
for t in $TASKS; do
  eval_config "$t" "$WORK/eval-$t.yaml"
  EVAL=(--config "$WORK/eval-$t.yaml" --split test --limit "$EVAL_LIMIT" --seed "$SEED" --max-exchanges "$EXCHANGES"
        --max-tokens "$MAX_TOKENS" --no-progress)
  R="$BOARD/runs/$t"
  stage "eval base $t" "$CH" run "${EVAL[@]}" --label "Base" --out "$R/base"
  stage "eval proactive $t" "$CH" run "${EVAL[@]}" --label "Proactive Base" --assistant-system-prompt "$PROACTIVE" \
    --out "$R/proactive-base"
  stage "eval sft $t" "$CH" run "${EVAL[@]}" --label "SFT" --assistant "local/$WORK/models/sft" --out "$R/sft"
  stage "eval dpo $t" "$CH" run "${EVAL[@]}" --label "Offline DPO" --assistant "local/$WORK/models/dpo" \
    --out "$R/offline-dpo"
  RUNS+=("$R/base" "$R/proactive-base" "$R/sft" "$R/offline-dpo")
done

# 4. One board.
"$CH" leaderboard "${RUNS[@]}" --out "$BOARD" --command "scripts/table1_miniature.sh  (TASKS='$TASKS' \
SYNTH_LIMIT=$SYNTH_LIMIT TURNS=$TURNS SAMPLES=$SAMPLES EVAL_LIMIT=$EVAL_LIMIT SFT_STEPS=$SFT_STEPS \
DPO_STEPS=$DPO_STEPS MAX_TOKENS=$MAX_TOKENS EXCHANGES=$EXCHANGES SEED=$SEED THREADS=${THREADS:-})"
rm -f "$WORK/.rss" "$BOARD"/runs/*/*/.lock
cat "$LOG" >&2
