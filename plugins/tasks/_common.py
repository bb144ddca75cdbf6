"""Shared data loading for built-in tasks: the hub (``datasets``), a local file, or the shipped offline sample.

A task subclasses :class:`DatasetTask` and supplies the hub id, how hub records map to :class:`Example`, and how
the hub's splits map to ours (SPEC §3). The loading logic lives here once.

Sources (option ``source``):
- ``local``: ``data`` is a JSONL or parquet file, either in the hub's schema or in our own example schema (keys
  ``id``, ``prompt``, ...). Records with a ``split`` field are grouped by it; otherwise every split is the whole file,
  or, for tasks with ``partition_local_files``, the file is partitioned like the hub data.
- ``hub``: ``datasets.load_dataset(hub_id, ...)``, partitioned by :meth:`DatasetTask.hub_partition`.
- ``sample``: the JSONL this project ships under ``plugins/tasks/data/`` (our own example schema with ``split``).
- ``auto`` (default): ``local`` if ``data`` is set; else ``hub`` unless ``HF_HUB_OFFLINE`` is set or the hub
  cannot be reached, in which case ``sample`` (the choice is recorded as ``resolved_source``).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from collab_harness.components import Task
from collab_harness.errors import ConfigError, PrerequisiteError
from collab_harness.types import Example, TaskInfo

__all__ = ["DatasetTask", "read_records", "sample_path"]

_EXAMPLE_KEYS = {"id", "prompt"}


def sample_path(filename: str) -> Path:
    """Path of a shipped sample file under ``collab_harness_plugins/tasks/data``."""
    return Path(str(resources.files("collab_harness_plugins.tasks").joinpath("data", filename)))


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSONL / JSON-array / parquet file."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"data file not found: {p}")
    if p.suffix in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        return [dict(r) for r in pq.read_table(p).to_pylist()]
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json" and text.lstrip().startswith("["):
        return [dict(r) for r in json.loads(text)]
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ConfigError(f"{p}:{i}: not valid JSON ({e.msg})") from None
    return out


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes"} for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    """One quick TCP connect to the hub, so that an offline machine falls back to the sample at once instead of
    sitting through the hub client's retries."""
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


