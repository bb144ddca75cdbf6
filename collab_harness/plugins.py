"""Build the plugin manager: built-ins and third-party plugins alike come from the ``collab_harness`` entry-point
group, loaded one at a time so that one broken plugin cannot take the others down.

Nothing here runs at import time: call :func:`build_plugin_manager` (tests get a fresh host each time).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from . import hookspecs
from .components import Kind
from .errors import PluginError
from .registry import ComponentSpec, Registry, validate_component_class

__all__ = ["ENTRY_POINT_GROUP", "LoadError", "PluginHost", "PluginInfo", "build_plugin_manager"]

ENTRY_POINT_GROUP = "collab_harness"
BUILTIN_DISTRIBUTION = "collab-harness"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    module: str
    builtin: bool
    components: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "builtin": self.builtin,
            "components": self.components,
        }


@dataclass(frozen=True)
class LoadError:
    plugin: str
    distribution: str | None
    error: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} from distribution {self.distribution or '(unknown)'!r}: {self.error}"

    def as_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "distribution": self.distribution, "error": self.error}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


def _stderr_warn(msg: str) -> None:
    print(f"collab-harness: warning: {msg}", file=sys.stderr)


class PluginHost:
    """The plugin manager plus the registry it produced and what happened while loading.

    ``pm`` is the raw :class:`pluggy.PluginManager`; ``registry`` holds the components; ``plugins`` and
    ``load_errors`` describe every plugin seen.
    """

    def __init__(
        self, *, strict: bool, blocked: Iterable[str], warn: Callable[[str], None] = _stderr_warn
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.blocked = sorted(set(blocked))
        self.registry = Registry()
        self.plugins: list[PluginInfo] = []
        self.load_errors: list[LoadError] = []
        self._warn = warn

    # ---------------------------------------------------------------------------------------------- loading
    def _fail(self, plugin: str, distribution: str | None, exc: BaseException) -> None:
        err = LoadError(plugin, distribution, f"{type(exc).__name__}: {exc}".splitlines()[0])
        if self.strict:
            if isinstance(exc, PluginError):
                raise exc
            raise PluginError(f"failed to load {err} (strict plugin loading is on)") from exc
        self.load_errors.append(err)
        self.registry.load_errors.append(str(err))
        self._warn(f"skipping {err}")

    def load_entry_points(self, eps: Iterable[EntryPoint] | None = None) -> None:
        if eps is None:
            eps = entry_points(group=ENTRY_POINT_GROUP)
        seen: set[tuple[str, str]] = set()
        for ep in eps:
            if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if ep.name in self.blocked or (dist is not None and dist in self.blocked):
                self.pm.set_blocked(ep.name)
                continue
            try:
                obj = ep.load()
            except BaseException as e:  # a plugin's import may raise anything, SystemExit included
                if isinstance(e, KeyboardInterrupt):
                    raise
                self._fail(ep.name, dist, e)
                continue
            self.add_plugin(
                obj, name=ep.name, distribution=dist, version=version, builtin=dist == BUILTIN_DISTRIBUTION
            )

    def add_plugin(
        self,
        obj: object,
        *,
        name: str | None = None,
        distribution: str | None = None,
        version: str | None = None,
        builtin: bool = False,
    ) -> PluginInfo | None:
        """Register one plugin object (module or instance) and its components; on failure it is skipped
        (or, when strict, the error is raised) and nothing of it stays registered."""
        name = name or getattr(obj, "__name__", None) or type(obj).__name__
        if self.pm.is_blocked(name) or name in self.blocked:
            return None
        try:
            registered = self.pm.register(obj, name=name)
            if registered is None:
                raise PluginError(f"plugin name {name!r} is already in use")
            try:
                self.pm.check_pending()
                specs = self._collect(name, distribution, version)
                self.registry.check_can_add(specs)
            except BaseException:
                self.pm.unregister(name=name)
                raise
        except Exception as e:
            self._fail(name, distribution, e)
            return None
        for s in specs:
            self.registry.add(s)
        info = PluginInfo(
            name=name,
            distribution=distribution,
            version=version,
            module=getattr(obj, "__name__", type(obj).__module__),
            builtin=builtin,
            components=self.registry.by_plugin(name),
        )
        self.plugins.append(info)
        return info

    def remove_plugin(self, name: str) -> None:
        """Unregister a plugin and every component it registered."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.registry.remove_plugin(name)
        self.plugins = [p for p in self.plugins if p.name != name]

    def _collect(self, plugin: str, distribution: str | None, version: str | None) -> list[ComponentSpec]:
        """Call this one plugin's registration hooks and gather what it registers (validated)."""
        specs: list[ComponentSpec] = []
        obj = self.pm.get_plugin(plugin)
        for hook_name, kind in hookspecs.REGISTRATION_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin is not obj:
                    continue

                def register(cls: type[Any], _kind: Kind = kind) -> None:  # type: ignore[assignment]
                    validate_component_class(_kind, cls, plugin)
                    specs.append(ComponentSpec(_kind, cls.name, cls, plugin, distribution, version))

                kwargs = {"register": register}
                impl.function(**{a: kwargs[a] for a in impl.argnames})
        return specs

    # ------------------------------------------------------------------------------------------- querying
    def get_plugin_info(self, name: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == name), None)

    def summary(self) -> dict[str, Any]:
        return {
            "plugins": [p.as_dict() for p in self.plugins],
            "blocked": self.blocked,
            "load_errors": [e.as_dict() for e in self.load_errors],
        }


def build_plugin_manager(
    *,
    strict: bool | None = None,
    block: Iterable[str] | None = None,
    load_entry_points: bool = True,
    plugins: Iterable[object] = (),
    warn: Callable[[str], None] | None = None,
) -> PluginHost:
    """Build a fresh plugin host.

    ``strict`` (default: ``COLLAB_HARNESS_STRICT_PLUGINS``) makes a plugin that fails to load fatal; ``block``
    (default: ``COLLAB_HARNESS_BLOCK_PLUGINS``, comma-separated) names plugins or distributions to skip;
    ``plugins`` are extra plugin objects registered after the entry points (handy in tests).
    """
    if strict is None:
        strict = _env_flag("COLLAB_HARNESS_STRICT_PLUGINS")
    blocked = list(block) if block is not None else _env_list("COLLAB_HARNESS_BLOCK_PLUGINS")
    host = PluginHost(strict=strict, blocked=blocked, warn=warn or _stderr_warn)
    if load_entry_points:
        host.load_entry_points()
    for p in plugins:
        host.add_plugin(p)
    return host
