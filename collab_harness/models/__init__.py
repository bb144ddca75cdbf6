"""Model access. Importing this package is cheap: the client (litellm, transformers) loads on first use."""

from __future__ import annotations

from .protocol import ChatMessages, Completion, GenerationParams, ModelClient, StructuredResult, Usage

__all__ = ["ChatMessages", "Completion", "GenerationParams", "ModelClient", "StructuredResult", "Usage"]
