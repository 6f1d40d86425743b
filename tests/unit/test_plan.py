"""Part planning at S3's limits: pure arithmetic, no server."""

from __future__ import annotations

import pytest

from asyncup._core.plan import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    STREAM_TIER_PARTS,
    MiB,
    ObjectTooLargeError,
    plan_known_size,
    stream_capacity,
    stream_part_size,
    use_multipart,
)


@pytest.mark.parametrize(
    ("size", "part_size", "count"),
    [
        (0, 8 * MiB, 1),
        (1, 8 * MiB, 1),
        (8 * MiB - 1, 8 * MiB, 1),
        (8 * MiB, 8 * MiB, 1),
        (8 * MiB + 1, 8 * MiB, 2),
        (80 * MiB, 8 * MiB, 10),
        (MAX_PARTS * 8 * MiB, 8 * MiB, MAX_PARTS),
    ],
)
def test_known_size_keeps_part_size_when_it_fits(size: int, part_size: int, count: int) -> None:
    plan = plan_known_size(size, part_size)
    assert (plan.part_size, plan.count) == (part_size, count)
    parts = list(plan.parts())
    assert [p.number for p in parts] == list(range(1, count + 1))
    assert sum(p.length for p in parts) == size
    assert all(p.offset == (p.number - 1) * part_size for p in parts)


@pytest.mark.parametrize(
    "size",
    [
        MAX_PARTS * 8 * MiB + 1,
        1024**4,  # 1 TiB
        10 * 1024**4,
        MAX_OBJECT_SIZE - 1,
        MAX_OBJECT_SIZE,
    ],
)
def test_known_size_grows_part_size_to_fit_10000_parts(size: int) -> None:
    plan = plan_known_size(size, 8 * MiB)
    assert plan.count <= MAX_PARTS
    assert MIN_PART_SIZE <= plan.part_size <= MAX_PART_SIZE
    assert plan.part_size % MiB == 0
    assert (plan.count - 1) * plan.part_size < size <= plan.count * plan.part_size
    last = list(plan.parts())[-1] if plan.count < 50 else None
    if last is not None:
        assert last.offset + last.length == size


def test_known_size_of_48_8_tib_uses_5_gib_parts() -> None:
    plan = plan_known_size(MAX_OBJECT_SIZE, MIN_PART_SIZE)
    assert (plan.part_size, plan.count) == (MAX_PART_SIZE, MAX_PARTS)


def test_known_size_over_the_limit_is_refused() -> None:
    with pytest.raises(ObjectTooLargeError, match="larger than S3's limit"):
        plan_known_size(MAX_OBJECT_SIZE + 1, 8 * MiB)
    assert issubclass(ObjectTooLargeError, ValueError)


@pytest.mark.parametrize("bad", [MIN_PART_SIZE - 1, MAX_PART_SIZE + 1])
def test_known_size_refuses_part_sizes_outside_s3_limits(bad: int) -> None:
    with pytest.raises(ValueError, match="part_size"):
        plan_known_size(100 * MiB, bad)


def test_stream_part_size_doubles_every_tier_up_to_5_gib() -> None:
    assert stream_part_size(1, 8 * MiB) == 8 * MiB
    assert stream_part_size(STREAM_TIER_PARTS, 8 * MiB) == 8 * MiB
    assert stream_part_size(STREAM_TIER_PARTS + 1, 8 * MiB) == 16 * MiB
    assert stream_part_size(2 * STREAM_TIER_PARTS + 1, 8 * MiB) == 32 * MiB
    assert stream_part_size(MAX_PARTS, 8 * MiB) == MAX_PART_SIZE
    assert stream_part_size(MAX_PARTS, MAX_PART_SIZE) == MAX_PART_SIZE
    sizes = [stream_part_size(n, 5 * MiB) for n in range(1, MAX_PARTS + 1)]
    assert sizes == sorted(sizes)
    assert all(MIN_PART_SIZE <= s <= MAX_PART_SIZE for s in sizes)


@pytest.mark.parametrize("part_size", [MIN_PART_SIZE, 8 * MiB, 64 * MiB, MAX_PART_SIZE])
def test_stream_is_not_cut_off_at_part_size_times_10000(part_size: int) -> None:
    capacity = stream_capacity(part_size)
    assert capacity == sum(stream_part_size(n, part_size) for n in range(1, MAX_PARTS + 1))
    assert capacity > 26 * 1024**4  # > 26 TiB whatever the starting size
    assert capacity > part_size * MAX_PARTS or part_size == MAX_PART_SIZE
    assert capacity <= MAX_OBJECT_SIZE


@pytest.mark.parametrize("number", [0, MAX_PARTS + 1])
def test_stream_part_numbers_outside_1_to_10000_are_refused(number: int) -> None:
    with pytest.raises(ValueError, match="part number"):
        stream_part_size(number, 8 * MiB)


def test_use_multipart_threshold() -> None:
    assert not use_multipart(0, 0)
    assert not use_multipart(8 * MiB - 1, 8 * MiB)
    assert use_multipart(8 * MiB, 8 * MiB)
