"""Testing kit for plugin authors (also a pytest plugin, loaded through the ``pytest11`` entry point).

- Fixtures (automatically available under pytest): ``plugin_host`` (a fresh plugin host), ``register_plugin``
  (register a plugin object for one test), ``scripted_model`` (register a scripted model for one test),
  ``model_client`` (a model-layer client without cache).
- Doubles: :class:`ScriptedUser`, :class:`FixedJudge`, :class:`ToyTask`, :func:`scripted_assistant`.
- Contract base classes: subclass one in a test class and provide a ``component`` fixture returning your built
  component: :class:`TaskContract`, :class:`MetricContract`, :class:`JudgeContract`, :class:`SimulatorContract`,
  :class:`TrainerContract`.
"""

from __future__ import annotations

from .contracts import (
    ComponentContract,
    JudgeContract,
    MetricContract,
    SimulatorContract,
    TaskContract,
    TrainerContract,
)
from .doubles import FixedJudge, ScriptedUser, ToyTask, make_example, scripted_assistant

__all__ = [
    "ComponentContract",
    "FixedJudge",
    "JudgeContract",
    "MetricContract",
    "ScriptedUser",
    "SimulatorContract",
    "TaskContract",
    "ToyTask",
    "TrainerContract",
    "make_example",
    "scripted_assistant",
]
