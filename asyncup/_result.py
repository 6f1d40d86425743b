"""UploadResult: what an upload produced."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadResult:
    """The object an upload wrote.

    ``etag`` is as S3 returned it (quoted). ``etag_verified`` is True when asyncup computed
    the expected ETag from the bytes it sent and S3's matched it (not possible under SSE-KMS
    or SSE-C, whose ETags are not MD5s).
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
    etag_verified: bool = False
