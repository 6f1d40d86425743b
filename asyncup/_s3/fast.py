"""A fast start's requests (``start``): the lean path before there is a client.

Each write to a bucket the record knows is built by ``wire``, signed by awscrt with the
environment's keys, and sent on connections of its own (``pool``; over TLS with the context
the client's session made, made again: ``tls_settings``); its answer is read as the lean path reads
it. Anything else opens the client (``start``'s module docstring says when) and goes through
it, with every request after it. A ``Record`` is what a client said that this needs
(``start`` keeps it between processes).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from botocore.exceptions import ClientError

from .._core import wire
from . import lean
from .lean import Endpoint, Response
from .payloads import THRESHOLD, PartPayload
from .pool import Pool, request_head

log = logging.getLogger("asyncup")

OPERATIONS = {
    "put_object": "PutObject",
    "upload_part": "UploadPart",
    "create_multipart_upload": "CreateMultipartUpload",
    "abort_multipart_upload": "AbortMultipartUpload",
}
FORMAT = 4
"""What a record holds, and how (``start`` names its records for it)."""


@dataclass(slots=True)
class Record:
    """What a client said that a fast start needs (``of`` reads it off an open client)."""

    agent: str
    endpoint_url: str | None
    connect_timeout: float | None
    read_timeout: float | None
    keep: int
    idle_for: float
    tls: dict[str, Any] | None
    """What makes the client's TLS context again (``tls_settings``); None: it cannot be."""
    outputs: dict[str, dict[str, tuple[str, str]]]
    modeled: frozenset[str]
    """The error codes the client raises as classes of their own (the rest: ClientError)."""
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def frozen(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "agent": self.agent,
            "endpoint_url": self.endpoint_url,
            "timeouts": (self.connect_timeout, self.read_timeout),
            "keep": self.keep,
            "idle_for": self.idle_for,
            "tls": self.tls,
            "outputs": self.outputs,
            "modeled": sorted(self.modeled),
            "endpoints": {
                bucket: (at.scheme, at.host, at.bucket_path, at.region)
                for bucket, at in self.endpoints.items()
            },
        }

    @classmethod
    def thawed(cls, data: Mapping[str, Any]) -> Record | None:
        """The record ``frozen`` kept, or None for anything else."""
        try:
            if data["format"] != FORMAT:
                return None
            connect, read = data["timeouts"]
            return cls(
                agent=str(data["agent"]),
                endpoint_url=data["endpoint_url"],
                connect_timeout=connect,
                read_timeout=read,
                keep=int(data["keep"]),
                idle_for=float(data["idle_for"]),
                tls=data["tls"] if isinstance(data["tls"], dict) else None,
                modeled=frozenset(map(str, data["modeled"])),
                outputs={
                    name: {header: (member, kind) for header, (member, kind) in members.items()}
                    for name, members in data["outputs"].items()
                },
                endpoints={
                    bucket: Endpoint(*map(str, fields))
                    for bucket, fields in data["endpoints"].items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError):  # another format
            return None

    @classmethod
    def of(cls, client: Any) -> Record | None:
        """What ``client`` (one asyncup made, lean) says; None when it says what a fast
        start cannot repeat (no fixed User-Agent, no lean path, another HTTP session)."""
        path = lean.of(client)
        agent = client.meta.config.user_agent
        session = client._endpoint.http_session
        route = getattr(session, "small_route", None)  # ``threaded``'s
        if path is None or not agent or route is None or session._cert_file is not None:
            return None  # (a client certificate comes with a client_config: no fast start)
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
            # Described only where it is used: reading the CAs may fail (a bundle gone) for a
            # client that never needed them.
            tls=_client_tls(session)
            if any(at.scheme == "https" for at in endpoints.values())
            else None,
            modeled=frozenset(client.exceptions._code_to_exception),
            outputs={
                name: lean.members_by_header(model.operation_model(model_name))
                for name, model_name in OPERATIONS.items()
            },
            endpoints=endpoints,
        )


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
        self._tls: ssl.SSLContext | None = None
        self._said: set[str] = set()
        self._routes: dict[Endpoint, tuple[tuple[str, str, int], wire.Identity]] = {}

    def method(self, operation: str) -> Callable[..., Awaitable[Response]]:
        async def call(**params: Any) -> Response:
            return await self.call(operation, params)

        return call

    async def call(self, operation: str, params: Mapping[str, Any]) -> Response:
        if self.client is not None:
            return await self._through_client(operation, params, None)
        if operation not in OPERATIONS:
            return await self._through_client(operation, params, operation)
        bucket = params.get("Bucket", "")
        endpoint = self._record.endpoints.get(bucket)
        if endpoint is None:
            why = f"s3://{bucket} is not in the record"
            return await self._through_client(operation, params, why)
        request = wire.build(operation, params, endpoint.bucket_path)
        if isinstance(request, wire.Fallback):
            return await self._through_client(operation, params, request.reason)
        body = (
            lean.payload(params.get("Body")) if "Body" in params else PartPayload(memoryview(b""))
        )
        if not isinstance(body, PartPayload) or (body.size or 0) >= THRESHOLD:
            return await self._through_client(operation, params, "a body sent from a thread")
        route = self._routes.get(endpoint)
        if route is None:  # once per endpoint: its (scheme, host, port) and who signs there
            split = urlsplit(endpoint.url("/"))
            port = split.port or (443 if endpoint.scheme == "https" else 80)
            who = wire.Identity(*self._keys, endpoint.region)
            route = self._routes[endpoint] = ((endpoint.scheme, split.hostname or "", port), who)
        key, who = route
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
        https = endpoint.scheme == "https"
        if https and self._tls is None:
            if self._record.tls is None:
                return await self._through_client(operation, params, "a TLS context of its own")
            try:
                self._tls = await anyio.to_thread.run_sync(tls_context, self._record.tls)
            except Exception as exc:  # (a CA bundle gone: the client says so in its words)
                reason = f"a TLS context that cannot be made again ({type(exc).__name__})"
                return await self._through_client(operation, params, reason)
        status, head_in, content = await self._pool.send(
            endpoint.url(request.target),
            key,
            head,
            body.view,
            self._tls if https else None,
            idempotent=request.method != "POST",
        )
        error = lean.error_of(status, head_in, content)
        if error is None:
            parsed = lean.read_headers(self._record.outputs[operation], head_in)
            if operation == "create_multipart_upload":
                parsed |= _created(content)
            return parsed | {"ResponseMetadata": lean.metadata(status, head_in)}
        if lean.botocore_handles(error):
            why = f"an answer {lean.describe(error)}"
            return await self._through_client(operation, params, why)
        code = lean.code_of(error)
        if code not in self._record.modeled:  # the client's from_code gives ClientError
            raise ClientError(error, OPERATIONS[operation])
        client = await self._open()  # for its class of this error
        raise client.exceptions.from_code(code)(error, OPERATIONS[operation])

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


