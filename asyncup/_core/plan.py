"""Part planning within S3's limits: pure arithmetic, no I/O.

S3 allows 1..10,000 parts of 5 MiB..5 GiB each; only the last part may be smaller than
5 MiB, and parts need not be equal. So the largest object is 5 GiB x 10,000 (48.8 TiB).

Known size: the configured part size is kept unless that would need more than 10,000 parts;
then it grows to ceil(size / 10,000), rounded up to a whole MiB.

Unknown size (a stream): a fixed part size would cut the stream off at part_size x 10,000
(78 GiB for 8 MiB parts). Instead the part numbers are split into tiers of
``STREAM_TIER_PARTS`` (500) parts, and each tier doubles the part size of the one before,
up to 5 GiB: part n is ``min(5 GiB, part_size * 2 ** ((n - 1) // 500))`` bytes. A stream
therefore keeps the configured part size (and memory use) up to 500 parts (4 GB with 8 MiB
parts), and can grow to more than 26 TiB whatever the starting size
(see ``stream_capacity``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = MAX_PART_SIZE * MAX_PARTS
STREAM_TIER_PARTS = 500


class ObjectTooLargeError(ValueError):
    """The object is larger than S3 can store (5 GiB x 10,000 parts)."""


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a known-size object: its number (1-based), offset and length."""

    number: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class PartPlan:
    """How a known-size object is cut: ``count`` parts of ``part_size`` (the last shorter)."""

    size: int
    part_size: int
    count: int

    def parts(self) -> Iterator[Part]:
        for index in range(self.count):
            offset = index * self.part_size
            yield Part(index + 1, offset, min(self.part_size, self.size - offset))


def plan_known_size(size: int, part_size: int) -> PartPlan:
    """Cut ``size`` bytes into at most 10,000 parts of at least ``part_size`` bytes each."""
    if size < 0:
        raise ValueError(f"object size must be >= 0; got {size}")
    if size > MAX_OBJECT_SIZE:
        raise ObjectTooLargeError(
            f"object of {size} bytes is larger than S3's limit of {MAX_OBJECT_SIZE} bytes"
            " (5 GiB x 10,000 parts)"
        )
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}")
    needed = -(-size // MAX_PARTS)
    if needed > part_size:
        part_size = -(-needed // MiB) * MiB
    count = max(1, -(-size // part_size))
    return PartPlan(size=size, part_size=part_size, count=count)


def stream_part_size(part_number: int, part_size: int) -> int:
    """Size of part ``part_number`` of a stream of unknown length (see the module doc)."""
    if not 1 <= part_number <= MAX_PARTS:
        raise ValueError(f"part number must be between 1 and {MAX_PARTS}; got {part_number}")
    tier = (part_number - 1) // STREAM_TIER_PARTS
    # Shift no further than needed to pass the cap, so the numbers stay small.
    return min(MAX_PART_SIZE, part_size << min(tier, 11))


def stream_capacity(part_size: int) -> int:
    """The largest stream that ``stream_part_size`` can carry in 10,000 parts."""
    return sum(
        stream_part_size(first, part_size) * STREAM_TIER_PARTS
        for first in range(1, MAX_PARTS + 1, STREAM_TIER_PARTS)
    )


def use_multipart(size: int, threshold: int) -> bool:
    """Whether an object of ``size`` bytes goes multipart (else: one PutObject)."""
    return size >= threshold and size > 0
