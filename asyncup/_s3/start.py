"""A fast start (issue 17): a command's first writes without making botocore's client.

In a new process, making an aiobotocore client costs ~300 ms (aiobotocore, aiohttp and
botocore's client side, imported; the client made): most of an ``asyncup cp`` of one small
file. What the lean path needs of the client is little: credentials, each bucket's endpoint
and signing region, the User-Agent, the timeouts and the answers' header members. Here

- the credentials are the environment's keys, read as botocore's first provider reads them
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, a session token; keys with an
  expiration are refreshed by botocore, so they make no fast start);
- the rest is what an earlier process's client said (a ``Record``, in the user's cache
  directory), under a name that stands for everything botocore reads to say it: asyncup's
  and botocore's versions, Python's and the system's, the Uploader's endpoint, region, TLS
  setting and concurrency, every ``AWS_`` environment variable but the secrets, the proxy
  variables, and the AWS config file's size and time. No secret is written.

A write to a bucket the record knows goes out on connections of its own (``pool``), built by
``wire`` and signed by awscrt as the lean path does. Anything else opens the client then,
and that request and all after it go through it as without a fast start: a bucket the record
does not know, an endpoint over TLS, a body sent from a thread (``THRESHOLD`` or more), a
CompleteMultipartUpload, a request ``wire`` cannot say, an answer botocore must handle
(another region, the clock, an expired token), and an error (raised as the client's own
exception class). When the Uploader closes, what its client learnt is recorded for the next.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import anyio
import anyio.to_thread

from .._core import wire
from . import cachedir, lean
from .lean import Endpoint, Response
from .payloads import THRESHOLD, PartPayload
from .pool import Pool, request_head

log = logging.getLogger("asyncup")

_FORMAT = 1  # what a record holds, and how
_OPERATIONS = {
    "put_object": "PutObject",
    "upload_part": "UploadPart",
    "create_multipart_upload": "CreateMultipartUpload",
    "abort_multipart_upload": "AbortMultipartUpload",
}
_BUCKETS = 256  # endpoints a record keeps (the latest learnt)
_SECRETS = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
)
_PROXIES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"})


@dataclass(slots=True)
class Record:
    """What a client said that a fast start needs (``of`` reads it off an open client)."""

    agent: str
    endpoint_url: str | None
    connect_timeout: float | None
    read_timeout: float | None
    keep: int
    idle_for: float
    outputs: dict[str, dict[str, tuple[str, str]]]
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def frozen(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "agent": self.agent,
            "endpoint_url": self.endpoint_url,
            "timeouts": (self.connect_timeout, self.read_timeout),
            "keep": self.keep,
            "idle_for": self.idle_for,
            "outputs": self.outputs,
            "endpoints": {
                bucket: (at.scheme, at.host, at.bucket_path, at.region)
                for bucket, at in self.endpoints.items()
            },
        }

    @classmethod
    def thawed(cls, data: Mapping[str, Any]) -> Record | None:
        """The record ``frozen`` kept, or None for anything else."""
        try:
            if data["format"] != _FORMAT:
                return None
            connect, read = data["timeouts"]
            return cls(
                agent=str(data["agent"]),
                endpoint_url=data["endpoint_url"],
                connect_timeout=connect,
                read_timeout=read,
                keep=int(data["keep"]),
                idle_for=float(data["idle_for"]),
                outputs={
                    name: {header: (member, kind) for header, (member, kind) in members.items()}
                    for name, members in data["outputs"].items()
                },
                endpoints={
                    bucket: Endpoint(*map(str, fields))
                    for bucket, fields in data["endpoints"].items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    @classmethod
    def of(cls, client: Any) -> Record | None:
        """What ``client`` (one asyncup made, lean) says; None when it says what a fast
        start cannot repeat (no fixed User-Agent, no lean path, another HTTP session)."""
        path = lean.of(client)
        agent = client.meta.config.user_agent
        session = client._endpoint.http_session
        route = getattr(session, "small_route", None)  # ``threaded``'s
        if path is None or not agent or route is None:
            return None
        model = client.meta.service_model
        endpoints = {
            bucket: at
            for bucket, at in path.known().items()
            if route(at.scheme, at.host) is not None  # no proxy, nothing of aiohttp's
        }
        return cls(
            agent=agent,
            endpoint_url=client.meta.endpoint_url,
            connect_timeout=session._timeout.sock_connect,
            read_timeout=session._timeout.sock_read,
            keep=session._max_pool_connections,
            idle_for=session._idle_for,
            outputs={
                name: lean.members_by_header(model.operation_model(model_name))
                for name, model_name in _OPERATIONS.items()
            },
            endpoints=endpoints,
        )


def environment_keys() -> tuple[str, str, str | None] | None:
    """The keys botocore's first provider would find in the environment, if they are static:
    (access key, secret key, token)."""
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret or os.environ.get("AWS_CREDENTIAL_EXPIRATION"):
        return None
    token = os.environ.get("AWS_SECURITY_TOKEN") or os.environ.get("AWS_SESSION_TOKEN")
    return access, secret, token or None


def record_path(
    endpoint_url: str | None, region_name: str | None, verify: object, concurrency: int
) -> str | None:
    """Where the record for an Uploader made with these settings, in this environment, is
    kept; None when there is no cache directory."""
    import botocore  # the package alone: its version

    config = os.path.expanduser(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config")
    try:
        stat = os.stat(config)
        config_file = f"{config} {stat.st_size} {stat.st_mtime_ns} {stat.st_ino}"
    except OSError:
        config_file = f"{config} none"
    environment = sorted(
        (name, value)
        for name, value in os.environ.items()
        if (name.startswith("AWS_") and name not in _SECRETS) or name.upper() in _PROXIES
    )
    about = "\0".join(
        map(
            str,
            (
                _FORMAT,
                _installed(),
                botocore.__version__,
                sys.version,
                os.uname().release,
                endpoint_url,
                region_name,
                verify,
                concurrency,
                config_file,
                environment,
            ),
        )
    )
    return cachedir.entry("start", about, ".marshal")


def _installed() -> str:
    """asyncup as installed: this module's and ``client``'s files (which make the User-Agent,
    with asyncup's version), as a new version or a change rewrites them. (Its version from
    the package's metadata costs ~30 ms to read.)"""
    here = os.path.dirname(__file__)
    stats = [os.stat(os.path.join(here, name)) for name in ("start.py", "client.py")]
    return " ".join(f"{stat.st_size}:{stat.st_mtime_ns}" for stat in stats)


class Start:
    """One Uploader's fast start: the record it found, and what its client learnt."""

    def __init__(self, path: str, record: Record | None) -> None:
        self._path = path
        self._record = record

    @classmethod
    async def look(
        cls, endpoint_url: str | None, region_name: str | None, verify: object, concurrency: int
    ) -> Start | None:
        """The record for these settings (one trip to a thread); None without a place to
        keep one."""

        def find() -> Start | None:
            path = record_path(endpoint_url, region_name, verify, concurrency)
            if path is None:
                return None
            data = cachedir.read(path)
            return cls(path, Record.thawed(data) if data is not None else None)

        return await anyio.to_thread.run_sync(find)

    def fast(self, opening: Callable[[], Awaitable[Any]]) -> Fast | None:
        """The fast path, if the record and the environment allow one; ``opening`` opens the
        client when it is needed."""
        keys = environment_keys()
        if self._record is None or not self._record.endpoints or keys is None:
            return None
        return Fast(self._record, keys, opening)

    async def remember(self, client: Any) -> None:
        """Record what ``client`` learnt (if anything new), for the next process."""
        if client is None:
            return
        record = Record.of(client)
        if record is None:
            return
        old = self._record
        if old is not None and _but_endpoints(old) == _but_endpoints(record):
            if record.endpoints.items() <= old.endpoints.items():
                return  # nothing new
            record.endpoints = {**old.endpoints, **record.endpoints}
        while len(record.endpoints) > _BUCKETS:
            del record.endpoints[next(iter(record.endpoints))]  # the oldest learnt
        self._record = record
        await anyio.to_thread.run_sync(cachedir.write, self._path, record.frozen())


class Fast:
    """The lean path before there is a client (see the module's docstring)."""

    def __init__(
        self,
        record: Record,
        keys: tuple[str, str, str | None],
        opening: Callable[[], Awaitable[Any]],
    ) -> None:
        self.client: Any = None
        self.endpoint_url = record.endpoint_url
        self._record = record
        self._keys = keys
        self._opening = opening
        self._opened = anyio.Lock()
        self._pool = Pool(
            connect_timeout=record.connect_timeout,
            read_timeout=record.read_timeout,
            keep=record.keep,
            idle_for=record.idle_for,
        )
        self._said: set[str] = set()

    def method(self, operation: str) -> Callable[..., Awaitable[Response]]:
        async def call(**params: Any) -> Response:
            return await self.call(operation, params)

        return call

    async def call(self, operation: str, params: Mapping[str, Any]) -> Response:
        if self.client is not None:
            return await self._through_client(operation, params, None)
        bucket = params.get("Bucket", "")
        endpoint = self._record.endpoints.get(bucket)
        if operation not in _OPERATIONS:
            return await self._through_client(operation, params, f"{operation}")
        if endpoint is None:
            why = f"s3://{bucket} is not in the record"
            return await self._through_client(operation, params, why)
        if endpoint.scheme != "http":
            return await self._through_client(operation, params, "an endpoint over TLS")
        request = wire.build(operation, params, endpoint.bucket_path)
        if isinstance(request, wire.Fallback):
            return await self._through_client(operation, params, request.reason)
        body = (
            lean.payload(params.get("Body")) if "Body" in params else PartPayload(memoryview(b""))
        )
        if not isinstance(body, PartPayload) or (body.size or 0) >= THRESHOLD:
            return await self._through_client(operation, params, "a body sent from a thread")
        who = wire.Identity(*self._keys, endpoint.region)
        headers = wire.sign(request, endpoint.host, who)
        headers.append(("User-Agent", self._record.agent))
        sized = body.size or request.method in ("PUT", "POST")  # as ``threaded`` sends it
        head = request_head(
            request.method,
            request.target,
            endpoint.host,
            headers,
            length=body.size if sized else None,
        )
        split = urlsplit(endpoint.url("/"))
        key = ("http", split.hostname or "", split.port or 80)
        status, head_in, content = await self._pool.send(
            endpoint.url(request.target),
            key,
            head,
            body.view,
            None,
            idempotent=request.method != "POST",
        )
        if status == 200 and lean.error_inside(content):
            status = 500  # as botocore reads it, to be retried
        if status < 300:
            parsed = lean.read_headers(self._record.outputs[operation], head_in)
            if operation == "create_multipart_upload":
                parsed |= _created(content)
            return parsed | {"ResponseMetadata": lean.metadata(status, head_in)}
        error = lean.error_answer(status, head_in, content)
        if lean.botocore_handles(error, status):
            why = f"an answer {lean.code_of(error)} ({status})"
            return await self._through_client(operation, params, why)
        client = await self._open()
        raise client.exceptions.from_code(lean.code_of(error))(error, _OPERATIONS[operation])

    def close(self) -> None:
        self._pool.close()

    async def _through_client(
        self, operation: str, params: Mapping[str, Any], why: str | None
    ) -> Response:
        if why is not None and why not in self._said:
            self._said.add(why)
            log.debug("fast start: %s opens the client (%s)", params.get("Key"), why)
        client = await self._open()
        return await lean.method(client, operation)(**params)

    async def _open(self) -> Any:
        async with self._opened:
            if self.client is None:
                self.client = await self._opening()
                self.close()  # the client's own connections from now on
        return self.client


def _but_endpoints(record: Record) -> dict[str, Any]:
    return record.frozen() | {"endpoints": None}


def _created(content: bytes) -> Response:
    """CreateMultipartUpload's members in its body (Bucket, Key, UploadId)."""
    found: Response = {}
    for child in ElementTree.fromstring(content):
        member = child.tag.rpartition("}")[2]  # in S3's namespace, or none
        if member in ("Bucket", "Key", "UploadId"):
            found[member] = child.text or ""
    return found
