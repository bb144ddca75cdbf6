"""Model access. Importing this package is cheap: the client (litellm, transformers) loads on first use."""

from __future__ import annotations

import importlib
from typing import Any

from .protocol import ChatMessages, Completion, GenerationParams, ModelClient, StructuredResult, Usage

__all__ = [
    "ChatMessages",
    "Client",
    "Completion",
    "GenerationParams",
    "ModelClient",
    "StructuredResult",
    "Usage",
    "register_script",
    "script_stats",
    "unregister_script",
]

# Names resolved on first access, so `import collab_harness.models` never pulls in litellm or torch.
_LAZY = {
    "Client": "client",
    "register_script": "scripted",
    "unregister_script": "scripted",
    "script_stats": "scripted",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
