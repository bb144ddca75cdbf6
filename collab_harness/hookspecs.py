"""Every hook a collab-harness plugin can implement.

Registration hooks receive a ``register`` callback supplied by the host. The host calls each plugin's hook on its
own, so it knows which plugin registered what, validates each component class as it arrives, and rejects duplicate
names with an error naming both plugins. Hooks only register; behaviour lives in the component classes
(:mod:`collab_harness.components`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "collab_harness"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: ``register(component_class)``: the callback every registration hook receives.
Register = Callable[[type[Any]], None]

# --- registration phase: fired once per plugin when the plugin host is built, before any component is created.


@hookspec
def register_tasks(register: Register) -> None:
    """Register task components.

    Fires once per plugin while :func:`collab_harness.plugins.build_plugin_manager` builds the registry.
    ``register`` takes a subclass of :class:`collab_harness.Task` with a unique ``name``. Returns nothing.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register metric components (subclasses of :class:`collab_harness.Metric`).

    Fires once per plugin while the registry is built. ``register`` takes the class. Returns nothing.
    """


@hookspec
def register_judges(register: Register) -> None:
    """Register judge components (subclasses of :class:`collab_harness.Judge`).

    Fires once per plugin while the registry is built. ``register`` takes the class. Returns nothing.
    """


@hookspec
def register_simulators(register: Register) -> None:
    """Register user-simulator components (subclasses of :class:`collab_harness.UserSimulator`).

    Fires once per plugin while the registry is built. ``register`` takes the class. Returns nothing.
    """


@hookspec
def register_trainers(register: Register) -> None:
    """Register trainer backends (subclasses of :class:`collab_harness.TrainerBackend`).

    Fires once per plugin while the registry is built. ``register`` takes the class. Returns nothing.
    """


#: Registration hook name -> component kind it registers.
REGISTRATION_HOOKS: dict[str, str] = {
    "register_tasks": "task",
    "register_metrics": "metric",
    "register_judges": "judge",
    "register_simulators": "simulator",
    "register_trainers": "trainer",
}
