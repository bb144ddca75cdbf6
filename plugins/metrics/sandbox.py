"""Run untrusted Python (a candidate solution plus its unittest suite) in a contained child process.

Layers, strongest first (each run records which ones were in force in :attr:`SandboxResult.isolation`):

1. Linux namespaces through util-linux ``unshare``: a new network namespace (only a downed loopback: no network at
   all), a mount namespace in which every mount except the sandbox's own temporary directory is remounted
   read-only, a PID namespace (``--kill-child``: when the launcher dies the kernel kills every process inside), and
   an inner user namespace so the code holds no capability outside and cannot remount anything writable again.
   As root we start with real root (needed to remount and join a cgroup); otherwise everything starts inside an
   unprivileged user namespace. If namespaces are unavailable we fall back to layer 3 only and say so.
2. Resource limits: the runner calls ``resource.setrlimit`` on itself before any untrusted line runs (address space,
   CPU seconds, file size, no core dumps, process count). We do this in the runner rather than in
   ``preexec_fn`` because verdicts run in worker threads, where ``preexec_fn`` can deadlock (CPython docs).
   ``RLIMIT_NPROC`` is never enforced for uid 0 (even root inside a user namespace maps to the exempt root user),
   so as root a per-run ``pids`` cgroup caps the number of processes instead. A wall-clock timeout kills the whole
   process group (``start_new_session`` + ``os.killpg``), then anything left in the cgroup.
3. In-process guards installed by the runner (defence in depth only; the code runs in the same interpreter and
   could undo them): ``socket`` connects raise when there is no network namespace, and writes to paths outside
   the temporary directory raise.

The child gets a minimal environment (no inherited secrets), ``HOME``/``TMPDIR`` inside its temporary directory,
and its stdout/stderr go to size-limited files, never into the harness's memory.

Forgery: the verdict travels on an inherited pipe (not stdout) tagged with a nonce read from a job file that the
runner deletes before the untrusted code runs, so printing a fake result does nothing. Code running in the same
interpreter as the test runner can in principle tamper with unittest itself; perfect isolation of the verdict is
impossible with in-process tests (as in BigCodeBench's ``untrusted_check``). The threat model is model-written
code that is buggy or harmful by accident, not a determined adversary targeting the verdict channel.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["SandboxLimits", "SandboxResult", "Status", "isolation_support", "run_tests"]

Status = Literal["pass", "fail", "timeout", "error", "killed"]

# Seconds granted on top of ``timeout_s`` for interpreter start-up and namespace set-up.
_STARTUP_GRACE_S = 1.5
_MAX_MESSAGE_CHARS = 600
_MAX_MESSAGES = 5


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run. ``timeout_s`` is wall-clock for the test run; CPU time is capped at the same value."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 32
    max_file_size_mb: int = 64
    network: bool = False


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one run. ``status`` is "pass" only if every test ran and passed."""

    status: Status
    reason: str
    tests_total: int = 0
    tests_passed: int = 0
    messages: tuple[str, ...] = ()
    duration_s: float = 0.0
    isolation: dict[str, Any] = field(default_factory=dict)
    stdout_tail: str = ""
    stderr_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


