"""The one model client: every model string, one cache, one set of limits, retries and usage counters.

Model strings:

- ``scripted/<name>``: test doubles (:mod:`collab_harness.models.scripted`);
- ``local/smollm2`` and ``local/<path>``: the in-process batched transformers provider
  (:mod:`collab_harness.models.local`);
- anything else: litellm (``openai/...``, ``anthropic/...``, ``hosted_vllm/<name>`` with ``api_base`` ...).

Order of a call: normalise messages -> cache lookup -> join an identical request already in flight -> per-provider
concurrency slot -> one attempt under a timeout -> on a transient error, back off (exponential, full jitter) and
retry, as long as both ``max_retries`` and the ``retry_budget_s`` deadline allow -> store in the cache -> count
usage. A call that fails for good raises :class:`~collab_harness.errors.ModelError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ..errors import ModelError
from ._provider import Provider, ProviderError, ProviderRequest, provider_name
from .cache import ResponseCache, cache_key
from .protocol import ChatMessages, Completion, GenerationParams, StructuredResult
from .usage import UsageTracker

__all__ = ["DEFAULT_CONCURRENCY", "Client"]

_log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

#: Requests in flight per provider. APIs: a polite default that stays under common rate limits. The local
#: provider batches whatever is in flight, so its limit is the largest batch it may be handed at once.
DEFAULT_CONCURRENCY: dict[str, int] = {"default": 16, "scripted": 64, "local": 32}


def _normalise(messages: ChatMessages | Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for m in messages:
        if isinstance(m, Mapping):
            out.append({"role": str(m["role"]), "content": str(m.get("content") or "")})
        else:  # collab_harness.types.Message and other objects with role/content
            out.append({"role": str(m.role), "content": str(m.content)})
    return out


class Client:
    """Async client implementing :class:`~collab_harness.models.protocol.ModelClient`.

    ``concurrency``: an int (limit for every API / scripted provider) or a mapping from a provider prefix
    (``"openai"``, ``"scripted"``, ``"local"``, ``"default"``) or a full model string to its limit.
    ``timeout_s``: per attempt for API and scripted models; ``local_timeout_s``: per request for local models
    (batches can be slow on CPU). ``retry_budget_s``: wall-clock bound on one call including all retries and back-off.
    """

    def __init__(
        self,
        *,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        concurrency: int | Mapping[str, int] | None = None,
        timeout_s: float = 120.0,
        local_timeout_s: float = 1800.0,
        max_retries: int = 4,
        retry_budget_s: float = 300.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        api_base: str | None = None,
    ) -> None:
        if max_retries < 0 or retry_budget_s <= 0 or timeout_s <= 0:
            raise ValueError("max_retries must be >= 0; timeout_s and retry_budget_s must be > 0")
        limits = dict(DEFAULT_CONCURRENCY)
        if isinstance(concurrency, int):
            limits.update({"default": concurrency, "scripted": concurrency})
        elif concurrency:
            limits.update(concurrency)
        if any(v < 1 for v in limits.values()):
            raise ValueError(f"concurrency limits must be >= 1: {limits}")
        self.limits = limits
        self.timeout_s = timeout_s
        self.local_timeout_s = local_timeout_s
        self.max_retries = max_retries
        self.retry_budget_s = retry_budget_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._api_base = api_base
        self.cache: ResponseCache | None = ResponseCache(cache_dir) if use_cache else None
        self.usage = UsageTracker()
        self._providers: dict[str, Provider] = {}
        self._semaphores: dict[tuple[int, str], asyncio.Semaphore] = {}
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self._jitter = random.Random()  # jitter only spreads retries in time; it never affects results

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        providers, self._providers = self._providers, {}
        for p in providers.values():
            await p.aclose()
        if self.cache is not None:
            self.cache.close()

    @property
    def paid_calls(self) -> int:
        return self.usage.paid_calls

    # -- routing ----------------------------------------------------------------------------------------------

    def _provider(self, model: str) -> Provider:
        group = provider_name(model)
        kind = group if group in ("scripted", "local") else "litellm"
        p = self._providers.get(kind)
        if p is None:
            if kind == "scripted":
                from .scripted import ScriptedProvider

                p = ScriptedProvider()
            elif kind == "local":
                from .local import LocalProvider

                p = LocalProvider()
            else:
                from ._litellm import LiteLLMProvider

                p = LiteLLMProvider(api_base=self._api_base, timeout_s=self.timeout_s)
            self._providers[kind] = p
        return p

    def _limit_key(self, model: str) -> str:
        if model in self.limits:
            return model
        group = provider_name(model)
        return group if group in self.limits else "default"

    def _semaphore(self, model: str) -> asyncio.Semaphore:
        # Keyed by event loop too: a client reused across asyncio.run() calls must not touch a dead loop's lock.
        limit_key = self._limit_key(model)
        key = (id(asyncio.get_running_loop()), limit_key)
        sem = self._semaphores.get(key)
        if sem is None:
            sem = self._semaphores[key] = asyncio.Semaphore(self.limits[limit_key])
        return sem

    # -- the call -----------------------------------------------------------------------------------------

    async def complete(
        self,
        model: str,
        messages: ChatMessages,
        *,
        params: GenerationParams | None = None,
        sample_index: int = 0,
        component: str = "unknown",
    ) -> Completion:
        """One reply for ``messages``; served from the cache when the same request (same sample) was answered."""
        params = params or GenerationParams()
        msgs = _normalise(messages)
        key: str | None = None
        if self.cache is not None:
            key = cache_key(model, msgs, params, sample_index)
            try:
                hit = await asyncio.to_thread(self.cache.get, key)
            except sqlite3.Error as exc:  # a broken or locked cache must not fail the run: treat as a miss
                _log.warning("response cache read failed (%s); calling the model", exc)
                hit = None
            if hit is not None:
                self.usage.record_success(component, model, hit.usage, cached=True)
                return hit
            leader = self._inflight.get(key)
            if leader is not None:
                # The identical request is being answered right now: wait for it rather than pay twice.
                try:
                    done = await asyncio.shield(leader)
                except ModelError:
                    self.usage.record_error(component, model)
                    raise
                except asyncio.CancelledError:
                    if not leader.cancelled():
                        raise  # we were cancelled ourselves
                    # The leader was cancelled (its caller gave up): answer this request ourselves.
                    return await self.complete(
                        model, msgs, params=params, sample_index=sample_index, component=component
                    )
                self.usage.record_success(component, model, done.usage, cached=True)
                return replace(done, cached=True, latency_s=0.0)
            fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
            self._inflight[key] = fut
        try:
            completion = await self._call(model, msgs, params, sample_index, component)
        except BaseException as exc:
            if key is not None:
                fut = self._inflight.pop(key)
                if isinstance(exc, ModelError):
                    fut.set_exception(exc)
                    fut.exception()  # mark retrieved: followers may not exist
                else:
                    fut.cancel()
            raise
        if key is not None and self.cache is not None:
            try:
                await asyncio.to_thread(self.cache.put, key, completion)
            except sqlite3.Error as exc:
                _log.warning("response cache write failed (%s); the reply is not cached", exc)
            finally:
                self._inflight.pop(key).set_result(completion)
        self.usage.record_success(component, model, completion.usage, cached=False)
        return completion

    async def _call(
        self, model: str, msgs: list[dict[str, str]], params: GenerationParams, sample_index: int, component: str
    ) -> Completion:
        provider = self._provider(model)
        is_local = provider_name(model) == "local"
        attempt_timeout = self.local_timeout_s if is_local else self.timeout_s
        budget = max(self.retry_budget_s, attempt_timeout) if is_local else self.retry_budget_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        sem = self._semaphore(model)
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.usage.record_error(component, model)
                raise ModelError(model, f"retry budget of {budget:.0f}s exhausted after {attempt} attempts",
                                 transient=True)
            request = ProviderRequest(model=model, messages=msgs, params=params, sample_index=sample_index,
                                      attempt=attempt)
            err: ProviderError
            async with sem:
                self.usage.record_attempt(component, model, retry=attempt > 0)
                started = time.perf_counter()
                try:
                    reply = await asyncio.wait_for(provider.generate(request), timeout=min(attempt_timeout,
                                                                                          remaining))
                    return Completion(
                        text=reply.text,
                        model=model,
                        usage=reply.usage,
                        cached=False,
                        finish_reason=reply.finish_reason,
                        latency_s=time.perf_counter() - started,
                    )
                except (asyncio.TimeoutError, TimeoutError):
                    err = ProviderError(f"timed out after {min(attempt_timeout, remaining):.1f}s",
                                        transient=not is_local)
                except ProviderError as e:
                    err = e
                except ModelError:
                    raise
                except Exception as e:  # a provider bug or an unclassified library error: do not loop on it
                    err = ProviderError(f"{type(e).__name__}: {e}", transient=False)
            if not err.transient or attempt >= self.max_retries:
                self.usage.record_error(component, model)
                what = "transient error, retries exhausted" if err.transient else "permanent error"
                raise ModelError(model, f"{what} after {attempt + 1} attempt(s) (component {component}): {err}",
                                 transient=err.transient)
            delay = self._jitter.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt)))
            if loop.time() + delay >= deadline:
                self.usage.record_error(component, model)
                raise ModelError(model, f"retry budget of {budget:.0f}s exhausted after {attempt + 1} attempt(s) "
                                        f"(component {component}): {err}", transient=True)
            await asyncio.sleep(delay)
            attempt += 1

    async def structured(
        self,
        model: str,
        messages: ChatMessages,
        schema: type[T],
        *,
        params: GenerationParams | None = None,
        sample_index: int = 0,
        component: str = "unknown",
        max_attempts: int = 3,
    ) -> StructuredResult[T]:
        """JSON matching ``schema``, validated; a failed :class:`StructuredResult` (never an exception) when the
        model keeps answering badly or the call fails for good."""
        from .structured import structured_call

        return await structured_call(
            self, model, messages, schema, params=params, sample_index=sample_index, component=component,
            max_attempts=max_attempts,
        )
