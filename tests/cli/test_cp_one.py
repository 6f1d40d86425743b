"""`asyncup cp` of one small file without an event loop (``_cli.cp_one``): what it sends and
reports is the Uploader's, and anything else hands the file to the Uploader."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import asyncup
from asyncup._cli import cp_one
from asyncup._cli.cp import add_arguments, settings_from
from asyncup._cli.cp_sources import Item, Listing
from asyncup._cli.render import Reporter, RichReporter
from asyncup._core.params import Routes
from asyncup._pipeline import integrity
from asyncup._pipeline.uploader import upload_routed
from tests.conftest import MiB, interrupt, random_bytes, read_object, tls_client
from tests.faultproxy import FaultProxy

ON_MOTO = pytest.mark.parametrize("server", ["moto"], indirect=True)

# `asyncup cp ARGS`, then (on stderr's last line) which of the event loop's and botocore's
# client side's packages the process loaded.
LOADED = """
import json, sys
from asyncup._cli.main import main
code = main(sys.argv[1:])
loop = {"asyncio", "anyio", "uvloop", "aiobotocore", "aiohttp"}
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & loop)), file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture
def cache(tmp_path: Path) -> dict[str, str]:
    """The commands' environment: a cache of the test's own (no record at first)."""
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}


async def cp(*args: str, env: dict[str, str]) -> tuple[int, str, list[str]]:
    """`asyncup cp ARGS`: its exit status, stdout, and what it loaded of the event loop."""
    run = await anyio.run_process([sys.executable, "-c", LOADED, "cp", *args], check=False, env=env)
    *_, loaded = run.stderr.decode().splitlines()
    return run.returncode, run.stdout.decode(), json.loads(loaded)


async def recorded(path: Path, bucket: str, url: str, env: dict[str, str], *more: str) -> None:
    """A first `cp` to ``bucket``: through the Uploader, which records it (``_s3.start``)."""
    await anyio.Path(path).write_bytes(b"first")
    status, _, loaded = await cp(str(path), f"s3://{bucket}/first", "--endpoint-url", url,
                                 "-q", *more, env=env)  # fmt: skip
    assert status == 0
    assert "anyio" in loaded


async def test_one_small_file_is_written_without_an_event_loop(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path, cache: dict[str, str]
) -> None:
    """On both servers (SeaweedFS checks the signature and the checksum): the object, its
    attributes and the line reported are the Uploader's."""
    await recorded(tmp_path / "first.txt", bucket, endpoint, cache)
    data = random_bytes(64 * 1024, seed=7)
    (tmp_path / "page.html").write_bytes(data)
    status, out, loaded = await cp(
        str(tmp_path / "page.html"), f"s3://{bucket}/site/", "--endpoint-url", endpoint,
        "--json", "--metadata", "owner=me", "--cache-control", "max-age=9", "--tag", "a=b",
        env=cache,
    )  # fmt: skip
    assert status == 0
    assert loaded == []  # no event loop, no anyio, no client
    (line,) = map(json.loads, out.splitlines())
    head = await s3.head_object(Bucket=bucket, Key="site/page.html")
    assert line | {"seconds": 0} == {
        "source": str(tmp_path / "page.html"), "bucket": bucket, "key": "site/page.html",
        "size": len(data), "etag": head["ETag"], "parts": 1, "verified_by": "asyncup",
        "unverified_reason": None, "seconds": 0, "ok": True, "error": None,
    }  # fmt: skip
    assert await read_object(s3, bucket, "site/page.html") == data
    assert head["ContentType"] == "text/html"  # guessed from the name, as the Uploader does
    assert head["Metadata"] == {"owner": "me"}
    assert head["CacheControl"] == "max-age=9"
    tags = await s3.get_object_tagging(Bucket=bucket, Key="site/page.html")
    assert tags["TagSet"] == [{"Key": "a", "Value": "b"}]


def settings(*args: str, source: str = "-") -> Any:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from(parser.parse_args([source, "s3://b/k", *args]))


SSE_C_KEY = bytes(range(32))


