"""The scope of the model calls made for one item of a run: its attempt number and its usage counters.

The run engine opens a :func:`call_scope` around each attempt of each item; every model call made inside it (by the
simulator, the assistant, judges, extraction — in any task the attempt spawns, and in executor threads, since context
variables travel with them) is counted in that item's usage as well as the client's, and carries the attempt number
into the response-cache key. A retried item therefore gets fresh replies instead of the cached ones that failed, and
its record shows what it cost — without a proxy client in front of the real one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from .usage import UsageTracker

__all__ = ["CallScope", "call_scope", "current_scope"]


@dataclass
class CallScope:
    attempt: int = 1
    sample_id: str | None = None
    usage: UsageTracker = field(default_factory=UsageTracker)


_SCOPE: ContextVar[CallScope | None] = ContextVar("collab_harness_call_scope", default=None)


def current_scope() -> CallScope | None:
    return _SCOPE.get()


@contextmanager
def call_scope(*, attempt: int = 1, sample_id: str | None = None,
               usage: UsageTracker | None = None) -> Iterator[CallScope]:
    """Model calls inside the ``with`` block count towards this scope (see the module docstring)."""
    scope = CallScope(attempt=attempt, sample_id=sample_id, usage=usage if usage is not None else UsageTracker())
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)
