"""TLS certificates are verified unless the user explicitly says otherwise.

Two moto servers of their own, over HTTPS on 127.0.0.1: ``moto_server -s`` (werkzeug's ad-hoc
self-signed certificate, which no CA bundle vouches for) and one serving a certificate signed
by a throw-away CA (``asyncup_bench.tlscert``), whose CA file is the bundle a user would pass.
"""

from __future__ import annotations

import itertools
import logging
import marshal
import os
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncup_bench.tlscert import make_certificates
from botocore.exceptions import SSLError
from botocore.httpsession import get_cert_path

import asyncup
from asyncup._core.wire import request_head
from asyncup._s3 import fast
from asyncup._s3.fast import tls_context, tls_settings
from asyncup._s3.pool import Pool
from asyncup._s3.threaded import ThreadedSession
from tests.cli.test_cp import cp
from tests.conftest import MiB, assert_object, random_bytes, tls_client
from tests.servers import moto_process

pytestmark = pytest.mark.timeout(120)

CONFIG = asyncup.TransferConfig(
    part_size=5 * MiB, multipart_threshold=5 * MiB, concurrency=2, retry_base_delay=0.5
)
BIG = random_bytes(11 * MiB, seed=11)  # three parts: CreateMultipartUpload first
SMALL = b"small object, one PutObject"
_buckets = itertools.count()


@pytest.fixture(scope="module")
def adhoc() -> Iterator[str]:
    """``moto_server -s``: a self-signed certificate made up at start."""
    with moto_process("-s", scheme="https") as endpoint:
        yield endpoint


async def new_bucket(endpoint: str, verify: bool | str) -> str:
    name = f"tls-{next(_buckets)}"
    async with tls_client(endpoint, verify) as s3:
        await s3.create_bucket(Bucket=name)
    return name


async def refused(source: bytes, endpoint: str, bucket: str, **options: Any) -> Exception:
    """The UploadError of an upload that must fail on the certificate, checked: about the
    certificate, the botocore SSLError as cause, nothing created, and not retried."""
    events: list[asyncup.UploadEvent] = []
    with pytest.raises(asyncup.UploadError) as caught:
        await asyncup.upload(
            source, bucket, "refused", endpoint_url=endpoint, config=CONFIG,
            on_event=events.append, **options,
        )  # fmt: skip
    error = caught.value
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert isinstance(error.__cause__, SSLError)
    assert error.upload_id is None  # the first request failed: nothing to abort
    assert [event for event in events if event.kind == "retry"] == []
    return error


async def test_a_self_signed_certificate_fails_at_once_by_default(
    adhoc: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="asyncup")
    bucket = await new_bucket(adhoc, verify=False)
    for source in (SMALL, BIG):  # PutObject, then CreateMultipartUpload
        error = await refused(source, adhoc, bucket)
        assert "self-signed certificate" in str(error)
    # Retried, each failure would be logged (and the upload would take seconds).
    assert [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()] == []
    async with tls_client(adhoc, verify=False) as s3:
        listing = await s3.list_objects_v2(Bucket=bucket)
        assert listing.get("KeyCount", 0) == 0


async def test_only_verify_false_gets_past_a_self_signed_certificate(adhoc: str) -> None:
    bucket = await new_bucket(adhoc, verify=False)
    await refused(SMALL, adhoc, bucket, verify=True)  # explicit True verifies too
    result = await asyncup.upload(
        BIG, bucket, "big", endpoint_url=adhoc, config=CONFIG, verify=False
    )
    assert result.parts == 3
    async with asyncup.Uploader(endpoint_url=adhoc, config=CONFIG, verify=False) as up:
        await up.upload(SMALL, bucket, "small")
    async with tls_client(adhoc, verify=False) as s3:
        await assert_object(s3, bucket, "big", BIG, 5 * MiB)
        await assert_object(s3, bucket, "small", SMALL, None)


async def test_a_ca_bundle_is_trusted_when_given_and_only_for_its_own_certificates(
    private_ca: tuple[str, str], adhoc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, ca = private_ca
    bucket = await new_bucket(endpoint, verify=ca)
    await refused(SMALL, endpoint, bucket)  # botocore's bundle knows no such CA
    await asyncup.upload(BIG, bucket, "by-path", endpoint_url=endpoint, config=CONFIG, verify=ca)
    async with asyncup.Uploader(endpoint_url=endpoint, config=CONFIG, verify=Path(ca)) as up:
        await up.upload(SMALL, bucket, "by-pathlike")
    # The bundle vouches for the certificates its CA signed, not for any other.
    await refused(SMALL, adhoc, await new_bucket(adhoc, verify=False), verify=ca)

    # By default botocore's own chain decides, so AWS_CA_BUNDLE is honoured; an explicit
    # verify=True means botocore's bundle, as in boto3.
    monkeypatch.setenv("AWS_CA_BUNDLE", ca)
    await asyncup.upload(SMALL, bucket, "by-env", endpoint_url=endpoint, config=CONFIG)
    await refused(SMALL, endpoint, bucket, verify=True)

    async with tls_client(endpoint, verify=ca) as s3:
        await assert_object(s3, bucket, "by-path", BIG, 5 * MiB)
        for key in ("by-pathlike", "by-env"):
            await assert_object(s3, bucket, key, SMALL, None)


async def test_a_files_parts_are_read_and_sent_through_tls(
    private_ca: tuple[str, str], tmp_path: Path
) -> None:
    """No sendfile through TLS: each part is read from the file in slices and encrypted."""
    endpoint, ca = private_ca
    bucket = await new_bucket(endpoint, verify=ca)
    source = tmp_path / "big.bin"
    source.write_bytes(BIG)
    result = await asyncup.upload(
        source, bucket, "file", endpoint_url=endpoint, config=CONFIG, verify=ca
    )
    assert result.parts == 3
    async with tls_client(endpoint, verify=ca) as s3:
        await assert_object(s3, bucket, "file", BIG, 5 * MiB)


async def test_a_store_that_checks_everything_takes_every_write_through_tls(
    seaweedfs_tls: tuple[str, str], tmp_path: Path
) -> None:
    """Through TLS to SeaweedFS, which checks each request's signature and each body's
    checksum: a file's parts (read and encrypted slice by slice in threads), a buffered
    multipart upload, and small objects on asyncup's own connections all land, each write
    checked by the store itself."""
    endpoint, ca = seaweedfs_tls
    bucket = await new_bucket(endpoint, verify=ca)
    source = tmp_path / "big.bin"
    source.write_bytes(BIG)
    small = {f"small-{n}": random_bytes(1000 + n, seed=n) for n in range(5)}
    async with asyncup.Uploader(endpoint_url=endpoint, config=CONFIG, verify=ca) as up:
        results = [
            await up.upload(source, bucket, "file"),
            await up.upload(BIG, bucket, "bytes"),
        ]
        summary = await up.upload_many(((data, key) for key, data in small.items()), bucket)
    assert summary.errors == ()
    assert [result.parts for result in results] == [3, 3]
    assert {r.verified_by for r in [*results, *summary.results]} == {"store"}
    async with tls_client(endpoint, verify=ca) as s3:
        await assert_object(s3, bucket, "file", BIG, 5 * MiB)
        await assert_object(s3, bucket, "bytes", BIG, 5 * MiB)
        for key, data in small.items():
            await assert_object(s3, bucket, key, data, None)


async def test_small_objects_sent_through_the_pool_are_verified_too(
    private_ca: tuple[str, str], adhoc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncup's own connections (``_s3.pool``) carry the small objects, the first (sent by
    botocore) too, over TLS verified by the same bundle; where nothing vouches for the
    server, they fail on the certificate as aiohttp's do."""
    puts: list[str] = []
    send = Pool.send

    async def recorded(self: Pool, url: str, *args: Any, **kwargs: Any) -> Any:
        puts.append(url)
        return await send(self, url, *args, **kwargs)

    monkeypatch.setattr(Pool, "send", recorded)
    endpoint, ca = private_ca
    bucket = await new_bucket(endpoint, verify=ca)
    blobs = {f"s{n}": random_bytes(3000 + n, seed=n) for n in range(5)}
    async with asyncup.Uploader(endpoint_url=endpoint, config=CONFIG, verify=ca) as up:
        for key, blob in blobs.items():
            await up.upload(blob, bucket, key)
    assert [url.rsplit("/", 1)[1] for url in puts] == ["s0", "s1", "s2", "s3", "s4"]
    assert all(url.startswith("https://") for url in puts)
    async with tls_client(endpoint, verify=ca) as s3:
        for key, blob in blobs.items():
            await assert_object(s3, bucket, key, blob, None)

    # The pool's own TLS context: verify=False trusts any server; without it, a server
    # nothing vouches for is refused.
    adhoc_bucket = await new_bucket(adhoc, verify=False)
    async with asyncup.Uploader(endpoint_url=adhoc, config=CONFIG, verify=False) as up:
        await up.upload(SMALL, adhoc_bucket, "first")
        await up.upload(SMALL, adhoc_bucket, "second")  # through the pool, unverified
    assert [url.rsplit("/", 1)[1] for url in puts[-2:]] == ["first", "second"]
    async with asyncup.Uploader(endpoint_url=adhoc, config=CONFIG) as up:
        up_client: Any = up.client
        session = up_client._endpoint.http_session
        with pytest.raises(SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            await session.send_small(
                session.small_route("https", adhoc.split("://", 1)[1]),
                f"{adhoc}/{adhoc_bucket}/third",
                request_head("PUT", f"/{adhoc_bucket}/third", "127.0.0.1", []),
                memoryview(b""),
            )


async def test_verify_is_checked_before_any_request(tmp_path: Path) -> None:
    nowhere = "https://127.0.0.1:9"  # nothing listens: a request would fail otherwise
    with pytest.raises(ValueError, match="no CA bundle file"):
        await asyncup.upload(SMALL, "b", "k", endpoint_url=nowhere, verify=str(tmp_path / "no"))
    with pytest.raises(ValueError, match="no CA bundle file"):
        asyncup.Uploader(verify=tmp_path)  # a directory: botocore loads a file only
    with pytest.raises(TypeError, match="verify must be"):
        asyncup.Uploader(verify=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="own client"):
        asyncup.Uploader(client=object(), verify=False)


async def test_cp_verifies_unless_told_otherwise(
    adhoc: str, private_ca: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, ca = private_ca
    (tmp_path / "a.txt").write_bytes(SMALL)
    src = str(tmp_path / "a.txt")
    adhoc_bucket = await new_bucket(adhoc, verify=False)
    ca_bucket = await new_bucket(endpoint, verify=ca)

    run = await cp(src, f"s3://{adhoc_bucket}/a.txt", "--endpoint-url", adhoc)
    assert run.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in run.stdout + run.stderr
    run = await cp(src, f"s3://{adhoc_bucket}/a.txt", "--endpoint-url", adhoc, "--no-verify-ssl")
    assert run.returncode == 0, run.stderr
    assert "NOT verified" in run.stderr

    run = await cp(src, f"s3://{ca_bucket}/a.txt", "--endpoint-url", endpoint)
    assert run.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in run.stdout + run.stderr
    run = await cp(src, f"s3://{ca_bucket}/a.txt", "--endpoint-url", endpoint, "--ca-bundle", ca)
    assert run.returncode == 0, run.stderr
    assert "NOT verified" not in run.stderr

    async with tls_client(adhoc, verify=False) as s3:
        await assert_object(s3, adhoc_bucket, "a.txt", SMALL, None)
    async with tls_client(endpoint, verify=ca) as s3:
        await assert_object(s3, ca_bucket, "a.txt", SMALL, None)

    # Usage errors, before any request: a bundle that is not there, or both flags at once.
    run = await cp(src, f"s3://{ca_bucket}/b.txt", "--ca-bundle", str(tmp_path / "absent.pem"))
    assert run.returncode == 2
    assert "no such file" in run.stderr
    run = await cp(src, f"s3://{ca_bucket}/b.txt", "--no-verify-ssl", "--ca-bundle", ca)
    assert run.returncode == 2
    assert "not allowed with" in run.stderr


def fast_uploader(endpoint: str, verify: bool | str | None) -> asyncup.Uploader:
    uploader = asyncup.Uploader(endpoint_url=endpoint, config=CONFIG, verify=verify)
    uploader._fast_start = True  # as `asyncup cp` opens its own (``_s3.start``)
    return uploader


async def test_a_fast_start_verifies_as_its_client_would(
    private_ca: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over TLS a fast start's connections trust what the client's would (here the CA bundle
    of AWS_CA_BUNDLE, read again by each process): not a certificate it does not vouch for."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    endpoint, ca = private_ca
    bundle = tmp_path / "bundle.pem"
    shutil.copyfile(ca, bundle)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    bucket = await new_bucket(endpoint, verify=ca)
    async with fast_uploader(endpoint, None) as up:
        await up.upload(SMALL, bucket, "first")  # through the client: recorded
    async with fast_uploader(endpoint, None) as up:
        await up.upload(SMALL, bucket, "fast")
        assert up._s3 is not None
        assert up._s3._fast is not None
        assert up._s3._fast.client is None
    other = make_certificates(str(tmp_path))  # ca.pem, server.pem: not the bundle
    shutil.copyfile(other.ca, bundle)  # another CA: the server's is not trusted
    async with fast_uploader(endpoint, None) as up:
        with pytest.raises(asyncup.UploadError) as caught:
            await up.upload(SMALL, bucket, "refused")
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert isinstance(caught.value.__cause__, SSLError)
    async with tls_client(endpoint, verify=ca) as s3:
        await assert_object(s3, bucket, "fast", SMALL, None)
        listing = await s3.list_objects_v2(Bucket=bucket, Prefix="refused")
        assert listing.get("KeyCount", 0) == 0


@pytest.mark.parametrize("damage", ["described otherwise", "cannot be made"])
async def test_a_tls_context_a_fast_start_cannot_make_again_opens_the_client(
    damage: str, private_ca: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record whose TLS settings are not this version's, or whose context fails to be made
    again, opens the client, whose own context sends the write: it never fails for it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    endpoint, ca = private_ca
    bucket = await new_bucket(endpoint, verify=ca)
    async with fast_uploader(endpoint, ca) as up:
        await up.upload(SMALL, bucket, "first")  # through the client: recorded
    if damage == "described otherwise":
        (record,) = (cache / "asyncup" / "start").iterdir()
        data = marshal.loads(record.read_bytes())
        del data["tls"]["verify_mode"]
        record.write_bytes(marshal.dumps(data))
    else:

        def fails(settings: Any) -> ssl.SSLContext:
            raise OSError("the CA bundle is gone")

        monkeypatch.setattr(fast, "tls_context", fails)
    async with fast_uploader(endpoint, ca) as up:
        await up.upload(SMALL, bucket, "second")
        assert up._s3 is not None
        assert up._s3._fast is not None
        assert up._s3._fast.client is not None
    async with tls_client(endpoint, verify=ca) as s3:
        await assert_object(s3, bucket, "second", SMALL, None)


@pytest.mark.parametrize("verify", [True, False, "CA"])
def test_a_fast_starts_tls_context_is_the_clients(
    verify: bool | str, private_ca: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's context, described (``tls_settings``) and made again (``tls_context``)
    without botocore's HTTP session: the same in every respect, trusted CAs included."""
    monkeypatch.setenv("SSLKEYLOGFILE", os.devnull)  # urllib3's context logs keys there
    verify = private_ca[1] if verify == "CA" else verify
    theirs = ThreadedSession(verify=verify)._build_ssl_contexts(None)[0]
    settings = tls_settings(theirs, get_cert_path(verify) if verify else None)
    assert settings is not None
    ours = tls_context(settings)

    def said(context: ssl.SSLContext) -> tuple[Any, ...]:
        return (
            context.verify_mode,
            context.check_hostname,
            context.options,
            context.minimum_version,
            context.maximum_version,
            context.verify_flags,
            context.protocol,
            context.get_ca_certs(),
            context.get_ciphers(),
            context.post_handshake_auth,
            context.keylog_filename,
        )

    assert said(ours) == said(theirs)
    assert theirs.keylog_filename == os.devnull


def test_a_context_with_ciphers_of_its_own_is_not_described() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ECDHE+AESGCM")
    assert tls_settings(context, None) is None
