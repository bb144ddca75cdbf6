"""The run engine: one loop for every kind of run (evaluation, MR, synthesis), with everything a run owes its user.

A run is a list of items (examples, input rows) and a ``process(item, attempt) -> record`` coroutine. The engine owns
the rest:

- **The run directory**: an exclusive lock (:class:`~collab_harness.rundir.RunLock`) for the whole run; stale
  temporary files removed; ``manifest.json`` written first with ``status: started``; each finished item appended to
  ``samples.jsonl`` at once (atomic line, fsync, off the event loop); ``results.json`` and the final manifest
  (``status``, ``finished_at``, ``summary``, parameters dropped by providers) written at the end — also when the run
  fails, stops or is cancelled.
- **Resume**: finished item ids are skipped, a torn last line is cut off, and the new run must be the same run: same
  kind, same items, same settings (the config tree, less its operational fields), same harness, component and prompt
  versions — or it is refused with one line naming what changed. ``allow_changed`` accepts version and prompt
  changes (never changed settings) and records that it did.
- **Error policy**: ``retry_on_error`` reruns a failed item with a fresh attempt number (fresh seeds and cache keys,
  so a deterministic failure is not served again from the cache), keeping earlier failures in ``retried``;
  ``fail_on_error`` (a count if >= 1, a proportion if < 1) stops the run; ``sample_timeout_s`` bounds one attempt of
  one item. A fatal model error (credentials, unknown model) stops the run at once. Without ``fail_on_error`` any
  failed item makes the run's status ``error``; with it, fewer failures than the threshold are allowed.
- **Concurrency**: items run concurrently up to ``concurrency``; the model layer's limits bound the calls in flight.
  Everything blocking goes through named executors. The engine runs in the caller's event loop (a training loop
  may call :meth:`RunEngine.run` from its own).
- **Usage**: each attempt runs inside a :func:`~collab_harness.models.context.call_scope`, so the record's usage
  counts exactly its own model calls, failed validations and retries included.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from .errors import CollabHarnessError, ConfigError, FatalRunError
from .executors import limits as executor_limits
from .executors import run_blocking
from .models.context import call_scope
from .models.usage import UsageTracker
from .records import ComponentFailure, Manifest, Results, ResumeInfo, RunStatus, UsageCounters
from .rundir import (
    MANIFEST,
    RESULTS,
    SAMPLES,
    RunDirError,
    RunLock,
    append_record,
    clean_temp_files,
    read_manifest,
    read_manifest_raw,
    read_records,
    repair_samples,
    write_json_atomic,
)

__all__ = ["ErrorPolicy", "FailOnErrorStop", "Progress", "RunEngine", "RunOutcome", "now_iso"]

I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R", bound=Any)


class FailOnErrorStop(CollabHarnessError):
    """The run stopped because ``fail_on_error`` was reached; finished items are kept, ``--resume`` continues."""


class Progress(Protocol):
    def start(self, done: int, total: int) -> None: ...

    def update(self, done: int, total: int, record: Any) -> None: ...

    def stop(self) -> None: ...


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ErrorPolicy:
    #: Stop after this many failed items (>= 1) or this proportion of them (< 1); None = never stop early (but any
    #: failure makes the run's status ``error``).
    fail_on_error: float | None = None
    #: Rerun a failed item up to this many times.
    retry_on_error: int = 0
    #: Seconds one attempt of one item may take; None = no budget.
    sample_timeout_s: float | None = None

    def threshold(self, n_items: int) -> float | None:
        if self.fail_on_error is None:
            return None
        return self.fail_on_error if self.fail_on_error >= 1 else self.fail_on_error * n_items


@dataclass
class RunOutcome(Generic[R]):
    run_dir: Path
    manifest: Manifest
    results: Results
    #: Records written by this invocation (a resume's earlier records are in the file).
    new_records: list[R] = field(default_factory=list)
    n_items: int = 0
    n_skipped: int = 0
    stopped: str | None = None

    @property
    def status(self) -> RunStatus:
        return self.manifest.status

    @property
    def n_done(self) -> int:
        return self.results.n_samples

    @property
    def n_new(self) -> int:
        return len(self.new_records)


class RunEngine(Generic[I, R]):
    """Runs ``process`` over ``items`` into ``run_dir`` (see the module docstring)."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        manifest: Manifest,
        items: Sequence[I],
        item_id: Callable[[I], str],
        process: Callable[[I, int], Awaitable[R]],
        failed_record: Callable[[I, int, list[ComponentFailure]], R],
        aggregate: Callable[[Manifest, Sequence[Any]], Results],
        policy: ErrorPolicy | None = None,
        concurrency: int = 8,
        resume: bool = False,
        allow_changed: bool = False,
        progress: Progress | None = None,
        client: Any = None,
        run_only: Collection[str] | None = None,
    ) -> None:
        ids = [item_id(it) for it in items]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise ConfigError(f"item ids must be unique; repeated: {', '.join(dup)}")
        if concurrency < 1:
            raise ConfigError("concurrency must be >= 1")
        self.run_dir = Path(run_dir)
        self.manifest = manifest.model_copy(update={"item_ids": ids, "executors": executor_limits()})
        self.items = list(items)
        self.item_id = item_id
        self.process = process
        self.failed_record = failed_record
        self.aggregate = aggregate
        self.policy = policy or ErrorPolicy()
        self.concurrency = concurrency
        self.resume = resume
        self.allow_changed = allow_changed
        self.progress = progress
        self.client = client
        #: Process only these pending items this time (the others stay pending; the manifest plans them all).
        self.run_only = set(run_only) if run_only is not None else None

    # ------------------------------------------------------------------------------------------- preparation

    def _prepare(self) -> set[str]:
        """Create or reopen the run directory (lock held); returns the finished item ids."""
        d = self.run_dir
        has_run = (d / MANIFEST).exists() or (d / SAMPLES).exists()
        if has_run and not self.resume:
            raise ConfigError(f"{d} already holds a run; pass --resume to continue it, or choose another --out")
        if not has_run:
            write_json_atomic(d / MANIFEST, self.manifest)
            return set()
        raw = read_manifest_raw(d)
        if int(raw.get("schema_version", 1)) < 2:
            raise ConfigError(
                f"cannot resume {d}: it was written by collab-harness {raw.get('harness_version', '0.1.0')} "
                "(run-record schema 1); it still reads in `leaderboard` and `view`, but a resume needs a new run: "
                "choose another --out")
        old = read_manifest(d)
        allowed = self._check_resume(old)
        log = repair_samples(d / SAMPLES)
        if log.duplicates:
            raise RunDirError(f"{d}/{SAMPLES} holds several records for {', '.join(log.duplicates[:5])}; "
                              "the file was written by two processes at once")
        resumes = [*old.resumes, ResumeInfo(at=self.manifest.created_at, finished_before=len(log.records),
                                            dropped_torn_line=log.torn_tail, pid=os.getpid(),
                                            host=socket.gethostname(), allowed_changes=allowed)]
        # The run keeps its identity (run id, creation time); what this invocation learns is added to it.
        self.manifest = old.model_copy(update={
            "status": "started", "finished_at": None, "resumes": resumes, "executors": self.manifest.executors,
            "models": {**old.models, **self.manifest.models}, "config": self.manifest.config,
        })
        write_json_atomic(d / MANIFEST, self.manifest)
        return log.finished_ids

    def _check_resume(self, old: Manifest) -> list[str]:
        new, d = self.manifest, self.run_dir
        if old.kind != new.kind:
            raise ConfigError(f"cannot resume {d}: it holds a {old.kind!r} run, not {new.kind!r}")
        from .config import OPERATIONAL_FIELDS

        settings = _diff({k: v for k, v in old.config.items() if k not in OPERATIONAL_FIELDS},
                         {k: v for k, v in new.config.items() if k not in OPERATIONAL_FIELDS})
        if settings:
            raise ConfigError(f"cannot resume {d}: settings differ from the original run ({'; '.join(settings[:6])}); "
                              "use another --out for a new run")
        if old.item_ids != new.item_ids:
            raise ConfigError(f"cannot resume {d}: the items differ from the original run's "
                              f"({len(old.item_ids)} then, {len(new.item_ids)} now)")
        if (old.input or {}).get("sha256") != (new.input or {}).get("sha256"):
            raise ConfigError(f"cannot resume {d}: the input file changed since the original run")
        versions = _version_changes(old, new)
        if versions and not self.allow_changed:
            raise ConfigError(f"cannot resume {d}: {'; '.join(versions[:6])} since the original run; "
                              "records would mix versions. Pass --allow-changed to resume anyway (the manifest "
                              "records it), or use another --out")
        return versions

    # ------------------------------------------------------------------------------------------------- run

    async def _attempts(self, item: I) -> R:
        policy = self.policy
        sid = self.item_id(item)
        usage = UsageTracker()
        retried: list[ComponentFailure] = []
        rec: R | None = None
        t0 = time.monotonic()
        for attempt in range(1, policy.retry_on_error + 2):
            with call_scope(attempt=attempt, sample_id=sid, usage=usage):
                try:
                    if policy.sample_timeout_s is not None:
                        rec = await asyncio.wait_for(self.process(item, attempt), policy.sample_timeout_s)
                    else:
                        rec = await self.process(item, attempt)
                except (asyncio.TimeoutError, TimeoutError):
                    rec = self.failed_record(item, attempt, [ComponentFailure(
                        component="engine", message=f"sample time budget of {policy.sample_timeout_s:g}s exhausted",
                        sample_id=sid, attempt=attempt, category="timeout")])
                except asyncio.CancelledError:
                    raise
                except CollabHarnessError as e:
                    rec = self.failed_record(item, attempt, [ComponentFailure(
                        component=str(getattr(e, "component", None) or "engine"), message=str(e), sample_id=sid,
                        attempt=attempt, category="input" if isinstance(e, ConfigError) else "component")])
                except Exception as e:  # a bug in a component or the harness: recorded with its type, run goes on
                    rec = self.failed_record(item, attempt, [ComponentFailure(
                        component=str(getattr(e, "component", None) or "engine"),
                        message=f"{type(e).__name__}: {e}", sample_id=sid, attempt=attempt, category="engine")])
            if not rec.errors or attempt > policy.retry_on_error or self._fatal() is not None:
                break
            retried.extend(rec.errors)
        assert rec is not None
        snap = {k: UsageCounters(**v) for k, v in usage.snapshot().items()}
        final: R = rec.model_copy(update={"retried": [*retried, *rec.retried], "usage": snap,
                                          "elapsed_s": round(time.monotonic() - t0, 3)})
        return final

    def _fatal(self) -> CollabHarnessError | None:
        return getattr(self.client, "fatal", None) if self.client is not None else None

    async def run(self) -> RunOutcome[R]:
        lock = RunLock(self.run_dir)
        await run_blocking("io", lock.acquire)
        try:
            return await self._run_locked()
        finally:
            lock.release()

    async def _run_locked(self) -> RunOutcome[R]:
        clean_temp_files(self.run_dir)
        finished = await run_blocking("io", self._prepare)
        pending = [it for it in self.items if self.item_id(it) not in finished
                   and (self.run_only is None or self.item_id(it) in self.run_only)]
        n_total = len(self.items)
        prior = read_records(self.run_dir / SAMPLES).records
        n_failed = sum(1 for r in prior if r.errors)
        done = len(prior)
        threshold = self.policy.threshold(n_total)
        new_records: list[R] = []
        stopped: str | None = None
        fatal: CollabHarnessError | None = None
        if self.progress is not None:
            self.progress.start(done, n_total)
        sem = asyncio.Semaphore(self.concurrency)

        async def one(item: I) -> None:
            nonlocal done, n_failed, stopped, fatal
            # The slot is held until the record is written and counted, so that a stop (fail_on_error, a fatal
            # error) is known before the next item starts.
            async with sem:
                if stopped or fatal:
                    return
                rec = await self._attempts(item)
                f = self._fatal()
                if f is not None:
                    # Not recorded: the item did not fail, the configuration did; a resume after the fix redoes it.
                    fatal = fatal or f
                    return
                await run_blocking("io", append_record, self.run_dir / SAMPLES, rec)
                new_records.append(rec)
                done += 1
                if rec.errors:
                    n_failed += 1
                if self.progress is not None:
                    self.progress.update(done, n_total, rec)
                if threshold is not None and n_failed and n_failed >= threshold and stopped is None:
                    stopped = (f"fail_on_error reached: {n_failed} failed item(s) of {done} finished "
                               f"(limit {self.policy.fail_on_error:g})")

        status: RunStatus = "error"
        tasks = [asyncio.ensure_future(one(it)) for it in pending]
        try:
            for fut in asyncio.as_completed(tasks):
                await fut
                if stopped or fatal:
                    break
            status = "success"
        except (asyncio.CancelledError, KeyboardInterrupt):
            status = "cancelled"
            raise
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.progress is not None:
                self.progress.stop()
            outcome = await run_blocking("io", self._finish, status, stopped, fatal, new_records, len(finished))
        if fatal is not None:
            raise FatalRunError(f"{fatal}; the run stopped ({outcome.results.n_samples} finished item(s) kept in "
                                f"{self.run_dir}); fix it and pass --resume")
        if stopped:
            raise FailOnErrorStop(f"{stopped}; finished items are in {self.run_dir}/{SAMPLES}; --resume continues")
        return outcome

    def _finish(self, status: RunStatus, stopped: str | None, fatal: CollabHarnessError | None,
                new_records: list[R], n_skipped: int) -> RunOutcome[R]:
        records = read_records(self.run_dir / SAMPLES).records
        n_failed = sum(1 for r in records if r.errors)
        if status == "success":
            threshold = self.policy.threshold(len(self.items))
            complete = {r.item_id for r in records} >= set(self.manifest.item_ids)
            too_many = n_failed > 0 and (threshold is None or n_failed >= threshold)
            if stopped or fatal or not complete or too_many:
                status = "error"
        drops = getattr(self.client, "param_drops", None) if self.client is not None else None
        by_component: dict[str, int] = {}
        for r in records:
            for e in r.errors:
                by_component[e.component] = by_component.get(e.component, 0) + 1
        summary = {"status": status, "n_items": len(self.items), "n_finished": len(records), "n_failed": n_failed,
                   "failed_by_component": dict(sorted(by_component.items())), "stopped": stopped,
                   "fatal": str(fatal) if fatal else None}
        self.manifest = self.manifest.model_copy(update={
            "status": status, "finished_at": now_iso(), "summary": summary,
            **({"param_drops": {**self.manifest.param_drops, **drops}} if drops else {}),
        })
        results = self.aggregate(self.manifest, records).model_copy(update={"status": status, "stopped": stopped})
        write_json_atomic(self.run_dir / RESULTS, results)
        write_json_atomic(self.run_dir / MANIFEST, self.manifest)
        return RunOutcome(run_dir=self.run_dir, manifest=self.manifest, results=results, new_records=new_records,
                          n_items=len(self.items), n_skipped=n_skipped, stopped=stopped)


