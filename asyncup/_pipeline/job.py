"""What the stages of one upload share: destination, arguments, budget and results."""

from __future__ import annotations

import inspect
import mmap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import anyio
import anyio.to_thread

from .._core.checksums import Buffer, PartDigest, digest_part, digests_inline
from .._core.config import TransferConfig
from .._core.params import RoutedArgs
from .._core.retry import Failure
from .._core.verify import CompletedPart, StoreChecks, md5_wanted
from .._s3.calls import S3
from .budget import BufferPool, Lease, mapped_buffer, plain_buffer
from .events import EventKind, UploadEvent
from .journal import Journal
from .opener import Opener
from .pace import Pacer
from .sources import PathSource

ProgressCallback = Callable[[int], object | Awaitable[object]]
Reader = Callable[[memoryview], Awaitable[int]]


@dataclass(slots=True)
class FilledPart:
    """A part read from the source: ``body`` is what is sent (exactly ``length`` bytes)."""

    number: int
    body: Buffer
    buffer: Buffer
    reserved: int

    @property
    def length(self) -> int:
        return len(self.body)


@dataclass(frozen=True, slots=True)
class FilePart:
    """A part left where it lies in the file being uploaded (``Job.in_place``): read once to
    digest it, and again as it is sent (with ``sendfile`` over plain HTTP); never held whole
    in memory, so it takes nothing from the memory budget."""

    number: int
    offset: int
    length: int


QueuedPart = FilledPart | FilePart


