"""Spreading one upload (or many) over many hosts: pure arithmetic and decisions, no I/O.

    plan(size, part_size)        byte ranges within S3's limits (``_core.plan.plan_known_size``)
    batches(numbers, per_batch)  the parts each task sends (a task holds a worker's slot,
                                 so it sends several parts at once)
    split_rate(rate, slots)      a request-rate budget shared by the tasks that can run at once
    reconcile(plan, results, listed)
                                 which result stands for each part, given what ListParts says

Reconciling: a part number may have been sent twice (a batch retried elsewhere after its
answer was lost, a worker that died after sending). S3 keeps the last writer's bytes, and
ListParts names them by ETag: the result with that ETag is the one Complete must list. Two
results for one part that disagree on the checksum mean the file was not the same for both
senders: that part is "divergent" and the upload cannot be trusted. A part S3 does not hold,
or holds with an ETag no result reported, is "missing": it must be sent (again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .._core.handle import PartResult
from .._core.plan import MAX_PARTS, PartPlan, plan_known_size
from .._core.verify import ListedPart, same_etag


def plan(size: int, part_size: int) -> PartPlan:
    """Cut ``size`` bytes into at most 10,000 parts of at least ``part_size`` bytes (the part
    size grows as needed: at 48.8 TiB every part is 5 GiB). Refuses what S3 cannot hold."""
    return plan_known_size(size, part_size)


def checked_numbers(numbers: Iterable[int], count: int) -> tuple[int, ...]:
    """``numbers`` as a sorted tuple, refused unless each is a distinct part of 1..count."""
    listed = list(numbers)
    for number in listed:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= count:
            raise ValueError(f"part numbers must be ints between 1 and {count}; got {number!r}")
    if len(set(listed)) != len(listed):
        raise ValueError("part numbers must not repeat")
    return tuple(sorted(listed))


def batches(numbers: Sequence[int], per_batch: int) -> list[tuple[int, ...]]:
    """``numbers`` in runs of ``per_batch`` (the last shorter), in order."""
    if per_batch < 1:
        raise ValueError(f"per_batch must be >= 1; got {per_batch}")
    return [tuple(numbers[i : i + per_batch]) for i in range(0, len(numbers), per_batch)]


def parts_per_batch(plan: PartPlan, batch_bytes: int) -> int:
    """How many parts make about ``batch_bytes`` (at least one part, at most all)."""
    return max(1, min(plan.count, batch_bytes // plan.part_size))


def split_rate(rate: float, slots: int) -> float:
    """Each task's share of ``rate`` requests per second when ``slots`` tasks run at once:
    the shares add up to no more than ``rate`` however the tasks land on the workers."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0; got {rate}")
    if slots < 1:
        raise ValueError(f"slots must be >= 1; got {slots}")
    return rate / slots


def requests_for(size: int, multipart_threshold: int, part_size: int) -> int:
    """Requests one object costs: PutObject, or Create + its parts + Complete."""
    if size < multipart_threshold or size == 0:
        return 1
    return min(MAX_PARTS, plan_known_size(size, part_size).count) + 2


@dataclass(frozen=True, slots=True)
class Reconciled:
    chosen: dict[int, PartResult]
    """For each part S3 holds as a result reported it: that result."""
    missing: tuple[int, ...]
    """Parts S3 does not hold, or holds with bytes no result accounts for: send them."""
    divergent: tuple[int, ...]
    """Parts whose results disagree on their bytes: the file changed under the senders."""

    @property
    def ready(self) -> bool:
        return not self.missing and not self.divergent


def reconcile(
    plan: PartPlan, results: Iterable[PartResult], listed: Mapping[int, ListedPart]
) -> Reconciled:
    lengths = {part.number: part.length for part in plan.parts()}
    candidates: dict[int, list[PartResult]] = {}
    for result in results:
        if lengths.get(result.number) == result.size:  # any other size is not of this plan
            candidates.setdefault(result.number, []).append(result)
    chosen: dict[int, PartResult] = {}
    missing: list[int] = []
    divergent: list[int] = []
    for number, length in lengths.items():
        reported = candidates.get(number, [])
        if len({result.digest_key for result in reported}) > 1:
            divergent.append(number)
            continue
        held = listed.get(number)
        kept = [r for r in reported if held is not None and same_etag(r.etag, held.etag)]
        if held is None or held.size != length or not kept:
            missing.append(number)
            continue
        chosen[number] = kept[-1]
    return Reconciled(chosen, tuple(missing), tuple(divergent))
