"""UploadResult: what an upload produced."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadResult:
    """The object an upload wrote.

    ``etag`` is as S3 returned it (quoted). What was verified end to end:
    ``checksum_verified`` when S3 returned the object's checksum and it matched the one
    asyncup computed from the bytes it sent; ``etag_verified`` likewise for the ETag (only
    with ``checksum_algorithm=None``, which sends MD5s, and not under SSE-KMS or SSE-C,
    whose ETags are not MD5s). Each part was also checked by S3 against its checksum or
    Content-MD5 on arrival.

    Example::

        result = await asyncup.upload(b"data", "bucket", "key")
        assert result.checksum_verified
    """

    bucket: str
    key: str
    etag: str
    size: int
    parts: int
    upload_id: str | None
    """The multipart upload id, or None for a single PutObject."""
    version_id: str | None = None
    checksum: str | None = None
    """The object's checksum as S3 returned it (base64; "-N" suffixed when composite)."""
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    """COMPOSITE or FULL_OBJECT, when a checksum was sent."""
    etag_verified: bool = False
    checksum_verified: bool = False
