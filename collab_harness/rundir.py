"""Run-directory I/O: the lock, ``manifest.json``, ``samples.jsonl``, ``results.json``.

Crash safety is the point of this module:

- ``samples.jsonl`` gets one JSON line per finished item, appended under an exclusive ``flock`` with a single
  ``write`` of the whole line followed by ``fsync``: a ``kill -9`` can at worst leave a torn *last* line, never a
  half-line in the middle or two interleaved records.
- Reading tolerates exactly that torn last line (it is dropped); :func:`repair_samples` truncates it away before a
  resumed run appends, so the file stays valid JSONL.
- ``manifest.json`` and ``results.json`` are written to a temporary file, fsynced and renamed over the target;
  temporary files left by a killed process are removed when the next run takes the lock.
- :class:`RunLock`: one process at a time per run directory. The lock is an ``flock`` on ``.lock`` held for the
  whole run, so the kernel releases it when its holder dies (a stale lock is simply taken over); the file names the
  holder (pid, host, start time, command) for the error the second process prints.

Every string written goes through :mod:`collab_harness.scrub`. Records are the typed models of
:mod:`collab_harness.records`; schema-1 files are upgraded on read.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import CollabHarnessError, validation_summary
from .records import AnyRecord, Manifest, parse_record, upgrade_manifest
from .scrub import SecretScrubber, scrub

__all__ = [
    "LOCK",
    "MANIFEST",
    "RESULTS",
    "SAMPLES",
    "RecordLog",
    "RunDirError",
    "RunLock",
    "append_record",
    "clean_temp_files",
    "read_manifest",
    "read_manifest_raw",
    "read_records",
    "read_results",
    "repair_samples",
    "write_json_atomic",
]

MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
RESULTS = "results.json"
LOCK = ".lock"


class RunDirError(CollabHarnessError):
    """A run directory is missing, locked, inconsistent or corrupt."""


# --------------------------------------------------------------------------------------------------- lock


class RunLock:
    """Exclusive lock of a run directory (or any output path) for the lifetime of a run."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirError(
                f"{self.dir} is in use by pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
                f"(since {holder.get('since', '?')}); wait for it to finish, or choose another --out"
            ) from None
        # Ours: the previous holder (if any) is dead, since the kernel released its flock.
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv[:6])[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(scrub(info)).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return data if isinstance(data, dict) else {}
    except (ValueError, OSError):
        return {}


def clean_temp_files(run_dir: str | Path) -> list[str]:
    """Remove temporary files a killed writer left behind (call while holding the lock)."""
    d = Path(run_dir)
    removed = []
    if d.is_dir():
        for p in d.glob(".*.tmp"):
            try:
                p.unlink()
                removed.append(p.name)
            except OSError:
                pass
    return removed


# ------------------------------------------------------------------------------------------------ writing


def _plain(data: Any) -> Any:
    return data.model_dump(mode="json") if isinstance(data, BaseModel) else data


def write_json_atomic(path: str | Path, data: Any, *, scrubber: SecretScrubber | None = None) -> None:
    """Write JSON (a mapping or a pydantic model) to ``path`` atomically: temporary file, fsync, rename."""
    p = Path(path)
    clean = (scrubber or scrub)(_plain(data))
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(clean, ensure_ascii=False, indent=2, default=str, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink(missing_ok=True)
    _fsync_dir(p.parent)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def append_record(path: str | Path, record: BaseModel, *, scrubber: SecretScrubber | None = None) -> None:
    """Append one typed record as one line: exclusive flock, a single ``write``, fsync."""
    if not isinstance(record, BaseModel) or "kind" not in type(record).model_fields:
        raise TypeError(f"append_record takes a typed run record, got {type(record).__name__}")
    data = (json.dumps((scrubber or scrub)(record.model_dump(mode="json")), ensure_ascii=False,
                       allow_nan=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            view = memoryview(data)
            while view:  # os.write may be partial for huge lines
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class RecordLog:
    """What :func:`read_records` found: the complete records, and where the valid part of the file ends."""

    records: list[AnyRecord]
    valid_bytes: int
    torn_tail: bool
    #: Item ids that occur in more than one record (should never happen; resume refuses such a file).
    duplicates: list[str]

    @property
    def finished_ids(self) -> set[str]:
        return {r.item_id for r in self.records}


def read_records(path: str | Path) -> RecordLog:
    """Read ``samples.jsonl``. A torn or incomplete *last* line (a crash mid-write) is dropped; a bad line anywhere
    else means the file was damaged by something else, and is an error naming the line."""
    p = Path(path)
    if not p.exists():
        return RecordLog([], 0, False, [])
    raw = p.read_bytes()
    records: list[AnyRecord] = []
    offset = 0
    torn = False
    lines = raw.split(b"\n")
    # The piece after the last "\n" is either empty (clean file) or an unterminated, torn line.
    for i, line in enumerate(lines):
        if i == len(lines) - 1:
            if line.strip():
                torn = True
            break
        end = offset + len(line) + 1
        if not line.strip():
            offset = end
            continue
        rec, why = _parse(line)
        if rec is None:
            if i == len(lines) - 2 and not lines[-1].strip() and why == "json":
                torn = True  # a terminated but incomplete final record: treat as torn too
                break
            raise RunDirError(f"{p}: line {i + 1} is not a valid record ({why}); the file is damaged")
        records.append(rec)
        offset = end
    counts = Counter(r.item_id for r in records)
    dups = sorted(k for k, n in counts.items() if n > 1)
    return RecordLog(records, offset, torn, dups)


def _parse(line: bytes) -> tuple[AnyRecord | None, str]:
    try:
        data = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, "json"
    if not isinstance(data, dict):
        return None, "not an object"
    try:
        return parse_record(data), ""
    except ValidationError as e:
        return None, validation_summary(e.errors(), limit=3)


def repair_samples(path: str | Path) -> RecordLog:
    """Read ``samples.jsonl`` and cut a torn last line off the file, so appends start on a clean line."""
    log = read_records(path)
    if log.torn_tail:
        with open(path, "r+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            f.truncate(log.valid_bytes)
            f.flush()
            os.fsync(f.fileno())
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return log


def read_manifest_raw(run_dir: str | Path) -> dict[str, Any]:
    p = Path(run_dir) / MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: no {MANIFEST} (not a run directory)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{p}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise RunDirError(f"{p}: expected a JSON object")
    return data


def read_manifest(run_dir: str | Path) -> Manifest:
    """The typed manifest (schema 1 is upgraded for reading)."""
    raw = read_manifest_raw(run_dir)
    try:
        return Manifest.model_validate(upgrade_manifest(raw))
    except ValidationError as e:
        raise RunDirError(f"{Path(run_dir) / MANIFEST}: not a valid manifest: "
                          f"{validation_summary(e.errors(), limit=3)}") from None


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    p = Path(run_dir) / RESULTS
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{p}: not valid JSON ({e})") from e
    return data if isinstance(data, Mapping) else None  # type: ignore[return-value]
