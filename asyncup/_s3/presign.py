"""Presigned UploadPart URLs (``asyncup.direct``): SigV4 query authentication, always.

botocore presigns S3 with SigV2 unless the client was configured with ``s3v4`` (and
asyncup's own clients sign through a signer of their own name), yet only SigV4 works in
every region and bounds a URL's life (7 days). So while asyncup presigns, a handler on the
client's ``choose-signer`` event picks ``s3v4-query``; other presigns of the same client
are left as botocore makes them.

botocore signs every header the request carries (a checksum, RequestPayer,
ExpectedBucketOwner): the client must send exactly those, with those values. They are read
back from the signed URL's ``X-Amz-SignedHeaders`` so that what the client is told is what
was signed.
"""

from __future__ import annotations

import contextvars
from typing import Any
from urllib.parse import parse_qs, urlsplit

# While asyncup presigns in this task: the requests botocore signed (else None).
_presigning: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "asyncup_presign", default=None
)
_CHOOSE_ID = "asyncup-presign-sigv4"
_SEEN_ID = "asyncup-presign-headers"


def _sigv4_query(signature_version: str, **_: Any) -> str | None:
    if _presigning.get() is not None and str(signature_version).endswith("-query"):
        return "s3v4-query"
    return None


def _seen(request: Any, **_: Any) -> None:
    signed = _presigning.get()
    if signed is not None:
        signed.append(request)


async def presign_part(
    client: Any, params: dict[str, Any], expires_in: int
) -> tuple[str, dict[str, str]]:
    """The URL of UploadPart ``params``, signed for ``expires_in`` seconds, and the headers
    the request to it must carry (name: value)."""
    events = client.meta.events
    events.register_first("choose-signer.s3.UploadPart", _sigv4_query, unique_id=_CHOOSE_ID)
    events.register("before-sign.s3.UploadPart", _seen, unique_id=_SEEN_ID)
    requests: list[Any] = []
    token = _presigning.set(requests)
    try:
        url: str = await client.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=expires_in
        )
    finally:
        _presigning.reset(token)
    query = parse_qs(urlsplit(url).query)
    if "X-Amz-Signature" not in query or len(requests) != 1:
        raise RuntimeError("the presigned URL is not SigV4: refusing to hand it out")
    signed = query.get("X-Amz-SignedHeaders", ["host"])[0].split(";")
    headers = {name.lower(): str(value) for name, value in requests[0].headers.items()}
    wanted = [name for name in signed if name != "host"]
    missing = [name for name in wanted if name not in headers]
    if missing:
        raise RuntimeError(f"the presigned URL signs headers asyncup cannot tell: {missing}")
    return url, {name: headers[name] for name in wanted}
