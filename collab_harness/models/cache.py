"""Persistent response cache: one sqlite file per cache directory.

The key hashes the model string, the messages, every generation parameter and the sample index, so S futures
sampled at temperature > 0 stay distinct while an identical re-run is served from the cache; plus what else decides
the reply: the endpoint (the api base(s) a model string is served from: the same model string on another server is
another model), a fingerprint of a local model's weights (a fine-tuned checkpoint, a live policy after an optimizer
step), and the attempt number of a retried item (attempt 1 adds nothing, so first attempts share keys with earlier
versions of the recipe). Keys and values never contain secrets: endpoints are hashed into the key, never stored, and
replies are scrubbed before they are stored.

A cache file that cannot be opened or read (corrupt, not a database, truncated) is moved aside as
``responses.sqlite.corrupt-<time>`` with one warning, and a fresh cache takes its place: a broken cache never stops
a run.

Concurrency: WAL mode plus a busy timeout makes concurrent processes safe; each thread gets its own connection
(sqlite connections must not be shared across threads), and the async client runs every sqlite call in a worker
thread so a lock held by another process never blocks the event loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .protocol import Completion, GenerationParams, Usage

__all__ = ["CACHE_FILE", "ResponseCache", "cache_key", "default_cache_dir"]

CACHE_FILE = "responses.sqlite"
# Bump when the key recipe or the stored value format changes: old rows are then simply never hit.
_KEY_VERSION = 1


def default_cache_dir() -> Path:
    """``$COLLAB_HARNESS_CACHE_DIR`` or ``~/.cache/collab-harness``."""
    env = os.environ.get("COLLAB_HARNESS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "collab-harness"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, type):  # e.g. a pydantic schema class passed as response_format
        schema = getattr(value, "model_json_schema", None)
        return {"__type__": value.__qualname__, "schema": schema() if callable(schema) else None}
    return repr(value)


def cache_key(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    params: GenerationParams,
    sample_index: int,
    *,
    endpoint: Sequence[str] | None = None,
    fingerprint: str | None = None,
    attempt: int = 1,
) -> str:
    """Stable sha256 over everything that determines a reply (and nothing secret)."""
    p = asdict(params)
    if p.get("json_schema") is None:
        del p["json_schema"]  # absent = the recipe before the field existed: old keys stay valid
    payload: dict[str, Any] = {
        "v": _KEY_VERSION,
        "model": model,
        "messages": [_jsonable(dict(m)) for m in messages],
        "params": _jsonable(p),
        "sample_index": sample_index,
    }
    if endpoint:
        payload["endpoint"] = sorted(str(e).rstrip("/") for e in endpoint)
    if fingerprint:
        payload["fingerprint"] = fingerprint
    if attempt != 1:
        payload["attempt"] = attempt
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _is_corruption(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and any(
        m in msg for m in ("malformed", "not a database", "file is encrypted", "disk image", "unsupported file format")
    )


class ResponseCache:
    """Sqlite-backed map from :func:`cache_key` to a :class:`Completion`. Methods are blocking and thread-safe."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / CACHE_FILE
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self.quarantined: list[Path] = []
        try:
            self._conn()  # create the schema now so errors surface at construction
            self._conn().execute("SELECT key FROM responses LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            self._guard(exc)

    def quarantine(self, exc: BaseException) -> None:
        """Move a corrupt cache file aside (with its WAL files) and start a fresh one; one warning."""
        import logging

        self.close()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(moved) + suffix))
        self.quarantined.append(moved)
        logging.getLogger("collab_harness.cache").warning(
            "response cache %s is unreadable (%s); moved it to %s and started a fresh cache",
            self.path, str(exc).splitlines()[0][:200], moved.name)
        self._conn()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            from filelock import FileLock

            conn = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=60000")
            # Switching to WAL ignores the busy timeout: two processes opening a new cache at once got an instant
            # "database is locked" (seen in CI). Set-up is serialised across processes; use after it is not.
            with FileLock(str(self.path) + ".lock", timeout=120):
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS responses ("
                    " key TEXT PRIMARY KEY, model TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL)"
                )
                conn.commit()
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _guard(self, exc: sqlite3.Error) -> None:
        """Quarantine on corruption (then the caller treats the call as a miss); re-raise anything else."""
        if _is_corruption(exc):
            self.quarantine(exc)
            return
        raise exc

    def get(self, key: str) -> Completion | None:
        try:
            row = self._conn().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            self._guard(exc)
            return None
        if row is None:
            return None
        try:
            d = json.loads(row[0])
            u = d.get("usage") or {}
            return Completion(
                text=d["text"],
                model=d["model"],
                usage=Usage(
                    prompt_tokens=int(u.get("prompt_tokens", 0)),
                    completion_tokens=int(u.get("completion_tokens", 0)),
                    cost=u.get("cost"),
                ),
                cached=True,
                finish_reason=d.get("finish_reason"),
                latency_s=0.0,
            )
        except (ValueError, KeyError, TypeError):
            return None  # a corrupt row is a miss; the fresh reply overwrites it

    def put(self, key: str, completion: Completion) -> None:
        value = json.dumps(
            {
                "text": completion.text,
                "model": completion.model,
                "finish_reason": completion.finish_reason,
                "usage": asdict(completion.usage),
            },
            ensure_ascii=False,
        )
        try:
            conn = self._conn()
            with conn:
                conn.execute(
                    "INSERT OR REPLACE INTO responses (key, model, value, created) VALUES (?, ?, ?, ?)",
                    (key, completion.model, value, time.time()),
                )
        except sqlite3.DatabaseError as exc:
            self._guard(exc)

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self) -> None:
        conn = self._conn()
        with conn:
            conn.execute("DELETE FROM responses")

    def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
