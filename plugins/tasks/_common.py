"""Shared data loading for built-in tasks: the hub (``datasets``), a local file, or the shipped offline sample.

A task subclasses :class:`DatasetTask` and supplies the hub id, how hub records map to :class:`Example`, how the
hub's splits map to ours (SPEC §3), and two strict pydantic models: ``HubRecord`` (one record in the hub's schema)
and ``Metadata`` (the ``metadata`` of one record in our own example schema). The loading logic lives here once.

Sources (option ``source``):
- ``local``: ``data`` is a JSON Lines, JSON (array of objects) or parquet file, either in the hub's schema or in our
  own example schema (``id``, ``prompt``, ...; a first record with ``prompt``, ``reference``, ``metadata`` or
  ``task`` makes the file native). Records with a ``split`` field are grouped by it (then every record needs one);
  otherwise every split is the whole file, or, for tasks with ``partition_local_files``, the file is partitioned
  like the hub data.
- ``hub``: ``datasets.load_dataset(hub_id, ...)``, partitioned by :meth:`DatasetTask.hub_partition`. When the hub
  cannot be reached or loaded this is a one-line :class:`ConfigError` naming ``--source sample``; never a fallback.
- ``sample``: the JSONL this project ships under ``plugins/tasks/data/`` (our own example schema with ``split``).
- ``auto`` (default), decided without downloading anything, the reason recorded in :meth:`data_provenance`:
  ``local`` if ``data`` is set; else ``sample`` if the task has no hub dataset, if ``HF_HUB_OFFLINE`` or
  ``HF_DATASETS_OFFLINE`` is set, or if the hub's host does not accept a TCP connection within 2 s; else ``hub``.
  Once ``hub`` is chosen, a failure to load it is an error like ``source: hub`` (a reachable hub that errors is a
  problem to see, not a reason to evaluate on something else).

Bad data is a one-line ConfigError naming the file, the row and the field, e.g.
``my.jsonl: row 7: field 'problem': expected a string, got int``. A row is the 1-based line of a JSON Lines file,
else the 1-based position of the record (in a JSON array, a parquet file, the ``data`` list of a release file, or a
hub split). Types are checked strictly (a number where a string is required is an error, never ``"3"``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import types
import typing
from collections.abc import Mapping, Sequence
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collab_harness.components import Task
from collab_harness.errors import CollabHarnessError, ConfigError, PrerequisiteError
from collab_harness.types import Example, TaskInfo

__all__ = [
    "OFFLINE_HINT",
    "DatasetTask",
    "ExampleMetadata",
    "ExampleRecord",
    "Row",
    "SourceChoice",
    "StrictRecord",
    "describe_validation_error",
    "read_json",
    "read_records",
    "read_rows",
    "sample_path",
]

#: How to run without the hub; every hub failure names it.
OFFLINE_HINT = "use --source sample (task option `source: sample`) to run offline on the shipped sample"

#: Keys of our own example schema that no hub schema of a built-in task uses: one of them marks a native file.
_NATIVE_MARKERS = {"prompt", "reference", "metadata", "task"}
_ID_KEYS = ("id", "task_id")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_PROBE_TIMEOUT_S = 2.0


# ------------------------------------------------------------------------------------------- record models


class StrictRecord(BaseModel):
    """Base of record models: strict types (no coercion: ``3`` is not a string), unknown keys ignored (hub datasets
    carry columns a task does not use). Models only check records; the loader keeps the record as it was read."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class ExampleMetadata(StrictRecord):
    """Metadata keys every task reads; a task extends it with its own (all optional, typed when present)."""

    extraction_requirement: str | None = None
    shards: list[str] | None = None


class ExampleRecord(BaseModel):
    """One record in our own example schema (the shipped samples, exported examples)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    reference: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    task: str | None = None
    split: str | None = None


# -------------------------------------------------------------------------------------------- error messages


def _type_name(value: Any) -> str:
    """A value's type as a data file's author thinks of it (JSON-ish names)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "datetime_type": "a date-time",
    "date_type": "a date",
    "none_required": "null",
}


