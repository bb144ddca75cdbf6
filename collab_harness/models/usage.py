"""Usage accounting per component: calls, cache hits, tokens, cost, errors.

Run manifests read :meth:`UsageTracker.snapshot`. ``paid_calls`` counts every request that reached a provider
(including failed attempts and retries): that is what costs money or time, and what a fully cached re-run avoids.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from .protocol import Usage

__all__ = ["ComponentUsage", "UsageTracker"]


@dataclass
class ComponentUsage:
    """Counters for one component (who asked: ``"llm-user"``, ``"judge:accuracy"``, ...)."""

    calls: int = 0  # requests answered, from the provider or the cache
    cache_hits: int = 0
    provider_calls: int = 0  # attempts that reached a provider, retries included
    retries: int = 0
    errors: int = 0  # requests that failed for good
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True  # False once any paid call had no price (litellm does not know every model)


class UsageTracker:
    """Thread-safe counters; the client updates them, manifests read :meth:`snapshot`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_component: dict[str, ComponentUsage] = {}
        self._by_model: dict[str, ComponentUsage] = {}

    def _entries(self, component: str, model: str) -> tuple[ComponentUsage, ComponentUsage]:
        c = self._by_component.setdefault(component, ComponentUsage())
        m = self._by_model.setdefault(model, ComponentUsage())
        return c, m

    def record_attempt(self, component: str, model: str, *, retry: bool) -> None:
        with self._lock:
            for e in self._entries(component, model):
                e.provider_calls += 1
                if retry:
                    e.retries += 1

    def record_success(self, component: str, model: str, usage: Usage, *, cached: bool) -> None:
        with self._lock:
            for e in self._entries(component, model):
                e.calls += 1
                if cached:
                    # A cache hit costs nothing now; its tokens are not counted again.
                    e.cache_hits += 1
                    continue
                e.prompt_tokens += usage.prompt_tokens
                e.completion_tokens += usage.completion_tokens
                if usage.cost is None:
                    e.cost_known = False
                else:
                    e.cost += usage.cost

    def record_paid_failure(self, component: str, model: str, usage: Usage) -> None:
        """The provider answered (tokens were paid for) but the answer was unusable (empty, or invalid for the
        schema): its tokens and cost count, although the call did not succeed."""
        with self._lock:
            for e in self._entries(component, model):
                e.prompt_tokens += usage.prompt_tokens
                e.completion_tokens += usage.completion_tokens
                if usage.cost is None:
                    e.cost_known = False
                else:
                    e.cost += usage.cost

    def record_error(self, component: str, model: str) -> None:
        with self._lock:
            for e in self._entries(component, model):
                e.errors += 1

    @staticmethod
    def _dump(e: ComponentUsage) -> dict[str, Any]:
        d = asdict(e)
        d["cost"] = e.cost if e.cost_known else None
        del d["cost_known"]
        return d

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per component: calls, cache_hits, provider_calls, retries, errors, prompt/completion tokens, cost
        (``None`` when some paid call had no known price)."""
        with self._lock:
            return {k: self._dump(v) for k, v in sorted(self._by_component.items())}

    def by_model(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: self._dump(v) for k, v in sorted(self._by_model.items())}

    def totals(self) -> dict[str, Any]:
        total = ComponentUsage()
        with self._lock:
            for e in self._by_component.values():
                for f in ("calls", "cache_hits", "provider_calls", "retries", "errors"):
                    setattr(total, f, getattr(total, f) + getattr(e, f))
                total.prompt_tokens += e.prompt_tokens
                total.completion_tokens += e.completion_tokens
                total.cost += e.cost
                total.cost_known = total.cost_known and e.cost_known
        return self._dump(total)

    @property
    def paid_calls(self) -> int:
        """Requests that reached a provider (all components, retries included); 0 on a fully cached re-run."""
        with self._lock:
            return sum(e.provider_calls for e in self._by_component.values())

    def reset(self) -> None:
        with self._lock:
            self._by_component.clear()
            self._by_model.clear()
