"""The CLI skeleton: version, help without torch, list/plugins JSON, one-line errors, validate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = [sys.executable, "-m", "collab_harness.cli.main"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def test_version() -> None:
    r = cli("--version")
    assert r.returncode == 0 and "collab-harness, version" in r.stdout


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['collab-harness', '--help']\n"
        "try:\n    runpy.run_module('collab_harness.cli.main', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'litellm') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout, r.stdout
    assert "Commands:" in r.stdout


@pytest.mark.parametrize("args", [["plugins"], ["list", "metrics"], ["list", "tasks"]])
def test_fast_commands_do_not_import_torch(args: list[str]) -> None:
    code = (
        "import sys\nfrom collab_harness.cli.main import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout, r.stdout[-500:]


def test_list_metrics_json_names_plugin_and_distribution() -> None:
    r = cli("list", "metrics", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows, "no metrics listed"
    for row in rows:
        assert row["plugin"] and row["distribution"] and row["name"] and row["version"]
    names = {row["name"] for row in rows}
    builtin = {row["name"] for row in rows if row["distribution"] == "collab-harness"}
    assert builtin and builtin <= names


def test_list_typo_is_one_line_with_suggestion() -> None:
    r = cli("list", "taks")
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "warning" not in ln]
    assert len(lines) == 1 and "did you mean" in lines[0] and "'tasks'" in lines[0], r.stderr


def test_unknown_command_is_one_line() -> None:
    r = cli("lsit")
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "did you mean 'list'" in lines[0]


def test_plugins_json() -> None:
    r = cli("plugins", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {"plugins", "blocked", "load_errors"}
    for p in data["plugins"]:
        assert {"name", "distribution", "version", "components"} <= set(p)


def test_block_plugin_flag_and_env() -> None:
    r = cli("--block-plugin", "token-amount", "plugins", "--json")
    assert "token-amount" in json.loads(r.stdout)["blocked"]
    r = cli("plugins", "--json", env={"COLLAB_HARNESS_BLOCK_PLUGINS": "token-amount,bleu"})
    assert {"token-amount", "bleu"} <= set(json.loads(r.stdout)["blocked"])


def test_validate_missing_file_is_one_line(tmp_path: Path) -> None:
    r = cli("validate", str(tmp_path / "nope.yaml"))
    assert r.returncode != 0
    assert [ln for ln in r.stderr.splitlines() if ln.strip() and "warning" not in ln] == [
        f"error: config file not found: {tmp_path / 'nope.yaml'}"
    ]


def test_validate_rejects_unknown_keys_and_bad_models(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("task: math-chat\nassitant: local/smollm2\n")
    r = cli("validate", str(cfg))
    assert r.returncode != 0 and "assitant" in r.stderr and "Traceback" not in r.stderr
    cfg.write_text("task: math-chat\nassistant: smollm2\n")
    r = cli("validate", str(cfg))
    assert r.returncode != 0 and "provider/name" in r.stderr


def test_validate_unknown_task_suggests(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("task: math-chta\n")
    r = cli("validate", str(cfg))
    assert r.returncode != 0 and "did you mean 'math-chat'" in r.stderr


def test_debug_shows_traceback(tmp_path: Path) -> None:
    r = cli("validate", str(tmp_path / "nope.yaml"), env={"COLLAB_HARNESS_RAISE_ERRORS": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr
