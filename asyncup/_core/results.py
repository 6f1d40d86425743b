"""UploadResult: what an upload produced."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadResult:
    """The object an upload wrote.

    ``etag`` is as S3 returned it (quoted). Each write (every part, or the PutObject) was
    checked as ``verified_by`` says: by the store (it echoed the checksum sent) or by asyncup
    (the ETag is the MD5 of the bytes sent). The whole object: ``checksum_verified`` when S3
    returned its checksum and it matched the one asyncup computed from the parts sent;
    ``etag_verified`` likewise for the ETag (not under SSE-KMS or SSE-C, whose ETags are not
    MD5s).

    Example::

        result = await asyncup.upload(b"data", "bucket", "key")
        assert result.verified_by in ("store", "asyncup")
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
    verified_by: str | None = None
    """Who checked every write's bytes: "store" (it echoed the checksum sent: it checked
    it), "asyncup" (the ETag S3 answered is the MD5 of the bytes sent), or None when some
    write could not be verified (``unverified_reason`` says why)."""
    unverified_reason: str | None = None
