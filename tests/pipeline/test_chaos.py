"""Seeded chaos: hundreds of uploads at once through the fault proxy, each meeting faults
drawn at random, each ending byte-identical or in one clean ``UploadError``, nothing left.

    ASYNCUP_CHAOS_SEED=N      replay a run (every failure message names its seed)
    ASYNCUP_CHAOS_UPLOADS=N   how many uploads per server (default 200)
    ASYNCUP_CHAOS_ONLY=i,j    only those uploads of the seed (each draws from its own RNG)

Theory of operation. Each upload draws a plan (``draw``): a size (one PutObject, or a
multipart upload of 1 to 3 parts), a source (bytes, path, file, stream), an Uploader (CRC32
checksums, or Content-MD5 and ETags; 4 attempts, or 1), and for each request slot --
Create, each part, Complete, PutObject -- the faults that its successive requests meet, in
order; the proxy serves them by key. ``predict`` replays the plan against the retry policy,
without I/O: a slot succeeds at its first clean request, fails on a fault S3 does not retry,
or runs out of attempts; a lost answer means the server did the work; a retried Complete
that fails asks HeadObject. Where the outcome is certain the prediction is exact (outcome;
the error's class, code and part; the requests sent); a cancellation at a random time, or a
machine so busy that a clean request timed out (the proxy sees its client gone: ``noisy``),
widens it to what timing can explain. Whatever the outcome: no multipart upload is left for
the key, and an object at the key is byte-identical, and there only where the outcome allows
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import pathlib
import random
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import pytest
from aiohttp import web
from asyncup_bench.tlscert import CertFiles
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

import asyncup
from asyncup._core.retry import CORRUPTION_CODES
from tests.conftest import MiB, expected_etag, make_client, random_bytes, read_object
from tests.faultproxy import FaultProxy

SEED = int(os.environ.get("ASYNCUP_CHAOS_SEED") or random.randrange(2**32))
UPLOADS = int(os.environ.get("ASYNCUP_CHAOS_UPLOADS") or 200)
ONLY = [int(i) for i in os.environ.get("ASYNCUP_CHAOS_ONLY", "").split(",") if i.strip()]

PART = 5 * MiB
THRESHOLD = 256 * 1024  # a 300 KiB object is a multipart upload of one part: cheap
ATTEMPTS = 4  # max_attempts of most uploads; the others have 1 (no retries)
READ_TIMEOUT = 2.0  # of the client for uploads that meet a stall; the others wait 10 s
STALL = READ_TIMEOUT + 0.5
AT_ONCE = 8
HANG = 40.0  # one upload's bound: the slowest plan takes about 10 s

CREATE, UPLOAD_PART, COMPLETE = "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"
PUT, HEAD, ABORT = "PutObject", "HeadObject", "AbortMultipartUpload"
Slot = tuple[str, int | None]  # (operation, part number)

# fault -> the S3 error code the caller sees when it is the last straw (None: no code).
RETRIED = {"503": "SlowDown", "500": "InternalError", "502": "502", "504": "504"}
RETRIED |= {"200err": "InternalError", "reset": None, "stall": None, "lost": None}
RETRIED |= {"noetag": None, "corrupt": "corruption", "gone-moto": "500"}
FATAL = {"400": "InvalidArgument", "403": "AccessDenied", "404": "NoSuchUpload"}
FATAL |= {"gone-seaweedfs": "NoSuchUpload"}
INTEGRITY = {"noetag", "corrupt"}  # running out of attempts on these is an IntegrityError

MENU: dict[str, dict[str, int]] = {  # fault -> weight, per operation
    CREATE: {"503": 4, "500": 2, "502": 1, "504": 1, "reset": 1, "stall": 1, "403": 1},
    UPLOAD_PART: {"503": 4, "500": 2, "502": 1, "504": 1, "reset": 3, "stall": 1}
    | {"noetag": 2, "lost": 2, "corrupt": 2, "400": 1, "403": 1, "404": 1, "aborted": 1},
    PUT: {"503": 4, "500": 2, "reset": 3, "stall": 1, "noetag": 2, "lost": 2, "corrupt": 2}
    | {"400": 1, "403": 1},
    COMPLETE: {"503": 3, "500": 2, "200err": 3, "reset": 2, "stall": 1, "lost": 3}
    | {"404": 1, "aborted": 1},
}


@dataclass
class Plan:
    index: int
    key: str
    size: int
    parts: int  # 0: a single PutObject
    source: str  # bytes | path | file | stream
    checksum: str | None  # CRC32, or None: Content-MD5 and ETags
    attempts: int  # max_attempts
    faults: dict[Slot, list[str]]
    change: tuple[str, int] | None = None  # the file shrinks or grows at this offset
    cancel: str | None = None  # native (task.cancel()) or anyio (CancelScope.cancel())
    cancel_after: float | None = None  # at a random time, rather than at a request
    hook_pause: float = 0.0

    def __str__(self) -> str:
        shape = "PutObject" if not self.parts else f"{self.parts} part(s)"
        faults = {f"{op}{'' if n is None else n}": seq for (op, n), seq in self.faults.items()}
        text = f"#{self.index}: {self.size} B, {shape}, {self.source}, {self.checksum}"
        text += f", {self.attempts} attempt(s)"
        if self.change:
            text += f", file {self.change[0]}s at {self.change[1]}"
        if self.cancel:
            when = f" after {self.cancel_after:.3f}s" if self.cancel_after is not None else ""
            text += f", {self.cancel} cancel{when}"
        return f"{text}, faults {faults}"

    @property
    def impatient(self) -> bool:
        """Through the client with the short read timeout (a stall is drawn)."""
        return any("stall" in seq for seq in self.faults.values())


def draw(index: int, server: str, scheme: str = "http") -> Plan:
    """The plan of upload ``index``: a function of the seed, the index and the server."""
    rng = random.Random(f"{SEED}:{index}")
    parts = rng.choices([0, 1, 2, 3], weights=[30, 35, 25, 10])[0]
    size = [
        0 if rng.random() < 0.03 else rng.randrange(1, THRESHOLD),
        rng.randrange(THRESHOLD, 2 * MiB),
        PART + rng.randrange(1, MiB),
        2 * PART + rng.randrange(1, MiB // 2),
    ][parts]
    checksum = rng.choice(["CRC32", None])
    attempts = 1 if rng.random() < 0.15 else ATTEMPTS
    source = rng.choice(["bytes", "path", "file", "stream"])
    plan = Plan(index, f"chaos/{SEED}/{index}", size, parts, source, checksum, attempts, {})
    slots: list[Slot] = [(PUT, None)] if not parts else [(CREATE, None), (COMPLETE, None)]
    slots += [(UPLOAD_PART, n) for n in range(1, parts + 1)]
    for op, number in slots:
        if rng.random() < 0.3:
            menu = dict(MENU[op])
            # moto keeps a corrupted body without a word; only an MD5 ETag gives it away,
            # and a PutObject would be stored corrupt before the retry.
            if (server == "moto" and (checksum is not None or op == PUT)) or size == 0:
                menu.pop("corrupt", None)  # and an empty body has no byte to flip
            # Over TLS SeaweedFS takes a file's CRC32 parts with a trailer, and a trailer it
            # refuses sends the part again with a header, with attempts of its own: whether
            # a part goes with one depends on the parts before it, so no corruption there
            # (tests/pipeline/test_trailer_faults.py has those).
            trails = scheme == "https" and server == "seaweedfs" and checksum == "CRC32"
            if trails and source == "path" and op == UPLOAD_PART:
                menu.pop("corrupt", None)
            length = rng.choices([1, 2, 3, ATTEMPTS, ATTEMPTS + 1], weights=[55, 22, 10, 8, 5])
            plan.faults[op, number] = rng.choices(list(menu), list(menu.values()), k=length[0])
    _at_most_two_stalls(plan)
    complete = plan.faults.get((COMPLETE, None), [])
    if "lost" in complete:
        # After the upload completed, someone else's abort means nothing: keep it simple.
        complete[:] = ["503" if f == "aborted" else f for f in complete]
        if rng.random() < 0.5:  # the retry finds no upload, as S3 may answer: ask the object
            complete.append("404")
        if rng.random() < 0.4:
            plan.faults[HEAD, None] = rng.choice([["503"], ["503"] * ATTEMPTS, ["alien"]])
    if parts and rng.random() < 0.15:
        # three rounds of Abort, each of ``attempts`` requests: this many fail, it still ends
        plan.faults[ABORT, None] = ["503"] * rng.randint(1, 3 * attempts - 1)
    event = rng.random()
    if event < 0.12:  # cancelled when a chosen request reaches the proxy
        plan.cancel = rng.choice(["native", "anyio"])
        plan.hook_pause = rng.choice([0.0, rng.uniform(0, 0.05)])
        _within_budget(plan)
        target = rng.choice(slots)
        plan.faults.setdefault(target, []).append("cancel")
    elif event < 0.18:  # cancelled at a random time, wherever the upload is
        plan.cancel = rng.choice(["native", "anyio"])
        plan.cancel_after = rng.uniform(0, 0.6)
    elif event < 0.26 and size > 0:  # the file changes while it is read
        plan.source = "file"
        plan.change = (rng.choice(["shrink", "grow"]), rng.randrange(size))
        _within_budget(plan)
    return plan


def _at_most_two_stalls(plan: Plan) -> None:
    """Each stall costs READ_TIMEOUT seconds: two per upload at most."""
    stalls = 0
    for seq in plan.faults.values():
        for i, fault in enumerate(seq):
            stalls += fault == "stall"
            if fault == "stall" and stalls > 2:
                seq[i] = "503"


def _within_budget(plan: Plan) -> None:
    """Keep only faults retried within the attempt budget, so that the cancellation or the
    source change drawn is what ends the upload, whatever the timing."""
    for slot, seq in list(plan.faults.items()):
        if slot[0] not in (ABORT, HEAD):
            plan.faults[slot] = [f for f in seq if f in RETRIED][: max(0, plan.attempts - 2)]


@dataclass(frozen=True)
class Ending:
    """How one request slot ends, replayed against the retry policy."""

    end: str  # ok | failed | cancel
    requests: int  # HTTP requests sent (the proxy counts them)
    fault: str | None = None  # the last straw
    landed: bool = False  # some request reached the server and did the work
    tries: int = 1  # asyncup's attempts (aiohttp's own resends are within one)

    @property
    def asks(self) -> bool:
        """Whether asyncup, the write failed for good, asks the object if it landed: after
        a retry, or a last attempt that broke off or was answered without an ETag."""
        return self.tries > 1 or self.fault in ("reset", "stall", "lost", "noetag")


def replay(seq: list[str], server: str, op: str, attempts: int) -> Ending:
    """Replay one slot's faults, request by request. aiohttp itself sends a PUT (UploadPart,
    PutObject) again at once when its connection breaks (its retry_persistent_connection),
    within the same attempt of asyncup's: a reset or a lost answer there costs no attempt
    if the second request goes through."""
    faults = iter(seq)
    requests = 0
    gone = False  # someone else aborted the upload: the server itself refuses from now on
    landed = False
    fault: str | None = None
    for attempt in range(1, attempts + 1):
        for resend in (False, True):
            requests += 1
            fault = next(faults, None)
            if fault == "cancel":
                return Ending("cancel", requests, landed=landed, tries=attempt)
            if fault == "aborted":
                gone, fault = True, None
            if fault is None and gone:
                fault = f"gone-{server}"
            landed |= fault in (None, "lost") or (fault == "noetag" and op == PUT)
            if resend or op not in (UPLOAD_PART, PUT) or fault not in ("reset", "lost"):
                break
        if fault is None:
            return Ending("ok", requests, landed=True, tries=attempt)
        if fault in FATAL:
            return Ending("failed", requests, fault, landed, tries=attempt)
    return Ending("failed", requests, fault, landed, tries=attempts)


ANY_PART = -1
TIMEOUTS = (ReadTimeoutError, ConnectTimeoutError, TimeoutError)
Error = tuple[type[asyncup.UploadError], str | None, int | None]  # class, code, part


@dataclass
class Expect:
    outcomes: set[str]  # ok | error | cancelled
    errors: set[Error] = field(default_factory=set)
    created: bool = True  # an error carries an upload id, and the upload was aborted
    may_exist: bool = False  # the error says an object may exist at the key
    object_left: bool = False  # after an error or a cancellation an object may be there
    requests: Counter[str] | None = None  # exactly the requests of a success, per operation
    parts_failed: bool = False  # so no Complete was sent


def error_of(ending: Ending, part: int | None, server: str) -> Error:
    assert ending.fault is not None
    kind = asyncup.IntegrityError if ending.fault in INTEGRITY else asyncup.UploadError
    code = (RETRIED | FATAL)[ending.fault]
    if ending.fault == "corrupt" and server == "moto":
        code = None  # moto takes the body; its ETag, the MD5 of what it got, gives it away
    return kind, code, part


def predict(plan: Plan, server: str) -> Expect:
    if plan.cancel_after is not None:
        timeless = predict(replace(plan, cancel=None, cancel_after=None), server)
        timeless.outcomes.add("cancelled")
        timeless.object_left, timeless.requests = True, None
        return timeless

    def slot(op: str, number: int | None = None) -> Ending:
        return replay(plan.faults.get((op, number), []), server, op, plan.attempts)

    if not plan.parts:
        put = slot(PUT)
        if put.end == "cancel":  # the PUT goes on after the cancellation: it may land
            return Expect({"cancelled"}, object_left=True)
        if plan.change:
            return Expect({"error"}, {(asyncup.SourceChangedError, None, None)}, created=False)
        if put.end == "failed":
            error = {error_of(put, None, server)}
            if put.asks and put.landed:  # HeadObject finds the object, and it is ours
                return Expect({"ok"}, requests=Counter({PUT: put.requests, HEAD: 1}))
            if put.asks:
                return Expect({"error"}, error, created=False, may_exist=True)
            # A PUT whose connection broke after the server wrote it, sent again at once by
            # aiohttp itself and then refused (4xx): asyncup saw one attempt, and a refusal.
            return Expect({"error"}, error, created=False, object_left=put.landed)
        return Expect({"ok"}, requests=Counter({PUT: put.requests}))
    create = slot(CREATE)
    if create.end == "cancel":
        return Expect({"cancelled"})
    if create.end == "failed":
        return Expect({"error"}, {error_of(create, None, server)}, created=False)
    parts = {n: slot(UPLOAD_PART, n) for n in range(1, plan.parts + 1)}
    if any(p.end == "cancel" for p in parts.values()):
        return Expect({"cancelled"})
    if plan.change:
        how, offset = plan.change
        number = offset // PART + 1 if how == "shrink" else None
        return Expect({"error"}, {(asyncup.SourceChangedError, None, number)})
    errors = {error_of(p, n, server) for n, p in parts.items() if p.end == "failed"}
    if errors:
        if any("aborted" in plan.faults.get((UPLOAD_PART, n), []) for n in parts):
            # every part sent after that meets the upload gone, on moto as a 500
            errors.add((asyncup.UploadError, (RETRIED | FATAL)[f"gone-{server}"], ANY_PART))
        return Expect({"error"}, errors, parts_failed=True)
    sent = Counter({CREATE: create.requests, UPLOAD_PART: sum(p.requests for p in parts.values())})
    complete = slot(COMPLETE)
    sent[COMPLETE] = complete.requests
    if complete.end == "cancel":
        return Expect({"cancelled"}, object_left=True)
    if complete.end == "ok":
        return Expect({"ok"}, requests=sent)
    error = {error_of(complete, None, server)}
    if not complete.asks:  # refused at once, never retried: nothing to ask
        return Expect({"error"}, error)
    # HeadObject says whether an attempt landed, its answer lost.
    head = plan.faults.get((HEAD, None), [])
    if complete.landed and "alien" not in head and len(head) < plan.attempts:
        sent[HEAD] = len(head) + 1
        return Expect({"ok"}, requests=sent)
    return Expect({"error"}, error, may_exist=True, object_left=complete.landed)


class ChangingFile(io.FileIO):
    """A file on disk truncated, or appended to, while asyncup reads it (rewritten in place,
    rotated): the read that crosses the offset does it first."""

    def __init__(self, path: pathlib.Path, change: tuple[str, int] | None) -> None:
        super().__init__(path, "rb")
        self.change = change

    def readinto(self, buffer: Any) -> int | None:
        if self.change is not None and self.tell() + len(buffer) > self.change[1]:
            how, offset = self.change
            self.change = None
            if how == "shrink":
                os.truncate(self.name, offset)
            else:
                with open(self.name, "ab") as more:
                    more.write(b"appended")
        return super().readinto(buffer)


async def chunks(data: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    position = 0
    while position < len(data):
        n = rng.choice([1000, 64 * 1024, MiB, 3 * MiB])
        yield data[position : position + n]
        position += n


@dataclass
class Outcome:
    kind: str  # ok | error | cancelled | hang | other (anything else escaped)
    result: asyncup.UploadResult | None = None
    error: BaseException | None = None
    retries: list[tuple[int | None, str | None]] = field(default_factory=list)
    """(part, failure) of each retry asyncup reported (parts and PutObject: part 1)."""

    def __str__(self) -> str:
        text = self.kind
        if self.error is not None:
            text += f": {type(self.error).__name__}: {self.error}"
        return text + (f"; retried after {self.retries}" if self.retries else "")


@dataclass
class Control:
    """Cancels one upload, natively (as asyncio.timeout does) or through anyio."""

    how: str | None
    task: asyncio.Task[Outcome] | None = None
    scope: anyio.CancelScope | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.how == "native" and self.task is not None:
            self.task.cancel()
        elif self.scope is not None:
            self.scope.cancel()


class Chaos:
    def __init__(self, server: str, proxy: FaultProxy, s3: Any, bucket: str, tmp: pathlib.Path):
        self.server, self.proxy, self.s3, self.bucket, self.tmp = server, proxy, s3, bucket, tmp
        self.uploaders: dict[tuple[str | None, int, bool], asyncup.Uploader] = {}
        self.violations: list[str] = []
        self.tally: Counter[str] = Counter()
        self.left: Counter[str] = Counter()  # objects found at the key after no success
        self.unreported: list[int] = []  # failed PutObjects that left an object, unsaid
        """(aiohttp sent the PUT again by itself, unseen by asyncup, and it was refused)"""

    async def run(self, plan: Plan) -> None:
        data = random_bytes(plan.size, seed=SEED * 100_000 + plan.index)
        expect = predict(plan, self.server)
        control = Control(plan.cancel)
        self._arm(plan, control)
        with contextlib.ExitStack() as stack:
            source = self._source(plan, data, stack)
            outcome = await self._attempt(plan, source, control)
        self.proxy.rules[:] = [rule for rule in self.proxy.rules if rule.key != plan.key]
        # A clean request whose client had gone: a timeout on a machine too busy, unless the
        # upload itself stopped its requests in flight (a part failed, the source changed).
        late = any(key == plan.key for key, _ in self.proxy.late)
        noisy = late and not (plan.cancel or plan.change or expect.parts_failed)
        noisy |= _timed_out_unasked(plan, outcome)
        problems = await self._check(plan, data, expect, outcome, noisy)
        self.tally[_label(outcome, noisy)] += 1
        if problems:
            self.violations.append(
                f"upload {plan}\n  ended {outcome}\n  - " + "\n  - ".join(problems)
            )

    def _arm(self, plan: Plan, control: Control) -> None:
        for (op, number), seq in plan.faults.items():
            for fault in seq:
                hook = None
                if fault == "cancel":
                    hook = self._cancel_hook(plan, control)
                elif fault == "aborted":
                    hook = self._abort_hook(plan)
                self.proxy.fail(
                    op,
                    "hook" if hook else fault,
                    part=number,
                    stall=STALL,
                    key=plan.key,
                    hook=hook,
                )

    def _cancel_hook(
        self, plan: Plan, control: Control
    ) -> Callable[[web.Request], Awaitable[None]]:
        async def cancel(request: web.Request) -> None:
            control.cancel()
            await asyncio.sleep(plan.hook_pause)  # then the request goes on to the server

        return cancel

    def _abort_hook(self, plan: Plan) -> Callable[[web.Request], Awaitable[None]]:
        async def abort_behind_its_back(request: web.Request) -> None:
            upload_id = request.query["uploadId"]
            with contextlib.suppress(ClientError):
                await self.s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=plan.key, UploadId=upload_id
                )

        return abort_behind_its_back

    def _source(self, plan: Plan, data: bytes, stack: contextlib.ExitStack) -> object:
        if plan.source == "bytes":
            return data
        if plan.source == "stream":
            return chunks(data, random.Random(f"{SEED}:{plan.index}:chunks"))
        path = self.tmp / f"{plan.index}.bin"
        path.write_bytes(data)
        stack.callback(path.unlink)
        if plan.source == "path":
            return path
        return stack.enter_context(ChangingFile(path, plan.change))

    async def _attempt(self, plan: Plan, source: object, control: Control) -> Outcome:
        uploader = self.uploaders[plan.checksum, plan.attempts, plan.impatient]
        retries: list[tuple[int | None, str | None]] = []

        def note(event: asyncup.UploadEvent) -> None:
            if event.kind == "retry":
                retries.append((event.part_number, event.error))

        async def upload() -> Outcome:
            try:
                with anyio.fail_after(HANG), anyio.CancelScope() as scope:
                    control.scope = scope
                    if control.cancelled:
                        scope.cancel()
                    try:
                        result = await uploader.upload(source, self.bucket, plan.key, on_event=note)
                    except Exception as exc:
                        return Outcome("error", error=exc, retries=retries)
                    return Outcome("ok", result=result, retries=retries)
                return Outcome("cancelled", retries=retries)
            except TimeoutError:
                return Outcome("hang", error=TimeoutError(f"still running after {HANG} s"))

        task = control.task = asyncio.create_task(upload())
        timer = None
        if plan.cancel_after is not None:
            timer = asyncio.get_running_loop().call_later(plan.cancel_after, control.cancel)
        try:
            await asyncio.wait({task}, timeout=HANG + 20)
        finally:
            if timer is not None:
                timer.cancel()
        if not task.done():  # not even the deadline ended it: a shield that never ends
            task.cancel()
            await asyncio.wait({task}, timeout=10)
            return Outcome("hang", error=TimeoutError("the deadline did not end it"))
        if task.cancelled():
            return Outcome("cancelled")
        exc = task.exception()
        return Outcome("other", error=exc) if exc is not None else task.result()

    async def _check(
        self, plan: Plan, data: bytes, expect: Expect, outcome: Outcome, noisy: bool
    ) -> list[str]:
        problems: list[str] = []
        allowed = expect.outcomes | ({"ok", "error"} if noisy else set())
        if outcome.kind not in allowed:
            problems.append(f"expected {' or '.join(sorted(allowed))}")
            if outcome.error is not None and outcome.kind in ("other", "error"):
                problems.append("".join(traceback.format_exception(outcome.error)[-6:]))
        listing = await self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=plan.key)
        for left in listing.get("Uploads", []):
            if left["Key"] == plan.key:
                problems.append(f"multipart upload {left['UploadId']} left behind")
                await self.s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=plan.key, UploadId=left["UploadId"]
                )
        etag = expected_etag(data, PART if plan.parts else None)
        problems += await self._check_object(plan, data, etag, expect, outcome, noisy)
        if outcome.kind == "ok":
            assert outcome.result is not None
            problems += self._check_result(plan, etag, outcome.result, expect, noisy)
        elif outcome.kind == "error":
            assert isinstance(outcome.error, Exception)
            problems += self._check_error(plan, outcome.error, expect, noisy)
        return problems

    async def _check_object(
        self, plan: Plan, data: bytes, etag: str, expect: Expect, outcome: Outcome, noisy: bool
    ) -> list[str]:
        try:
            head = await self.s3.head_object(Bucket=self.bucket, Key=plan.key)
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 404:
                raise
            return (
                ["it succeeded, but there is no object at the key"] if outcome.kind == "ok" else []
            )
        problems = []
        stored = await read_object(self.s3, self.bucket, plan.key)
        await self.s3.delete_object(Bucket=self.bucket, Key=plan.key)
        if outcome.kind != "ok":
            self.left[_label(outcome, noisy)] += 1
            if outcome.kind == "error" and not plan.parts and "may exist" not in str(outcome):
                self.unreported.append(plan.index)
            if not (expect.object_left or noisy):
                problems.append("an object was left at the key")
        if stored != data:
            problems.append(f"the object at the key is not the source ({len(stored)} B stored)")
        if (head["ETag"], head["ContentLength"]) != (etag, len(data)):
            problems.append(f"object ETag/size {head['ETag']}/{head['ContentLength']}, not {etag}")
        return problems

    def _check_result(
        self, plan: Plan, etag: str, result: asyncup.UploadResult, expect: Expect, noisy: bool
    ) -> list[str]:
        problems = []
        shape = (result.size, result.parts, result.upload_id is None, result.etag)
        if shape != (plan.size, max(plan.parts, 1), not plan.parts, etag):
            problems.append(f"result {result} does not describe the object")
        if plan.checksum is None and not result.etag_verified:
            problems.append("the ETag was not verified")
        if plan.checksum and self.server == "seaweedfs" and not result.checksum_verified:
            problems.append("the checksum was not verified")
        if expect.requests is not None and not noisy:
            sent = {op: self.proxy.key_counts[plan.key, op] for op in (*expect.requests, ABORT)}
            if sent != {ABORT: 0, **expect.requests}:
                problems.append(f"requests sent {sent}, expected {dict(expect.requests)}")
        return problems

    def _check_error(self, plan: Plan, error: Exception, expect: Expect, noisy: bool) -> list[str]:
        if not isinstance(error, asyncup.UploadError):
            return [f"{type(error).__name__} is not an UploadError"]
        problems = []
        if error.__cause__ is None or isinstance(error.__cause__, BaseExceptionGroup):
            problems.append(f"its cause is {error.__cause__!r}")
        if (error.bucket, error.key) != (self.bucket, plan.key):
            problems.append(f"it names s3://{error.bucket}/{error.key}")
        if error.abort_succeeded is False:
            problems.append("the abort failed")
        if noisy:
            return problems
        code = "corruption" if error.code in CORRUPTION_CODES else error.code
        seen = (type(error), code, error.part_number)
        if seen not in expect.errors and (*seen[:2], ANY_PART) not in expect.errors:
            wanted = ", ".join(f"{k.__name__}({c}, part {p})" for k, c, p in expect.errors)
            problems.append(f"expected one of: {wanted}")
        created = (bool(error.upload_id), error.abort_succeeded)
        if created != ((True, True) if expect.created else (False, None)):
            problems.append(f"upload_id {error.upload_id}, abort_succeeded {error.abort_succeeded}")
        if ("an object may exist" in str(error)) != expect.may_exist:
            problems.append(f"the message {'omits' if expect.may_exist else 'says'} 'may exist'")
        if expect.parts_failed and self.proxy.key_counts[plan.key, COMPLETE]:
            problems.append("Complete was sent after a part failed")
        return problems


def _timed_out_unasked(plan: Plan, outcome: Outcome) -> bool:
    """Whether requests timed out more often than stalls were drawn for them: a clean
    request that outlasted READ_TIMEOUT, on a machine too busy."""
    timeouts = Counter(part for part, error in outcome.retries if error == "timeout")
    error = outcome.error
    if isinstance(error, asyncup.UploadError) and isinstance(error.__cause__, TIMEOUTS):
        timeouts[error.part_number or (None if plan.parts else 1)] += 1
    for part, seen in timeouts.items():
        if not plan.parts:
            slots = [(PUT, None)]
        elif part is None:  # Create or Complete: their retries send no events
            slots = [(CREATE, None), (COMPLETE, None)]
        else:
            slots = [(UPLOAD_PART, part)]
        if seen > sum(plan.faults.get(slot, []).count("stall") for slot in slots):
            return True
    return False


def _label(outcome: Outcome, noisy: bool) -> str:
    label = outcome.kind
    if outcome.kind == "error":
        label = type(outcome.error).__name__
        if "an object may exist" in str(outcome.error):
            label += " (object may exist)"
    return label + (" (noisy)" if noisy else "")


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{label} {n}" for label, n in sorted(counter.items()))


def transfer_config(checksum: str | None, attempts: int) -> asyncup.TransferConfig:
    return asyncup.TransferConfig(
        part_size=PART,
        multipart_threshold=THRESHOLD,
        concurrency=4,
        max_attempts=attempts,
        checksum_algorithm=checksum,
        retry_base_delay=0.01,
        retry_max_delay=0.05,
        abort_timeout=10,
    )


async def open_uploaders(
    chaos: Chaos, url: str, stack: contextlib.AsyncExitStack, wire: str, verify: str | None
) -> None:
    """An Uploader per (checksum, max_attempts, impatient): two clients through the proxy,
    one whose read timeout a stall outlasts, and one patient enough (10 s) that a busy
    machine does not time a clean request out."""
    for impatient in (False, True):
        client = await stack.enter_async_context(
            await make_client(
                url,
                wire=wire,
                verify=verify,
                read_timeout=READ_TIMEOUT if impatient else 10,
                request_checksum_calculation="when_required",
                max_pool_connections=64,
            )
        )
        for checksum, attempts in itertools.product(("CRC32", None), (ATTEMPTS, 1)):
            uploader = asyncup.Uploader(client=client, config=transfer_config(checksum, attempts))
            key = (checksum, attempts, impatient)
            chaos.uploaders[key] = await stack.enter_async_context(uploader)


def _leaked(baseline: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Tasks started since ``baseline``, but the proxy's own (its server's connections)."""
    leaked = []
    for task in asyncio.all_tasks() - baseline:
        code = getattr(task.get_coro(), "cr_code", None)
        if code is None or "aiohttp/web_" not in code.co_filename:
            leaked.append(task)
    return leaked