# ------------------------------------------------------------------------------------------------ resume diffs


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON trees differ, as ``path: old -> new``."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if a != b:
        return [f"{path or '(root)'}: {_short(a)} -> {_short(b)}"]
    return []


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _version_changes(old: Manifest, new: Manifest) -> list[str]:
    out: list[str] = []
    if old.harness_version != new.harness_version:
        out.append(f"harness version {old.harness_version} -> {new.harness_version}")

    def comps(m: Manifest) -> dict[str, Mapping[str, Any]]:
        return {f"{c.get('kind')}:{c.get('name')}": c for c in m.components}

    a, b = comps(old), comps(new)
    for key in sorted(set(a) | set(b)):
        ca, cb = a.get(key), b.get(key)
        if ca is None or cb is None:
            out.append(f"component {key} {'added' if ca is None else 'removed'}")
            continue
        for f in ("version", "plugin_version", "options"):
            if ca.get(f) != cb.get(f):
                what = "options" if f == "options" else f.replace("_", " ")
                detail = "; ".join(_diff(ca.get(f), cb.get(f))[:2]) if f == "options" else \
                    f"{ca.get(f)} -> {cb.get(f)}"
                out.append(f"component {key} {what} changed ({detail})")
    for group in sorted(set(old.prompt_hashes) | set(new.prompt_hashes)):
        ha, hb = old.prompt_hashes.get(group, {}), new.prompt_hashes.get(group, {})
        changed = sorted(k for k in set(ha) | set(hb) if ha.get(k) != hb.get(k))
        if changed:
            out.append(f"prompt {group} ({', '.join(changed[:3])}) changed")
    return out
