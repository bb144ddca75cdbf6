"""Run-directory I/O: ``manifest.json``, ``samples.jsonl``, ``results.json``.

Crash safety is the point of this module:

- ``samples.jsonl`` gets one JSON line per finished example, appended under an exclusive ``flock`` with a single
  ``write`` of the whole line followed by ``fsync``: a ``kill -9`` can at worst leave a torn *last* line, never a
  half-line in the middle or two interleaved records.
- Reading tolerates exactly that torn last line (it is dropped); :func:`repair_samples` truncates it away before a
  resumed run appends, so the file stays valid JSONL.
- ``manifest.json`` and ``results.json`` are written to a temporary file, fsynced and renamed over the target.

Every string written goes through :class:`SecretScrubber`: values of secret-looking environment variables (API keys,
tokens) are replaced by ``***`` wherever they would appear, so a key that leaked into an error message or an option
never reaches the disk. Aggregation (:func:`aggregate`) is pure so that ``results.json`` can always be recomputed
from ``samples.jsonl`` alone.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CollabHarnessError

__all__ = [
    "MANIFEST",
    "RESULTS",
    "SAMPLES",
    "SCHEMA_VERSION",
    "SampleLog",
    "SecretScrubber",
    "aggregate",
    "append_sample",
    "mean_ci",
    "read_manifest",
    "read_results",
    "read_samples",
    "repair_samples",
    "t_quantile_975",
    "write_json_atomic",
]

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SAMPLES = "samples.jsonl"
RESULTS = "results.json"

#: Keys a complete sample record carries; a line missing one is not a finished sample.
RECORD_KEYS = frozenset({"id", "example_id", "attempt", "conversation", "scores", "errors", "usage", "seed"})


class RunDirError(CollabHarnessError):
    """A run directory is missing, inconsistent or corrupt."""


# ------------------------------------------------------------------------------------------------- secrets

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.I)
#: Secret-named variables that hold locations, not credentials (replacing a path everywhere would mangle output).
_NOT_SECRET_NAME = re.compile(r"(_PATH|_FILE|_DIR|_URL|_HOME)$", re.I)
#: Option / field names whose value is a credential (whole words: "tokenizer" is not one).
_SECRET_OPTION = re.compile(
    r"(^|[_-])(api[_-]?key|apikey|token|access[_-]?token|secret|secret[_-]?key|password|passwd|authorization)$",
    re.I,
)


class SecretScrubber:
    """Replaces values of secret-looking environment variables, and values under secret-looking keys, by ``***``."""

    def __init__(self, environ: Mapping[str, str] | None = None, *, min_len: int = 6) -> None:
        env = os.environ if environ is None else environ
        vals = {
            v for k, v in env.items()
            if _SECRET_NAME.search(k) and not _NOT_SECRET_NAME.search(k) and len(v) >= min_len and v.strip()
        }
        # Longest first so that a secret containing another is replaced whole.
        self._values = sorted(vals, key=len, reverse=True)

    def text(self, s: str) -> str:
        for v in self._values:
            if v in s:
                s = s.replace(v, "***")
        return s

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {
                k: ("***" if isinstance(v, str) and v and _SECRET_OPTION.search(str(k)) else self(v))
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self(v) for v in obj]
        return obj


# ------------------------------------------------------------------------------------------------ writing


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=False, default=str, allow_nan=False)


def write_json_atomic(path: str | Path, data: Any, *, scrub: SecretScrubber | None = None) -> None:
    """Write JSON to ``path`` atomically (temporary file, fsync, rename)."""
    p = Path(path)
    scrub = scrub or SecretScrubber()
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(scrub(data), ensure_ascii=False, indent=2, default=str, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
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


def append_sample(path: str | Path, record: Mapping[str, Any], *, scrub: SecretScrubber | None = None) -> None:
    """Append one record as one line: exclusive flock, a single ``write``, fsync."""
    missing = RECORD_KEYS - set(record)
    if missing:
        raise ValueError(f"sample record lacks {sorted(missing)}")
    scrub = scrub or SecretScrubber()
    data = (_dumps(scrub(dict(record))) + "\n").encode("utf-8")
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
class SampleLog:
    """What :func:`read_samples` found: the complete records, and where the valid part of the file ends."""

    records: list[dict[str, Any]]
    valid_bytes: int
    torn_tail: bool
    #: Example ids that occur in more than one record (should never happen; resume refuses such a file).
    duplicates: list[str]

    @property
    def finished_ids(self) -> set[str]:
        return {r["example_id"] for r in self.records}


def read_samples(path: str | Path) -> SampleLog:
    """Read ``samples.jsonl``. A torn or incomplete *last* line (a crash mid-write) is dropped; a bad line anywhere
    else means the file was damaged by something else, and is an error naming the line."""
    p = Path(path)
    if not p.exists():
        return SampleLog([], 0, False, [])
    raw = p.read_bytes()
    records: list[dict[str, Any]] = []
    offset = 0
    torn = False
    lines = raw.split(b"\n")
    # The piece after the last "\n" is either empty (clean file) or an unterminated, torn line.
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if last:
            if line.strip():
                torn = True
            break
        end = offset + len(line) + 1
        if not line.strip():
            offset = end
            continue
        rec = _parse(line)
        if rec is None:
            if i == len(lines) - 2 and not lines[-1].strip():
                torn = True  # a terminated but incomplete final record: treat as torn too
                break
            raise RunDirError(f"{p}: line {i + 1} is not a complete sample record; the file is damaged")
        records.append(rec)
        offset = end
    counts = Counter(r["example_id"] for r in records)
    dups = sorted(k for k, n in counts.items() if n > 1)
    return SampleLog(records, offset, torn, dups)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(rec, dict) or not set(rec) >= RECORD_KEYS:
        return None
    return rec


def repair_samples(path: str | Path) -> SampleLog:
    """Read ``samples.jsonl`` and cut a torn last line off the file, so appends start on a clean line."""
    log = read_samples(path)
    if log.torn_tail:
        with open(path, "r+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            f.truncate(log.valid_bytes)
            f.flush()
            os.fsync(f.fileno())
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return log


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    p = Path(run_dir) / MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: no {MANIFEST} (not a run directory)") from None
    except json.JSONDecodeError as e:
        raise RunDirError(f"{p}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise RunDirError(f"{p}: expected a JSON object")
    return data


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    p = Path(run_dir) / RESULTS
    if not p.exists():
        return None
    data = json.loads(p.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


# ----------------------------------------------------------------------------------------------- statistics

# Two-sided 95% critical values of Student's t for df = 1..30.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (table up to 30, then the Cornish–Fisher
    expansion, accurate to ~1e-4 there)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample std, and the 95% confidence interval of the mean from Student's t (``ci_low``/``ci_high``;
    None with fewer than two values)."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None, "ci_half": None, "n": 0}
    mean = math.fsum(values) / n
    if n < 2:
        return {"mean": mean, "std": None, "ci_low": None, "ci_high": None, "ci_half": None, "n": n}
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    std = math.sqrt(var)
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "ci_half": half, "n": n}


def _metric_series(records: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, float | None, str]]:
    """(metric key, value or None when failed, example id) for every score of every record; sub-values of a score
    appear as ``name.sub``."""
    for r in records:
        for name, s in (r.get("scores") or {}).items():
            ok = s.get("value") is not None and not s.get("error")
            yield name, (float(s["value"]) if ok else None), r["example_id"]
            for sub, v in (s.get("values") or {}).items():
                yield f"{name}.{sub}", (float(v) if ok else None), r["example_id"]


def aggregate(records: Sequence[Mapping[str, Any]], *, expected_metrics: Sequence[str] = ()) -> dict[str, Any]:
    """Aggregates of finished sample records: per metric mean, 95% t-interval, n (scored samples) and n_failed
    (samples where the metric failed or could not be computed because the sample failed earlier); error counts by
    component. Deterministic in the record set (order-independent), so a resumed run matches an uninterrupted one."""
    records = sorted(records, key=lambda r: str(r["example_id"]))
    values: dict[str, list[float]] = {}
    failed: Counter[str] = Counter()
    names: list[str] = list(expected_metrics)
    for key, v, _ in _metric_series(records):
        if key not in values:
            values[key] = []
        if key not in names:
            names.append(key)
        if v is None:
            failed[key] += 1
        else:
            values[key].append(v)
    # A sample with no score for an expected metric (its simulation failed) counts as failed for that metric.
    for name in expected_metrics:
        for r in records:
            if name not in (r.get("scores") or {}):
                failed[name] += 1
    errors_by_component: Counter[str] = Counter()
    samples_with_errors = 0
    for r in records:
        errs = r.get("errors") or []
        if errs:
            samples_with_errors += 1
        for e in errs:
            errors_by_component[str(e.get("component", "unknown"))] += 1
    rewards = [float(r["reward"]) for r in records if isinstance(r.get("reward"), int | float)]
    metrics = {k: {**mean_ci(values.get(k, [])), "n_failed": failed[k]} for k in sorted(names)}
    usage: dict[str, dict[str, float]] = {}
    for r in records:
        for comp, u in (r.get("usage") or {}).items():
            if isinstance(u, Mapping):
                acc = usage.setdefault(comp, {})
                for k, v in u.items():
                    if isinstance(v, int | float) and not isinstance(v, bool):
                        acc[k] = acc.get(k, 0) + v
    return {
        "n_samples": len(records),
        "n_samples_with_errors": samples_with_errors,
        "ci_method": "student-t 95% interval of the mean",
        "metrics": metrics,
        "reward": {**mean_ci(rewards), "n_failed": len(records) - len(rewards)},
        "errors_by_component": dict(sorted(errors_by_component.items())),
        "usage": usage,
    }