# ------------------------------------------------------------------------------------------------ runner script
# Executed by the sandboxed interpreter. Everything before ``_run_untrusted`` is trusted set-up.
_RUNNER = r'''
import builtins, io, json, os, resource, socket, sys

with open(sys.argv[1]) as _f:
    cfg = json.load(_f)
os.unlink(sys.argv[1])  # the nonce inside must not be readable by the code
_fd = cfg["fd"]
_nonce = cfg["nonce"]
_box = os.path.realpath(cfg["box"])
_write = os.write  # keep a private reference: the code may patch os.write


def _report(payload):
    payload["nonce"] = _nonce
    data = json.dumps(payload).encode()
    while data:
        n = _write(_fd, data)
        data = data[n:]


def _probe_isolation():
    iso = {}
    try:
        names = [n for _, n in socket.if_nameindex()]
        iso["network_isolated"] = names == ["lo"] or not names
    except OSError:
        iso["network_isolated"] = False
    try:
        iso["fs_readonly_outside"] = bool(os.statvfs("/").f_flag & os.ST_RDONLY)
    except OSError:
        iso["fs_readonly_outside"] = False
    iso["uid"] = os.getuid()
    return iso


_iso = _probe_isolation()
_iso.update(cfg.get("outer", {}))

mb = 1024 * 1024
limits = [
    (resource.RLIMIT_AS, cfg["memory_mb"] * mb),
    (resource.RLIMIT_CPU, int(cfg["cpu_s"])),
    (resource.RLIMIT_FSIZE, cfg["fsize_mb"] * mb),
    (resource.RLIMIT_CORE, 0),
    (resource.RLIMIT_NPROC, cfg["nproc"]),
]
for which, value in limits:
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError) as e:
        _iso.setdefault("rlimit_errors", []).append(f"{which}: {e}")


def _inside(path):
    if isinstance(path, int):
        return True  # an already-open descriptor
    try:
        p = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return p == os.devnull or p == _box or p.startswith(_box + os.sep)


def _deny(what, path):
    raise PermissionError(f"sandbox: {what} outside the sandbox directory is not allowed: {path!r}")


def _guard_files():
    real_open = builtins.open
    real_os_open = os.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in str(mode) for c in "wax+") and not _inside(file):
            _deny("writing", file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND) and not _inside(path):
            _deny("writing", path)
        return real_os_open(path, flags, *args, **kwargs)

    builtins.open = guarded_open
    io.open = guarded_open
    os.open = guarded_os_open

    def wrap(name, nargs):
        real = getattr(os, name, None)
        if real is None:
            return

        def guarded(*args, **kwargs):
            for p in args[:nargs]:
                if not _inside(p):
                    _deny(name, p)
            return real(*args, **kwargs)

        setattr(os, name, guarded)

    for name, nargs in [("remove", 1), ("unlink", 1), ("rmdir", 1), ("mkdir", 1), ("chmod", 1), ("chown", 1),
                        ("truncate", 1), ("rename", 2), ("replace", 2), ("link", 2), ("symlink", 2),
                        ("utime", 1), ("mkfifo", 1)]:
        wrap(name, nargs)


def _guard_network():
    def refuse(*args, **kwargs):
        raise PermissionError("sandbox: network access is disabled")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.socket.sendto = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse


_guard_files()
if not cfg["network"] and not _iso["network_isolated"]:
    _guard_network()
    _iso["network_guard"] = True

import traceback, unittest

source = cfg["code"] + "\n\n" + cfg["tests"]


def _run_untrusted():
    ns = {"__name__": "__sandbox__", "__builtins__": builtins}
    try:
        exec(compile(source, "solution.py", "exec"), ns)
    except BaseException as e:
        lines = traceback.format_exception_only(type(e), e)
        return {"phase": "load", "error": "".join(lines).strip()}
    case = ns.get("TestCases")
    if not (isinstance(case, type) and issubclass(case, unittest.TestCase)):
        return {"phase": "load", "error": "the test suite defines no unittest.TestCase named TestCases"}
    suite = unittest.TestLoader().loadTestsFromTestCase(case)
    result = unittest.TestResult()
    suite.run(result)
    msgs = [f"{t.id().rsplit('.', 1)[-1]}: {tb.strip().splitlines()[-1] if tb.strip() else ''}"
            for t, tb in result.failures + result.errors]
    return {
        "phase": "tests",
        "total": suite.countTestCases(),
        "run": result.testsRun,
        "failures": len(result.failures),
        "errors": len(result.errors),
        "unexpected_successes": len(result.unexpectedSuccesses),
        "messages": msgs,
    }


_out = _run_untrusted()
_out["isolation"] = _iso
_report(_out)
sys.stdout.flush()
os._exit(0)  # skip atexit handlers the code may have registered
'''

# Shell set-up run inside the outer namespaces: join the pids cgroup, keep the box writable, make every other
# mount read-only, then enter an inner user namespace (locking those mounts) and start the runner.
_SETUP_SH = r"""
set -e
if [ -n "$CH_CGROUP" ]; then echo 0 > "$CH_CGROUP/cgroup.procs"; fi
mount --bind "$CH_BOX" "$CH_BOX"
awk '{print $2, $4}' /proc/self/mounts | while read -r mp opts; do
  case "$mp" in "$CH_BOX"|"$CH_BOX"/*|/proc|/proc/*) continue;; esac
  case ",$opts," in *,rw,*) ;; *) continue;; esac
  extra=""
  case ",$opts," in *,nosuid,*) extra="$extra,nosuid";; esac
  case ",$opts," in *,nodev,*) extra="$extra,nodev";; esac
  case ",$opts," in *,noexec,*) extra="$extra,noexec";; esac
  mount -o "remount,bind,ro$extra" "$mp" 2>/dev/null || true
done
cd "$CH_BOX/work"  # re-resolve the working directory through the new writable bind mount
exec unshare --user --map-root-user --mount -- "$@"
"""


