"""Named, bounded executors for blocking work, so nothing blocking runs on the event loop.

asyncio's default thread pool is shared by everything that calls ``asyncio.to_thread``: with a dozen sandboxed test
runs in flight, a cached model call (one sqlite read) waited 5 s for a free thread. Each kind of blocking work gets
its own pool with its own limit instead:

==============  ==========================================  ===========================
name            what runs there                             default limit
==============  ==========================================  ===========================
``sandbox``     sandboxed test runs, ``Task.check_success``  CPU count
                of tasks that execute code
``metrics``     ``Metric.compute``, answer checks,          CPU count
                tokenizer counts
``io``          sqlite cache, record appends (fsync),       4
                manifest writes
``generation``  local model generation and loading          1 per loaded model (the
                (owned by the local provider)               batch is the parallelism)
==============  ==========================================  ===========================

Limits are set with :func:`configure` (the run config's ``executors`` mapping) or the environment
(``COLLAB_HARNESS_EXECUTOR_<NAME>=N``). Pools are created lazily per process and are safe to use from any event
loop, including a caller's long-lived one (a training loop).

The scoring backend
-------------------
CPU-bound verdicts that can run anywhere (a sandboxed test run: a module-level function of picklable arguments)
go through :func:`run_scoring` instead of :func:`run_blocking`. Its backend is chosen per run
(:func:`start_scoring`, from the run config's ``executor`` and ``ray_address``):

- ``local`` (default): the named pool above, bounded by its limit (each sandbox thread drives one contained child
  process, so the pool is a bounded pool of test processes).
- ``ray``: Ray tasks on a cluster (:mod:`collab_harness.ray_executor`, the optional extra ``ray``); the run engine,
  records and model calls stay in this one process. Verdicts in flight follow the cluster's free CPUs; a verdict
  whose worker died is retried and the retries come back in :class:`Scored` for the caller to record.

Both return the same verdicts: the function is the same, only where it runs differs.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from .errors import CollabHarnessError

if TYPE_CHECKING:
    from .ray_executor import RayScoring

__all__ = [
    "DEFAULT_LIMITS",
    "Scored",
    "ScoringBackend",
    "ScoringWorkerLost",
    "close_scoring",
    "configure",
    "configure_scoring",
    "executor",
    "limits",
    "run_blocking",
    "run_scoring",
    "scoring_backend",
    "scoring_capacity",
    "shutdown",
    "start_scoring",
]

T = TypeVar("T")

#: Default thread counts (None = the machine's CPU count).
DEFAULT_LIMITS: dict[str, int | None] = {"sandbox": None, "metrics": None, "io": 4}

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}
_overrides: dict[str, int] = {}


def _cpu() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def limits() -> dict[str, int]:
    """The limit of every named executor as it applies now (config, then environment, then defaults)."""
    out: dict[str, int] = {}
    for name, default in {**DEFAULT_LIMITS, **dict.fromkeys(_overrides)}.items():
        env = os.environ.get(f"COLLAB_HARNESS_EXECUTOR_{name.upper()}")
        if name in _overrides:
            out[name] = _overrides[name]
        elif env and env.strip().isdigit() and int(env) >= 1:
            out[name] = int(env)
        else:
            out[name] = default if default is not None else _cpu()
    return out


def configure(new_limits: Mapping[str, int]) -> None:
    """Set limits by name. A pool already created with another limit is replaced (running work finishes on the
    old pool)."""
    for name, n in new_limits.items():
        if int(n) < 1:
            raise ValueError(f"executor {name!r}: limit must be >= 1, got {n}")
    with _lock:
        for name, n in new_limits.items():
            _overrides[name] = int(n)
            old = _pools.get(name)
            if old is not None and old._max_workers != int(n):
                del _pools[name]
                old.shutdown(wait=False)


def executor(name: str) -> ThreadPoolExecutor:
    """The pool named ``name`` (created on first use)."""
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            n = limits().get(name) or _cpu()
            pool = _pools[name] = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"collab-{name}")
        return pool


async def run_blocking(name: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``await`` ``fn(*args, **kwargs)`` on the executor ``name``; context variables travel with the call."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await loop.run_in_executor(executor(name), call)


def shutdown() -> None:
    """Shut every pool down and leave a Ray cluster this process joined (tests; a process exit does this by
    itself). The scoring backend is ``local`` again afterwards."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for p in pools:
        p.shutdown(wait=False, cancel_futures=True)
    close_scoring()


# ------------------------------------------------------------------------------------------- scoring backend

