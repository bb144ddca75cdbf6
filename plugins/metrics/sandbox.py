"""Run untrusted Python (a candidate solution plus its unittest suite) in a contained child, and decide the
verdict where the solution cannot forge it.

Containment (each run records what was in force in :attr:`SandboxResult.isolation`)
-----------------------------------------------------------------------------------
1. Linux namespaces: util-linux ``unshare`` creates a network namespace with only a downed loopback, a mount
   namespace and a PID namespace (``--kill-child``); the runner itself, before it reads its job, then mounts a
   size-limited ``tmpfs`` on the run's working directory (the **disk quota**: writing past it fails with
   ENOSPC), remounts every other mount read-only, masks its own ``/proc/PID/mem`` and ``/proc/PID/task``, and
   moves into a new user and mount namespace as an unprivileged uid with every capability dropped (the mounts
   are then locked: nothing can be remounted writable). Doing this with system calls from the runner, rather than
   a shell spawning ``mount`` per mount point, is what pays for the verdict's own layers below. As root we start
   with real root (to mount and join a cgroup); otherwise everything starts inside an unprivileged user
   namespace. Without namespaces we fall back to the limits and in-process guards below and say so
   (``mode: plain``).
2. Resource limits set by the runner on itself before any untrusted line (address space, CPU seconds, file
   size, no core dumps, processes); as root a per-run ``pids`` cgroup caps processes instead of RLIMIT_NPROC
   (root is exempt from it). A wall-clock timeout kills the process group and the cgroup. A parent-side watchdog
   on the working directory's size enforces the disk quota where no tmpfs could be mounted.
3. In-process guards (defence in depth): writes outside the working directory and, without a network
   namespace, socket connects raise.

The verdict
-----------
Tests and solution must share one interpreter (BigCodeBench suites ``mock.patch`` the solution's libraries and
inspect the objects it returns), so the pass/fail decision is built from parts the solution cannot reach or
rewrite, and every attempt to reach them is reported as tampering (score 0, reason ``tampered: ...``):

* **The parent decides.** The child only reports per-test records on a pipe; the parent accepts a pass only when
  (a) every record carries a valid MAC under a per-run key and the sequence numbers run without gap, repeat or
  anything after the final record (printed text, writes to guessed descriptors and replays fail this), (b) the
  final record arrived *and* the child then exited with status 0 within the time limit (a fake pass followed by
  a hang is a timeout; an early ``os._exit(0)`` has no final record), and (c) the tests reported are exactly the
  ``test*`` methods the parent finds in the test source's AST, each with its own outcome.
* **The key lives in an enclave.** The runner's first act is to install an audit hook (CPython offers no way to
  remove one) that holds the key in keyword-only defaults and is the only code that writes records. It writes
  only what the runner's own functions ask for: it checks that the frame raising the event runs one of the
  runner's code objects (which the solution cannot re-instantiate: ``FunctionType``/``exec`` of them is refused).
  It runs with signals blocked and the garbage collector off, so no signal handler or finaliser of the solution
  runs while it holds the key; a process forked by the solution wipes its copy of the key before its first line.
* **The runner decides each test by its own control flow**, not through unittest's result classes or
  ``TestCase.run``: it captures the test functions before any of them runs, calls setUp/test/tearDown/cleanups
  itself, and counts a test as passed only when it returned normally (a ``SkipTest`` raised by the solution, or
  through it, fails). Its functions read no global and no closure cell after the first untrusted line (checked
  with ``dis`` by the tests) and keep their state in tuples, so rebinding the runner's module names or frames
  changes nothing.
* **The framework is verified, not trusted.** Before the solution loads, the runner imports what the test suite
  imports and snapshots the identity of every name in ``unittest``'s modules and classes, ``builtins``, the
  ``*.testing`` helpers of the libraries the tests import, and the ``sys.modules`` entries of all of these. The
  snapshot is checked after the solution loads, before and after each test (after ``mock.patch`` has undone its
  own patches), after every call of the entry point, and at the end; the test class's methods join it. Once the
  suite has loaded, unittest's classes are made immutable types (as builtin types are), so patching an assertion
  method raises TypeError instead of succeeding for one test. The tests run in the namespace BigCodeBench gives
  them (the solution's: solutions use names the tests import), so the names the test source binds there
  (imports, helpers, constants) join the snapshot as well.
* **The hook refuses the tools that would rewrite all this invisibly**: a second audit hook, ``sys.settrace`` /
  ``setprofile``, ``gc.get_objects``/``get_referrers``/``get_referents``, ``sys._current_frames``, raw memory
  through ctypes (``from_address``, ``string_at``, the interpreter's C API), ``/proc/*/mem``, rewriting
  ``__code__``/``__defaults__`` of test, unittest or runner functions, changing the class of a test instance,
  and code compiled under the name of the runner, the tests or a real library file. Frames are refused to the
  solution's own code (libraries may still take frames, as ``namedtuple``, ``logging`` and pandas do).
* **Forged values.** The entry point the tests call returns the solution's value after probing it: an object that
  claims equality with a fresh sentinel (an "always equal" object that would defeat ``assertEqual``) is reported.

What is not covered: Python is not a security boundary. Code that deliberately corrupts the interpreter's memory
through native code the runner cannot see (``ctypes.memmove``, numpy's ``__array_interface__``), that patches a
library's internals beneath the testing helpers, or that patches and restores the framework *within* one test
between an assertion and the next check (from a finaliser or a thread), can still forge a verdict. These need a
deliberate exploit of CPython internals rather than one of the reward hacks the hostile-code suite exercises;
closing them would need the tests to run outside the solution's process.
"""