@dataclass(frozen=True)
class _Support:
    mode: Literal["namespaces", "plain"]
    unshare: str | None
    root: bool
    cgroup_root: Path | None
    note: str


_support_lock = threading.Lock()
_support: _Support | None = None


def _outer_prefix(s: _Support) -> list[str]:
    assert s.unshare
    base = [s.unshare, "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if not s.root:
        base[1:1] = ["--user", "--map-root-user"]
    return base


def _probe() -> _Support:
    root = os.geteuid() == 0
    cg: Path | None = None
    if root and os.access("/sys/fs/cgroup/pids", os.W_OK):
        cg = Path("/sys/fs/cgroup/pids")
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None:
        return _Support("plain", None, root, cg, "unshare not available: in-process guards only")
    trial = _Support("namespaces", unshare, root, cg, "")
    with tempfile.TemporaryDirectory(prefix="ch-sandbox-probe-") as box:
        Path(box, "work").mkdir()
        cmd = [*_outer_prefix(trial), "sh", "-c", _SETUP_SH, "setup", sys.executable, "-I", "-c", "pass"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CH_BOX": box, "CH_CGROUP": ""}
        try:
            p = subprocess.run(cmd, env=env, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return _Support("plain", None, root, cg, f"namespaces unavailable ({e}): in-process guards only")
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        return _Support("plain", None, root, cg, f"namespaces unavailable ({err[0]}): in-process guards only")
    return trial


def isolation_support() -> dict[str, Any]:
    """What this machine offers (probed once per process): mode, root, cgroup, and a note on any fallback."""
    s = _get_support()
    return {"mode": s.mode, "root": s.root, "pids_cgroup": s.cgroup_root is not None, "note": s.note}


def _get_support() -> _Support:
    global _support
    with _support_lock:
        if _support is None:
            _support = _probe()
        return _support


def _minimal_env(work: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work),
        "TMPDIR": str(work / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
    }


def _make_cgroup(root: Path, name: str, max_pids: int) -> Path | None:
    path = root / name
    try:
        path.mkdir()
        (path / "pids.max").write_text(str(max_pids))
        return path
    except OSError:
        with contextlib.suppress(OSError):
            path.rmdir()
        return None


def _drain_cgroup(path: Path) -> None:
    """Kill whatever is left in the run's cgroup (processes that left the process group), then remove it."""
    for _ in range(50):
        try:
            pids = [int(x) for x in (path / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    for _ in range(50):
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.02)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def run_tests(code: str, tests: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``code`` followed by ``tests`` (which must define ``TestCases(unittest.TestCase)``) in one module
    namespace inside the sandbox. Thread-safe; every call gets its own directory, cgroup and pipe."""
    limits = limits or SandboxLimits()
    support = _get_support()
    started = time.monotonic()
    box = Path(tempfile.mkdtemp(prefix="ch-sandbox-")).resolve()
    work = box / "work"
    (work / "tmp").mkdir(parents=True)
    (box / "runner.py").write_text(_RUNNER, encoding="utf-8")
    nonce = secrets.token_hex(16)
    cgroup: Path | None = None
    read_fd, write_fd = os.pipe()
    chunks: list[bytes] = []

    def read_result() -> None:
        # Bounded: a result larger than 4 MiB is not a result we trust.
        total = 0
        while total < 4 * 1024 * 1024:
            b = os.read(read_fd, 65536)
            if not b:
                break
            chunks.append(b)
            total += len(b)

    reader = threading.Thread(target=read_result, daemon=True)
    outer: dict[str, Any] = {"mode": support.mode}
    try:
        py = [sys.executable, "-I", str(box / "runner.py")]
        env = _minimal_env(work)
        if support.mode == "namespaces":
            if support.cgroup_root is not None:
                # sh, unshare (x2) and the runner count against the cap too.
                cgroup = _make_cgroup(support.cgroup_root, f"collab-harness-{nonce}", limits.max_processes + 4)
            outer["pids_cgroup"] = cgroup is not None
            env = {**env, "CH_BOX": str(box), "CH_CGROUP": str(cgroup or "")}
            cmd = [*_outer_prefix(support), "sh", "-c", _SETUP_SH, "setup", *py]
        else:
            outer["note"] = support.note
            cmd = py
        # RLIMIT_NPROC counts every process of the real user; root (uid 0 in any namespace) is exempt anyway.
        nproc = limits.max_processes + (0 if support.root else _count_user_processes())
        cfg = {
            "fd": write_fd,
            "nonce": nonce,
            "box": str(box),
            "code": code,
            "tests": tests,
            "memory_mb": limits.memory_mb,
            # CPU cap above the wall-clock one: the wall clock normally fires first and says "timeout".
            "cpu_s": max(1, int(limits.timeout_s + _STARTUP_GRACE_S + 2)),
            "fsize_mb": limits.max_file_size_mb,
            "nproc": nproc,
            "network": limits.network,
            "outer": outer,
        }
        cfg_path = box / f"job-{nonce}.json"
        cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
        cfg_path.chmod(0o600)
        with (box / "stdout.txt").open("wb") as out, (box / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen(
                [*cmd, str(cfg_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=work,
                env=env,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        os.close(write_fd)
        write_fd = -1
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=limits.timeout_s + _STARTUP_GRACE_S)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc)
            if cgroup is not None:
                _drain_cgroup(cgroup)
        reader.join(timeout=5)
        duration = time.monotonic() - started
        return _verdict(
            proc.returncode, timed_out, b"".join(chunks), nonce, duration, outer, box, limits
        )
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        if not reader.is_alive():
            os.close(read_fd)
        if cgroup is not None and cgroup.exists():
            _drain_cgroup(cgroup)
        shutil.rmtree(box, ignore_errors=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _count_user_processes() -> int:
    uid = os.getuid()
    n = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    n += 1
    return n


def _verdict(
    returncode: int | None,
    timed_out: bool,
    raw: bytes,
    nonce: str,
    duration: float,
    outer: dict[str, Any],
    box: Path,
    limits: SandboxLimits,
) -> SandboxResult:
    stdout_tail, stderr_tail = _tail(box / "stdout.txt"), _tail(box / "stderr.txt")
    common: dict[str, Any] = {"duration_s": duration, "stdout_tail": stdout_tail, "stderr_tail": stderr_tail}
    payload: dict[str, Any] | None = None
    if raw:
        try:
            candidate = json.loads(raw.decode())
            if isinstance(candidate, dict) and candidate.get("nonce") == nonce:
                payload = candidate
        except (ValueError, UnicodeDecodeError):
            payload = None
    isolation = {**outer, **(payload or {}).get("isolation", {})}
    common["isolation"] = isolation
    if payload is None:
        if timed_out:
            return SandboxResult("timeout", f"wall-clock timeout after {limits.timeout_s:g}s", **common)
        last = stderr_tail.strip().splitlines()[-1:] or [""]
        if returncode is not None and returncode < 0:
            sig = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
            return SandboxResult("killed", f"killed by {sig} (limit hit?) {last[0]}".strip(), **common)
        if "sigprocmask unblock failed" in stderr_tail:
            # util-linux 2.38's unshare fails to re-raise the signal that killed its child and exits 1 instead.
            return SandboxResult("killed", "killed by a signal (resource limit)", **common)
        if returncode in (137, 152, 153):  # 128 + SIGKILL / SIGXCPU / SIGXFSZ as relayed by unshare/sh
            return SandboxResult("killed", f"killed (exit {returncode}: resource limit) {last[0]}".strip(), **common)
        return SandboxResult(
            "error", f"no verdict from the test runner (exit {returncode}) {last[0][:300]}".strip(), **common
        )
    if payload.get("phase") == "load":
        msg = str(payload.get("error", ""))[:_MAX_MESSAGE_CHARS]
        return SandboxResult("error", f"code failed to load: {msg}", messages=(msg,), **common)
    total = int(payload.get("total", 0))
    bad = int(payload.get("failures", 0)) + int(payload.get("errors", 0))
    run = int(payload.get("run", 0))
    passed = max(0, run - bad)
    msgs = tuple(str(m)[:_MAX_MESSAGE_CHARS] for m in payload.get("messages", [])[:_MAX_MESSAGES])
    if total == 0:
        return SandboxResult("error", "the test suite has no tests", **common)
    if bad == 0 and run == total:
        return SandboxResult("pass", f"all {total} tests passed", total, total, **common)
    reason = f"{passed}/{total} tests passed"
    if msgs:
        reason += f"; first failure: {msgs[0]}"
    return SandboxResult("fail", reason, total, passed, msgs, **common)
