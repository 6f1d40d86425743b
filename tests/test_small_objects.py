"""The small-object path: digests on the event loop below a size."""

from __future__ import annotations

from typing import Any

import pytest

import asyncup
from asyncup._checksums import CRCS, HASHES, INLINE_DIGEST_MAX, digests_inline
from tests.conftest import assert_object, random_bytes


def test_every_algorithm_has_an_inline_limit_and_parts_never_go_inline() -> None:
    for algorithm in [*CRCS, *HASHES, None]:
        limit = INLINE_DIGEST_MAX[algorithm]
        assert digests_inline(algorithm, limit)
        assert not digests_inline(algorithm, limit + 1)
        assert not digests_inline(algorithm, 5 * 1024 * 1024)  # S3's smallest part
    assert digests_inline("CRC32", 64 * 1024)
    assert not digests_inline("SOMETHING-ELSE", 1)


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA256", None])
async def test_small_objects_digested_inline_are_whole(
    s3: Any, bucket: str, endpoint: str, algorithm: str | None
) -> None:
    config = asyncup.TransferConfig(checksum_algorithm=algorithm)
    sizes = [0, 1, 16 * 1024, 64 * 1024, 200 * 1024]
    blobs = {f"small/{size}": random_bytes(size) for size in sizes}
    async with asyncup.Uploader(endpoint_url=endpoint, config=config) as up:
        summary = await up.upload_many(list((b, k) for k, b in blobs.items()), bucket)
    assert summary.ok, summary.errors
    for key, blob in blobs.items():
        await assert_object(s3, bucket, key, blob, None)
