"""How ``asyncup cp`` shows what it does: rich progress bars, plain lines or JSON lines.

    a terminal, no --json/--quiet  -> RichReporter: a total bar and one bar per file in flight
                                      (bytes, rate, ETA), a line per finished object above them
    otherwise                      -> Reporter: one line per object, plain or JSON
                                      (key, size, etag, parts, verified_by, seconds, ok, error)

Per-object lines and the summary go to stdout; failures and warnings to stderr (in --json
mode every object, failed or not, is a JSON line on stdout and the summary goes to stderr).
"""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TextIO

from .._core.results import UploadResult
from .cp_sources import Item

if TYPE_CHECKING:
    from .._pipeline.events import UploadEvent


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one item: its result, or the error that stopped it."""

    item: Item
    seconds: float
    result: UploadResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        result = self.result
        return {
            "source": self.item.source,
            "bucket": self.item.bucket,
            "key": self.item.key,
            "size": result.size if result else self.item.size,
            "etag": result.etag if result else None,
            "parts": result.parts if result else None,
            "verified_by": result.verified_by if result else None,
            "unverified_reason": result.unverified_reason if result else None,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Summary:
    files: int
    bytes: int
    seconds: float
    failures: int
    not_uploaded: int = 0
    """Stopped or never started (--fail-fast)."""

    @property
    def megabytes_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        text = (
            f"{self.files} file{'' if self.files == 1 else 's'} uploaded,"
            f" {human(self.bytes)} in {self.seconds:.2f} s"
            f" ({self.megabytes_per_second:.1f} MB/s), {self.failures} failed"
        )
        if self.not_uploaded:
            text += f", {self.not_uploaded} not uploaded (--fail-fast)"
        return text


def human(size: int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if size is None:
        return "? bytes"
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def printable(text: str) -> str:
    """``text``, or its repr when it has control characters or bytes that are not UTF-8
    (file names can): a line stays one line and printing never fails."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return repr(text)
    return repr(text) if any(unicodedata.category(c) == "Cc" for c in text) else text


def _route(item: Item) -> str:
    return f"{printable(item.source)} -> {printable(item.url)}"


class Reporter:
    """Plain or JSON lines, no progress bars (stdout is not a terminal, or --json/--quiet)."""

    follows = False
    """Whether it shows each upload's progress and events (else they are not even made)."""

    def __init__(
        self,
        *,
        json_lines: bool = False,
        quiet: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.json_lines = json_lines
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass

    def begin(self, items: list[Item]) -> None:
        """The uploads are about to start."""

    def start(self, item: Item) -> None:
        """``item`` is being uploaded."""

    def advance(self, item: Item, amount: int) -> None:
        """``amount`` more bytes of ``item`` were uploaded."""

    def event(self, event: UploadEvent) -> None:
        """A part started or ended, or was retried (shown on a terminal only)."""

    def finish(self, outcome: Outcome) -> None:
        if self.json_lines:
            self._print_json(outcome.as_json())
        elif not outcome.ok:
            self._print(f"failed: {_route(outcome.item)}: {outcome.error}")
        elif not self.quiet:
            result = outcome.result
            assert result is not None
            parts = f"{result.parts} part{'' if result.parts == 1 else 's'}"
            why = result.unverified_reason
            unverified = f"; not verified: {why}" if why else ""
            self._print(
                f"upload: {_route(outcome.item)}"
                f" ({human(result.size)}, {parts}, {outcome.seconds:.2f} s{unverified})",
                self.out,
            )

    def would_upload(self, item: Item) -> None:
        """--dry-run: ``item`` would be uploaded (or refused, when it has a problem)."""
        if self.json_lines:
            line: dict[str, Any] = {"source": item.source, "bucket": item.bucket}
            line |= {"key": item.key, "size": item.size, "dry_run": True}
            line |= {"ok": item.problem is None, "error": item.problem}
            self._print_json(line)
        elif item.problem is not None:
            self._print(f"(dry run) refused: {_route(item)}: {item.problem}")
        elif not self.quiet:
            size = human(item.size)
            self._print(f"(dry run) upload: {_route(item)} ({size})", self.out)

    def warn(self, text: str) -> None:
        self._print(f"asyncup cp: {text}")

    def summary(self, text: str) -> None:
        if not self.quiet:
            self._print(text, self.err if self.json_lines else self.out)

    def _print_json(self, line: dict[str, Any]) -> None:
        import json  # (--json only: ~2 ms of a one-file cp's start)

        self._print(json.dumps(line), self.out)

    def _print(self, text: str, stream: TextIO | None = None) -> None:
        print(text, file=stream or self.err, flush=True)


class RichReporter(Reporter):
    """Progress bars on a terminal: the total and each file in flight."""

    follows = True

    def __init__(self, console: Any = None) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = console or Console()
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.out = self.err = self.console.file
        self._total: TaskID | None = None
        self._label = "total"
        self._tasks: dict[Item, TaskID] = {}
        self.parts_in_flight = 0
        self.retries = 0

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def begin(self, items: list[Item]) -> None:
        sizes = [item.size for item in items if item.problem is None]
        total = None if None in sizes else sum(s for s in sizes if s is not None)
        self._label = f"total ({len(sizes)} file{'' if len(sizes) == 1 else 's'})"
        self._total = self.progress.add_task(self._label, total=total)

    def start(self, item: Item) -> None:
        self._tasks[item] = self.progress.add_task(f"  {item.key}", total=item.size)

    def advance(self, item: Item, amount: int) -> None:
        if self._total is not None:
            self.progress.advance(self._total, amount)
        task = self._tasks.get(item)
        if task is not None:
            self.progress.advance(task, amount)

    def event(self, event: UploadEvent) -> None:
        if event.kind == "part_started":
            self.parts_in_flight += 1
        elif event.kind == "part_done":
            self.parts_in_flight -= 1
        elif event.kind == "retry":
            self.retries += 1
        if self._total is not None:
            self.progress.update(self._total, description=self.description())

    def description(self) -> str:
        """The total bar's label: files, parts in flight, retries."""
        retries = f", {self.retries} retr{'y' if self.retries == 1 else 'ies'}" * bool(self.retries)
        return f"{self._label}, {self.parts_in_flight} parts in flight{retries}"

    def finish(self, outcome: Outcome) -> None:
        task = self._tasks.pop(outcome.item, None)
        if task is not None:
            self.progress.remove_task(task)
        super().finish(outcome)

    def _print(self, text: str, stream: TextIO | None = None) -> None:
        # Above the bars; never read as markup (keys are arbitrary text).
        self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)


def make_reporter(*, json_lines: bool, quiet: bool) -> Reporter:
    """Bars on a terminal, lines otherwise."""
    if not json_lines and not quiet and sys.stdout.isatty():
        return RichReporter()
    return Reporter(json_lines=json_lines, quiet=quiet)