def _members(annotation: Any) -> list[Any]:
    """The leaf types an annotation allows (unions and Optional flattened, Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _union_tags(model: type[BaseModel], loc: Sequence[int | str]) -> list[int]:
    """Positions in ``loc`` that are pydantic's union-member tags (``'str'``, ``'list[str]'``), not field names or
    indices: found by walking the model's annotations along ``loc``."""
    tags: list[int] = []
    current: list[Any] = [model]
    for pos, el in enumerate(loc):
        leaves = [m for c in current for m in _members(c)]
        if isinstance(el, int):
            current = [a for t in leaves if typing.get_origin(t) in (list, tuple) for a in typing.get_args(t)[:1]]
            continue
        owner = next((t for t in leaves if isinstance(t, type) and issubclass(t, BaseModel) and el in t.model_fields),
                     None)
        if owner is not None:
            current = [owner.model_fields[el].annotation]
        elif any(typing.get_origin(t) is dict for t in leaves):
            current = [typing.get_args(t)[1] for t in leaves if typing.get_origin(t) is dict]
        elif len(leaves) > 1:
            tags.append(pos)  # a union member; the next element continues inside that member
        else:
            current = []
    return tags


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for el in loc:
        out += f"[{el}]" if isinstance(el, int) else (f".{el}" if out else str(el))
    return out


def _one(err: Mapping[str, Any], loc: Sequence[int | str], allowed: Sequence[str] = ()) -> str:
    kind, value = err["type"], err.get("input")
    field = f"field {_path(loc)!r}: " if loc else ""
    if kind == "missing":
        return f"{field}missing"
    if kind == "extra_forbidden":
        return f"{field}unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "string_too_short":
        return f"{field}must not be empty"
    if kind == "literal_error":
        return f"{field}expected {err.get('ctx', {}).get('expected', 'one of the allowed values')}, got {value!r:.60}"
    if kind in _EXPECTED:
        return f"{field}expected {_EXPECTED[kind]}, got {_type_name(value)}"
    return f"{field}{err['msg']} (got {_type_name(value)})"