from __future__ import annotations

import ast
import contextlib
import hmac
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
from hashlib import blake2b
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ..tasks.code_env import source_imports

__all__ = ["SandboxLimits", "SandboxResult", "Status", "TestPlan", "isolation_support", "run_tests", "test_plan"]

Status = Literal["pass", "fail", "timeout", "error", "killed", "tampered", "environment"]

# Seconds granted on top of ``timeout_s`` for interpreter start-up and namespace set-up.
_STARTUP_GRACE_S = 1.5
_MAX_MESSAGE_CHARS = 600
_MAX_MESSAGES = 5
_RUNNER = Path(__file__).with_name("_sandbox_runner.py")
_INNER_UID = 1000  # the unprivileged uid the code runs as inside the inner user namespace
_WATCHDOG_PERIOD_S = 0.2
_WATCHDOG_MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run. ``timeout_s`` is wall-clock for the test run; CPU time is capped at the same value.
    ``disk_mb`` caps everything the run writes to its working directory (a tmpfs, or a watchdog without one)."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 32
    max_file_size_mb: int = 64
    disk_mb: int = 256
    network: bool = False


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one run. ``status`` is "pass" only if every test ran and passed; "tampered" when the code
    reached for the verdict (``tampered`` says how); "environment" when a module the tests import is missing
    (``missing_module``). ``missing_module`` is also set when the solution or a test failed on a missing module,
    with ``missing_by_solution`` saying who asked for it, for the caller to decide whose fault that is."""

    status: Status
    reason: str
    tests_total: int = 0
    tests_passed: int = 0
    messages: tuple[str, ...] = ()
    duration_s: float = 0.0
    isolation: dict[str, Any] = field(default_factory=dict)
    stdout_tail: str = ""
    stderr_tail: str = ""
    tampered: tuple[str, ...] = ()
    missing_module: str | None = None
    #: Whether the solution's own code imported ``missing_module`` (else a library or the tests did).
    missing_by_solution: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "pass"


# --------------------------------------------------------------------------------------------- the test plan


class TestPlan(NamedTuple):
    """What the parent expects from a test source, read from its AST: the ``test*`` methods of ``TestCases``
    (``complete`` when nothing can add more at run time), the modules to import before the solution runs, and the
    names the source binds at module level (its imports, helpers and constants: the runner checks they keep
    their values)."""

    names: frozenset[str]
    complete: bool
    imports: tuple[tuple[str, bool], ...]
    bound_names: tuple[str, ...]


_TESTCASE_BASES = {"TestCase", "unittest.TestCase"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _testing_helpers(tree: ast.Module) -> list[str]:
    """``pkg.testing`` modules the tests reach as attributes (``np.testing.assert_allclose``): libraries load them
    lazily, and they must be imported (and snapshotted) before the solution runs."""
    aliases: dict[str, str] = {}
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [f"{node.module}.{a.name}" for a in node.names if a.name in {"testing", "_testing"}]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"testing", "_testing"}:
            base = _dotted(node.value)
            head, _, rest = base.partition(".")
            if head in aliases:
                out.append(".".join(p for p in (aliases[head], rest, node.attr) if p))
    return list(dict.fromkeys(out))


def _module_bindings(tree: ast.Module) -> list[str]:
    """Names bound by the module-level statements of ``tree`` (also inside top-level if/try/with blocks)."""
    out: list[str] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            out += [a.asname or a.name.split(".")[0] for a in node.names if a.name != "*"]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                out += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
        elif isinstance(node, ast.If | ast.Try | ast.TryStar | ast.With):
            todo += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for h in getattr(node, "handlers", []):
                todo += h.body
    return [n for n in dict.fromkeys(out) if n != "TestCases"]


def test_plan(tests: str) -> TestPlan:
    """The parent's own reading of a test source (never executed here)."""
    refs = source_imports(tests)
    imports = tuple(dict.fromkeys((r.module, r.optional) for r in refs))
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError):
        return TestPlan(frozenset(), False, imports, ())
    imports += tuple((m, True) for m in _testing_helpers(tree) if m not in {name for name, _opt in imports})
    bound_names = tuple(_module_bindings(tree))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    complete = True
    names: set[str] = set()

    def collect(cls: ast.ClassDef, seen: set[str]) -> None:
        nonlocal complete
        if cls.name in seen:
            return
        seen.add(cls.name)
        if cls.decorator_list or cls.keywords:
            complete = False  # a decorator or metaclass may add methods
        for stmt in cls.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name.startswith("test"):
                names.add(stmt.name)
            elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if any(isinstance(t, ast.Name) and t.id.startswith("test") for t in targets):
                    complete = False
            elif not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.Expr | ast.Pass | ast.ClassDef):
                complete = False  # loops, conditionals: methods may appear dynamically
        for base in cls.bases:
            dotted = _dotted(base)
            if dotted in classes:
                collect(classes[dotted], seen)
            elif dotted not in _TESTCASE_BASES:
                complete = False

    if "TestCases" not in classes:
        return TestPlan(frozenset(), False, imports, bound_names)
    collect(classes["TestCases"], set())
    for node in ast.walk(tree):  # setattr(TestCases, ...) or TestCases.test_x = ... after the class
        if isinstance(node, ast.Call) and _dotted(node.func) == "setattr":
            complete = False
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) for t in node.targets):
            complete = complete and not any(
                isinstance(t, ast.Attribute) and _dotted(t.value) in classes for t in node.targets
            )
    return TestPlan(frozenset(names), complete, imports, bound_names)


