"""Shared CLI plumbing: the plugin host of this invocation, JSON output, and option env vars."""

from __future__ import annotations

import json
from typing import Any

import click

from ..plugins import PluginHost, build_plugin_manager


class State:
    """Per-invocation state held on the click context."""

    def __init__(self, *, debug: bool, strict: bool, block: list[str]) -> None:
        self.debug = debug
        self.strict = strict
        self.block = block
        self._host: PluginHost | None = None

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = build_plugin_manager(strict=self.strict or None, block=self.block)
        return self._host


def state() -> State:
    obj = click.get_current_context().find_object(State)
    assert obj is not None, "CLI state missing"
    return obj


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def env(option: str) -> str:
    """The env var of an option: ``COLLAB_HARNESS_<OPTION>``."""
    return "COLLAB_HARNESS_" + option.upper().replace("-", "_")
