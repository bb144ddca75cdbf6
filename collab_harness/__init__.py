"""collab-harness: train and evaluate language models as collaborators (CollabLLM, Wu et al., ICML 2025).

The public API is re-exported here. Importing this package is cheap: no torch, no litellm, no plugin loading
(build a plugin host with :func:`build_plugin_manager`).
"""

from __future__ import annotations

from .components import (
    DEFAULT_TERMINATION_SIGNAL,
    Component,
    ComponentOptions,
    Judge,
    Metric,
    ScoringContext,
    SimulationContext,
    Task,
    TaskOptions,
    TrainerBackend,
    TrainResult,
    UserSimulator,
)
from .config import ComponentRef, RunConfig, build_components, load_config
from .errors import (
    CollabHarnessError,
    ComponentError,
    ComponentNotFound,
    ConfigError,
    DuplicateComponent,
    ModelError,
    PluginError,
    PrerequisiteError,
)
from .hookspecs import hookimpl
from .models.protocol import Completion, GenerationParams, ModelClient, StructuredResult, Usage
from .plugins import PluginHost, build_plugin_manager
from .registry import ComponentSpec, Registry
from .types import Conversation, Example, Message, Score, TaskInfo, UserTurn

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TERMINATION_SIGNAL",
    "CollabHarnessError",
    "Completion",
    "Component",
    "ComponentError",
    "ComponentNotFound",
    "ComponentOptions",
    "ComponentRef",
    "ComponentSpec",
    "ConfigError",
    "Conversation",
    "DuplicateComponent",
    "Example",
    "GenerationParams",
    "Judge",
    "Message",
    "Metric",
    "ModelClient",
    "ModelError",
    "PluginError",
    "PluginHost",
    "PrerequisiteError",
    "Registry",
    "RunConfig",
    "Score",
    "ScoringContext",
    "SimulationContext",
    "StructuredResult",
    "Task",
    "TaskInfo",
    "TaskOptions",
    "TrainResult",
    "TrainerBackend",
    "Usage",
    "UserSimulator",
    "UserTurn",
    "__version__",
    "build_components",
    "build_plugin_manager",
    "hookimpl",
    "load_config",
]
