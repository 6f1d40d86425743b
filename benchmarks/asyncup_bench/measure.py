"""Pure measurement logic: samples in, medians, ratios and a table out (no I/O)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

GiB = 1024**3
MiB = 1024**2
BASELINE = "asyncup"


@dataclass(frozen=True, slots=True)
class Sample:
    """One upload (or one batch of small objects) by one peer, in its own process."""

    peer: str
    case: str
    transport: str
    seconds: float
    """The upload's wall time (as the client measured it around the upload call)."""
    cpu_seconds: float
    """user + sys of the whole client process, from os.wait4 (startup included)."""
    max_rss: int
    """Peak resident set of the client process, in bytes."""
    payload: int
    """Bytes uploaded."""
    objects: int = 1
    upload_cpu_seconds: float | None = None
    """user + sys during the upload call alone, as the client measured it."""
    server_cpu_seconds: float | None = None
    verified: str = ""
    exit_note: str = ""
    """How the process ended, when it died by a signal after reporting (the run counts)."""


@dataclass(slots=True)
class Row:
    """The medians of one peer's samples for one case and transport."""

    peer: str
    case: str
    transport: str
    runs: int = 0
    mb_per_s: float | None = None
    objects_per_s: float | None = None
    cpu_per_gib: float | None = None
    upload_cpu_per_gib: float | None = None
    rss_mib: float | None = None
    server_cpu_per_gib: float | None = None
    speed_ratio: float | None = None
    """This peer's throughput / asyncup's (0.5 = half as fast as asyncup)."""
    cpu_ratio: float | None = None
    """This peer's CPU per GiB / asyncup's (2.0 = twice the CPU)."""
    verified: str = ""
    note: str = ""
    samples: list[Sample] = field(default_factory=list)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def summarize(peer: str, case: str, transport: str, samples: Sequence[Sample]) -> Row:
    """Medians of ``samples`` (all of one peer, case and transport)."""
    row = Row(peer, case, transport, runs=len(samples), samples=list(samples))
    if not samples:
        return row
    row.mb_per_s = median(s.payload / 1e6 / s.seconds for s in samples)
    row.objects_per_s = median(s.objects / s.seconds for s in samples)
    row.cpu_per_gib = median(s.cpu_seconds / (s.payload / GiB) for s in samples)
    uploads = [s for s in samples if s.upload_cpu_seconds is not None]
    if uploads:
        row.upload_cpu_per_gib = median(
            (s.upload_cpu_seconds or 0.0) / (s.payload / GiB) for s in uploads
        )
    servers = [s for s in samples if s.server_cpu_seconds is not None]
    if servers:
        row.server_cpu_per_gib = median(
            (s.server_cpu_seconds or 0.0) / (s.payload / GiB) for s in servers
        )
    row.rss_mib = median(s.max_rss / MiB for s in samples)
    row.verified = "; ".join(sorted({s.verified for s in samples}))
    return row


def add_ratios(rows: Sequence[Row], baseline: str = BASELINE) -> None:
    """Fill each row's ratios to the baseline row of the same case and transport."""
    bases = {(r.case, r.transport): r for r in rows if r.peer == baseline}
    for row in rows:
        base = bases.get((row.case, row.transport))
        if base is None or row.mb_per_s is None or not base.mb_per_s:
            continue
        row.speed_ratio = row.mb_per_s / base.mb_per_s
        if row.cpu_per_gib is not None and base.cpu_per_gib:
            row.cpu_ratio = row.cpu_per_gib / base.cpu_per_gib


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: Sequence[Row]) -> str:
    """A Markdown table (readable in a terminal too), one block per case and transport."""
    out: list[str] = []
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.case, row.transport), []).append(row)
    for (case, transport), group in groups.items():
        small = case == "small"
        rate = "objects/s" if small else "MB/s"
        out.append(f"\n### {case}, {transport}\n")
        out.append(
            f"| peer | {rate} | speed vs asyncup | CPU s/GiB | upload CPU s/GiB | peak RSS MiB"
            " | sink CPU s/GiB | runs | verified | note |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for row in group:
            speed = row.objects_per_s if small else row.mb_per_s
            ratio = "-" if row.speed_ratio is None else f"{row.speed_ratio:.2f}x"
            out.append(
                f"| {row.peer} | {_num(speed, '.1f')} | {ratio}"
                f" | {_num(row.cpu_per_gib, '.2f')} | {_num(row.upload_cpu_per_gib, '.2f')}"
                f" | {_num(row.rss_mib, '.0f')} | {_num(row.server_cpu_per_gib, '.2f')}"
                f" | {row.runs} | {row.verified or '-'} | {row.note} |"
            )
    return "\n".join(out) + "\n"
