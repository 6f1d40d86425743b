"""A fast start (issue 17, ``_s3.start``): a command's writes before botocore's client is made.

An Uploader set for a fast start (as ``asyncup cp`` sets its own) finds the record an earlier
Uploader's client left in the cache directory, and writes to the buckets it knows without
making a client; everything else opens the client then. Against moto, through the fault
proxy, which sees every request.
"""

from __future__ import annotations

import marshal
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from asyncup import TransferConfig, Uploader, UploadError, UploadEvent
from asyncup._pipeline.integrity import SMALL_WRITES_BEFORE_PROBE
from asyncup._s3 import record, start
from asyncup._s3.fast import Fast
from tests.conftest import MiB, random_bytes, read_object
from tests.faultproxy import FaultProxy

ON_MOTO = pytest.mark.parametrize("server", ["moto"], indirect=True)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fast_uploader(endpoint: str, **options: Any) -> Uploader:
    uploader = Uploader(endpoint_url=endpoint, **options)
    uploader._fast_start = True
    return uploader


@pytest.fixture
async def warm(proxy: FaultProxy, bucket: str) -> None:
    """An earlier Uploader has written to ``bucket`` (through the proxy): it is recorded."""
    async with fast_uploader(proxy.url) as uploader:
        assert fast_or_none(uploader) is None  # nothing recorded yet
        await uploader.upload(b"first", bucket, "first")
    proxy.counts.clear()
    proxy.requests.clear()


def fast_or_none(uploader: Uploader) -> Fast | None:
    assert uploader._s3 is not None
    return uploader._s3._fast


def fast_of(uploader: Uploader) -> Fast:
    fast = fast_or_none(uploader)
    assert fast is not None
    return fast


@ON_MOTO
async def test_a_recorded_bucket_is_written_without_a_client(
    proxy: FaultProxy, s3: Any, bucket: str, warm: None
) -> None:
    data = random_bytes(100_000)
    async with fast_uploader(proxy.url) as uploader:
        result = await uploader.upload(
            data,
            bucket,
            "k e/y+",
            extra_args={"ContentType": "text/x-thing", "Metadata": {"who": "me"}},
        )
        assert fast_of(uploader).client is None
    assert await read_object(s3, bucket, "k e/y+") == data
    head = await s3.head_object(Bucket=bucket, Key="k e/y+")
    assert (head["ContentType"], head["Metadata"]) == ("text/x-thing", {"who": "me"})
    assert result.etag == head["ETag"]
    assert proxy.counts["PutObject"] == 1
    headers = proxy.requests[-1][1]
    assert headers["user-agent"].startswith("asyncup/")
    assert "x-amz-checksum-crc32" in headers


@ON_MOTO
async def test_a_bucket_not_recorded_opens_the_client_and_is_recorded_after(
    proxy: FaultProxy, s3: Any, bucket: str, warm: None
) -> None:
    other = f"{bucket}-other"
    await s3.create_bucket(Bucket=other)
    try:
        async with fast_uploader(proxy.url) as uploader:
            await uploader.upload(b"x", other, "k")
            assert fast_of(uploader).client is not None
        async with fast_uploader(proxy.url) as uploader:
            await uploader.upload(b"y", other, "k2")
            await uploader.upload(b"z", bucket, "k3")
            assert fast_of(uploader).client is None
        assert await read_object(s3, other, "k2") == b"y"
    finally:
        for key in ("k", "k2"):
            await s3.delete_object(Bucket=other, Key=key)
        await s3.delete_bucket(Bucket=other)


@ON_MOTO
async def test_a_body_sent_from_a_thread_opens_the_client(
    proxy: FaultProxy, s3: Any, bucket: str, warm: None
) -> None:
    data = random_bytes(2 * MiB)  # one PutObject, from a worker thread
    async with fast_uploader(proxy.url) as uploader:
        await uploader.upload(data, bucket, "big")
        assert fast_of(uploader).client is not None
    assert await read_object(s3, bucket, "big") == data


@ON_MOTO
async def test_a_multipart_upload_starts_fast_and_ends_through_the_client(
    proxy: FaultProxy, s3: Any, bucket: str, warm: None
) -> None:
    data = random_bytes(11 * MiB)
    config = TransferConfig(multipart_threshold=5 * MiB, part_size=5 * MiB)
    async with fast_uploader(proxy.url, config=config) as uploader:
        await uploader.upload(data, bucket, "multi")
        assert fast_of(uploader).client is not None
    assert await read_object(s3, bucket, "multi") == data
    assert proxy.counts["CompleteMultipartUpload"] == 1
    listing = await s3.list_multipart_uploads(Bucket=bucket)
    assert listing.get("Uploads", []) == []


