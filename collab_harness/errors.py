"""The error vocabulary of collab-harness.

Every error a user is expected to see derives from :class:`CollabHarnessError`; the CLI prints those as one line
and exits non-zero. Anything else is a bug and gets a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from difflib import get_close_matches
from typing import Any

__all__ = [
    "CollabHarnessError",
    "ComponentError",
    "ComponentNotFound",
    "ConfigError",
    "DuplicateComponent",
    "FatalRunError",
    "ModelError",
    "PluginError",
    "PrerequisiteError",
    "validation_summary",
]


def validation_summary(errors: Iterable[Mapping[str, Any]], *, root: str = "(root)", limit: int | None = None) -> str:
    """pydantic's ``ValidationError.errors()`` as one line: ``field.path: message; ...`` (``root`` names an error
    at the top level). One line because CLI errors and messages fed back to a model are one line."""
    items = list(errors)[:limit] if limit is not None else list(errors)
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or root}: {e['msg']}" for e in items)


class CollabHarnessError(Exception):
    """Base of every expected error: the CLI shows its message on one line."""

    exit_code: int = 1


class ConfigError(CollabHarnessError):
    """A configuration, option or command-line value is invalid."""

    exit_code = 2


class PluginError(CollabHarnessError):
    """A plugin failed to load or misbehaved while registering its components."""


class DuplicateComponent(PluginError):
    """Two plugins registered a component of the same kind under the same name."""


class ComponentNotFound(ConfigError):
    """No component of that kind has that name; the message suggests close names and lists the available ones."""

    def __init__(
        self,
        kind: str,
        name: str,
        available: Iterable[str],
        *,
        load_errors: Iterable[str] = (),
        what: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        self.load_errors = list(load_errors)
        self.suggestions = get_close_matches(name, self.available, n=3, cutoff=0.5)
        label = what or f"{kind}"
        msg = f"unknown {label} {name!r}"
        if self.suggestions:
            msg += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        msg += " Available: " + (", ".join(self.available) if self.available else "(none)") + "."
        if self.load_errors:
            # The component may belong to a plugin that failed to load: show why, not just "not found".
            msg += " Plugins that failed to load: " + "; ".join(self.load_errors) + "."
        super().__init__(msg)


class ComponentError(CollabHarnessError):
    """A component failed while doing its job; names the component and, where known, the sample."""

    def __init__(self, component: str, message: str, *, sample_id: str | None = None) -> None:
        self.component = component
        self.sample_id = sample_id
        where = f"{component}" + (f" on sample {sample_id!r}" if sample_id else "")
        super().__init__(f"{where}: {message}")


class PrerequisiteError(CollabHarnessError):
    """An optional dependency (extra) or external resource is missing; the message says how to get it."""

    def __init__(self, message: str, *, install: str | None = None) -> None:
        if install:
            message = f"{message} (install it with: {install})"
        super().__init__(message)


class ModelError(CollabHarnessError):
    """A model call failed for good (after the retries it was allowed). ``fatal``: the failure is the run's
    configuration (credentials, unknown model), so every call would fail alike and the run must stop at once;
    ``category`` is how a recorded failure is classified (``auth``, ``timeout``, ``component``)."""

    def __init__(self, model: str, message: str, *, transient: bool = False, fatal: bool = False,
                 category: str | None = None) -> None:
        from .scrub import scrub_text

        self.model = model
        self.transient = transient
        self.fatal = fatal
        self.category = category or ("auth" if fatal else "component")
        super().__init__(scrub_text(f"model {model!r}: {message}"))


class FatalRunError(CollabHarnessError):
    """The run cannot go on (bad credentials, an unknown model ...): finished records are kept; fix and resume."""
