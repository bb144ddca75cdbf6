"""Progress of a run on stderr: a rich bar with ETA on a terminal, plain log lines otherwise (CI logs, pipes)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

__all__ = ["RunProgress"]


class RunProgress:
    """Implements :class:`collab_harness.engine.Progress` for the CLI. ``describe(record)`` names an item in plain
    lines (default: its item id and failure count)."""

    def __init__(self, enabled: bool, label: str = "run") -> None:
        self.enabled = enabled
        self.label = label
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._t0 = time.monotonic()
        self._start_done = 0

    def start(self, done: int, total: int) -> None:
        self._start_done = done
        self._t0 = time.monotonic()
        if not self.enabled:
            return
        if done:
            click.echo(f"resuming: {done}/{total} item(s) already finished", err=True)
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=total, completed=done)

    def update(self, done: int, total: int, record: Any) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
            return
        new = done - self._start_done
        el = time.monotonic() - self._t0
        eta = el / new * (total - done) if new else 0.0
        errors = getattr(record, "errors", None) or []
        status = f"{len(errors)} failure(s): {errors[0].component}" if errors else "ok"
        item = getattr(record, "item_id", "?")
        click.echo(f"[{done}/{total}] {item} {status} {getattr(record, 'elapsed_s', 0.0):.1f}s "
                   f"(elapsed {el:.0f}s, eta {eta:.0f}s)", err=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
