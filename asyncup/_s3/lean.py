"""The lean path (issue 17): the writes without botocore's per-request pipeline.

botocore spends ~0.4 ms of the event loop on each request (its ~40 event handlers, endpoint
rules, serialization, a signer in Python, parsing: benchmarks/PROFILE.md). On asyncup's own
clients PutObject and UploadPart are instead built from their parameters (``_core.wire``);
CreateMultipartUpload and CompleteMultipartUpload (once per upload, where saying exactly what
botocore says matters more than speed) by botocore's own serializer. Each is signed by awscrt
and sent through the client's own HTTP session (``pool``, or a worker thread for a large part:
``threaded``), whose failures are botocore's exceptions already. A PutObject's or UploadPart's
answer is read by its headers as S3's model says, the others' by the client's own parser; an
error answer (or S3's error inside a 200, which botocore reads as a 500) raises the client's
own ``ClientError`` class. What stays with botocore:

- the endpoint: a bucket's first write goes through botocore, and the URL and signing
  region it used are kept for the bucket's later writes;
- the credentials: the client's own, refreshed as botocore refreshes them;
- every other request, and any write the lean path cannot say exactly as botocore would
  (``wire.Fallback``), or whose answer is a redirect or a clock-skew error: that attempt
  goes through botocore, and a DEBUG line says why. ``ASYNCUP_LEAN=0`` sends all through
  botocore (for comparison).
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import mmap
import os
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from .._core import wire
from .payloads import NotTrailed, PartPayload, RangePayload, TrailedPayload
from .ranges import RangeBody
from .record import Endpoint

log = logging.getLogger("asyncup")

Response = dict[str, Any]
_OPERATIONS = {
    "put_object": "PutObject",
    "upload_part": "UploadPart",
    "create_multipart_upload": "CreateMultipartUpload",
    "complete_multipart_upload": "CompleteMultipartUpload",
}
_SERIALIZED = frozenset({"create_multipart_upload", "complete_multipart_upload"})
# Answers after which the endpoint kept may be wrong (another region, the clock): the attempt
# is made again through botocore, which handles them, and the bucket is learnt again.
_BOTOCORE_HANDLES = frozenset(
    {
        "PermanentRedirect",
        "TemporaryRedirect",
        "AuthorizationHeaderMalformed",
        "IllegalLocationConstraintException",
        "RequestTimeTooSkewed",
        "ExpiredToken",
    }
)
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request")


_learning: contextvars.ContextVar[tuple[Lean, str, str] | None] = contextvars.ContextVar(
    "asyncup_lean_learning", default=None
)


class Lean:
    """The lean path of one client asyncup made."""

    def __init__(self, client: Any) -> None:
        self._client = weakref.ref(client)
        self._endpoints: dict[str, Endpoint | None] = {}
        self._said: set[str] = set()
        service = client.meta.service_model
        self._models = {
            name: service.operation_model(model_name) for name, model_name in _OPERATIONS.items()
        }
        self._outputs = {
            name: members_by_header(model)
            for name, model in self._models.items()
            if name not in _SERIALIZED
        }
        # Imported with the client, whose botocore has loaded them already.
        from botocore.awsrequest import AWSPreparedRequest, HeadersDict
        from botocore.serialize import create_serializer

        self._prepared = AWSPreparedRequest
        self._headers = HeadersDict
        # Parameters asyncup has validated already (``_core.params``).
        self._serializer = create_serializer("rest-xml", include_validation=False)
        self._agent = client.meta.config.user_agent

    async def call(
        self, operation: str, fallback: Callable[..., Awaitable[Response]], params: Any
    ) -> Response:
        bucket = params.get("Bucket")
        endpoint = self._endpoints.get(bucket, False)
        if isinstance(params.get("Body"), TrailedPayload) and not isinstance(endpoint, Endpoint):
            raise NotTrailed(f"s3://{bucket}'s endpoint is not known yet")
        if endpoint is False:  # not learnt yet: botocore sends it, and we watch
            token = _learning.set((self, bucket, params.get("Key", "")))
            try:
                return await fallback(**params)
            finally:
                _learning.reset(token)
        if endpoint is None:
            return await self._botocore(fallback, params, f"s3://{bucket}'s endpoint")
        assert isinstance(endpoint, Endpoint)
        built = self._build(operation, params, endpoint.bucket_path)
        if isinstance(built, wire.Fallback):
            return await self._botocore(fallback, params, built.reason)
        request, body = built
        client = self._client()
        signer = getattr(client, "_request_signer", None)
        credentials = getattr(signer, "_credentials", None)
        if client is None or credentials is None:
            return await self._botocore(fallback, params, "no credentials to sign with")
        frozen = await credentials.get_frozen_credentials()
        who = wire.Identity(frozen.access_key, frozen.secret_key, frozen.token, endpoint.region)
        session = client._endpoint.http_session
        if isinstance(body, TrailedPayload):  # framed by a thread of the session alone
            route = getattr(session, "small_route", None)  # ``threaded``'s
            if route is None or route(endpoint.scheme, endpoint.host) is None:
                raise NotTrailed("this endpoint's requests go through aiohttp")
            request = wire.trailed(request, body.algorithm)
            headers = wire.sign(request, endpoint.host, who, payload=wire.TRAILED)
        else:
            headers = wire.sign(request, endpoint.host, who)
        if self._agent:
            headers.append(("User-Agent", self._agent))
        url = endpoint.url(request.target)
        if (
            isinstance(body, PartPayload)
            and body.size is not None
            and body.size < wire.THRESHOLD
            and (route := getattr(session, "small_route", None)) is not None  # ``threaded``'s
            and (small := route(endpoint.scheme, endpoint.host)) is not None
        ):
            head = wire.request_head(
                request.method, request.target, endpoint.host, headers, length=body.size
            )
            status, head_in, content = await session.send_small(
                small, url, head, body.view, idempotent=request.method != "POST"
            )
        else:
            prepared = self._prepared(request.method, url, dict(headers), body, stream_output=False)
            answer = await session.send(prepared)
            status = answer.status_code
            content = await answer.content
            head_in = {name.lower(): value for name, value in answer.headers.items()}
        error = error_of(status, head_in, content)
        if error is None:
            if operation in _SERIALIZED:
                parsed = await self._parsed_by(client, operation, status, head_in, content)
            else:
                parsed = wire.read_headers(self._outputs[operation], head_in)
            return parsed | {"ResponseMetadata": wire.metadata(status, head_in)}
        if botocore_handles(error):
            self._endpoints.pop(bucket, None)
            return await self._botocore(fallback, params, f"an answer {describe(error)}")
        raise client.exceptions.from_code(code_of(error))(error, _OPERATIONS[operation])

    def known(self) -> dict[str, Endpoint]:
        """The endpoints learnt so far, by bucket."""
        return {bucket: found for bucket, found in self._endpoints.items() if found is not None}

    def learn(self, request: Any, bucket: str, key: str) -> None:
        """The endpoint of ``bucket`` from the request botocore is about to send for it."""
        split = urlsplit(request.url)
        suffix = "/" + quote(key, safe="/~")
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode("ascii", "replace")
        scope = _SCOPE.search(authorization)
        if not split.path.endswith(suffix) or scope is None or not split.hostname:
            self._endpoints[bucket] = None  # a layout or a signature of another kind
            return
        self._endpoints[bucket] = Endpoint(
            split.scheme, split.netloc, split.path[: -len(suffix)], scope.group(1)
        )

    def _build(
        self, operation: str, params: Any, bucket_path: str
    ) -> tuple[wire.Request, PartPayload | RangePayload] | wire.Fallback:
        """The request to sign, and its body."""
        if operation not in _SERIALIZED:
            request = wire.build(operation, params, bucket_path)
            if isinstance(request, wire.Fallback):
                return request
            body = payload(params.get("Body"))
            return (request, body) if body is not None else wire.Fallback("the body's type")
        serialized = self._serializer.serialize_to_request(params, self._models[operation])
        headers = list(serialized["headers"].items())
        if not all(value.isascii() for _, value in headers):
            return wire.Fallback("a header that is not ASCII (botocore refuses it)")
        body = serialized["body"]
        if len(body) >= wire.THRESHOLD:  # a Complete of thousands of parts: botocore streams it
            return wire.Fallback("a body of 1 MiB or more")
        target = wire.target(operation, params, bucket_path)
        request = wire.Request(serialized["method"], target, headers)
        return request, PartPayload(memoryview(body))

    async def _parsed_by(
        self, client: Any, operation: str, status: int, head: dict[str, str], content: bytes
    ) -> Response:
        """The answer as the client's own parser reads it (aiobotocore's may be async)."""
        answer = {"status_code": status, "headers": self._headers(head), "body": content}
        shape = self._models[operation].output_shape
        parsed = client._response_parser.parse({**answer, "context": {}}, shape)
        if inspect.isawaitable(parsed):
            parsed = await parsed
        parsed.pop("ResponseMetadata", None)
        return dict(parsed)

    async def _botocore(
        self, fallback: Callable[..., Awaitable[Response]], params: Any, why: str
    ) -> Response:
        if isinstance(params.get("Body"), TrailedPayload):  # botocore cannot frame it
            raise NotTrailed(why)
        if why not in self._said:
            self._said.add(why)
            log.debug("lean path: %s goes through botocore (%s)", params.get("Key"), why)
        return await fallback(**params)


_LEANS: weakref.WeakKeyDictionary[Any, Lean] = weakref.WeakKeyDictionary()


def attach(client: Any) -> None:
    """Give ``client`` (one asyncup made) the lean path for its writes."""
    if os.environ.get("ASYNCUP_LEAN", "1") == "0":
        return
    _LEANS[client] = Lean(client)
    for name in _OPERATIONS.values():
        client.meta.events.register(
            f"before-send.s3.{name}", _watch, unique_id=f"asyncup-lean-{name}"
        )


def method(client: Any, operation: str) -> Callable[..., Awaitable[Response]]:
    """``operation`` of ``client``: by the lean path where it has one, else botocore's."""
    botocore_method: Callable[..., Awaitable[Response]] = getattr(client, operation)
    lean = _LEANS.get(client) if operation in _OPERATIONS else None
    if lean is None:
        return botocore_method

    async def call(**params: Any) -> Response:
        return await lean.call(operation, botocore_method, params)

    return call