_TLS = (
    "options",
    "verify_flags",
    "minimum_version",
    "maximum_version",
    "post_handshake_auth",
    "check_hostname",
    "verify_mode",
    "keylog_filename",
)


def tls_settings(context: ssl.SSLContext, authorities: str | None) -> dict[str, Any] | None:
    """What makes ``context`` (whose trusted CAs were loaded from ``authorities``) again with
    ``tls_context``, without botocore's HTTP session (~50 ms of imports); None for a context
    with ciphers or a certificate of its own."""
    plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if context.protocol != plain.protocol or context.get_ciphers() != plain.get_ciphers():
        return None
    settings = {name: getattr(context, name) for name in _TLS}
    settings["authorities"] = authorities
    return {name: value if isinstance(value, bool | str | None) else int(value)
            for name, value in settings.items()}  # fmt: skip


def tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS context ``tls_settings`` describes (in a thread: the CAs are read)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.options = ssl.Options(settings["options"])
    context.verify_flags = ssl.VerifyFlags(settings["verify_flags"])
    context.minimum_version = ssl.TLSVersion(settings["minimum_version"])
    context.maximum_version = ssl.TLSVersion(settings["maximum_version"])
    context.post_handshake_auth = settings["post_handshake_auth"]
    if settings["authorities"]:
        context.load_verify_locations(settings["authorities"])
    if not settings["check_hostname"]:
        context.check_hostname = False  # before CERT_NONE may be set
    context.verify_mode = ssl.VerifyMode(settings["verify_mode"])
    context.check_hostname = settings["check_hostname"]
    if settings["keylog_filename"]:
        context.keylog_filename = settings["keylog_filename"]
    return context


def _client_tls(session: Any) -> dict[str, Any] | None:
    """``tls_settings`` of the TLS context of the client's HTTP session (``threaded``), as
    aiobotocore makes it: of its ``verify`` (False, or botocore's CA bundle for True, or a
    bundle's path)."""
    from botocore.httpsession import get_cert_path  # the client's: loaded already

    context = session._tls or session._build_ssl_contexts(None)[0]
    authorities = get_cert_path(session._verify) if session._verify else None
    return tls_settings(context, authorities)


def _created(content: bytes) -> Response:
    """CreateMultipartUpload's members in its body (Bucket, Key, UploadId)."""
    found: Response = {}
    from xml.etree import ElementTree  # (Create only: not loaded for a PutObject)

    for child in ElementTree.fromstring(content):
        member = child.tag.rpartition("}")[2]  # in S3's namespace, or none
        if member in ("Bucket", "Key", "UploadId"):
            found[member] = child.text or ""
    return found
