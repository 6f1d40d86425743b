"""The AWS CRT (awscrt.s3.S3Client), which boto3's CRT transfer client drives.

boto3's own CRT path ignores ``endpoint_url`` (its request serializer is built for AWS's
endpoints), so the harness drives awscrt's S3 client directly, as boto3 does, with the same
part size and at most ``concurrency`` connections. Each upload carries the CRC32 trailer that
boto3's CRT transfer manager asks the CRT for by default (s3transfer's ``crt.py``: the
``ChecksumAlgorithm`` of the call, else CRC32, sent as a trailer), so the CRT checks what
asyncup checks. With argv 2 = "bare" no checksum is sent at all: a configuration boto3 never
uses, measured as a reference.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

from _common import load_spec, measure, skip, small_objects
from awscrt.auth import AwsCredentialsProvider  # type: ignore[import-untyped]
from awscrt.http import HttpHeaders, HttpRequest  # type: ignore[import-untyped]
from awscrt.io import (  # type: ignore[import-untyped]
    ClientBootstrap,
    ClientTlsContext,
    DefaultHostResolver,
    EventLoopGroup,
    TlsContextOptions,
)
from awscrt.s3 import (  # type: ignore[import-untyped]
    S3ChecksumAlgorithm,
    S3ChecksumConfig,
    S3ChecksumLocation,
    S3Client,
    S3RequestTlsMode,
    S3RequestType,
)

CRC32_TRAILER = S3ChecksumConfig(
    algorithm=S3ChecksumAlgorithm.CRC32, location=S3ChecksumLocation.TRAILER
)


def main() -> None:
    spec = load_spec()
    checksum = None if sys.argv[2:] == ["bare"] else CRC32_TRAILER
    if spec["case"] == "stream":
        skip("the CRT's Python binding uploads files and bodies of known length only")
    url = urlsplit(spec["endpoint"])
    loops = EventLoopGroup(2)
    bootstrap = ClientBootstrap(loops, DefaultHostResolver(loops))
    tls_options = None
    if url.scheme == "https":
        context_options = TlsContextOptions()
        context_options.override_default_trust_store_from_path(None, spec["ca_bundle"])
        tls_options = ClientTlsContext(context_options).new_connection_options()
        tls_options.set_server_name(url.hostname or "127.0.0.1")
    client = S3Client(
        bootstrap=bootstrap,
        region="us-east-1",
        credential_provider=AwsCredentialsProvider.new_static("bench", "bench"),
        tls_mode=S3RequestTlsMode.ENABLED if tls_options else S3RequestTlsMode.DISABLED,
        tls_connection_options=tls_options,
        part_size=spec["part_size"],
        multipart_upload_threshold=spec["part_size"],
        max_active_connections_override=spec["concurrency"],
    )

    def put(key: str, path: str) -> Future[Any]:
        headers = HttpHeaders(
            [("Host", url.netloc), ("Content-Length", str(os.path.getsize(path)))]
        )
        request = HttpRequest("PUT", f"/{spec['bucket']}/{key}", headers)
        meta = client.make_request(
            type=S3RequestType.PUT_OBJECT,
            request=request,
            send_filepath=path,
            checksum_config=checksum,
        )
        done: Future[Any] = meta.finished_future
        return done

    def upload() -> None:
        if spec["case"] == "small":
            futures = [put(key, path) for key, path in small_objects(spec)]
        else:
            futures = [put(spec["key"], spec["path"])]
        for future in futures:
            future.result()

    measure(upload)


if __name__ == "__main__":
    main()