def of(client: Any) -> Lean | None:
    """``client``'s lean path, if it has one."""
    return _LEANS.get(client)


def _watch(request: Any, **_: Any) -> None:
    learning = _learning.get()
    if learning is not None:
        lean, bucket, key = learning
        lean.learn(request, bucket, key)


def payload(body: object) -> PartPayload | RangePayload | None:
    """The body as the client's HTTP session sends asyncup's parts (as the before-call and
    before-send hooks of ``client`` and ``ranges`` make it), or None for another kind."""
    if isinstance(body, bytes | bytearray | memoryview | mmap.mmap):
        return PartPayload(memoryview(body))
    if isinstance(body, RangeBody):
        return RangePayload(body.path, body.offset, body.length, body.fd)
    if isinstance(body, PartPayload | RangePayload):
        return body
    return None


def error_of(status: int, head: Mapping[str, str], content: bytes) -> Response | None:
    """An answer's error as botocore gives it to ``ClientError`` (S3's error inside a 200 is
    read as a 500, to be retried, as botocore reads it); None for a success."""
    if status == 200 and _error_inside(content):
        status = 500
    if status < 300:
        return None
    return _error(content, status) | {"ResponseMetadata": wire.metadata(status, head)}


def code_of(error: Response) -> str:
    code: str = error["Error"]["Code"]
    return code


