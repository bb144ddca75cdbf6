"""The internal provider interface: what the client asks of litellm, the local provider and scripted doubles.

Providers do one attempt and either return a :class:`ProviderReply` or raise :class:`ProviderError` saying whether
the failure is transient. Cache, limits, retries, timeouts and usage live in the client, once for all providers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .protocol import ChatMessages, GenerationParams, Usage

__all__ = ["Provider", "ProviderError", "ProviderReply", "ProviderRequest", "provider_name"]


@dataclass(frozen=True)
class ProviderRequest:
    model: str  # the full model string, e.g. "scripted/echo", "openai/gpt-4o-mini", "local/smollm2"
    messages: ChatMessages
    params: GenerationParams
    sample_index: int = 0
    attempt: int = 0  # 0 for the first try, 1.. for retries


@dataclass(frozen=True)
class ProviderReply:
    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


class ProviderError(Exception):
    """One attempt failed. ``transient`` errors are retried (rate limit, timeout, 5xx, connection). ``fatal`` errors
    (bad credentials, unknown model, a missing key) end the whole run at once: every later call would fail alike."""

    def __init__(self, message: str, *, transient: bool, fatal: bool = False) -> None:
        super().__init__(message)
        self.transient = transient and not fatal
        self.fatal = fatal


class Provider(Protocol):
    async def generate(self, request: ProviderRequest) -> ProviderReply: ...

    async def aclose(self) -> None: ...


def provider_name(model: str) -> str:
    """The concurrency-limit group of a model string: its prefix (``openai``, ``local``, ``scripted``, ...)."""
    head, sep, _ = model.partition("/")
    return head if sep else "default"
