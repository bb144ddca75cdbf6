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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ..errors import ModelError
from ..executors import run_blocking
from ..scrub import SecretScrubber
from ._provider import Provider, ProviderError, ProviderRequest, provider_name
from .cache import ResponseCache, cache_key
from .context import current_scope
from .protocol import ChatMessages, Completion, GenerationParams, StructuredResult, Usage
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
    ``endpoints``: model string -> api base(s) it is served from (several: spread by litellm's Router); ``api_base``
    applies to every other litellm model. ``local_threads``: torch threads of local generation (None: torch's choice).

    Every reply is scrubbed of secrets before it is cached or returned. Usage is counted on :attr:`usage` and on the
    :func:`~collab_harness.models.context.call_scope` of the item the call was made for.
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
        endpoints: Mapping[str, Sequence[str]] | None = None,
        local_threads: int | None = None,
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
        self._endpoints = {m: [str(b) for b in bases] for m, bases in (endpoints or {}).items() if bases}
        self._local_threads = local_threads
        self.cache: ResponseCache | None = ResponseCache(cache_dir) if use_cache else None
        self.usage = UsageTracker()
        self._providers: dict[str, Provider] = {}
        self._semaphores: dict[tuple[int, str], asyncio.Semaphore] = {}
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self._jitter = random.Random()  # jitter only spreads retries in time; it never affects results
        # The environment's secrets as of the client's creation (scanning os.environ on every reply costs more
        # than the reply); key-shaped strings are masked whatever their origin.
        self._scrubber = SecretScrubber()
        #: The first fatal error (credentials, unknown model) any call met; the engine stops the run on it.
        self.fatal: ModelError | None = None

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

    # -- usage, endpoints, identity ------------------------------------------------------------------------

    def _trackers(self) -> tuple[UsageTracker, ...]:
        scope = current_scope()
        return (self.usage, scope.usage) if scope is not None and scope.usage is not self.usage else (self.usage,)

    def _ok(self, component: str, model: str, usage: Usage, *, cached: bool) -> None:
        for t in self._trackers():
            t.record_success(component, model, usage, cached=cached)

    def _error(self, component: str, model: str) -> None:
        for t in self._trackers():
            t.record_error(component, model)

    def _attempted(self, component: str, model: str, *, retry: bool) -> None:
        for t in self._trackers():
            t.record_attempt(component, model, retry=retry)

    def endpoints_of(self, model: str) -> list[str]:
        """The api bases ``model`` is served from (empty: the provider's default endpoint)."""
        if provider_name(model) in ("scripted", "local"):
            return []
        if model in self._endpoints:
            return list(self._endpoints[model])
        return [self._api_base] if self._api_base else []

    async def fingerprint_of(self, model: str) -> str | None:
        """A fingerprint of a local model's weights (None for other models); see :func:`local.model_fingerprint`."""
        if provider_name(model) != "local":
            return None
        from .local import model_fingerprint

        return await run_blocking("io", model_fingerprint, model)

    async def describe_model(self, model: str) -> dict[str, Any]:
        """What ``model`` resolves to, for manifests: provider, endpoint hosts (never a path, query or key) and, for
        local models, the weights' fingerprint."""
        from ._litellm import endpoint_hosts

        out: dict[str, Any] = {"model": model, "provider": provider_name(model)}
        bases = self.endpoints_of(model)
        if bases:
            out["endpoints"] = endpoint_hosts(bases)
        try:
            fp = await self.fingerprint_of(model)
        except Exception as e:  # a model that cannot be described must not stop the run; its calls will say why
            out["resolve_error"] = f"{type(e).__name__}: {e}"
        else:
            if fp:
                out["fingerprint"] = fp
        return out

    @property
    def param_drops(self) -> dict[str, list[str]]:
        """Parameters dropped per model because its provider does not support them."""
        p = self._providers.get("litellm")
        dropped = getattr(p, "dropped", None) or {}
        return {m: sorted(v) for m, v in sorted(dropped.items())}

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

                p = LocalProvider(threads=self._local_threads)
            else:
                from ._litellm import LiteLLMProvider

                p = LiteLLMProvider(api_base=self._api_base, timeout_s=self.timeout_s, endpoints=self._endpoints)
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
            scope = current_scope()
            key = cache_key(model, msgs, params, sample_index, endpoint=self.endpoints_of(model),
                            fingerprint=await self.fingerprint_of(model),
                            attempt=scope.attempt if scope is not None else 1)
            try:
                hit = await run_blocking("io", self.cache.get, key)
            except sqlite3.Error as exc:  # a broken or locked cache must not fail the run: treat as a miss
                _log.warning("response cache read failed (%s); calling the model", exc)
                hit = None
            if hit is not None:
                self._ok(component, model, hit.usage, cached=True)
                return hit
            leader = self._inflight.get(key)
            if leader is not None:
                # The identical request is being answered right now: wait for it rather than pay twice.
                try:
                    done = await asyncio.shield(leader)
                except ModelError:
                    self._error(component, model)
                    raise
                except asyncio.CancelledError:
                    if not leader.cancelled():
                        raise  # we were cancelled ourselves
                    # The leader was cancelled (its caller gave up): answer this request ourselves.
                    return await self.complete(
                        model, msgs, params=params, sample_index=sample_index, component=component
                    )
                self._ok(component, model, done.usage, cached=True)
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
                await run_blocking("io", self.cache.put, key, completion)
            except sqlite3.Error as exc:
                _log.warning("response cache write failed (%s); the reply is not cached", exc)
            finally:
                self._inflight.pop(key).set_result(completion)
        self._ok(component, model, completion.usage, cached=False)
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
                self._error(component, model)
                raise ModelError(model, f"retry budget of {budget:.0f}s exhausted after {attempt} attempts",
                                 transient=True)
            request = ProviderRequest(model=model, messages=msgs, params=params, sample_index=sample_index,
                                      attempt=attempt)
            err: ProviderError
            async with sem:
                self._attempted(component, model, retry=attempt > 0)
                started = time.perf_counter()
                try:
                    reply = await asyncio.wait_for(provider.generate(request), timeout=min(attempt_timeout,
                                                                                          remaining))
                    if reply.text.strip():
                        return Completion(
                            text=self._scrubber.text(reply.text),
                            model=model,
                            usage=reply.usage,
                            cached=False,
                            finish_reason=reply.finish_reason,
                            latency_s=time.perf_counter() - started,
                        )
                    # An empty reply is the model failing its job, not an answer. The provider answered, though:
                    # its tokens and cost are counted before the call is retried or recorded as failed.
                    for t in self._trackers():
                        t.record_paid_failure(component, model, reply.usage)
                    err = ProviderError(f"empty completion (finish reason {reply.finish_reason})",
                                        transient=not is_local)
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
                self._error(component, model)
                if err.fatal:
                    fatal = ModelError(model, f"{err}{_key_hint(model)}", fatal=True)
                    # Components record failures rather than raise them; the run engine reads this to stop the
                    # run at once instead of failing every remaining item alike.
                    self.fatal = self.fatal or fatal
                    raise fatal
                what = "transient error, retries exhausted" if err.transient else "permanent error"
                raise ModelError(model, f"{what} after {attempt + 1} attempt(s) (component {component}): {err}",
                                 transient=err.transient,
                                 category="timeout" if "timed out" in str(err) else "component")
            delay = self._jitter.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt)))
            if loop.time() + delay >= deadline:
                self._error(component, model)
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


def _key_hint(model: str) -> str:
    """For a fatal error: the variables to set, when litellm knows them."""
    if provider_name(model) in ("scripted", "local"):
        return ""
    from ._litellm import missing_keys

    keys = missing_keys(model)
    return f" (set {' and '.join(keys)})" if keys else ""
