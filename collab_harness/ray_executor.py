"""The ``ray`` scoring backend: CPU-bound verdicts run as Ray tasks on a cluster, the run stays in one driver.

Only :func:`collab_harness.executors.run_scoring` comes here; records, resume, the lock, progress and model calls
stay in the driver's event loop. A verdict is a module-level function and its (picklable) arguments: Ray ships the
call to a worker, which runs it exactly as a local thread would (the sandbox starts its contained child on the
worker, with the same isolation and limits), and the driver awaits the result.

- **Worker loss**: a verdict whose worker process or node dies (``WorkerCrashedError``, ``NodeDiedError``, an OOM
  kill ...) is submitted again, at most ``max_attempts`` times in all; Ray's own retries are off so the driver sees
  every loss and the caller can record it (:class:`~collab_harness.executors.Scored`). When every attempt is lost
  the verdict is a :class:`~collab_harness.executors.ScoringWorkerLost` error, recorded as a failed score, never 0.
  An exception raised by the verdict itself is re-raised as it is (as the local backend would).
- **Backpressure**: verdicts in flight are bounded by the cluster's CPUs that are not busy with other work:
  ``capacity = (total - used by others) / cpus_per_task`` from ``ray.cluster_resources()`` and
  ``ray.available_resources()``, refreshed by a background thread every ``refresh_s`` seconds, so nodes that join
  raise it and nodes that leave (or other jobs) lower it. Waiting verdicts queue in the driver, not in Ray.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from .errors import ConfigError, PrerequisiteError
from .executors import Scored, ScoringWorkerLost

__all__ = ["INSTALL_HINT", "LocalCluster", "RayScoring", "require_ray", "scoring_task"]

T = TypeVar("T")

INSTALL_HINT = "pip install 'collab-harness[ray]'"
_log = logging.getLogger(__name__)
#: Ray errors that mean the worker (or its node, or the result's owner) was lost, not that the verdict failed.
_LOST = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OutOfMemoryError",
         "RaySystemError")


def require_ray() -> ModuleType:
    """The ``ray`` module, or a :class:`PrerequisiteError` naming the extra."""
    try:
        import ray
    except ImportError:
        raise PrerequisiteError("--executor ray needs Ray, the optional extra 'ray'", install=INSTALL_HINT) from None
    return ray


def scoring_task(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    """What a Ray worker runs: the verdict function itself (module-level, so it is pickled by reference)."""
    return fn(*args, **kwargs)


class _Slots:
    """A counting limiter whose capacity can change at any time, usable from any event loop and any thread
    (waiters are woken on their own loop). Waiters are served first come, first served."""

    def __init__(self, capacity: int) -> None:
        self._lock = threading.Lock()
        self._capacity = max(1, capacity)
        self._used = 0
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = (
            collections.deque())

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def used(self) -> int:
        return self._used

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._used < self._capacity and not self._waiters:
                self._used += 1
                return
            fut: asyncio.Future[None] = loop.create_future()
            entry = (loop, fut)
            self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)  # never granted
                    granted = False
                else:
                    # Granted: either already delivered (release it here) or about to be (_grant releases it).
                    granted = fut.done() and not fut.cancelled()
            if granted:
                self.release()
            raise

    def release(self) -> None:
        with self._lock:
            self._used -= 1
            self._wake()

    def set_capacity(self, capacity: int) -> None:
        with self._lock:
            self._capacity = max(1, capacity)
            self._wake()

    def _wake(self) -> None:  # holds the lock
        while self._waiters and self._used < self._capacity:
            loop, fut = self._waiters.popleft()
            self._used += 1
            try:
                loop.call_soon_threadsafe(self._grant, fut)
            except RuntimeError:  # that loop is closed: the slot goes back
                self._used -= 1

    def _grant(self, fut: asyncio.Future[None]) -> None:
        if fut.done():  # cancelled after it was chosen: hand the slot on
            self.release()
        else:
            fut.set_result(None)


class RayScoring:
    """A connection to a Ray cluster that runs verdicts (see the module docstring).

    ``address``: ``None`` follows ``ray.init``'s own rule (``RAY_ADDRESS``, else a cluster started on this machine
    with ``ray start``, else a new local one); ``"auto"`` requires a running one; ``"HOST:PORT"`` or ``"ray://..."``
    names one. Construction does not connect; :meth:`connect` does (blocking: call it off the event loop).
    """

    def __init__(self, address: str | None = None, *, max_attempts: int = 3, refresh_s: float = 2.0,
                 cpus_per_task: float = 1.0) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if cpus_per_task <= 0:
            raise ValueError("cpus_per_task must be > 0")
        self.address = address
        self.max_attempts = max_attempts
        self.refresh_s = refresh_s
        self.cpus_per_task = cpus_per_task
        self._ray: ModuleType | None = None
        self._remote: Any = None
        self._lost: tuple[type[BaseException], ...] = ()
        self._owns_connection = False
        self._slots = _Slots(1)
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._connect_lock = threading.Lock()
        #: Verdicts submitted again after a lost worker, over the life of this connection.
        self.retries = 0

    # ----------------------------------------------------------------------------------------- connection

    @property
    def connected(self) -> bool:
        return self._remote is not None

    def connect(self) -> None:
        """Join the cluster (or reuse a connection the process already has), prepare the remote function and start
        following the cluster's CPUs. Blocking; idempotent."""
        with self._connect_lock:
            if self._remote is not None:
                return
            ray = require_ray()
            if not ray.is_initialized():
                # Joined off the main thread on purpose: Ray then leaves the driver's SIGTERM handling alone (the
                # run engine's), and says so in a warning that is noise here.
                quiet = _DropMessage("SIGTERM handler is not set")
                ray_log = logging.getLogger("ray._private.worker")
                ray_log.addFilter(quiet)
                try:
                    # Worker output is the sandbox's business (it captures its child's): keep the CLI quiet.
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                             include_dashboard=False)
                except ConnectionError as e:
                    raise ConfigError(f"--ray-address {self.address or '(auto)'}: no Ray cluster there ({e})") from e
                except Exception as e:  # ray raises plain exceptions for bad addresses and version mismatches
                    raise ConfigError(f"--ray-address {self.address or '(auto)'}: could not join the Ray cluster: "
                                      f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
                finally:
                    ray_log.removeFilter(quiet)
                self._owns_connection = True
            import ray.exceptions as rex

            self._lost = tuple(t for t in (getattr(rex, n, None) for n in _LOST) if isinstance(t, type))
            self._ray = ray
            self._remote = ray.remote(scoring_task).options(num_cpus=self.cpus_per_task, max_retries=0,
                                                            name="collab_harness_verdict")
            self._refresh()
            self._stop.clear()
            self._refresher = threading.Thread(target=self._follow, name="collab-ray-capacity", daemon=True)
            self._refresher.start()

    def close(self) -> None:
        """Stop following the cluster and leave it (only if this object joined it)."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
            self._refresher = None
        if self._ray is not None and self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()
        self._ray = self._remote = None
        self._owns_connection = False

    # ----------------------------------------------------------------------------------------- backpressure

    @property
    def capacity(self) -> int:
        """Verdicts allowed in flight now."""
        return self._slots.capacity

    @property
    def in_flight(self) -> int:
        return self._slots.used

    def cluster_cpus(self) -> tuple[float, float]:
        """(total, available) CPUs of the alive nodes, as Ray reports them now (blocking: one GCS round trip)."""
        assert self._ray is not None, "not connected"
        total = float(self._ray.cluster_resources().get("CPU", 0.0))
        avail = float(self._ray.available_resources().get("CPU", 0.0))
        return total, avail

    def _refresh(self) -> None:
        total, avail = self.cluster_cpus()
        # CPUs busy with something else (other jobs): those Ray counts as used beyond our own verdicts. Ours that
        # are still pending are not in Ray's count yet, hence the clamp: capacity never exceeds the cluster.
        others = max(0.0, total - avail - self._slots.used * self.cpus_per_task)
        self._slots.set_capacity(max(1, math.floor((total - others) / self.cpus_per_task + 1e-9)))

    def _follow(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self._refresh()
            except Exception as e:  # a cluster that is restarting: keep the last capacity
                _log.debug("ray capacity refresh failed: %s", e)

    # ----------------------------------------------------------------------------------------- verdicts

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Scored[T]:
        """``fn(*args, **kwargs)`` on a worker; lost workers are retried (see the module docstring)."""
        if self._remote is None:
            from .executors import run_blocking

            await run_blocking("io", self.connect)
        ray, remote = self._ray, self._remote
        assert ray is not None and remote is not None
        reasons: list[str] = []
        await self._slots.acquire()
        try:
            while True:
                ref = remote.remote(fn, args, kwargs)
                try:
                    value = await ref
                except asyncio.CancelledError:
                    # The run gave up on this verdict (sample timeout, stop): free the worker.
                    try:
                        ray.cancel(ref, force=False)
                    except Exception as e:
                        _log.debug("ray.cancel failed: %s", e)
                    raise
                except self._lost as e:
                    reasons.append(f"{type(e).__name__}: {_first_line(e)}")
                    if len(reasons) >= self.max_attempts:
                        raise ScoringWorkerLost(len(reasons), reasons) from e
                    self.retries += 1
                    continue
                except ray.exceptions.RayTaskError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from None  # the verdict's own error, as the local backend raises it
                    raise
                return Scored(value, retries=len(reasons), retry_reasons=tuple(reasons))
        finally:
            self._slots.release()


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else ""


# ------------------------------------------------------------------------------------- a throwaway local cluster


class LocalCluster:
    """A Ray cluster on this machine made of separate ``ray start`` processes (a head plus worker nodes), each
    with its own CPU count, in a temporary directory; for tests, benchmarks and trying ``--executor ray`` out.

    Every node runs ``ray start --block`` in its own session, so :meth:`stop` (and :meth:`kill_node`) end exactly
    the processes this object started, by session id, and nothing else on the machine (``ray stop`` would end every
    Ray process of the user). Ray resolves ``127.0.0.1`` to the machine's own address; the cluster stays local.
    """

    def __init__(self, cpus: Sequence[int] = (1, 1), *, temp_dir: str | Path | None = None) -> None:
        if not cpus or any(c < 0 for c in cpus):
            raise ValueError("cpus: one CPU count per node, the head first")
        require_ray()
        self.cpus = list(cpus)
        self._own_tmp = temp_dir is None
        # Ray's unix sockets live under the temp dir: keep its path short (108-byte limit of socket paths).
        self.temp_dir = Path(temp_dir or tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ray_start(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        with (self.temp_dir / log).open("ab") as out:
            return subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--block",
                                     "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)

    def start(self, timeout: float = 120.0) -> None:
        """Start the head, wait for its GCS port, then start the other nodes (they join by themselves; a driver
        waits for their CPUs with :meth:`wait_for_cpus`)."""
        head = self._ray_start(["--head", f"--port={self.port}", f"--num-cpus={self.cpus[0]}",
                                f"--temp-dir={self.temp_dir}", "--include-dashboard=false"], "head.log")
        self.nodes.append(head)
        deadline = time.monotonic() + timeout
        while True:
            if head.poll() is not None:
                self.stop()
                raise RuntimeError(f"ray head exited ({head.returncode}): {self.log_tail('head.log')}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"ray head did not open port {self.port} in {timeout:g}s")
            time.sleep(0.2)
        for n in self.cpus[1:]:
            self.add_node(n)

    def add_node(self, cpus: int) -> subprocess.Popen[bytes]:
        """Start one more worker node with ``cpus`` CPUs."""
        node = self._ray_start([f"--address={self.address}", f"--num-cpus={cpus}"], f"node{len(self.nodes)}.log")
        self.nodes.append(node)
        return node

    def wait_for_cpus(self, total: float, timeout: float = 120.0) -> None:
        """Block until the cluster reports ``total`` CPUs (this process must have joined it: ``ray.init``)."""
        ray = require_ray()
        deadline = time.monotonic() + timeout
        while ray.cluster_resources().get("CPU", 0.0) < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster has {ray.cluster_resources().get('CPU', 0.0)} CPUs, not {total}, "
                                   f"after {timeout:g}s")
            time.sleep(0.2)

    def sessions(self) -> set[int]:
        return {n.pid for n in self.nodes}

    def processes(self, name_prefix: str = "") -> list[int]:
        """Pids of this cluster's processes (every session it started) whose command line starts with
        ``name_prefix`` (Ray names a busy worker ``ray::<task name>``)."""
        out = []
        sessions = self.sessions()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                if os.getsid(pid) not in sessions:
                    continue
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ProcessLookupError):
                continue
            if cmd.startswith(name_prefix):
                out.append(pid)
        return out

    def kill_node(self, index: int) -> None:
        """SIGKILL every process of node ``index`` (its ``ray start``, raylet and workers)."""
        _kill_session(self.nodes[index].pid)

    def stop(self) -> None:
        """End every process this cluster started and remove its temporary directory."""
        for node in reversed(self.nodes):
            _kill_session(node.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=10)
        self.nodes.clear()
        if self._own_tmp:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def log_tail(self, name: str, limit: int = 2000) -> str:
        try:
            return (self.temp_dir / name).read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (a ``ray start`` we started with ``start_new_session``)."""
    for _ in range(3):
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, ProcessLookupError):
                    if os.getsid(int(entry)) == sid:
                        pids.append(int(entry))
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