@pytest.mark.timeout(max(60, UPLOADS // 2))
@pytest.mark.parametrize(
    ("wire", "scheme"), [("aiohttp", "http"), ("threads", "http"), ("threads", "https")]
)
async def test_chaos(
    server: str,
    endpoint: str,
    bucket: str,
    s3: Any,
    tmp_path: pathlib.Path,
    request: pytest.FixtureRequest,
    wire: str,
    scheme: str,
    proxy_certificates: CertFiles,
) -> None:
    """Over HTTPS the proxy serves TLS (the server behind it HTTP) to an Uploader's own
    client, whose parts go as they go to S3 over TLS: a file's read once with its checksum
    after it (a trailer) where the store verifies trailers."""
    https = scheme == "https"
    certs = proxy_certificates
    tls, verify = ((certs.cert, certs.key), certs.ca) if https else (None, None)
    plans = [draw(i, server, scheme) for i in (ONLY or range(UPLOADS))]
    replay_with = f"ASYNCUP_CHAOS_SEED={SEED} ASYNCUP_CHAOS_UPLOADS={UPLOADS}"
    where = f"({server}, {wire}, {scheme})"
    request.node.add_report_section("call", "chaos", f"{replay_with} {where}")
    started = time.monotonic()
    async with FaultProxy(endpoint, tls=tls) as proxy:
        chaos = Chaos(server, proxy, s3, bucket, tmp_path)
        async with contextlib.AsyncExitStack() as stack:
            await open_uploaders(chaos, proxy.url, stack, wire, verify)
            baseline = set(asyncio.all_tasks())
            pending = iter(plans)

            async def worker() -> None:
                for plan in pending:
                    try:
                        await chaos.run(plan)
                    except Exception:
                        chaos.violations.append(f"upload {plan}: {traceback.format_exc()}")

            async with anyio.create_task_group() as group:
                for _ in range(AT_ONCE):
                    group.start_soon(worker)
            leaked = _leaked(baseline)
            for _ in range(50):  # a task may still be finishing its last step
                if not leaked:
                    break
                await asyncio.sleep(0.1)
                leaked = _leaked(baseline)
    seconds = time.monotonic() - started
    trailed = sum(op == UPLOAD_PART and "x-amz-trailer" in head for op, head in proxy.requests)
    summary = (
        f"{replay_with} on {where}: {len(plans)} uploads in {seconds:.1f} s:"
        f" {_counts(chaos.tally)}; an object left after {_counts(chaos.left) or 'none'};"
        f" {proxy.faults_injected.total()} faults served ({_counts(proxy.faults_injected)});"
        f" failed PutObjects that left their object unsaid (aiohttp's own resend):"
        f" {chaos.unreported}; parts sent with a trailer: {trailed}"
    )
    request.node.add_report_section("call", "chaos", summary)
    print(summary)
    coroutines = [task.get_coro() for task in leaked[:5]]
    assert not leaked, f"{replay_with}: {len(leaked)} tasks left running: {coroutines}..."
    assert not chaos.violations, (
        f"{replay_with} on {where}: {len(chaos.violations)} of {len(plans)} uploads broke"
        " the rules (replay one with ASYNCUP_CHAOS_ONLY=<index>)\n"
        + "\n".join(chaos.violations[:20])
    )
    # SeaweedFS verifies trailers: its parts of 1 MiB or more from files go with one. Moto
    # verifies no checksum: none do.
    if https and server == "moto":
        assert trailed == 0
    elif https and not ONLY and UPLOADS >= 100:  # (a few plans may have no part to trail)
        assert trailed > 0