def describe(error: Response) -> str:
    """An error answer in a few words (for a DEBUG line): its code and status."""
    return f"{code_of(error)} ({error['ResponseMetadata']['HTTPStatusCode']})"


def botocore_handles(error: Response) -> bool:
    """Whether the request is made again through botocore, which knows what to do of this
    answer (another region, the clock, an expired token), and the bucket learnt again."""
    status = error["ResponseMetadata"]["HTTPStatusCode"]
    return code_of(error) in _BOTOCORE_HANDLES or status in (301, 307)


def members_by_header(operation_model: Any) -> dict[str, tuple[str, str]]:
    """An operation's answer members that S3 sends as headers: header (lower case) ->
    (member, type)."""
    members = operation_model.output_shape.members
    return {
        shape.serialization["name"].lower(): (name, shape.type_name)
        for name, shape in members.items()
        if shape.serialization.get("location") == "header"
    }


_REASONS = {status.value: status.phrase for status in HTTPStatus}  # http.client's responses


def _error_inside(content: bytes) -> bool:
    """Whether a 200's body is S3's error instead (or cut short), as botocore tells it."""
    if not content:
        return False
    from xml.etree import ElementTree  # (answers with a body only: not loaded for most)

    try:
        return ElementTree.fromstring(content).tag == "Error"
    except ElementTree.ParseError:
        return True


def _error(content: bytes, status: int) -> Response:
    """An S3 error answer as botocore parses it: its Code and Message (and the status's
    reason when the body says nothing)."""
    code, message = str(status), _REASONS.get(status, "")
    if content:
        from xml.etree import ElementTree

        try:
            root = ElementTree.fromstring(content)
        except ElementTree.ParseError:
            pass
        else:
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
    return {"Error": {"Code": code, "Message": message}}