@ON_MOTO
@pytest.mark.parametrize(
    ("args", "size", "verified_by"),
    [
        pytest.param(["--metadata", "k=v", "--storage-class", "STANDARD_IA",
                      "--checksum-algorithm", "crc32c"], 5000, "asyncup", id="attributes"),
        pytest.param(["--checksum-algorithm", "none"], 5000, "asyncup", id="no-checksum"),
        pytest.param(["--integrity", "off"], 5000, None, id="integrity-off"),
        pytest.param(["--sse", "aws:kms"], 5000, None, id="sse-kms"),
        pytest.param(["--sse-c-key-file", "KEY"], 5000, None, id="sse-c"),
        pytest.param(["AWS"], 5000, "store", id="a-store-known-to-verify"),
    ],
)  # fmt: skip
async def test_its_request_and_result_are_the_uploaders(
    bucket: str,
    proxy: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    size: int,
    verified_by: str | None,
) -> None:
    """The same file written both ways: the same headers sent (but the signature and its
    time), and the same UploadResult, whoever vouches for the bytes (or why no one does)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if args == ["AWS"]:  # as S3 itself, which verifies every checksum: no MD5 compared
        for module in (cp_one, integrity):
            monkeypatch.setattr(module, "known_to_verify", lambda endpoint: True)
        args = []
    (tmp_path / "key").write_bytes(SSE_C_KEY)
    args = [str(tmp_path / "key") if a == "KEY" else a for a in args]
    path = tmp_path / "a.json"
    path.write_bytes(random_bytes(size, seed=2))
    chosen = settings("--endpoint-url", proxy.url, *args)
    routes = Routes(chosen.extra_args, chosen.config.checksum_algorithm)

    async def by_the_uploader(key: str) -> asyncup.UploadResult:
        uploader = asyncup.Uploader(endpoint_url=proxy.url, config=chosen.config)
        uploader._fast_start = True
        async with uploader:
            return await upload_routed(uploader, routes, str(path), bucket, key)

    await by_the_uploader("first")  # recorded
    theirs = await by_the_uploader("theirs")  # a fast start
    listing = Listing(items=[Item(str(path), bucket, "ours", size)])
    ours = await anyio.to_thread.run_sync(cp_one._put, listing, chosen)
    assert ours == dataclasses.replace(theirs, key="ours")
    assert ours.verified_by == verified_by
    *_, (_, sent_theirs), (_, sent_ours) = [r for r in proxy.requests if r[0] == "PutObject"]
    unsigned = {"authorization", "x-amz-date"}
    assert {k: v for k, v in sent_ours.items() if k not in unsigned} == {
        k: v for k, v in sent_theirs.items() if k not in unsigned
    }


@ON_MOTO
async def test_what_must_be_verified_before_it_exists_is_not_written_here(
    bucket: str, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """integrity="require" where the ETag will not be an MD5: the Uploader sends a one-part
    upload, checked before the object exists, so no PutObject goes from here."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "a.bin").write_bytes(b"x" * 100)
    chosen = settings("--endpoint-url", proxy.url, "--sse", "aws:kms", "--integrity", "require")
    uploader = asyncup.Uploader(endpoint_url=proxy.url)
    uploader._fast_start = True
    async with uploader:  # recorded
        await uploader.upload(b"first", bucket, "first")
    proxy.counts.clear()
    listing = Listing(items=[Item(str(tmp_path / "a.bin"), bucket, "a", 100)])
    with pytest.raises(cp_one._Declined, match="require"):
        await anyio.to_thread.run_sync(cp_one._put, listing, chosen)
    assert proxy.counts == {}


@ON_MOTO
@pytest.mark.parametrize("fault", ["503", "reset", "corrupt", "alien", "noetag", "lost"])
async def test_a_write_that_fails_is_the_uploaders_to_retry(
    s3: Any, bucket: str, proxy: FaultProxy, tmp_path: Path, cache: dict[str, str], fault: str
) -> None:
    """An error, a cut connection, bytes changed on the way, an answer that disowns them or
    says no ETag, a lost answer: the file goes to the Uploader, which sends it again; one
    line, one object."""
    await recorded(tmp_path / "first.txt", bucket, proxy.url, cache)
    proxy.counts.clear()
    data = random_bytes(20_000, seed=3)
    (tmp_path / "b.bin").write_bytes(data)
    proxy.fail("PutObject", fault, stall=1.0)
    status, out, loaded = await cp(
        str(tmp_path / "b.bin"), f"s3://{bucket}/b", "--endpoint-url", proxy.url, "--json",
        "--request-timeout", "2", env=cache,
    )  # fmt: skip
    assert status == 0
    assert "anyio" in loaded  # the Uploader's way, after the first attempt
    assert proxy.faults_injected[fault] == 1
    assert proxy.counts["PutObject"] == 2
    (line,) = map(json.loads, out.splitlines())
    assert (line["ok"], line["verified_by"]) == (True, "asyncup")
    assert await read_object(s3, bucket, "b") == data


