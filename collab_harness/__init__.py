"""collab-harness: train and evaluate language models as collaborators (CollabLLM, Wu et al., ICML 2025).

The public API is re-exported here. Importing this package is cheap: no torch, no litellm, no plugin loading
(build a plugin host with :func:`build_plugin_manager`). Notebook entry points: :func:`mr` (multiturn-aware reward of
candidate responses) and :func:`evaluate` (a whole evaluation run), each with an async twin.
"""

from __future__ import annotations

from .api import aevaluate, amr, asynthesize, evaluate, mr, synthesize
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
from .config import ComponentRef, MRSettings, RunConfig, build_components, load_config
from .engine import RunOutcome
from .errors import (
    CollabHarnessError,
    ComponentError,
    ComponentNotFound,
    ConfigError,
    DuplicateComponent,
    FatalRunError,
    ModelError,
    PluginError,
    PrerequisiteError,
)
from .hookspecs import hookimpl
from .models.protocol import Completion, GenerationParams, ModelClient, StructuredResult, Usage
from .plugins import PluginHost, build_plugin_manager
from .records import ComponentFailure, EvalRecord, Manifest, MRRecord, Results
from .registry import ComponentSpec, Registry
from .reward import MRConfig, MRResult
from .types import Conversation, Example, Message, Score, TaskInfo, UserTurn

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TERMINATION_SIGNAL",
    "CollabHarnessError",
    "Completion",
    "Component",
    "ComponentError",
    "ComponentFailure",
    "ComponentNotFound",
    "ComponentOptions",
    "ComponentRef",
    "ComponentSpec",
    "ConfigError",
    "Conversation",
    "DuplicateComponent",
    "EvalRecord",
    "Example",
    "FatalRunError",
    "GenerationParams",
    "Judge",
    "MRConfig",
    "MRRecord",
    "MRResult",
    "MRSettings",
    "Manifest",
    "Message",
    "Metric",
    "ModelClient",
    "ModelError",
    "PluginError",
    "PluginHost",
    "PrerequisiteError",
    "Registry",
    "Results",
    "RunConfig",
    "RunOutcome",
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
    "aevaluate",
    "amr",
    "asynthesize",
    "build_components",
    "build_plugin_manager",
    "evaluate",
    "hookimpl",
    "load_config",
    "mr",
    "synthesize",
]
