"""Golden trajectory: the first losses of SFT and DPO on the tiny random Llama with seed 0 match the committed
reference (``golden.json``) within its stated tolerance. Regenerate it, with a reason in the commit message, by running
this file with ``COLLAB_HARNESS_UPDATE_GOLDEN=1``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from train_helpers import FAST

pytest.importorskip("trl")

GOLDEN = Path(__file__).with_name("golden.json")
STEPS = 3
#: A learning rate high enough that the losses move well beyond the tolerance within three steps (at LoRA's default
#: 1e-4 the tiny model's DPO loss stays within 1e-3 of ln 2, and a changed loss would go unnoticed).
LR = 5e-3
#: |loss - reference| <= ABS + REL * |reference|: float32 on CPU is deterministic for one torch build; the margin
#: covers reduction-order differences between BLAS builds and thread counts, far below a real behaviour change.
ABS, REL = 2e-5, 2e-4


def _losses(name: str, tiny: Path, exports: dict[str, Path], out: Path) -> list[float]:
    from collab_harness_plugins.trainers.dpo import DPOBackend
    from collab_harness_plugins.trainers.sft import SFTBackend

    cls: Any = SFTBackend if name == "sft" else DPOBackend
    backend = cls({**FAST, "max_steps": STEPS, "save_steps": 100, "seed": 0, "learning_rate": LR})
    backend.train(data=str(exports[name]), model=str(tiny), out=out)
    return list(json.loads((out / "training_manifest.json").read_text())["losses"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sft", "dpo"])
def test_first_losses_match_the_reference(name: str, tiny: Path, exports: dict[str, Path], tmp_path: Path) -> None:
    got = _losses(name, tiny, exports, tmp_path / "o")
    assert len(got) == STEPS and all(math.isfinite(x) for x in got)
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {"tolerance": {"abs": ABS, "rel": REL}}
    if os.environ.get("COLLAB_HARNESS_UPDATE_GOLDEN") == "1":
        import torch
        import trl

        golden[name] = got
        golden["made_with"] = {"torch": torch.__version__, "trl": trl.__version__, "steps": STEPS,
                               "learning_rate": LR,
                               "settings": "tests/trainers/train_helpers.py FAST, seed 0, make_tiny_llama(seed=0)"}
        GOLDEN.write_text(json.dumps(golden, indent=2) + "\n")
    ref = golden[name]
    for step, (g, r) in enumerate(zip(got, ref, strict=True), start=1):
        assert abs(g - r) <= ABS + REL * abs(r), f"{name} step {step}: loss {g} vs reference {r}"
