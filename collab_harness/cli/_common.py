"""Shared CLI plumbing: the plugin host of this invocation, JSON output, and option env vars."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import ConfigError
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


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"bleu=1,interactivity=0.5"`` -> ``{"bleu": 1.0, "interactivity": 0.5}``."""
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, val = part.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--weights: expected name=value pairs separated by commas, got {part!r}")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise ConfigError(f"--weights: {val.strip()!r} is not a number (in {part.strip()!r})") from None
    return out
