"""pytest plugin of collab-harness (entry point ``pytest11``): fixtures for plugin authors."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..plugins import PluginHost, build_plugin_manager


@pytest.fixture
def plugin_host() -> PluginHost:
    """A fresh plugin host with every installed plugin (entry points) loaded, strict off, nothing blocked."""
    return build_plugin_manager(strict=False, block=[])


@pytest.fixture
def register_plugin(plugin_host: PluginHost) -> Iterator[Callable[..., Any]]:
    """``register_plugin(obj, name=None)`` registers a plugin object in ``plugin_host`` for this test only."""
    names: list[str] = []

    def _register(obj: object, name: str | None = None) -> Any:
        name = name or f"test-plugin-{uuid.uuid4().hex[:8]}"
        info = plugin_host.add_plugin(obj, name=name)
        if info is None:
            err = plugin_host.load_errors[-1] if plugin_host.load_errors else "blocked"
            raise AssertionError(f"plugin {name!r} failed to register: {err}")
        names.append(name)
        return info

    yield _register
    for n in names:
        plugin_host.remove_plugin(n)


@pytest.fixture
def scripted_model() -> Iterator[Callable[..., str]]:
    """``scripted_model(reply, **faults) -> "scripted/<name>"``: a scripted model registered for this test."""
    from ..models.scripted import register_script, unregister_script

    names: list[str] = []

    def _make(reply: Any, *, name: str | None = None, **faults: Any) -> str:
        name = name or f"t-{uuid.uuid4().hex[:10]}"
        names.append(name)
        return register_script(name, reply, **faults)

    yield _make
    for n in names:
        unregister_script(n)


@pytest.fixture
def model_client(tmp_path: Any) -> Any:
    """A model-layer client with its cache in a temporary directory."""
    from ..models.client import Client

    return Client(cache_dir=tmp_path / "model-cache")