class DatasetTask(Task):
    """A task whose examples come from a hub dataset, a local file or a shipped sample."""

    #: Hub dataset id and optional config name / revision.
    hub_id: ClassVar[str] = ""
    hub_config: ClassVar[str | None] = None
    hub_revision: ClassVar[str | None] = None
    #: Known split sizes of the hub version (for ``list tasks`` without downloading).
    hub_sizes: ClassVar[Mapping[str, int | None]] = {}
    #: File name of the shipped sample under ``plugins/tasks/data``.
    sample_file: ClassVar[str] = ""
    split_names: ClassVar[tuple[str, ...]] = ("train", "test")
    #: Whether a local file in the hub's schema without a ``split`` field goes through :meth:`hub_partition`
    #: (as the whole hub data would); otherwise every split is the whole file.
    partition_local_files: ClassVar[bool] = False

    # ------------------------------------------------------------------------------------ task-specific parts
    def from_hub_record(self, record: Mapping[str, Any], index: int) -> Example:
        """Convert one record in the hub's schema to an :class:`Example` (stable id!)."""
        raise NotImplementedError

    def hub_partition(self, raw: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[Mapping[str, Any]]]:
        """Map the hub's splits (name -> records) to ours. Default: same names."""
        return {s: list(raw[s]) for s in self.split_names if s in raw}

    def load_hub(self) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        """Download (or read from the local hub cache) every split of the hub dataset."""
        try:
            import datasets
        except ImportError as e:  # pragma: no cover - datasets is a base dependency
            raise PrerequisiteError("loading hub data needs `datasets`", install="pip install datasets") from e
        ds = datasets.load_dataset(self.hub_id, self.hub_config, revision=self.hub_revision)
        return {name: split for name, split in ds.items()}

    # ------------------------------------------------------------------------------------------ mechanics
    @cached_property
    def resolved_source(self) -> str:
        opts: Any = self.options
        if opts.source != "auto":
            if opts.source == "local" and not opts.data:
                raise ConfigError(f"task {self.name!r}: source 'local' needs the `data` option (a file path)")
            return str(opts.source)
        if opts.data:
            return "local"
        if _hub_offline() or not self.hub_id or not _hub_reachable():
            return "sample"
        try:
            self._splits_cache = self._load_all("hub")
            return "hub"
        except Exception:
            return "sample"

    def _load_all(self, source: str) -> dict[str, list[Example]]:
        opts: Any = self.options
        if source == "sample":
            records = read_records(sample_path(self.sample_file))
            return self._group_native(records, self.sample_file)
        if source == "local":
            records = read_records(opts.data)
            if records and set(records[0]) >= _EXAMPLE_KEYS:
                return self._group_native(records, str(opts.data))
            if self.partition_local_files and not all("split" in r for r in records):
                # A local copy of the hub data: the same filtering and seeded split as the hub itself.
                parts = self.hub_partition({"train": records})
                return {s: [self.from_hub_record(r, i) for i, r in enumerate(rs)] for s, rs in parts.items()}
            grouped = self._group_by_split(records)
            return {s: [self.from_hub_record(r, i) for i, r in enumerate(rs)] for s, rs in grouped.items()}
        if source == "hub":
            parts = self.hub_partition(self.load_hub())
            return {s: [self.from_hub_record(r, i) for i, r in enumerate(rs)] for s, rs in parts.items()}
        raise ConfigError(f"task {self.name!r}: unknown source {source!r}")

    def _group_by_split(self, records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        if records and all("split" in r for r in records):
            out: dict[str, list[dict[str, Any]]] = {s: [] for s in self.split_names}
            for r in records:
                out.setdefault(str(r["split"]), []).append(r)
            return out
        return {s: list(records) for s in self.split_names}

    def _group_native(self, records: list[dict[str, Any]], where: str) -> dict[str, list[Example]]:
        out: dict[str, list[Example]] = {}
        for s, rs in self._group_by_split(records).items():
            items = []
            for r in rs:
                r = {k: v for k, v in r.items() if k != "split"}
                r.setdefault("task", self.name)
                try:
                    items.append(Example.model_validate(r))
                except Exception as e:
                    raise ConfigError(f"{where}: bad example {r.get('id')!r}: {e}") from None
            out[s] = items
        return out

    @cached_property
    def _data(self) -> dict[str, list[Example]]:
        source = self.resolved_source
        cached = getattr(self, "_splits_cache", None)
        return cached if cached is not None else self._load_all(source)

    def splits(self) -> Mapping[str, int | None]:
        if self.resolved_source == "hub" and getattr(self, "_splits_cache", None) is None and self.hub_sizes:
            return dict(self.hub_sizes)
        return {s: len(v) for s, v in self._data.items()}

    def load(self, split: str) -> Sequence[Example]:
        if split not in self._data:
            raise ConfigError(f"task {self.name!r} has no split {split!r}; splits: {', '.join(self._data)}")
        return self._data[split]

    def info(self) -> TaskInfo:
        """Self-description without touching the network: an unresolved ``auto`` source reports the sample's sizes
        and the hub's known sizes side by side."""
        opts: Any = self.options
        if "resolved_source" in self.__dict__:
            source = self.resolved_source
        elif opts.source != "auto":
            source = str(opts.source)
        elif opts.data:
            source = "local"
        elif _hub_offline() or not self.hub_id:
            source = "sample"
        else:
            source = "auto"
        if source == "hub" and "_data" not in self.__dict__:
            splits: Mapping[str, int | None] = dict(self.hub_sizes)
        elif source == "auto":
            splits = {s: len(v) for s, v in self._load_all("sample").items()}
        else:
            splits = self.splits()
        return TaskInfo(
            name=self.name,
            description=self.description,
            task_desc=self.task_desc,
            splits=dict(splits),
            default_metrics=dict(self.default_metrics),
            artefact_type=self.artefact_type,
            penalty_lambda=self.penalty_lambda,
            data_source=source if source != "auto" else "auto (hub when reachable, else the shipped sample)",
            hub_id=self.hub_id or None,
            hub_sizes=dict(self.hub_sizes),
        )
