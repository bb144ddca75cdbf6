"""Persistent response cache: one sqlite file per cache directory.

The key hashes the model string, the messages, every generation parameter and the sample index, so S futures
sampled at temperature > 0 stay distinct while an identical re-run is served from the cache. Keys and values never
contain secrets: API keys and ``api_base`` are not part of either.

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
    model: str, messages: Sequence[Mapping[str, Any]], params: GenerationParams, sample_index: int
) -> str:
    """Stable sha256 over everything that determines a reply (and nothing secret)."""
    payload = {
        "v": _KEY_VERSION,
        "model": model,
        "messages": [_jsonable(dict(m)) for m in messages],
        "params": _jsonable(asdict(params)),
        "sample_index": sample_index,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Sqlite-backed map from :func:`cache_key` to a :class:`Completion`. Methods are blocking and thread-safe."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / CACHE_FILE
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._conn()  # create the schema now so errors surface at construction

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

    def get(self, key: str) -> Completion | None:
        row = self._conn().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
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
        conn = self._conn()
        with conn:
            conn.execute(
                "INSERT OR REPLACE INTO responses (key, model, value, created) VALUES (?, ?, ?, ?)",
                (key, completion.model, value, time.time()),
            )

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
