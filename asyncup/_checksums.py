"""Per-part digests: computed in worker threads (hashlib, zlib and awscrt release the GIL).

Every part gets an MD5: it is sent as Content-MD5 (S3 rejects a corrupted body with
BadDigest), compared with the part's ETag where S3's ETags are MD5s, and combined into the
expected multipart ETag. A ``checksum_algorithm`` adds that checksum on top.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from awscrt import checksums as crt  # type: ignore[import-untyped]


def _crc32(data: memoryview) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def _crc32c(data: memoryview) -> bytes:
    value: int = crt.crc32c(data)
    return value.to_bytes(4, "big")


def _crc64nvme(data: memoryview) -> bytes:
    value: int = crt.crc64nvme(data)
    return value.to_bytes(8, "big")


def _sha1(data: memoryview) -> bytes:
    return hashlib.sha1(data).digest()


def _sha256(data: memoryview) -> bytes:
    return hashlib.sha256(data).digest()


ALGORITHMS: dict[str, Callable[[memoryview], bytes]] = {
    "CRC32": _crc32,
    "CRC32C": _crc32c,
    "CRC64NVME": _crc64nvme,
    "SHA1": _sha1,
    "SHA256": _sha256,
}


@dataclass(frozen=True, slots=True)
class PartDigest:
    md5: bytes
    checksum: str | None
    """base64 of the part's checksum, as S3 wants it in x-amz-checksum-*."""

    @property
    def content_md5(self) -> str:
        return base64.b64encode(self.md5).decode()

    @property
    def etag(self) -> str:
        return f'"{self.md5.hex()}"'


def digest_part(data: bytes | bytearray, algorithm: str | None) -> PartDigest:
    view = memoryview(data)
    checksum = None
    if algorithm is not None:
        checksum = base64.b64encode(ALGORITHMS[algorithm](view)).decode()
    return PartDigest(md5=hashlib.md5(view, usedforsecurity=False).digest(), checksum=checksum)


def multipart_etag(part_md5s: Iterable[bytes]) -> str:
    """S3's ETag of a multipart object: md5 of the parts' binary MD5s, then "-N"."""
    md5s = list(part_md5s)
    return f'"{hashlib.md5(b"".join(md5s), usedforsecurity=False).hexdigest()}-{len(md5s)}"'