@ON_MOTO
async def test_the_stores_probe_is_made_without_a_client(
    proxy: FaultProxy, s3: Any, bucket: str, warm: None
) -> None:
    """After a few small writes the store is probed in a multipart upload of its own: its
    Create, its one-byte part and its Abort are built by ``wire`` too."""
    async with fast_uploader(proxy.url) as uploader:
        for n in range(SMALL_WRITES_BEFORE_PROBE + 1):
            await uploader.upload(b"%d" % n, bucket, f"small/{n}")
        assert fast_of(uploader).client is None
        assert uploader._s3 is not None
        assert uploader._s3.store("CRC32").probed
    counts = proxy.counts
    assert (counts["CreateMultipartUpload"], counts["ProbePart"]) == (1, 1)
    assert counts["AbortMultipartUpload"] == 1
    listing = await s3.list_multipart_uploads(Bucket=bucket)
    assert listing.get("Uploads", []) == []


@ON_MOTO
async def test_an_error_is_botocores_clienterror_without_a_client(
    proxy: FaultProxy, bucket: str, warm: None
) -> None:
    """A code the client has no class of its own for is raised as the ClientError the client
    would raise (the store's probe meets one on every store that verifies)."""
    proxy.fail("PutObject", "400")  # InvalidArgument
    async with fast_uploader(proxy.url) as uploader:
        with pytest.raises(UploadError) as raised:
            await uploader.upload(b"x", bucket, "refused")
        assert fast_of(uploader).client is None
    cause = raised.value.__cause__
    assert type(cause) is ClientError
    assert cause.response["Error"]["Code"] == "InvalidArgument"
    assert cause.operation_name == "PutObject"
    assert proxy.counts["PutObject"] == 1  # not retried, as through botocore


@ON_MOTO
async def test_an_error_the_client_has_a_class_for_is_raised_as_that_class(
    proxy: FaultProxy, bucket: str, warm: None
) -> None:
    proxy.fail("PutObject", "404")  # NoSuchUpload
    async with fast_uploader(proxy.url) as uploader:
        with pytest.raises(UploadError) as raised:
            await uploader.upload(b"x", bucket, "gone")
        cause = raised.value.__cause__
        assert isinstance(cause, uploader.client.exceptions.NoSuchUpload)
    assert cause.response["Error"]["Code"] == "NoSuchUpload"


@pytest.mark.parametrize(("fault", "code"), [("503", "SlowDown"), ("200err", "InternalError")])
@ON_MOTO
async def test_a_throttled_write_is_retried(
    proxy: FaultProxy, s3: Any, bucket: str, warm: None, fault: str, code: str
) -> None:
    """A 503, and S3's error inside a 200 (read as a 500, as botocore reads it)."""
    proxy.fail("PutObject", fault)
    events: list[UploadEvent] = []
    async with fast_uploader(proxy.url, config=TransferConfig(retry_base_delay=0.01)) as uploader:
        await uploader.upload(b"again", bucket, "slow", on_event=events.append)
    assert proxy.counts["PutObject"] == 2
    assert [event.error for event in events if event.kind == "retry"] == [code]
    assert await read_object(s3, bucket, "slow") == b"again"


@ON_MOTO
async def test_a_redirect_is_sent_again_through_botocore(
    proxy: FaultProxy, s3: Any, bucket: str, warm: None
) -> None:
    proxy.fail("PutObject", "301")
    async with fast_uploader(proxy.url) as uploader:
        await uploader.upload(b"moved", bucket, "moved")
        assert fast_of(uploader).client is not None
    assert proxy.counts["PutObject"] == 2
    assert await read_object(s3, bucket, "moved") == b"moved"


