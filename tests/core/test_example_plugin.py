"""A real third-party plugin package, installed with pip and discovered through its entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "example_plugin"
BROKEN = ROOT / "tests" / "broken_plugin"


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        # Build isolation needs setuptools from the index; retry without it if the venv has setuptools.
        r = subprocess.run([*cmd, "--no-build-isolation"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def _installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@pytest.fixture(scope="session")
def example_installed() -> str:
    """Install the example plugin into this environment once (a file lock guards concurrent pytest runs)."""
    lock = FileLock(str(Path(sys.prefix) / ".collab-harness-example-install.lock"))
    with lock:
        if _installed_version("collab-harness-example") != "0.2.0":
            _pip(str(EXAMPLE))
    return "collab-harness-example"


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The broken plugin goes into its own directory, put on PYTHONPATH only where a test wants it."""
    target = tmp_path_factory.mktemp("broken-site")
    _pip("--target", str(target), str(BROKEN))
    return target


def cli(*args: str, extra_path: Path | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    e = {**os.environ, **(env or {})}
    if extra_path is not None:
        e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), e.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "collab_harness.cli.main", *args], capture_output=True, text=True, env=e, timeout=120
    )


def test_listed_by_plugins_and_list(example_installed: str) -> None:
    data = json.loads(cli("plugins", "--json").stdout)
    ex = [p for p in data["plugins"] if p["name"] == "example"]
    assert ex and ex[0]["distribution"] == "collab-harness-example" and ex[0]["version"] == "0.2.0"
    assert ex[0]["builtin"] is False
    assert ex[0]["components"] == {"task": ["keyword-note"], "metric": ["keyword_recall"]}
    tasks = {r["name"]: r for r in json.loads(cli("list", "tasks", "--json").stdout)}
    assert tasks["keyword-note"]["distribution"] == "collab-harness-example"
    assert tasks["keyword-note"]["info"]["splits"] == {"train": 2, "test": 6}
    metrics = {r["name"] for r in json.loads(cli("list", "metrics", "--json").stdout)}
    assert "keyword_recall" in metrics


def test_blockable(example_installed: str) -> None:
    r = cli("--block-plugin", "example", "list", "tasks", "--json")
    assert "keyword-note" not in {row["name"] for row in json.loads(r.stdout)}
    r = cli("list", "tasks", "--json", env={"COLLAB_HARNESS_BLOCK_PLUGINS": "collab-harness-example"})
    assert "keyword-note" not in {row["name"] for row in json.loads(r.stdout)}


def test_validate_uses_the_example_plugin(example_installed: str, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("task: keyword-note\nuser: shard-user\n")
    r = cli("validate", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    comps = {c["name"]: c for c in json.loads(r.stdout)["components"]}
    assert comps["keyword_recall"]["distribution"] == "collab-harness-example"


def test_broken_plugin_skipped_with_warning(example_installed: str, broken_site: Path) -> None:
    r = cli("plugins", "--json", extra_path=broken_site)
    assert r.returncode == 0, r.stderr
    warning = [ln for ln in r.stderr.splitlines() if "broken-example" in ln]
    assert len(warning) == 1
    assert "collab-harness-broken-example" in warning[0] and "fails to import on purpose" in warning[0]
    data = json.loads(r.stdout)
    assert any(e["plugin"] == "broken-example" for e in data["load_errors"])
    assert any(p["name"] == "example" for p in data["plugins"]), "a broken plugin must not take others down"


def test_broken_plugin_fatal_when_strict(example_installed: str, broken_site: Path) -> None:
    r = cli("--strict-plugins", "plugins", extra_path=broken_site)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "broken-example" in lines[0] and "Traceback" not in r.stderr
    r = cli("plugins", extra_path=broken_site, env={"COLLAB_HARNESS_STRICT_PLUGINS": "1"})
    assert r.returncode != 0


def test_asking_for_a_component_of_a_failed_plugin_shows_its_error(broken_site: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("task: broken-task\n")
    r = cli("validate", str(cfg), extra_path=broken_site)
    assert r.returncode != 0 and "fails to import on purpose" in r.stderr


def test_example_plugin_contract_tests_pass(example_installed: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True, text=True, timeout=300, cwd=EXAMPLE,
    )
    assert r.returncode == 0, r.stdout[-3000:]
    assert "passed" in r.stdout