@dataclass(slots=True)
class Job:
    """One upload in progress."""

    s3: S3
    bucket: str
    key: str
    config: TransferConfig
    args: RoutedArgs
    limiter: anyio.CapacityLimiter
    lease: Lease
    on_progress: ProgressCallback | None = None
    upload_id: str | None = None
    created_here: bool = False
    """Whether this job created its multipart upload, so that no part of it can exist
    before the job sends one (not so for a resumed upload, or another host's)."""
    parts: int | None = None
    """How many parts the upload has in all, where known (a resumed one, another host's)."""
    pacer: Pacer | None = None
    on_event: Callable[[UploadEvent], object] | None = None
    total: int | None = None
    bytes_done: int = 0
    pool: BufferPool = field(default_factory=BufferPool)
    reading_done: bool = False
    unconfirmed: str | None = None
    """The write whose answer was lost and whose object could not be confirmed as ours."""
    unsent: str | None = None
    """The write (PutObject, CreateMultipartUpload) no attempt of which reached the server."""
    corrupt: str | None = None
    """A PutObject stored other bytes than those sent, every attempt: what became of the
    object it wrote ("deleted", "left", or "replaced" by someone else's since)."""
    completed: dict[int, CompletedPart] = field(default_factory=dict)
    write_checks: set[str | None] = field(default_factory=set)
    """Who vouched for each write of this run: "store", "asyncup", None (nobody)."""
    unverified_reason: str | None = None
    """Why a write of this run could not be verified, if one could not."""
    resume_path: str | None = None
    """Where the resume journal is kept (``upload(..., resume=PATH)``), if anywhere."""
    journal: Journal | None = None
    in_place: PathSource | None = None
    """The file whose parts are sent from where they lie (``FilePart``), if any."""
    opener: Opener = field(default_factory=Opener)
    """Opens the source file, with the other files of the Uploader's uploads (one hop)."""
    mapped_buffers: bool = False
    """New part buffers are made by ``budget.mapped_buffer`` in a worker thread: only where
    the HTTP layer is handed bodies as views, never reading them as files
    (``_s3.client.sends_from_files``)."""
    store: StoreChecks = field(init=False)
    """What the client knows of its store's checks of this job's checksum algorithm."""

    def __post_init__(self) -> None:
        self.store = self.s3.store(self.args.checksum_algorithm)

    async def read_part(
        self, readinto: Reader, number: int, size: int, buffer_size: int
    ) -> FilledPart:
        """Take a buffer (a pooled one, or a new one once the budget has room) and fill up to
        ``size`` bytes of it from the source."""
        pooled = self.pool.take(buffer_size, self.lease)
        if pooled is None:
            reserved = await self.lease.acquire(buffer_size)  # first the room, then the memory
            pooled = await self._new_buffer(buffer_size), reserved
        return await self._fill(readinto, number, size, *pooled)

    async def read_object(self, readinto: Reader, size: int) -> bytearray | None:
        """All of a source of ``size`` bytes (a single PutObject), or None when it holds more
        or fewer. One read asks for a byte more than ``size``, so a source that grew since its
        size was taken says so without a second read (for a file, a second thread hop)."""
        reserved = await self.lease.acquire(size + 1)
        buffer = plain_buffer(size + 1)
        with memoryview(buffer) as view:
            n = await readinto(view)
        if n != size:
            self.lease.release(reserved)
            return None
        try:
            del buffer[size:]  # in place: CPython only shortens a bytearray by one byte
        except BufferError:  # the source still holds a view of the buffer
            buffer = buffer[:size]
        return buffer

    async def try_read_part(
        self, readinto: Reader, number: int, size: int, buffer_size: int
    ) -> FilledPart | None:
        """``read_part``, or None at once when there is no buffer and no room for one now."""
        pooled = self.pool.take(buffer_size, self.lease)
        if pooled is None:
            reserved = self.lease.try_acquire(buffer_size)
            if reserved is None:
                return None
            pooled = await self._new_buffer(buffer_size), reserved
        return await self._fill(readinto, number, size, *pooled)

    async def _new_buffer(self, size: int) -> Buffer:
        if self.mapped_buffers:
            return await anyio.to_thread.run_sync(mapped_buffer, size)
        return plain_buffer(size)

    async def _fill(
        self, readinto: Reader, number: int, size: int, buffer: Buffer, reserved: int
    ) -> FilledPart:
        n = await readinto(memoryview(buffer)[:size])
        if n == len(buffer):
            return FilledPart(number=number, body=buffer, buffer=buffer, reserved=reserved)
        # A short part (a stream's last) is sent from its buffer cut down to its size (no
        # copy: a copy made at once with the full buffer was memory outside the budget), and
        # the rest of its budget goes back at once.
        body = self._cut(buffer, n)
        kept = min(n, reserved)
        self.lease.release(reserved - kept)
        return FilledPart(number=number, body=body, buffer=body, reserved=kept)

    @staticmethod
    def _cut(buffer: Buffer, n: int) -> Buffer:
        """``buffer`` cut down to its first ``n`` bytes, in place: a mapping is remapped
        smaller (its other pages go back to the system), a bytearray shortened. botocore
        must get a buffer, not a bytes copy: it would turn bytes into a file object and
        read it on the event loop."""
        try:
            if isinstance(buffer, mmap.mmap):
                if n == 0:
                    return bytearray()
                buffer.resize(n)
            else:
                del buffer[n:]
        except (BufferError, OSError, SystemError, TypeError):  # still viewed, or no mremap
            return bytearray(memoryview(buffer)[:n])
        return buffer

    @property
    def wants_md5(self) -> bool:
        """Whether each write's MD5 is computed along with its checksum: for a store not
        known to verify checksums, where the ETag will be an MD5 to compare it with."""
        return md5_wanted(self.args, self.config.integrity, self.store.verifies)

    async def digest(self, body: Buffer | bytes) -> PartDigest:
        """The checksum (or MD5) of ``body``, and its MD5 too where ``wants_md5``: in a
        worker thread, unless it is small enough that hashing it costs the event loop less
        than the hand-off (``digests_inline``)."""
        algorithm, md5 = self.args.checksum_algorithm, self.wants_md5
        if digests_inline(None if md5 else algorithm, len(body)):
            return digest_part(body, algorithm, md5=md5)
        return await anyio.to_thread.run_sync(partial(digest_part, body, algorithm, md5=md5))

    def recycle(self, part: QueuedPart) -> None:
        """The part is done with: its buffer goes back to the pool for the next part, or, once
        the source is read or when another upload waits for budget, its bytes go back."""
        if isinstance(part, FilePart):
            return
        if self.reading_done or self.lease.contended:
            self.lease.release(part.reserved)
        else:
            self.pool.give(part.buffer, part.reserved)

    def done_reading(self) -> None:
        self.reading_done = True
        self.pool.clear(self.lease)

    def pace(self, amount: int) -> Callable[[], Awaitable[None]] | None:
        """What a write of ``amount`` bytes awaits before each attempt (the bandwidth cap)."""
        pacer = self.pacer
        if pacer is None:
            return None
        return lambda: pacer.take(amount)

    def emit(self, kind: EventKind, **details: object) -> None:
        if self.on_event is not None:
            event = UploadEvent(
                kind=kind,
                bucket=self.bucket,
                key=self.key,
                bytes_done=self.bytes_done,
                total=self.total,
                **details,  # type: ignore[arg-type]
            )
            self.on_event(event)

    def retried(self, part_number: int) -> Callable[[int, Failure], None]:
        def on_retry(attempt: int, failure: Failure) -> None:
            error = failure.code or failure.kind
            self.emit("retry", part_number=part_number, attempt=attempt + 1, error=error)

        return on_retry

    async def progress(self, amount: int, part_number: int) -> None:
        """``amount`` more bytes were acknowledged (part ``part_number`` is done)."""
        self.bytes_done += amount
        self.emit("part_done", part_number=part_number)
        if self.on_progress is None or amount == 0:
            return
        result = self.on_progress(amount)
        if inspect.isawaitable(result):
            await result