@ON_MOTO
async def test_keys_that_expire_make_no_fast_start(
    proxy: FaultProxy, bucket: str, warm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore refreshes them (its EnvProvider): the client is made at once."""
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "2999-01-01T00:00:00Z")
    async with fast_uploader(proxy.url) as uploader:
        assert fast_or_none(uploader) is None
        await uploader.upload(b"x", bucket, "k")


def test_the_environments_keys_are_read_as_botocores_first_provider_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session")
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    assert record.environment_keys() == ("AKID", "SECRET", "session")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "security")  # botocore looks at it first
    assert record.environment_keys() == ("AKID", "SECRET", "security")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "")
    assert record.environment_keys() is None


def test_the_record_is_named_for_what_botocore_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))

    def path(**changes: Any) -> str | None:
        settings = {"endpoint_url": "http://e", "region_name": None, "verify": None}
        settings |= changes
        return record.record_path(concurrency=10, **settings)

    base = path()
    assert base is not None
    assert path(endpoint_url="http://f") != base
    assert path(region_name="eu-west-1") != base
    assert path(verify=False) != base
    assert record.record_path("http://e", None, None, 11) != base
    monkeypatch.setenv("AWS_S3_ADDRESSING_STYLE", "virtual")
    assert path() != base
    monkeypatch.delenv("AWS_S3_ADDRESSING_STYLE")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert path() != base
    monkeypatch.delenv("HTTPS_PROXY")
    assert path() == base
    config.write_text("[default]\nregion = eu-west-3\n")
    assert path() != base
    changed = path()
    # The credentials file: botocore reads settings (endpoint_url, region...) there too.
    credentials = tmp_path / "credentials"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    changed = path()
    credentials.write_text("[default]\nendpoint_url = http://elsewhere:9000\n")
    assert path() != changed
    # A path with a variable in it, as botocore expands it.
    monkeypatch.setenv("ASYNCUP_TEST_DIR", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", "$ASYNCUP_TEST_DIR/config")
    changed = path()
    config.write_text("[default]\nregion = eu-west-2\n")
    assert path() != changed
    changed = path()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "another")  # the keys are read, not recorded
    monkeypatch.setenv("AWS_SESSION_TOKEN", "another")
    assert path() == changed


def test_the_systems_proxies_name_the_record_where_botocore_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On macOS and Windows botocore's session takes proxies from the system's settings as
    well as from the environment: there they name the record too."""
    import urllib.request

    proxies: dict[str, str] = {}
    monkeypatch.setattr(urllib.request, "getproxies", lambda: dict(proxies))

    def path() -> str | None:
        return record.record_path("http://e", None, None, 10)

    monkeypatch.setattr(sys, "platform", "darwin")
    base = path()
    proxies["https"] = "http://proxy.example:3128"
    assert path() != base
    monkeypatch.setattr(sys, "platform", "linux")  # the environment's alone, named already
    linux = path()
    proxies.clear()
    assert path() == linux


@ON_MOTO
async def test_no_secret_is_recorded(
    cache: Path, proxy: FaultProxy, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {"AWS_ACCESS_KEY_ID": "AKIDNOTRECORDED", "AWS_SECRET_ACCESS_KEY": "SECRETNOTRECORDED"}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "TOKENNOTRECORDED")
    async with fast_uploader(proxy.url) as uploader:
        await uploader.upload(b"x", bucket, "k")
    (record,) = (cache / "asyncup" / "start").iterdir()
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    assert oct(record.parent.stat().st_mode & 0o777) == "0o700"
    raw = record.read_bytes()
    assert b"NOTRECORDED" not in raw
    assert set(marshal.loads(raw)["endpoints"]) == {bucket}


@ON_MOTO
async def test_a_damaged_record_is_made_again(
    cache: Path, proxy: FaultProxy, bucket: str, warm: None
) -> None:
    (record,) = (cache / "asyncup" / "start").iterdir()
    record.write_bytes(b"\x00garbage")
    async with fast_uploader(proxy.url) as uploader:
        assert fast_or_none(uploader) is None
        await uploader.upload(b"x", bucket, "k")
    async with fast_uploader(proxy.url) as uploader:
        await uploader.upload(b"y", bucket, "k")
        assert fast_of(uploader).client is None


@ON_MOTO
async def test_a_record_that_cannot_be_made_never_fails_the_command(
    proxy: FaultProxy, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP a CA bundle that is gone (AWS_CA_BUNDLE) is never read, to make the record
    or otherwise; and whatever else fails while the record is made, the upload's result
    stands and the Uploader closes as it would have."""
    monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
    async with fast_uploader(proxy.url) as uploader:
        await uploader.upload(b"first", bucket, "k1")
    async with fast_uploader(proxy.url) as uploader:  # recorded: a fast start
        await uploader.upload(b"second", bucket, "k2")
        assert fast_of(uploader).client is None

    def broken(client: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(start, "recorded", broken)
    data = random_bytes(2 * MiB)  # sent from a thread: the client is opened
    async with fast_uploader(proxy.url) as uploader:
        await uploader.upload(data, bucket, "k3")
        assert fast_of(uploader).client is not None
    assert await read_object(s3, bucket, "k3") == data


@ON_MOTO
@pytest.mark.parametrize("how", ["folder others may write", "record linked"])
async def test_a_record_someone_else_could_have_written_is_not_used(
    how: str, cache: Path, proxy: FaultProxy, bucket: str, warm: None, tmp_path: Path
) -> None:
    """What a record says (where to send, whether to check certificates) is trusted as the
    user's own settings: only from a folder and a file that are the user's alone."""
    folder = cache / "asyncup" / "start"
    (record,) = folder.iterdir()
    if how == "folder others may write":
        folder.chmod(0o777)
    else:
        elsewhere = tmp_path / "elsewhere.marshal"
        record.rename(elsewhere)
        record.symlink_to(elsewhere)
    async with fast_uploader(proxy.url) as uploader:
        await uploader.upload(b"x", bucket, "k")
        assert fast_or_none(uploader) is None