ScoringBackend = Literal["local", "ray"]


@dataclass(frozen=True)
class Scored(Generic[T]):
    """A verdict and how it was obtained: ``retries`` submissions lost to a dead worker before it came back (always
    0 locally), with Ray's reason for each."""

    value: T
    retries: int = 0
    retry_reasons: tuple[str, ...] = ()

    def details(self) -> dict[str, Any]:
        """What a score records about the retries (nothing when there were none, so records of a run without
        worker loss are the same whichever backend scored them)."""
        if not self.retries:
            return {}
        return {"scoring_retries": self.retries, "scoring_retry_reasons": list(self.retry_reasons)}


class ScoringWorkerLost(CollabHarnessError):
    """Every attempt at a verdict lost its worker (a Ray worker or node died each time): the verdict is unknown,
    to be recorded as a failed score, never as 0."""

    def __init__(self, attempts: int, reasons: list[str]) -> None:
        self.attempts = attempts
        self.reasons = list(reasons)
        last = reasons[-1] if reasons else "?"
        super().__init__(f"the verdict's worker was lost on all {attempts} attempts (last: {last})")


_scoring_lock = threading.Lock()
_scoring_kind: ScoringBackend = "local"
_ray: RayScoring | None = None


def configure_scoring(backend: ScoringBackend = "local", *, address: str | None = None,
                      **options: Any) -> None:
    """Choose the backend of :func:`run_scoring` without connecting anything (``ray``: a missing extra is a
    :class:`~collab_harness.errors.PrerequisiteError` here, and nothing changes). ``options`` go to
    :class:`~collab_harness.ray_executor.RayScoring` (``max_attempts``, ``refresh_s``, ``cpus_per_task``).

    A Ray connection outlives a switch to ``local`` (joining a cluster takes seconds; a process that alternates
    runs, a training loop, reuses it); one to another address, or with other options, is replaced;
    :func:`close_scoring` ends it."""
    global _scoring_kind, _ray
    if backend not in ("local", "ray"):
        raise ValueError(f"unknown scoring backend {backend!r} (local, ray)")
    old: RayScoring | None = None
    if backend == "ray":
        from .ray_executor import RayScoring, require_ray

        require_ray()
        new = RayScoring(address, **options)
        with _scoring_lock:
            same = _ray is not None and (_ray.address, _ray.max_attempts, _ray.refresh_s, _ray.cpus_per_task) == (
                new.address, new.max_attempts, new.refresh_s, new.cpus_per_task)
            if not same:
                old, _ray = _ray, new
            _scoring_kind = "ray"
    else:
        with _scoring_lock:
            _scoring_kind = "local"
    if old is not None:
        old.close()


def close_scoring() -> None:
    """Back to ``local``, and leave the Ray cluster (blocking: Ray's shutdown)."""
    global _scoring_kind, _ray
    with _scoring_lock:
        old, _ray, _scoring_kind = _ray, None, "local"
    if old is not None:
        old.close()


async def start_scoring(backend: ScoringBackend = "local", *, address: str | None = None, **options: Any) -> None:
    """:func:`configure_scoring`, then join the cluster off the event loop, so a wrong address or a missing extra
    stops the run at its start with one line instead of failing every verdict. Called at the start of every run."""
    # Importing Ray, closing an old connection and joining a cluster all block: off the loop.
    await run_blocking("io", configure_scoring, backend, address=address, **options)
    r = _ray
    if r is not None:
        await run_blocking("io", r.connect)


def scoring_backend() -> ScoringBackend:
    """The backend :func:`run_scoring` uses now."""
    return _scoring_kind


def scoring_capacity(name: str = "sandbox") -> int:
    """Verdicts :func:`run_scoring` lets into flight at once now: the named pool's limit, or the Ray cluster's
    free CPUs."""
    r = _ray
    if _scoring_kind == "ray" and r is not None:
        return r.capacity
    return limits().get(name) or _cpu()


async def run_scoring(name: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Scored[T]:
    """``await`` the verdict ``fn(*args, **kwargs)`` on the scoring backend: the pool ``name`` locally, a Ray task
    with ``ray``. ``fn`` must be a module-level function and its arguments picklable (they may travel to another
    machine). Exceptions raised by ``fn`` propagate unchanged; a verdict lost to dead workers on every attempt is
    :class:`ScoringWorkerLost`."""
    r = _ray
    if _scoring_kind == "ray" and r is not None:
        return await r.run(fn, *args, **kwargs)
    return Scored(await run_blocking(name, fn, *args, **kwargs))
