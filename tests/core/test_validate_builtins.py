"""`validate` resolves and builds every built-in component of a config without calling a model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TASKS = ["doc-chat", "math-chat", "code-chat", "abg-coqa", "safety-chat"]


@pytest.mark.parametrize("task", TASKS)
def test_validate_builtin_task_config(tmp_path: Path, task: str) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"task: {task}\nassistant: openai/gpt-4o-mini\nuser: shard-user\njudge: local/smollm2\n"
        "limit: 3\nmax_exchanges: 4\nseed: 1\n"
    )
    code = (
        "import sys\nfrom collab_harness.cli.main import main\n"
        f"try:\n    main(['--strict-plugins', 'validate', {str(cfg)!r}, '--json'])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('HEAVY', [m for m in ('torch', 'transformers') if m in sys.modules], file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stderr
    data = json.loads(r.stdout)
    kinds = {c["kind"] for c in data["components"]}
    assert {"task", "simulator"} <= kinds and ({"metric", "judge"} & kinds)
    for c in data["components"]:
        assert c["plugin"] and c["distribution"] == "collab-harness" and c["version"]
