"""TransferConfig: the knobs of one upload pipeline, validated once, frozen."""

from __future__ import annotations

from dataclasses import dataclass

from .plan import MAX_PART_SIZE, MIN_PART_SIZE

KiB = 1024
MiB = 1024 * KiB

CHECKSUM_ALGORITHMS = ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME")
INTEGRITY_MODES = ("auto", "require", "off")


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferConfig:
    """How an upload is cut into parts and how many run at once.

    Memory bound: one upload holds at most ``concurrency + queue_size + 1`` part buffers
    (``concurrency`` being sent, ``queue_size`` read ahead and waiting for a worker, one being
    filled by the producer). An ``Uploader`` also caps the bytes buffered by all its uploads
    together at ``max_buffer_bytes``, by default ``(concurrency + queue_size) x part_size``
    (20 x 8 MiB = 160 MiB with the defaults: the producer waits for a free buffer rather than
    read one part beyond a full queue), and the UploadPart requests in flight by all of them
    together at ``concurrency``.

    For a stream of unknown length the part size grows as the stream grows (see
    ``asyncup._core.plan.stream_part_size``); the bound above then holds in units of the
    current part size.

    Example::

        config = TransferConfig(part_size=16 * MiB, concurrency=16)
        result = await asyncup.upload("big.bin", "bucket", "key", config=config)
    """

    part_size: int = 8 * MiB
    """Bytes per part (5 MiB .. 5 GiB). Grown automatically to stay within 10,000 parts."""
    multipart_threshold: int = 8 * MiB
    """Objects of at least this many bytes go multipart; smaller ones in one PutObject."""
    concurrency: int = 10
    """UploadPart requests in flight at once."""
    queue_size: int | None = None
    """Parts read ahead and waiting for a worker (default: ``concurrency``)."""
    max_attempts: int = 5
    """Requests per operation, the first one included (1 = no retries)."""
    checksum_algorithm: str | None = "CRC32"
    """The S3 checksum sent with every part and verified on the whole object: CRC32 (the
    default, as boto3's), CRC32C, SHA1, SHA256 or CRC64NVME. None sends no x-amz-checksum
    headers, for S3-compatible stores that reject them: each part then carries Content-MD5,
    and ETags are verified instead."""
    retry_base_delay: float = 0.1
    """First backoff ceiling in seconds; it doubles per attempt (full jitter)."""
    retry_max_delay: float = 20.0
    """Largest backoff between two attempts, in seconds."""
    abort_timeout: float = 30.0
    """Upper bound, in seconds, on the AbortMultipartUpload clean-up after a failure."""
    max_buffer_bytes: int | None = None
    """Bytes of part buffers an Uploader holds across all its uploads (default: see above)."""
    max_bandwidth: int | None = None
    """Bytes per second sent by all the uploads of an Uploader together (as s3transfer's
    max_bandwidth); None for no cap."""
    request_timeout: float | None = 60.0
    """Seconds any one request may take in all (the client's read timeout bounds only each
    wait for the next bytes, which a server trickling its answer never trips), on top of the
    time its body needs at 64 KiB/s shared by ``concurrency`` requests (an 8 MiB part, 10 in
    flight: 60 + 1,280 s) and, for CompleteMultipartUpload, 0.05 s per part (S3 may take
    minutes over a large object). Past it the request is cut and retried as a timeout. The
    body's share never cuts a part that moves on a live link of 512 kbit/s or more; the
    floor is botocore's default read timeout. None: no limit but the client's timeouts.
    See ``asyncup._core.retry.request_deadline``."""
    integrity: str = "auto"
    """How each write is verified where the store itself does not say it checked the bytes.
    A store that echoes the checksum it was sent (S3, SeaweedFS) checked it. Where the answer
    echoes none (moto, older MinIO and Ceph, gateways), asyncup compares the write's ETag
    with the MD5 of the bytes sent, computed off the event loop for such stores only, and
    sends a part again on a mismatch. Under SSE-C or SSE-KMS the ETag is not an MD5, so on
    such a store nothing can verify the bytes: "auto" uploads and reports it
    (``UploadResult.verified_by`` None, and why), "require" fails the upload before it is
    completed (aborted, nothing left), "off" skips asyncup's own MD5 checks altogether."""

    def __post_init__(self) -> None:
        _require_int("part_size", self.part_size, MIN_PART_SIZE, MAX_PART_SIZE)
        # PutObject takes at most 5 GiB, so a larger threshold could never be honoured.
        _require_int("multipart_threshold", self.multipart_threshold, 0, MAX_PART_SIZE)
        _require_int("concurrency", self.concurrency, 1, None)
        if self.queue_size is not None:
            _require_int("queue_size", self.queue_size, 0, None)
        _require_int("max_attempts", self.max_attempts, 1, None)
        if self.checksum_algorithm is not None and (
            self.checksum_algorithm not in CHECKSUM_ALGORITHMS
        ):
            raise ValueError(
                f"checksum_algorithm must be None or one of {', '.join(CHECKSUM_ALGORITHMS)};"
                f" got {self.checksum_algorithm!r}"
            )
        for name in ("retry_base_delay", "retry_max_delay", "abort_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0; got {value!r}")
        if self.max_buffer_bytes is not None:
            _require_int("max_buffer_bytes", self.max_buffer_bytes, MIN_PART_SIZE, None)
        if self.max_bandwidth is not None:
            _require_int("max_bandwidth", self.max_bandwidth, 1, None)
        if self.integrity not in INTEGRITY_MODES:
            raise ValueError(
                f"integrity must be one of {', '.join(INTEGRITY_MODES)}; got {self.integrity!r}"
            )
        timeout = self.request_timeout
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ValueError(f"request_timeout must be None or a number > 0; got {timeout!r}")

    @property
    def read_ahead(self) -> int:
        """Parts waiting in the queue: ``queue_size``, or ``concurrency`` when unset."""
        return self.concurrency if self.queue_size is None else self.queue_size

    @property
    def buffer_budget(self) -> int:
        """Bytes of part buffers an Uploader with this config may hold at once."""
        if self.max_buffer_bytes is not None:
            return self.max_buffer_bytes
        return max(1, self.concurrency + self.read_ahead) * self.part_size


def _require_int(name: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int; got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {bounds}; got {value}")
