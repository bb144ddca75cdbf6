"""Components by kind and name, each attributed to the plugin (and distribution) that registered it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .components import BASES, KINDS, Component, ComponentOptions, Kind
from .errors import ComponentNotFound, DuplicateComponent, PluginError

__all__ = ["ComponentSpec", "Registry"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


@dataclass(frozen=True)
class ComponentSpec:
    """A registered component class and where it came from."""

    kind: Kind
    name: str
    cls: type[Component]
    plugin: str
    distribution: str | None = None
    plugin_version: str | None = None

    @property
    def version(self) -> str:
        return self.cls.version

    @property
    def description(self) -> str:
        doc = self.cls.description or inspect.getdoc(self.cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def create(self, options: ComponentOptions | Mapping[str, Any] | None = None) -> Component:
        return self.cls(options)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "plugin_version": self.plugin_version,
            "options_schema": self.cls.Options.model_json_schema(),
        }


def validate_component_class(kind: Kind, cls: Any, plugin: str) -> None:
    """Reject anything that is not a concrete, well-formed component class of ``kind``."""
    base = BASES[kind]
    where = f"plugin {plugin!r} registered {cls!r} as a {kind}"
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise PluginError(f"{where}, but it is not a subclass of {base.__module__}.{base.__qualname__}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise PluginError(f"{where}, but it is abstract (missing: {missing})")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(f"{where} with an invalid name {name!r} (lowercase letters, digits, '-', '_', '.')")
    if not isinstance(getattr(cls, "version", None), str):
        raise PluginError(f"{where} without a string version")
    opts = getattr(cls, "Options", None)
    if not (inspect.isclass(opts) and issubclass(opts, ComponentOptions)):
        raise PluginError(f"{where}, but its Options is not a subclass of ComponentOptions")
    if opts.model_config.get("extra") != "forbid":
        raise PluginError(f"{where}, but its Options allow unknown keys (set extra='forbid')")


@dataclass
class Registry:
    """All registered components; unknown names get suggestions, duplicates are errors naming both plugins."""

    _specs: dict[Kind, dict[str, ComponentSpec]] = field(default_factory=lambda: {k: {} for k in KINDS})
    load_errors: list[str] = field(default_factory=list)

    def add(self, spec: ComponentSpec) -> None:
        existing = self._specs[spec.kind].get(spec.name)
        if existing is not None:
            raise DuplicateComponent(
                f"{spec.kind} {spec.name!r} is registered twice: by plugin {existing.plugin!r}"
                f" ({existing.distribution or 'no distribution'}) and by plugin {spec.plugin!r}"
                f" ({spec.distribution or 'no distribution'})"
            )
        self._specs[spec.kind][spec.name] = spec

    def check_can_add(self, specs: Iterable[ComponentSpec]) -> None:
        """Raise :class:`DuplicateComponent` if any of ``specs`` clashes with the registry or with each other."""
        trial = Registry({k: dict(v) for k, v in self._specs.items()})
        for s in specs:
            trial.add(s)

    def remove_plugin(self, plugin: str) -> None:
        for kind in KINDS:
            for name in [n for n, s in self._specs[kind].items() if s.plugin == plugin]:
                del self._specs[kind][name]

    def get(self, kind: Kind, name: str) -> ComponentSpec:
        if kind not in self._specs:
            raise ComponentNotFound("component kind", kind, KINDS)
        try:
            return self._specs[kind][name]
        except KeyError:
            raise ComponentNotFound(kind, name, self._specs[kind], load_errors=self.load_errors) from None

    def create(
        self, kind: Kind, name: str, options: ComponentOptions | Mapping[str, Any] | None = None
    ) -> Component:
        return self.get(kind, name).create(options)

    def names(self, kind: Kind) -> list[str]:
        return sorted(self._specs[kind])

    def specs(self, kind: Kind | None = None) -> list[ComponentSpec]:
        kinds = [kind] if kind else list(KINDS)
        return [self._specs[k][n] for k in kinds for n in sorted(self._specs[k])]

    def by_plugin(self, plugin: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for s in self.specs():
            if s.plugin == plugin:
                out.setdefault(s.kind, []).append(s.name)
        return out
