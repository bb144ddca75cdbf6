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
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["DEFAULT_LIMITS", "configure", "executor", "limits", "run_blocking", "shutdown"]

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
    """Shut every pool down (tests; a process exit does this by itself)."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for p in pools:
        p.shutdown(wait=False, cancel_futures=True)
