"""A fast start's requests (``start``): the lean path before there is a client.

Each write to a bucket the record knows is built by ``wire``, signed by awscrt with the
environment's keys, and sent on connections of its own (``pool``; over TLS with the context
the client's session made, made again: ``tls_settings``); its answer is read as the lean path reads
it. Anything else opens the client (``start``'s module docstring says when) and goes through
it, with every request after it. A ``Record`` (``record``) is what a client said that
this needs (``recorded``).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from botocore.exceptions import ClientError

from .._core import wire
from . import lean
from .lean import Response
from .payloads import PartPayload
from .pool import Pool
from .record import Endpoint, Record, signed_head, tls_context, tls_settings

log = logging.getLogger("asyncup")

OPERATIONS = {
    "put_object": "PutObject",
    "upload_part": "UploadPart",
    "create_multipart_upload": "CreateMultipartUpload",
    "abort_multipart_upload": "AbortMultipartUpload",
}


def recorded(client: Any) -> Record | None:
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
    return Record(
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
        if not isinstance(body, PartPayload) or (body.size or 0) >= wire.THRESHOLD:
            return await self._through_client(operation, params, "a body sent from a thread")
        route = self._routes.get(endpoint)
        if route is None:  # once per endpoint: its (scheme, host, port) and who signs there
            split = urlsplit(endpoint.url("/"))
            port = split.port or (443 if endpoint.scheme == "https" else 80)
            who = wire.Identity(*self._keys, endpoint.region)
            route = self._routes[endpoint] = ((endpoint.scheme, split.hostname or "", port), who)
        key, who = route
        sized = body.size or request.method in ("PUT", "POST")  # as ``threaded`` sends it
        head = signed_head(self._record, request, endpoint, who, body.size if sized else None)
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
            parsed = wire.read_headers(self._record.outputs[operation], head_in)
            if operation == "create_multipart_upload":
                parsed |= _created(content)
            return parsed | {"ResponseMetadata": wire.metadata(status, head_in)}
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
