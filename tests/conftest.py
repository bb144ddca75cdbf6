"""Test-wide settings: everything offline, no hub retries, no tokenizer thread pools."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("COLLAB_HARNESS_TELEMETRY", "0")
# Tests that need real behaviour use a fresh response cache each; the converted embedded model is shared (converted
# once per machine, under a file lock), in the models directory the default cache dir would hold.
os.environ.setdefault("COLLAB_HARNESS_MODELS_DIR", os.path.join(
    os.environ.get("COLLAB_HARNESS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "collab-harness"),
    "models"))