# ------------------------------------------------------------------------------------------- namespace set-up
# ``unshare`` creates the outer namespaces (network, mount, PID with its own /proc; a user namespace too when not
# root); the runner then mounts, masks, enters the inner user namespace and drops its capabilities itself
# (``_enter_sandbox`` in the runner), before it reads its job and long before the first untrusted line.


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


def _setup_env(box: Path, cgroup: Path | None, disk_mb: int) -> dict[str, str]:
    return {"CH_BOX": str(box), "CH_CGROUP": str(cgroup or ""), "CH_DISK_MB": str(disk_mb), "CH_UID": str(_INNER_UID)}



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
        cmd = [*_outer_prefix(trial), sys.executable, "-I", str(_RUNNER), "--probe", str(Path(box).resolve())]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **_setup_env(Path(box), None, 1)}
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


def _disk_usage(root: Path) -> int:
    """Bytes allocated under ``root`` (a directory the parent can see: the quota's fallback)."""
    total, seen, stack = 0, 0, [str(root)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                seen += 1
                if seen > _WATCHDOG_MAX_ENTRIES:
                    return 1 << 62  # more entries than any task needs: treat as over quota
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


# ------------------------------------------------------------------------------------------------------ runs


def run_tests(
    code: str, tests: str, limits: SandboxLimits | None = None, *, entry_point: str = "task_func"
) -> SandboxResult:
    """Run ``code`` and then ``tests`` (which must define ``TestCases(unittest.TestCase)``) in the sandbox; the tests
    see the solution's names and call ``entry_point``. Thread-safe; every call gets its own directory, cgroup, key
    and pipes."""
    limits = limits or SandboxLimits()
    support = _get_support()
    started = time.monotonic()
    plan = test_plan(tests)
    box = Path(tempfile.mkdtemp(prefix="ch-sandbox-")).resolve()
    work = box / "work"
    (work / "tmp").mkdir(parents=True)
    key = secrets.token_bytes(32)
    cgroup: Path | None = None
    job_r, job_w = os.pipe()
    out_r, out_w = os.pipe()
    chunks: list[bytes] = []
    over_quota = threading.Event()
    finished = threading.Event()

    def read_records() -> None:
        total = 0  # bounded: more than 4 MiB of records is not a verdict we trust
        while total < 4 * 1024 * 1024:
            b = os.read(out_r, 65536)
            if not b:
                break
            chunks.append(b)
            total += len(b)

    reader = threading.Thread(target=read_records, daemon=True)
    outer: dict[str, Any] = {"mode": support.mode}
    try:
        py = [sys.executable, "-I", str(_RUNNER), str(box), str(job_r), str(out_w)]
        env = _minimal_env(work)
        if support.mode == "namespaces":
            if support.cgroup_root is not None:
                # sh, unshare (x2) and the runner count against the cap too.
                cgroup = _make_cgroup(support.cgroup_root, f"collab-harness-{secrets.token_hex(8)}",
                                      limits.max_processes + 4)
            outer["pids_cgroup"] = cgroup is not None
            env = {**env, **_setup_env(box, cgroup, limits.disk_mb)}
            cmd = [*_outer_prefix(support), *py]
        else:
            outer["note"] = support.note
            cmd = py
        # RLIMIT_NPROC counts every process of the real user; root (uid 0 in any namespace) is exempt anyway.
        nproc = limits.max_processes + (0 if support.root else _count_user_processes())
        job = json.dumps({
            "code": code,
            "tests": tests,
            "entry_point": entry_point,
            "imports": [list(i) for i in plan.imports],
            "bound_names": list(plan.bound_names),
            "memory_mb": limits.memory_mb,
            # CPU cap above the wall-clock one: the wall clock normally fires first and says "timeout".
            "cpu_s": max(1, int(limits.timeout_s + _STARTUP_GRACE_S + 2)),
            "fsize_mb": min(limits.max_file_size_mb, limits.disk_mb),
            "nproc": nproc,
            "network": limits.network,
            "outer": outer,
        }).encode("utf-8")
        with (box / "stdout.txt").open("wb") as out, (box / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=work,
                env=env,
                pass_fds=(job_r, out_w),
                start_new_session=True,
            )
        os.close(job_r)
        os.close(out_w)
        job_r = out_w = -1
        writer = threading.Thread(target=_write_job, args=(job_w, key + job), daemon=True)
        writer.start()
        job_w = -1  # the writer closes it
        reader.start()
        watchdog = threading.Thread(target=_watch_disk, args=(work, limits.disk_mb, proc, over_quota, finished),
                                    daemon=True)
        watchdog.start()
        timed_out = False
        try:
            proc.wait(timeout=limits.timeout_s + _STARTUP_GRACE_S)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            finished.set()
            _kill_group(proc)
            if cgroup is not None:
                _drain_cgroup(cgroup)
        reader.join(timeout=5)
        duration = time.monotonic() - started
        return _verdict(
            proc.returncode, timed_out, over_quota.is_set(), b"".join(chunks), key, plan, duration, outer, box,
            limits,
        )
    finally:
        for fd in (job_r, job_w, out_w):
            if fd >= 0:
                os.close(fd)
        if not reader.is_alive():
            os.close(out_r)
        if cgroup is not None and cgroup.exists():
            _drain_cgroup(cgroup)
        shutil.rmtree(box, ignore_errors=True)


def _write_job(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError:
        pass  # the child died before reading its job: its verdict says so
    finally:
        os.close(fd)


def _watch_disk(work: Path, disk_mb: int, proc: subprocess.Popen[bytes], over: threading.Event,
                finished: threading.Event) -> None:
    """The quota's fallback where no tmpfs could be mounted: kill the run once its directory outgrows it."""
    limit = disk_mb * 1024 * 1024
    while not finished.wait(_WATCHDOG_PERIOD_S):
        if _disk_usage(work) > limit:
            over.set()
            _kill_group(proc)
            return


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


# ---------------------------------------------------------------------------------------------- the verdict


class _Records(NamedTuple):
    items: list[tuple[str, Any]]
    forged: str


def _parse_records(raw: bytes, key: bytes) -> _Records:
    """Authenticated records in order; ``forged`` names the first line the runner did not write."""
    items: list[tuple[str, Any]] = []
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        return _Records(items, "an unterminated record on the verdict channel")
    done = False
    for i, line in enumerate(lines):
        body, _, mac = line.rpartition(b" ")
        want = blake2b(body, key=key, digest_size=16).hexdigest().encode()
        if not hmac.compare_digest(mac, want):
            return _Records(items, "the verdict channel carried a record the runner did not write")
        try:
            seq_s, kind_b, payload = body.split(b" ", 2)
            seq, kind = int(seq_s), kind_b.decode()
            value = ast.literal_eval(payload.decode("utf-8"))
        except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
            return _Records(items, "an unreadable record on the verdict channel")
        if seq != i:
            return _Records(items, "records on the verdict channel were lost, repeated or reordered")
        if done:
            return _Records(items, "a record after the final one")
        done = kind == "done"
        items.append((kind, value))
    return _Records(items, "")


def _verdict(
    returncode: int | None,
    timed_out: bool,
    over_quota: bool,
    raw: bytes,
    key: bytes,
    plan: TestPlan,
    duration: float,
    outer: dict[str, Any],
    box: Path,
    limits: SandboxLimits,
) -> SandboxResult:
    stdout_tail, stderr_tail = _tail(box / "stdout.txt"), _tail(box / "stderr.txt")
    recs = _parse_records(raw, key)
    isolation = dict(outer)
    for kind, value in recs.items:
        if kind == "start" and isinstance(value, tuple) and value and isinstance(value[0], tuple):
            isolation.update({str(k): v for k, v in value[0] if isinstance(k, str)})
    common: dict[str, Any] = {
        "duration_s": duration, "stdout_tail": stdout_tail, "stderr_tail": stderr_tail, "isolation": isolation,
    }
    tampers = [str(v[0]) for k, v in recs.items if k == "tamper" and isinstance(v, tuple) and v]
    if recs.forged:
        tampers.append(recs.forged)
    if tampers:
        return SandboxResult("tampered", f"tampered: {tampers[0]}"[:_MAX_MESSAGE_CHARS],
                             tampered=tuple(t[:_MAX_MESSAGE_CHARS] for t in tampers[:_MAX_MESSAGES]), **common)
    by_kind: dict[str, list[Any]] = {}
    for kind, value in recs.items:
        by_kind.setdefault(kind, []).append(value)
    if over_quota:
        return SandboxResult("killed", f"disk quota exceeded: the run wrote more than {limits.disk_mb} MB", **common)
    done = "done" in by_kind
    if not done:
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
    if timed_out:
        return SandboxResult("timeout", f"wall-clock timeout after {limits.timeout_s:g}s (after the runner reported: "
                                        "a verdict counts only once the process has exited)", **common)
    if returncode != 0:
        return SandboxResult("error", f"the test runner exited with status {returncode} after reporting", **common)
    if "env" in by_kind:
        module, why = [*by_kind["env"][0], "", ""][:2]
        return SandboxResult("environment", f"environment: {why}", missing_module=str(module) or None, **common)
    if "load" in by_kind:
        msg, missing = [*by_kind["load"][0], "", ""][:2]
        msg = str(msg)[:_MAX_MESSAGE_CHARS]
        module, by_solution = _split_missing(str(missing))
        return SandboxResult("error", f"code failed to load: {msg}", messages=(msg,), missing_module=module,
                             missing_by_solution=by_solution, **common)
    names = tuple(str(n) for n in (by_kind.get("tests") or [()])[0])
    total = len(names)
    if total == 0:
        return SandboxResult("error", "the test suite has no tests", **common)
    if (plan.complete and set(names) != plan.names) or not plan.names <= set(names):
        return SandboxResult("tampered", "tampered: the tests that ran are not the test suite's",
                             tampered=("the tests that ran are not the test suite's",), **common)
    outcomes: dict[str, tuple[str, str, str]] = {}
    for rec in by_kind.get("test", []):
        name, outcome, msg, missing = [*rec, "", "", "", ""][:4]
        if name == "tearDownClass":
            outcomes.setdefault("tearDownClass", (str(outcome), str(msg), str(missing)))
            continue
        if name in outcomes or name not in names:
            return SandboxResult("tampered", "tampered: a test was reported twice or out of the suite",
                                 tampered=("a test was reported twice or out of the suite",), **common)
        outcomes[str(name)] = (str(outcome), str(msg), str(missing))
    if len([n for n in outcomes if n != "tearDownClass"]) != total:
        return SandboxResult("error", f"the runner reported {len(outcomes)} of {total} tests", **common)
    ok = {"pass", "skip", "xfail"}
    passed = sum(1 for n in names if outcomes[n][0] in ok)
    bad = [(n, *outcomes[n]) for n in [*names, "tearDownClass"] if n in outcomes and outcomes[n][0] not in ok]
    msgs = tuple(str(m)[:_MAX_MESSAGE_CHARS] for _n, _o, m, _mm in bad[:_MAX_MESSAGES])
    module, by_solution = _split_missing(next((mm for _n, _o, _m, mm in bad if mm), ""))
    if not bad:
        return SandboxResult("pass", f"all {total} tests passed", total, total, **common)
    reason = f"{passed}/{total} tests passed"
    if msgs:
        reason += f"; first failure: {msgs[0]}"
    return SandboxResult("fail", reason, total, passed, msgs, missing_module=module,
                         missing_by_solution=by_solution, **common)


def _split_missing(text: str) -> tuple[str | None, bool]:
    """``"sklearn@solution"`` -> ("sklearn", True): the runner marks imports the solution's own code made."""
    name, _, who = text.partition("@")
    return (name or None), who == "solution"
