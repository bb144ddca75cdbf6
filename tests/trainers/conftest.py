"""Fixtures of the trainer-backend tests: a tiny random Llama (built on the spot), the export files, a fresh response
cache per test, and a plugin host with the ``reply-length`` metric."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from train_helpers import LengthPlugin, write_exports


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from collab_harness.testing.tiny import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_exports(tmp_path_factory.mktemp("exports"))


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh response cache (a re-run must test something); the converted embedded model is shared (the models
    directory is set for the whole session by tests/conftest.py)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("COLLAB_HARNESS_CACHE_DIR", str(cache))


@pytest.fixture
def mr_host(plugin_host: Any, register_plugin: Callable[..., Any]) -> Any:
    """The installed plugins plus the ``reply-length`` metric."""
    register_plugin(LengthPlugin())
    return plugin_host
