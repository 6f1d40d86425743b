"""TransferConfig: frozen, keyword-only, validated on construction."""

from __future__ import annotations

import dataclasses

import pytest

from asyncup import TransferConfig

MiB = 1024 * 1024


def test_defaults() -> None:
    config = TransferConfig()
    assert config.part_size == 8 * MiB
    assert config.multipart_threshold == 8 * MiB
    assert config.concurrency >= 1
    assert config.read_ahead == config.concurrency
    assert config.buffer_budget == 2 * config.concurrency * 8 * MiB
    assert "concurrency + queue_size + 1" in (TransferConfig.__doc__ or "")


def test_frozen_and_keyword_only() -> None:
    config = TransferConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.part_size = 6 * MiB  # type: ignore[misc]
    with pytest.raises(TypeError):
        TransferConfig(8 * MiB)  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"part_size": 5 * MiB - 1},
        {"part_size": 5 * 1024 * MiB + 1},
        {"part_size": 8.0 * MiB},
        {"part_size": True},
        {"multipart_threshold": -1},
        {"multipart_threshold": 5 * 1024 * MiB + 1},
        {"concurrency": 0},
        {"queue_size": -1},
        {"max_attempts": 0},
        {"checksum_algorithm": "MD5"},
        {"checksum_algorithm": "crc32"},
        {"retry_base_delay": -1},
        {"abort_timeout": "30"},
        {"max_buffer_bytes": 1},
        {"max_bandwidth": 0},
    ],
)
def test_bad_values_raise_value_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TransferConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", [None, "CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"])
def test_checksum_algorithms(algorithm: str | None) -> None:
    assert TransferConfig(checksum_algorithm=algorithm).checksum_algorithm == algorithm


def test_queue_size_zero_is_allowed() -> None:
    config = TransferConfig(concurrency=3, queue_size=0)
    assert config.read_ahead == 0
    assert config.buffer_budget == 3 * 8 * MiB