def describe_validation_error(exc: ValidationError, model: type[BaseModel], prefix: Sequence[int | str] = ()) -> str:
    """The first problem of a record as one line: ``field 'a.b[2]': expected a string, got int``.

    A value that fits none of a union's members is one message listing them all ("expected a string or a list,
    got int"); a value that went wrong inside a member (an int in a list of strings) names the inner field."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    tags = _union_tags(model, loc)
    if not tags:
        top_level = len(loc) == 1 and first["type"] == "extra_forbidden"
        return _one(first, (*prefix, *loc), allowed=list(model.model_fields) if top_level else ())
    k = tags[0]
    group = [e for e in errors if tuple(e["loc"])[:k] == loc[:k] and len(e["loc"]) > k]
    deep = [e for e in group if len(e["loc"]) > k + 1]
    if deep:
        e = max(deep, key=lambda e: len(e["loc"]))
        inner = tuple(e["loc"])
        return _one(e, (*prefix, *inner[:k], *inner[k + 1 :]))
    expected = list(dict.fromkeys(_EXPECTED.get(e["type"], str(e["loc"][k])) for e in group))
    head = expected[0] if len(expected) == 1 else ", ".join(expected[:-1]) + " or " + expected[-1]
    return f"field {_path((*prefix, *loc[:k]))!r}: expected {head}, got {_type_name(first.get('input'))}"


def _record_label(record: Mapping[str, Any]) -> str:
    for key in _ID_KEYS:
        v = record.get(key)
        if isinstance(v, str) and v:
            return f" ({key} {v!r:.80})"
    return ""


def _explain(exc: BaseException) -> str:
    """A conversion error raised inside a task's ``from_hub_record`` as a short phrase."""
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else None
        if isinstance(key, str) and key and " " not in key:  # a plain key lookup, not a KeyError with a message
            return f"field {key!r}: missing"
        return str(key) if key is not None else "a field is missing"
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc, Example)
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def _short(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------------------------------------ file reading


class Row(NamedTuple):
    """One record read from a file or a hub split, with the row an error message names."""

    number: int
    record: dict[str, Any]


def sample_path(filename: str) -> Path:
    """Path of a shipped sample file under ``collab_harness_plugins/tasks/data``."""
    return Path(str(resources.files("collab_harness_plugins.tasks").joinpath("data", filename)))


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise ConfigError(f"data file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a .jsonl, .json or .parquet file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None


def _decode(path: Path, data: bytes) -> str:
    base = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte-order mark is harmless
    try:
        return data[base:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = base + e.start
        line = data[:offset].count(b"\n") + 1
        raise ConfigError(
            f"{path}: row {line}: not valid UTF-8 (byte 0x{data[offset]:02x} at offset {offset})"
        ) from None


def _as_object(value: Any, where: str, number: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: row {number}: expected a JSON object, got {_type_name(value)}")
    return value


def _json_lines(path: Path, text: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: row {number}: not valid JSON ({e.msg} at column {e.colno})") from None
        rows.append(Row(number, _as_object(value, str(path), number)))
    return rows


def read_json(path: str | Path) -> Any:
    """A whole JSON document, with one-line errors (file, line, what is wrong)."""
    p = Path(path)
    text = _decode(p, _read_bytes(p))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: line {e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None


def _parquet_rows(path: Path) -> list[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow comes with datasets
        raise PrerequisiteError("reading parquet files needs `pyarrow`", install="pip install pyarrow") from e
    _read_bytes(path)  # the same one-line errors for a missing or unreadable file
    try:
        records = pq.read_table(path).to_pylist()
    except Exception as e:  # arrow raises several types (ArrowInvalid, OSError, ...) for a damaged file
        raise ConfigError(f"{path}: not a readable parquet file ({_short(e, 160)})") from None
    return [Row(i, _as_object(r, str(path), i)) for i, r in enumerate(records, 1)]


def read_rows(path: str | Path) -> list[Row]:
    """Records of a JSON Lines, JSON (an array of objects; JSON Lines under a ``.json`` name also works) or parquet
    file, each with its row number. Anything wrong is a one-line ConfigError naming the file and the row."""
    p = Path(path)
    if p.suffix in {".parquet", ".pq"}:
        return _parquet_rows(p)
    text = _decode(p, _read_bytes(p))
    if p.suffix == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            if e.msg != "Extra data":
                raise ConfigError(f"{p}: line {e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            return _json_lines(p, text)  # several JSON values: JSON Lines under a .json name
        if not isinstance(value, list):
            raise ConfigError(f"{p}: expected a JSON array of objects (or one object per line), "
                              f"got {_type_name(value)}")
        return [Row(i, _as_object(r, str(p), i)) for i, r in enumerate(value, 1)]
    return _json_lines(p, text)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSONL / JSON-array / parquet file (:func:`read_rows` without the row numbers)."""
    return [r.record for r in read_rows(path)]


def _file_identity(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path.resolve()), "sha256": digest.hexdigest(), "bytes": path.stat().st_size}


# ---------------------------------------------------------------------------------------------- hub checks


def _offline_var() -> str | None:
    """The offline switch that is set (huggingface_hub's truthy values), or None."""
    for var in _OFFLINE_VARS:
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return var
    return None


def _hub_address() -> tuple[str, int]:
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _hub_reachable(timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
    """One quick TCP connect to the hub, so that an offline machine picks the sample at once instead of sitting
    through the hub client's retries."""
    try:
        with socket.create_connection(_hub_address(), timeout=timeout_s):
            return True
    except OSError:
        return False


class SourceChoice(NamedTuple):
    """Which data a task reads and why (recorded in :meth:`DatasetTask.data_provenance`)."""

    source: str
    reason: str


# ------------------------------------------------------------------------------------------------------ task


class DatasetTask(Task):
    """A task whose examples come from a hub dataset, a local file or a shipped sample."""

    #: The built-in tasks' user by default: the offline simulator that reveals the goal in shards.
    default_user: ClassVar[str | None] = "shard-user"

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
    #: Strict model of one record in the hub's schema, checked before :meth:`hub_partition` and
    #: :meth:`from_hub_record` see it. None: only "is an object" is checked (conversion errors still name the row).
    HubRecord: ClassVar[type[BaseModel] | None] = None
    #: Strict model of ``metadata`` in our own example schema.
    Metadata: ClassVar[type[BaseModel]] = ExampleMetadata

    # ------------------------------------------------------------------------------------ task-specific parts
    def from_hub_record(self, record: Mapping[str, Any], index: int) -> Example:
        """Convert one record in the hub's schema to an :class:`Example` (stable id!). ``index`` is the record's
        position in its split."""
        raise NotImplementedError

    def hub_partition(self, raw: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[Mapping[str, Any]]]:
        """Map the hub's splits (name -> records) to ours. Default: same names. Must return the record objects it
        was given (not copies), so that errors can still name a record's row."""
        return {s: list(raw[s]) for s in self.split_names if s in raw}

    def load_hub(self) -> Mapping[str, Sequence[Mapping[str, Any]]]:
        """Download (or read from the local hub cache) every split of the hub dataset."""
        try:
            import datasets
        except ImportError as e:  # pragma: no cover - datasets is a base dependency
            raise PrerequisiteError(f"loading hub data needs `datasets`; or {OFFLINE_HINT}",
                                    install="pip install datasets") from e
        ds = datasets.load_dataset(self.hub_id, self.hub_config, revision=self.hub_revision)
        return {name: split for name, split in ds.items()}

    # ----------------------------------------------------------------------------------------- the source
    def _choose(self, *, probe: bool) -> SourceChoice | None:
        opts: Any = self.options
        requested = str(opts.source)
        if requested == "local" and not opts.data:
            raise ConfigError(f"task {self.name!r}: source 'local' needs the `data` option (a file path)")
        if requested in {"hub", "sample"} and opts.data:
            raise ConfigError(f"task {self.name!r}: `data` is only read with source 'local' or 'auto', "
                              f"not {requested!r}")
        if requested == "hub" and not self.hub_id:
            raise ConfigError(f"task {self.name!r} has no hub dataset; use source 'sample', or 'local' with `data`")
        if requested != "auto":
            return SourceChoice(requested, f"requested (source: {requested})")
        if opts.data:
            return SourceChoice("local", "auto: the `data` option is set")
        if not self.hub_id:
            return SourceChoice("sample", "auto: the task has no hub dataset")
        var = _offline_var()
        if var:
            return SourceChoice("sample", f"auto: {var} is set")
        if not probe:
            return None
        if not _hub_reachable():
            host, port = _hub_address()
            return SourceChoice("sample", f"auto: the hub ({host}:{port}) refused or did not answer a TCP connect "
                                          f"within {_PROBE_TIMEOUT_S:g} s")
        return SourceChoice("hub", "auto: the hub is reachable")

    @cached_property
    def source_choice(self) -> SourceChoice:
        """The source this task reads and why; may probe the hub with one TCP connect (``auto`` only)."""
        choice = self._choose(probe=True)
        assert choice is not None  # with probe=True every path decides
        return choice

    @property
    def resolved_source(self) -> str:
        """``hub``, ``local`` or ``sample``."""
        return self.source_choice.source

    # ------------------------------------------------------------------------------------------- loading
    def _load_all(self, source: str) -> dict[str, list[Example]]:
        opts: Any = self.options
        if source in {"sample", "local"}:
            path = sample_path(self.sample_file) if source == "sample" else Path(str(opts.data))
            rows = read_rows(path)
            self.record_file(path)
            return self._from_rows(rows, path)
        if source == "hub":
            return self._from_hub()
        raise ConfigError(f"task {self.name!r}: unknown source {source!r}")

    def record_file(self, path: Path) -> None:
        """Remember a file the examples came from (path, sha256 and size for :meth:`data_provenance`)."""
        files: list[dict[str, Any]] = self.__dict__.setdefault("_files", [])
        files.append(_file_identity(path))

    def _from_rows(self, rows: list[Row], path: Path) -> dict[str, list[Example]]:
        """Examples of a file's records: our own example schema when the first record has one of ``prompt``,
        ``reference``, ``metadata``, ``task`` (then every record is checked as one), else the hub's schema."""
        where = str(path)
        if not rows:
            raise ConfigError(f"{where}: no records")
        has_split = self._check_split_field(rows, where)
        if _NATIVE_MARKERS & set(rows[0].record):
            grouped = self._group_by_split(rows, has_split)
            return {s: [self.native_example(r, where) for r in rs] for s, rs in grouped.items()}
        origin = {id(r.record): (where, r.number) for r in rows}
        for r in rows:
            self._check_hub_record(r.record, where, r.number)
        if self.partition_local_files and not has_split:
            # A local copy of the hub data: the same filtering and seeded split as the hub itself.
            parts = self._partition({"train": [r.record for r in rows]}, where)
        else:
            parts = {s: [r.record for r in rs] for s, rs in self._group_by_split(rows, has_split).items()}
        return self._convert(parts, origin, f"{where}: {len(rows)} record(s) read")

    def _from_hub(self) -> dict[str, list[Example]]:
        where = f"hub dataset {self.hub_id!r}"
        try:
            loaded = self.load_hub()
            raw = {name: list(split) for name, split in loaded.items()}
        except CollabHarnessError:
            raise
        except Exception as e:  # the hub client raises many types (ConnectionError, HTTP errors, FileNotFound...)
            var = _offline_var()
            offline = f" ({var} is set)" if var else ""
            raise ConfigError(f"task {self.name!r}: could not load {where}{offline}: {_short(e)}; "
                              f"{OFFLINE_HINT}") from e
        origin: dict[int, tuple[str, int]] = {}
        for name, records in raw.items():
            split_where = f"{where} split {name!r}"
            for number, rec in enumerate(records, 1):
                self._check_hub_record(_as_object(rec, split_where, number), split_where, number)
                origin[id(rec)] = (split_where, number)
        self.__dict__["_hub_rows"] = {name: len(records) for name, records in raw.items()}
        parts = self._partition(raw, where)
        return self._convert(parts, origin, f"{where}: {sum(len(v) for v in raw.values())} record(s) read")

    def _partition(self, raw: Mapping[str, Sequence[Mapping[str, Any]]], where: str) -> dict[str, list[Any]]:
        try:
            return self.hub_partition(raw)
        except CollabHarnessError:
            raise
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"{where}: cannot be split into {'/'.join(self.split_names)} ({_explain(e)})") from None

    def _check_hub_record(self, record: dict[str, Any], where: str, number: int) -> None:
        if self.HubRecord is None:
            return
        try:
            self.HubRecord.model_validate(record)
        except ValidationError as e:
            raise ConfigError(f"{where}: row {number}{_record_label(record)}: "
                              f"{describe_validation_error(e, self.HubRecord)}") from None

    def hub_examples(self, records: Sequence[Row], where: str) -> list[Example]:
        """Check and convert hub-schema records in order (for loaders of other formats, e.g. a release file)."""
        for r in records:
            self._check_hub_record(_as_object(r.record, where, r.number), where, r.number)
        origin = {id(r.record): (where, r.number) for r in records}
        return self._convert({"all": [r.record for r in records]}, origin, "")["all"]

    def _convert(self, parts: Mapping[str, Sequence[Mapping[str, Any]]], origin: Mapping[int, tuple[str, int]],
                 what: str) -> dict[str, list[Example]]:
        out: dict[str, list[Example]] = {}
        for split, records in parts.items():
            items = []
            for index, rec in enumerate(records):
                try:
                    items.append(self.from_hub_record(rec, index))
                except (KeyError, ValueError, TypeError, IndexError, AttributeError, CollabHarnessError) as e:
                    where, number = origin.get(id(rec), (f"split {split!r}", index + 1))
                    msg = str(e) if isinstance(e, CollabHarnessError) else _explain(e)
                    raise ConfigError(f"{where}: row {number}{_record_label(rec)}: {msg}") from None
            out[split] = items
        if what and not any(out.values()):
            raise ConfigError(f"{what}, none of which task {self.name!r} keeps as an example (see its data filter)")
        return out

    def native_example(self, row: Row, where: str) -> Example:
        """One record of our own example schema, checked strictly (metadata by the task's ``Metadata`` model)."""
        rec = row.record
        try:
            checked = ExampleRecord.model_validate(rec)
        except ValidationError as e:
            raise ConfigError(f"{where}: row {row.number}{_record_label(rec)}: "
                              f"{describe_validation_error(e, ExampleRecord)}") from None
        try:
            self.Metadata.model_validate(checked.metadata)
        except ValidationError as e:
            raise ConfigError(f"{where}: row {row.number}{_record_label(rec)}: "
                              f"{describe_validation_error(e, self.Metadata, prefix=('metadata',))}") from None
        if checked.task is not None and checked.task != self.name:
            raise ConfigError(f"{where}: row {row.number}{_record_label(rec)}: field 'task': {checked.task!r} is "
                              f"not this task ({self.name!r})")
        return Example(id=checked.id, task=self.name, prompt=checked.prompt, reference=checked.reference,
                       metadata=rec.get("metadata", {}))

    @staticmethod
    def _check_split_field(rows: Sequence[Row], where: str) -> bool:
        """Whether the records carry ``split`` (then all of them must, as a non-empty string)."""
        if not any("split" in r.record for r in rows):
            return False
        for r in rows:
            value = r.record.get("split", None)
            if "split" not in r.record:
                raise ConfigError(f"{where}: row {r.number}{_record_label(r.record)}: field 'split': missing "
                                  "(other records have one)")
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: row {r.number}{_record_label(r.record)}: field 'split': expected a "
                                  f"non-empty string, got {_type_name(value)}")
        return True

    def _group_by_split(self, rows: Sequence[Row], has_split: bool) -> dict[str, list[Row]]:
        if has_split:
            out: dict[str, list[Row]] = {s: [] for s in self.split_names}
            for r in rows:
                out.setdefault(str(r.record["split"]), []).append(r)
            return out
        return {s: list(rows) for s in self.split_names}

    @cached_property
    def _data(self) -> dict[str, list[Example]]:
        self.__dict__["_files"] = []  # a failed earlier attempt leaves nothing behind
        return self._load_all(self.resolved_source)

    def splits(self) -> Mapping[str, int | None]:
        if self.resolved_source == "hub" and "_data" not in self.__dict__ and self.hub_sizes:
            return dict(self.hub_sizes)  # known sizes; the download waits until examples are asked for
        return {s: len(v) for s, v in self._data.items()}

    def load(self, split: str) -> Sequence[Example]:
        if split not in self._data:
            raise ConfigError(f"task {self.name!r} has no split {split!r}; splits: {', '.join(self._data)}")
        return self._data[split]

    def data_provenance(self) -> dict[str, Any]:
        """What this task's examples were loaded from, for the run manifest (loads them if not yet loaded):
        ``source`` (hub / local / sample), ``requested`` (the option), ``reason`` (why this source), ``splits``
        (examples per split actually loaded), ``files`` (path, sha256, bytes of each file read; ``path`` and
        ``sha256`` also at the top for a single file), and for the hub ``hub`` (id, config, revision, rows per hub
        split before our filtering)."""
        data = self._data
        opts: Any = self.options
        choice = self.source_choice
        out: dict[str, Any] = {
            "source": choice.source,
            "requested": str(opts.source),
            "reason": choice.reason,
            "splits": {s: len(v) for s, v in data.items()},
        }
        files = list(self.__dict__.get("_files", []))
        if files:
            out["files"] = files
            if len(files) == 1:
                out["path"], out["sha256"] = files[0]["path"], files[0]["sha256"]
        if choice.source == "hub":
            out["hub"] = {"id": self.hub_id, "config": self.hub_config, "revision": self.hub_revision,
                          "rows": dict(self.__dict__.get("_hub_rows", {}))}
        return out

    def info(self) -> TaskInfo:
        """Self-description without touching the network: an undecided ``auto`` source reports the sample's sizes
        and the hub's known sizes side by side; once examples are loaded, the sizes actually loaded."""
        choice = self.__dict__.get("source_choice") or self._choose(probe=False)
        if choice is None:
            source = "auto (hub when reachable, else the shipped sample)"
            splits: Mapping[str, int | None] = {s: len(v) for s, v in self._load_sample_only().items()}
        else:
            source = choice.source
            self.__dict__.setdefault("source_choice", choice)
            # A hub task not yet loaded shows the hub's known sizes: no download just to describe it.
            hub_unloaded = source == "hub" and "_data" not in self.__dict__
            splits = dict(self.hub_sizes) if hub_unloaded else self.splits()
        return TaskInfo(
            name=self.name,
            description=self.description,
            task_desc=self.task_desc,
            splits=dict(splits),
            default_metrics=dict(self.default_metrics),
            artefact_type=self.artefact_type,
            penalty_lambda=self.penalty_lambda,
            data_source=source,
            hub_id=self.hub_id or None,
            hub_sizes=dict(self.hub_sizes),
        )

    def _load_sample_only(self) -> dict[str, list[Example]]:
        """The shipped sample's examples, read without making it this task's data."""
        path = sample_path(self.sample_file)
        return self._from_rows(read_rows(path), path)
