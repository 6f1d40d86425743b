"""One small PutObject from the calling thread, with no event loop: ``asyncup cp`` of one small
file on a fast start (``_cli.cp_one``).

The request is the one a fast start sends (``fast``): built and signed by ``wire`` with the
environment's keys and what the record (``record``) says of the bucket's endpoint, written
on a blocking socket of its own (over TLS with the context the record describes), its answer
read by httptools. Nothing here retries or opens a client: whatever is not a 200 raises, and
the caller hands the upload to the Uploader, which sends it again as a retry would (the same
bytes to the same key).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httptools

from .._core import wire
from .record import Endpoint, Record, signed_head

if TYPE_CHECKING:
    import ssl

_READ = 64 * 1024


class Declined(Exception):
    """The write did not go this way, or was not taken: the words say why."""


def put_object(
    record: Record,
    keys: tuple[str, str, str | None],
    params: Mapping[str, Any],
    tls: ssl.SSLContext | None,
    deadline: float | None,
) -> dict[str, Any]:
    """PutObject of ``params`` (its Body bytes, ``len(Body)`` under the fast start's
    ``THRESHOLD``): the answer's members as botocore reads them. ``deadline``: seconds for the
    whole exchange (``request_deadline``). Raises ``Declined``, or the connection's error."""
    bucket = params["Bucket"]
    endpoint = record.endpoints.get(bucket)
    if endpoint is None:
        raise Declined(f"s3://{bucket} is not in the record")
    if endpoint.scheme == "https" and tls is None:
        raise Declined("no TLS context")
    request = wire.build("put_object", params, endpoint.bucket_path)
    if isinstance(request, wire.Fallback):
        raise Declined(request.reason)
    body = memoryview(params["Body"])
    head = signed_head(record, request, endpoint, wire.Identity(*keys, endpoint.region), len(body))
    limits = (record.connect_timeout, record.read_timeout, deadline)
    status, head_in, content = _exchange(endpoint, head, body, tls, limits)
    if status != 200 or b"<Error>" in content:
        raise Declined(f"an answer {status}")
    parsed = wire.read_headers(record.outputs["put_object"], head_in)
    return parsed | {"ResponseMetadata": wire.metadata(status, head_in)}


class _Answer:
    """httptools' callbacks: one answer's status, headers and body."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


def _exchange(
    endpoint: Endpoint,
    head: bytes,
    body: memoryview,
    tls: ssl.SSLContext | None,
    limits: tuple[float | None, float | None, float | None],
) -> tuple[int, dict[str, str], bytes]:
    """Connect, send the request, read its whole answer, close. ``limits``: the connect and
    read timeouts, and the time the whole exchange may take (each None: none)."""
    connect_timeout, read_timeout, deadline = limits
    ends = None if deadline is None else time.monotonic() + deadline
    split = urlsplit(endpoint.url("/"))
    host = split.hostname or ""
    port = split.port or (443 if endpoint.scheme == "https" else 80)
    sock = socket.create_connection((host, port), _within(connect_timeout, ends))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock.settimeout(_within(read_timeout, ends))
            sock = tls.wrap_socket(sock, server_hostname=host)
        sock.settimeout(_within(read_timeout, ends))
        sock.sendall(head)
        sock.sendall(body)
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        while not answer.complete:
            sock.settimeout(_within(read_timeout, ends))
            data = sock.recv(_READ)
            if not data:
                raise ConnectionResetError("the server closed the connection before its answer")
            parser.feed_data(data)
        return parser.get_status_code(), answer.headers, b"".join(answer.body)
    finally:
        sock.close()


def _within(timeout: float | None, ends: float | None) -> float | None:
    """A socket operation's timeout: ``timeout``, but no later than ``ends``."""
    if ends is None:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's deadline passed")
    return left if timeout is None else min(timeout, left)
