"""Making clients: asyncup's own (from the default chain or a caller's credentials), and
the demo's plain one.

A client asyncup creates itself has botocore's retries and checksum defaults switched off,
so the retry policy (``calls.S3.call``) and the checksums (computed off the event loop) are
asyncup's alone; it loads less of botocore's data, signs with botocore's Python signer, and
sends parts from worker threads (``threaded``).
"""

from __future__ import annotations

import importlib.metadata
import logging
import mmap
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import botocore.auth
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import get_session

from .._core.config import TransferConfig
from . import lean
from .credentials import session_for
from .identity import Identity
from .models import load_less
from .payloads import PartPayload
from .ranges import stream_ranges
from .threaded import ThreadedSession

log = logging.getLogger("asyncup")


@asynccontextmanager
async def open_client(
    endpoint_url: str | None,
    config: TransferConfig,
    *,
    region_name: str | None = None,
    client_config: AioConfig | None = None,
    verify: bool | str | None = None,
    identity: Identity | None = None,
) -> AsyncIterator[Any]:
    """An aiobotocore S3 client sized for ``config``, signing as ``identity`` says (a
    profile, a session, keys or credentials: ``credentials.check_identity``) or else as the
    default credential chain finds.

    ``verify`` is boto3's: None verifies TLS certificates against ``AWS_CA_BUNDLE`` or else
    botocore's CA bundle, a path against that CA bundle, False not at all.
    """
    # Parts go out from worker threads, in parallel (``threaded``).
    ours = _asyncup_config(config).merge(AioConfig(http_session_cls=ThreadedSession))
    if client_config is not None:
        ours = ours.merge(client_config)
    session, own, options = await session_for(identity)
    if own:
        load_less(session)
    ours = _fixed_user_agent(session, ours)
    if region_name is not None:
        options["region_name"] = region_name
    async with session.create_client(
        "s3", endpoint_url=endpoint_url, config=ours, verify=verify, **options
    ) as client:
        _streamline(client)
        _OWN_CLIENTS.add(client)
        if sends_from_files(client):  # configured as the lean path signs and sends
            stream_ranges(client)  # a path's parts sent from the file (``coordinator``)
            lean.attach(client)
        else:
            log.debug("lean path off: this client signs payloads or adds checksums itself")
        yield client


def _asyncup_config(config: TransferConfig) -> AioConfig:
    """What the pipeline relies on in a client: asyncup's retries only, checksums computed by
    asyncup (off the event loop), no payload SHA256, a connection per request in flight."""
    return AioConfig(
        # A connection per request in flight, plus room for Create/Complete/Abort.
        max_pool_connections=config.concurrency + 4,
        retries={"total_max_attempts": 1, "mode": "standard"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # Every write carries a signed CRC32 (or Content-MD5) header that S3 checks, so the
        # body's SHA256 is not also needed (botocore's own choice over HTTPS when a checksum
        # is sent). botocore's signer would hash each part on the event loop: on 2 cores that
        # halved throughput. client_config={"s3": {"payload_signing_enabled": True}} restores it.
        s3={"payload_signing_enabled": False},
    )


_OWN_CLIENTS: weakref.WeakSet[Any] = weakref.WeakSet()


def sends_from_files(client: Any) -> bool:
    """Whether a path's parts may be sent from the file as they are read (``ranges``), and part
    buffers be mappings (``_pipeline.budget.mapped_buffer``): only on a client asyncup made, as
    it made it in these respects. It must not sign payloads (the signer would read the file or
    the mapping on the event loop to hash it), nor add checksums of its own (botocore would
    wrap the body in an aws-chunked stream it reads itself), and it must send through aiohttp
    or asyncup's threads."""
    if client not in _OWN_CLIENTS:
        return False
    config = client.meta.config
    return (
        not (config.s3 or {}).get("payload_signing_enabled", True)
        and config.request_checksum_calculation == "when_required"
        and issubclass(config.http_session_cls, AIOHTTPSession)
    )


def _fixed_user_agent(session: Any, config: AioConfig) -> AioConfig:
    """``config`` with a User-Agent header built once, for asyncup's own clients.

    botocore otherwise builds its header twice per request (once more after signing, to list
    the features the request used: AWS's metrics), sanitizing each character in Python: 13%
    of the CPU of a 64 KiB PutObject, measured (benchmarks/PROFILE.md). The fixed header is
    botocore's ``Session.user_agent()`` with asyncup's name and version in front (botocore
    adds the ``user_agent_extra`` of the session and the config). A ``user_agent`` or an app
    id (``user_agent_appid``, ``AWS_SDK_UA_APP_ID``) of the caller's own leaves botocore's
    header alone.
    """
    if config.user_agent is not None or config.user_agent_appid is not None:
        return config
    if session.get_config_variable("user_agent_appid") is not None:
        return config
    try:
        version = importlib.metadata.version("asyncup")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    agent: str = session.user_agent()
    extra = session.user_agent_extra  # botocore appends it again to a fixed header
    if extra and agent.endswith(f" {extra}"):
        agent = agent[: -len(extra) - 1]
    return config.merge(AioConfig(user_agent=f"asyncup/{version} {agent}"))


# botocore's pure-Python SigV4 signer, under a name of our own (no existing entry changes).
_PYTHON_SIGNER = "asyncup-s3v4"
botocore.auth.AUTH_TYPE_MAPS.setdefault(_PYTHON_SIGNER, botocore.auth.S3SigV4Auth)


def _streamline(client: Any) -> None:
    """Keep botocore from copying part bodies on the event loop (asyncup's own clients only).

    With awscrt installed botocore signs with the CRT, which copies every bytearray body into
    a BytesIO even when the payload is not signed; the pure-Python signer does not touch an
    unsigned body. And aiohttp slices its body before writing: a bytearray slice is a copy, a
    memoryview slice is not, so once botocore has validated the bytearray it is handed on as
    a memoryview of the same buffer (in a ``PartPayload``). Profiled: 16% of the event
    loop's time, gone.
    """
    client.meta.events.register_first("choose-signer.s3", _choose_python_signer)
    for operation in ("UploadPart", "PutObject"):
        client.meta.events.register(f"before-call.s3.{operation}", _body_as_view)


def _choose_python_signer(signature_version: str, **_: Any) -> str | None:
    return _PYTHON_SIGNER if signature_version in ("v4", "s3v4") else None


def _body_as_view(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    s3_config = getattr(context.get("client_config"), "s3", None) or {}
    if s3_config.get("payload_signing_enabled", True):
        return  # the signer reads the body to hash it: leave it as botocore knows it
    body = params.get("body")
    if isinstance(body, bytearray | mmap.mmap):  # mmap: a part buffer (_budget.mapped_buffer)
        params["body"] = PartPayload(memoryview(body))


@asynccontextmanager
async def open_plain_client(**options: Any) -> AsyncIterator[Any]:
    """An S3 client with aiobotocore's defaults and ``options`` (``create_client``'s), as a
    caller would make it: the demo's, with the embedded server's fixed credentials."""
    async with get_session().create_client("s3", **options) as client:
        yield client
