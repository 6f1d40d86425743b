"""Digests of parts and of whole objects: pure functions, run in worker threads.

hashlib, zlib and awscrt release the GIL on large buffers, so parts are digested in
threads and the event loop never hashes anything large. A small body is digested on the loop
(``digests_inline``): there the hashing costs the loop less than the hand-off to a thread.

Two modes, chosen by ``TransferConfig.checksum_algorithm``:

- an S3 checksum (CRC32 by default, as boto3; or CRC32C, CRC64NVME, SHA1, SHA256): sent with
  each part (S3 refuses a part whose bytes do not match), and combined locally into the
  object's checksum, which is compared with what Complete answers. COMPOSITE checksums are the
  checksum of the parts' binary checksums, suffixed "-N"; FULL_OBJECT checksums (linear CRCs
  only) are the CRCs of the parts combined, as if the whole object had been read at once.
- None: no x-amz-checksum headers (for stores that reject them). Each part is sent with
  Content-MD5 instead, its ETag is compared with the MD5, and the multipart ETag with the
  md5 of the parts' MD5s.
"""

from __future__ import annotations

import base64
import hashlib
import mmap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from awscrt import checksums as crt  # type: ignore[import-untyped]

Buffer = bytearray | mmap.mmap
"""A part buffer: a bytearray, or an anonymous mapping (``_pipeline.budget``)."""


try:  # ISA-L's CRC32 (carry-less multiplication): ~9x zlib's here, the same values
    from isal.isal_zlib import crc32 as _crc32_of
except ImportError:  # a platform without an isal wheel
    from zlib import crc32 as _crc32_of


def _crc32(data: memoryview, previous: int = 0) -> int:
    return _crc32_of(data, previous)


def _crc32c(data: memoryview, previous: int = 0) -> int:
    value: int = crt.crc32c(data, previous)
    return value


def _crc64nvme(data: memoryview, previous: int = 0) -> int:
    value: int = crt.crc64nvme(data, previous)
    return value


CRCS: dict[str, tuple[Callable[[memoryview, int], int], Callable[[int, int, int], int], int]] = {
    # name: (crc of a buffer continuing a previous crc, combine(crc1, crc2, len2), width in bytes)
    "CRC32": (_crc32, crt.combine_crc32, 4),
    "CRC32C": (_crc32c, crt.combine_crc32c, 4),
    "CRC64NVME": (_crc64nvme, crt.combine_crc64nvme, 8),
}
HASHES = {"SHA1": "sha1", "SHA256": "sha256"}
FULL_OBJECT_ONLY = frozenset({"CRC64NVME"})

# The largest body digested on the event loop, per algorithm (None: MD5): about what each
# hashes in the time a hand-off to a worker thread costs the loop (anyio's run_sync: ~20-30 us
# of the loop's CPU per call, measured, more while the GIL is contended). Measured on the
# benchmark machine (benchmarks/PROFILE.md): ISA-L's CRC32 and awscrt's CRC32C/CRC64NVME
# >30 GB/s (1 MiB: ~16 us; zlib's CRC32, without isal, ~6.5 GB/s), SHA1/SHA256 ~1.8-2 GB/s (32 KiB:
# ~17 us), MD5 ~0.8 GB/s (16 KiB: ~20 us). Below these the loop does less work, and waits
# less, than with a thread; a stall stays ~25 us, far below one request's own work on the
# loop (~0.5 ms in botocore). Every part of a multipart upload (>= 5 MiB) goes to a thread.
INLINE_DIGEST_MAX: dict[str | None, int] = {
    "CRC32": 1024 * 1024,
    "CRC32C": 1024 * 1024,
    "CRC64NVME": 1024 * 1024,
    "SHA1": 32 * 1024,
    "SHA256": 32 * 1024,
    None: 16 * 1024,
}


