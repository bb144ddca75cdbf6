"""The README is tested: its shell and Python examples run here, as a reader would run them, so claims and commands
cannot drift (in the spirit of datasette's documentation tests).

- Every ```bash block runs, in order, as one bash script (``set -e``) in a fresh directory, with the project's
  environment on PATH, offline, with a fresh response cache (the embedded model answers for real). ``source`` lines
  are skipped: the environment is already active. Commands that would need provider keys or servers are written in
  the README with ``--dry-run``, which checks them without calling anything.
- Every ```python block runs as a script in the same directory.
- ```console blocks are shown, not run (the set-up commands, which this suite itself runs under; server starts).
- Every ``collab-harness CMD`` the README mentions exists (``CMD --help`` succeeds).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

_BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in _BLOCK.findall(README.read_text(encoding="utf-8")) if kind == lang]


def _env(tmp: Path) -> dict[str, str]:
    from collab_harness.models.local import models_dir

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    # A fresh response cache (the examples must really run), the converted embedded model shared.
    env["COLLAB_HARNESS_MODELS_DIR"] = str(models_dir())
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", COLLAB_HARNESS_CACHE_DIR=str(tmp / "cache"),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True",
               TOKENIZERS_PARALLELISM="false", COLUMNS="120")
    return env


def test_readme_has_the_blocks_this_test_runs() -> None:
    assert len(blocks("bash")) >= 4 and len(blocks("python")) >= 3
    assert "bash scripts/dev.sh demo" in README.read_text() and "bash scripts/dev.sh test" in README.read_text()


def test_every_command_the_readme_names_exists() -> None:
    # Commands are named in code (fenced blocks and `inline` spans); prose may say "collab-harness implements ...".
    text = README.read_text()
    code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text))
    names = sorted(set(re.findall(r"collab-harness ([a-z][a-z-]+)", code)))
    assert {"run", "mr", "leaderboard", "view", "schema", "validate", "list", "plugins"} <= set(names)
    for name in names:
        r = subprocess.run([str(BIN / "collab-harness"), name, "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"collab-harness {name} --help: {r.stderr}"


@pytest.mark.realmodel
@pytest.mark.slow
def test_readme_shell_and_python_examples_run(tmp_path: Path) -> None:
    env = _env(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    script = "set -euo pipefail\n" + "\n".join(
        "\n".join(line for line in body.splitlines() if not line.strip().startswith("source "))
        for body in blocks("bash"))
    r = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"README shell examples failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    # What the quick start promises is there.
    for path in ("runs/math/manifest.json", "runs/math/results.json", "runs/board/index.html",
                 "runs/board/conversations.html", "runs/mr/samples.jsonl", "mr-record.schema.json",
                 "runs/from-config/results.json", "runs/synth/samples.jsonl", "exports/sft/README.md",
                 "models/sft/config.json", "models/sft/training_manifest.json", "runs/eval-sft/results.json",
                 "runs/safety/results.json", "runs/board-safety/index.html"):
        assert (work / path).exists(), path
    assert "0 new, 2 resumed" in r.stdout  # the second run resumed the first
    assert "dry run (eval)" in r.stdout and "no model is called" in r.stdout
    for i, body in enumerate(blocks("python")):
        if "my_package/plugin.py" in body or "class TestBrevity" in body:
            # The plugin guide's snippets: they must import and define, not run a plugin host.
            body = "from typing import ClassVar\n" + body
        p = work / f"readme_{i}.py"
        p.write_text(body)
        r = subprocess.run([sys.executable, str(p)], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"README python block {i} failed:\n{body}\n{r.stderr[-3000:]}"