@ON_MOTO
@pytest.mark.parametrize(
    ("args", "size", "env", "why"),
    [
        pytest.param(["--max-bandwidth", "10MiB"], 10, {}, "--max-bandwidth", id="max-bandwidth"),
        pytest.param(["--resume"], 10, {}, "--resume", id="resume"),
        pytest.param(["--max-attempts", "1"], 10, {}, "--max-attempts 1", id="max-attempts-1"),
        pytest.param(["--profile", "p"], 10, {}, "a profile", id="profile"),
        pytest.param(["--no-verify-ssl"], 10, {}, "--no-verify-ssl", id="no-verify-ssl"),
        pytest.param([], 1 * MiB, {}, "of its size", id="a-1MiB-file"),
        pytest.param(["--multipart-threshold", "5MiB", "--part-size", "5MiB"], 5 * MiB, {},
                     "of its size", id="multipart"),
        pytest.param([], 10, {"ASYNCUP_LEAN": "0"}, "ASYNCUP_LEAN=0", id="lean-off"),
        pytest.param([], 10, {"AWS_CREDENTIAL_EXPIRATION": "2099-01-01T00:00:00Z"},
                     "no static keys", id="keys-that-expire"),
        pytest.param(["ANOTHER-BUCKET"], 10, {}, "not in the record", id="a-bucket-not-recorded"),
    ],
)  # fmt: skip
async def test_what_it_does_not_take_goes_to_the_uploader(
    bucket: str,
    endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    args: list[str],
    size: int,
    env: dict[str, str],
    why: str,
) -> None:
    """Nothing sent, nothing reported, and the DEBUG line says why: the Uploader's to do."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    uploader = asyncup.Uploader(endpoint_url=endpoint)
    uploader._fast_start = True
    async with uploader:  # recorded, in the same environment
        await uploader.upload(b"first", bucket, "first")
    (tmp_path / "c.bin").write_bytes(random_bytes(size, seed=4))
    target = f"{bucket}-elsewhere" if args == ["ANOTHER-BUCKET"] else bucket
    args = [] if args == ["ANOTHER-BUCKET"] else args
    chosen = settings("--endpoint-url", endpoint, *args, source=str(tmp_path / "c.bin"))
    listing = Listing(items=[Item(str(tmp_path / "c.bin"), target, "c", size)])
    out = io.StringIO()
    caplog.set_level(logging.DEBUG, logger="asyncup")
    reporter = Reporter(out=out, err=out)
    assert await anyio.to_thread.run_sync(cp_one.copy_alone, listing, chosen, reporter) is None
    (said,) = [r.getMessage() for r in caplog.records if "the event loop's way" in r.getMessage()]
    assert why in said
    assert out.getvalue() == ""


async def test_over_tls_with_the_recorded_context(
    private_ca: tuple[str, str], tmp_path: Path, cache: dict[str, str]
) -> None:
    """Over HTTPS, with the CA bundle given: the context the record describes is made again
    (it trusts that CA), and the certificate is checked."""
    endpoint, ca = private_ca
    async with tls_client(endpoint, verify=ca) as s3:
        await s3.create_bucket(Bucket="cp-one-tls")
        tls = ("--ca-bundle", ca)
        await recorded(tmp_path / "first.txt", "cp-one-tls", endpoint, cache, *tls)
        (tmp_path / "d.txt").write_bytes(b"over TLS")
        status, _, loaded = await cp(str(tmp_path / "d.txt"), "s3://cp-one-tls/d",
                                     "--endpoint-url", endpoint, "-q", *tls, env=cache)  # fmt: skip
        assert (status, loaded) == (0, [])
        assert await read_object(s3, "cp-one-tls", "d") == b"over TLS"


def test_a_file_that_changed_since_it_was_listed_is_not_sent(tmp_path: Path) -> None:
    (tmp_path / "e").write_bytes(b"12345")
    with pytest.raises(cp_one._Declined, match="changed since it was listed"):
        cp_one._read(str(tmp_path / "e"), 4)


@ON_MOTO
async def test_ctrl_c_while_it_waits_for_the_answer_exits_130(
    s3: Any, bucket: str, proxy: FaultProxy, tmp_path: Path, cache: dict[str, str]
) -> None:
    """Interrupted in its blocking exchange: the command stops at once, exits 130, and says
    so; nothing reached the store."""
    await recorded(tmp_path / "first.txt", bucket, proxy.url, cache)
    (tmp_path / "f.bin").write_bytes(b"f" * 1000)
    proxy.seen.clear()  # (the first cp's PutObject was seen)
    proxy.fail("PutObject", "stall", stall=10.0)  # held, never forwarded
    command = [sys.executable, "-c", LOADED, "cp", str(tmp_path / "f.bin"), f"s3://{bucket}/f"]
    async with await anyio.open_process(
        [*command, "--endpoint-url", proxy.url], env=cache
    ) as process:
        with anyio.fail_after(20):
            await proxy.seen["PutObject"].wait()
        returncode, stderr = await interrupt(process)
    assert returncode == 130, stderr
    assert "interrupted" in stderr
    assert json.loads(stderr.splitlines()[-1]) == []  # it was waiting in cp_one's exchange
    listing = await s3.list_objects_v2(Bucket=bucket)
    assert [item["Key"] for item in listing["Contents"]] == ["first"]


@ON_MOTO
async def test_on_a_terminal_the_summary_follows_the_bars(
    bucket: str, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the Uploader's way says it: the bars go, then the summary stays on the terminal."""
    from rich.console import Console

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    uploader = asyncup.Uploader(endpoint_url=endpoint)
    uploader._fast_start = True
    async with uploader:  # recorded
        await uploader.upload(b"first", bucket, "first")
    (tmp_path / "g.txt").write_bytes(b"g" * 100)
    listing = Listing(items=[Item(str(tmp_path / "g.txt"), bucket, "g.txt", 100)])
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    reporter = RichReporter(console)
    chosen = settings("--endpoint-url", endpoint)
    status = await anyio.to_thread.run_sync(cp_one.copy_alone, listing, chosen, reporter)
    assert status == 0
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"upload: {tmp_path / 'g.txt'} -> s3://{bucket}/g.txt (100 bytes" in output
    assert output.rstrip().endswith("0 failed")