def digests_inline(algorithm: str | None, size: int) -> bool:
    """Whether a body of ``size`` bytes is cheaper to digest on the event loop than in a thread."""
    return size <= INLINE_DIGEST_MAX.get(algorithm, 0)


def raw_digest(algorithm: str, data: memoryview) -> bytes:
    """The binary checksum of ``data`` (big-endian for CRCs, as S3 encodes them)."""
    if algorithm in CRCS:
        crc, _, width = CRCS[algorithm]
        return crc(data, 0).to_bytes(width, "big")
    return hashlib.new(HASHES[algorithm], data).digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class PartDigest:
    """What is known of one part's bytes: its checksum (S3's base64 form) or its MD5."""

    checksum: bytes | None = None
    md5: bytes | None = None

    @property
    def checksum_b64(self) -> str | None:
        return None if self.checksum is None else b64(self.checksum)

    @property
    def content_md5(self) -> str | None:
        return None if self.md5 is None else b64(self.md5)


def new_md5() -> Any:
    """A new MD5 hash (every MD5 asyncup computes starts here: tests count them)."""
    return hashlib.md5(usedforsecurity=False)


def md5_of(data: Buffer | bytes | memoryview) -> bytes:
    hashed = new_md5()
    hashed.update(memoryview(data))
    return bytes(hashed.digest())


def digest_part(data: Buffer | bytes, algorithm: str | None, *, md5: bool = False) -> PartDigest:
    """The part's checksum by ``algorithm`` (None: its MD5), and its MD5 as well if ``md5``
    (for a store that echoes no checksum: its ETag is then compared with the MD5)."""
    view = memoryview(data)
    if algorithm is None:
        return PartDigest(md5=md5_of(view))
    return PartDigest(checksum=raw_digest(algorithm, view), md5=md5_of(view) if md5 else None)


class RunningDigest:
    """``digest_part`` of bytes that arrive in pieces (a part read back in slices)."""

    def __init__(self, algorithm: str | None, *, md5: bool = False) -> None:
        self._algorithm = algorithm
        self._crc = 0
        self._hash = None
        self._md5 = new_md5() if md5 and algorithm is not None else None
        if algorithm is None:
            self._hash = new_md5()
        elif algorithm in HASHES:
            self._hash = hashlib.new(HASHES[algorithm])

    def update(self, data: memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)
        else:
            assert self._algorithm is not None
            self._crc = CRCS[self._algorithm][0](data, self._crc)
        if self._md5 is not None:
            self._md5.update(data)

    def digest(self) -> PartDigest:
        if self._algorithm is None:
            assert self._hash is not None
            return PartDigest(md5=self._hash.digest())
        md5 = None if self._md5 is None else bytes(self._md5.digest())
        if self._hash is not None:
            return PartDigest(checksum=self._hash.digest(), md5=md5)
        width = CRCS[self._algorithm][2]
        return PartDigest(checksum=self._crc.to_bytes(width, "big"), md5=md5)


def multipart_etag(part_md5s: Sequence[bytes]) -> str:
    """S3's ETag of a multipart object: md5 of the parts' binary MD5s, then "-N"."""
    digest = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return f'"{digest}-{len(part_md5s)}"'


def composite_checksum(algorithm: str, part_checksums: Sequence[bytes]) -> str:
    """S3's COMPOSITE checksum: the checksum of the parts' binary checksums, then "-N"."""
    whole = raw_digest(algorithm, memoryview(b"".join(part_checksums)))
    return f"{b64(whole)}-{len(part_checksums)}"


def full_object_checksum(algorithm: str, parts: Sequence[tuple[bytes, int]]) -> str:
    """S3's FULL_OBJECT checksum from (part CRC, part length) pairs, in part order."""
    _, combine, width = CRCS[algorithm]
    total = 0
    for number, (raw, length) in enumerate(parts):
        crc = int.from_bytes(raw, "big")
        total = crc if number == 0 else combine(total, crc, length)
    return b64(total.to_bytes(width, "big"))
