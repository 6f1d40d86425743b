"""The orphan sweeper: list_uploads pages, abort_uploads ages and reports, `asyncup uploads`.

moto answers every ListMultipartUploads in one page (it ignores MaxUploads and the markers)
and dates every upload 2010-11-10; SeaweedFS pages (by upload id, without NextKeyMarker)
and dates uploads by its clock. So the ages are tested on SeaweedFS, the pages on both.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError

from asyncup import PendingUpload, TransferConfig, Uploader
from asyncup._core.errors import AsyncupError
from asyncup._pipeline.sweeper import abort_each, abort_uploads, list_uploads
from asyncup._s3.calls import S3, Response
from tests.faultproxy import FaultProxy

ON_SEAWEEDFS = pytest.mark.parametrize("server", ["seaweedfs"], indirect=True)
ON_MOTO = pytest.mark.parametrize("server", ["moto"], indirect=True)
HOUR = datetime.timedelta(hours=1)
FAST_RETRIES = TransferConfig(retry_base_delay=0.01, retry_max_delay=0.05)


async def create(s3: Any, bucket: str, keys: list[str], in_flight: int = 16) -> set[str]:
    """Create a multipart upload for each key, ``in_flight`` at a time; their upload ids."""
    ids: set[str] = set()
    limiter = anyio.CapacityLimiter(in_flight)

    async def one(key: str) -> None:
        async with limiter:
            response = await s3.create_multipart_upload(Bucket=bucket, Key=key)
        ids.add(response["UploadId"])

    async with anyio.create_task_group() as tg:
        for key in keys:
            tg.start_soon(one, key)
    return ids


async def listed(s3: Any, bucket: str, prefix: str = "", **kwargs: Any) -> list[PendingUpload]:
    return [u async for u in list_uploads(S3(s3, FAST_RETRIES), bucket, prefix, **kwargs)]


def record_listings(s3: Any) -> list[dict[str, Any]]:
    """The parameters of every ListMultipartUploads ``s3`` sends from now on."""
    calls: list[dict[str, Any]] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    s3.meta.events.register("before-parameter-build.s3.ListMultipartUploads", seen)
    return calls


async def assert_gone(s3: Any, bucket: str, upload: PendingUpload) -> None:
    with pytest.raises(ClientError) as caught:
        await s3.list_parts(Bucket=bucket, Key=upload.key, UploadId=upload.upload_id)
    assert caught.value.response["Error"]["Code"] == "NoSuchUpload"


# -- ages (SeaweedFS: moto's Initiated dates are fixed) --------------------------------------


@ON_SEAWEEDFS
async def test_uploads_initiated_before_the_cutoff_are_aborted_the_newer_kept(
    s3: Any, bucket: str
) -> None:
    old_ids = await create(s3, bucket, ["old/a", "old/b", "old/b"])
    await anyio.sleep(1.1)  # Initiated has whole seconds: the new ones are a second later
    await create(s3, bucket, ["new/a", "old/c"])
    uploads = await listed(s3, bucket)
    assert len(uploads) == 5
    assert all(u.initiated.tzinfo is datetime.UTC and u.bucket == bucket for u in uploads)
    old = {u for u in uploads if u.upload_id in old_ids}
    new = set(uploads) - old
    assert max(u.initiated for u in old) < min(u.initiated for u in new)
    # Two hours after the first new upload, "older than two hours" means before it.
    now = min(u.initiated for u in new) + 2 * HOUR
    s3_ = S3(s3, FAST_RETRIES)

    dry = await abort_uploads(s3_, bucket, older_than=2 * HOUR, dry_run=True, now=now)
    assert {u for u, _ in dry} == old
    assert all(error is None for _, error in dry)
    assert len(await listed(s3, bucket)) == 5  # nothing was aborted

    outcomes = await abort_uploads(s3_, bucket, older_than=2 * HOUR, now=now)
    assert {u for u, _ in outcomes} == old
    assert [error for _, error in outcomes] == [None] * 3
    for upload in old:
        await assert_gone(s3, bucket, upload)
    assert set(await listed(s3, bucket)) == new
    for upload in new:
        await s3.list_parts(Bucket=bucket, Key=upload.key, UploadId=upload.upload_id)

    # A prefix narrows it; an abort answering NoSuchUpload (already gone) counts as done.
    later = now + 2 * HOUR
    outcomes = await abort_uploads(s3_, bucket, "new/", older_than=HOUR, now=later)
    assert [(u.key, error) for u, error in outcomes] == [("new/a", None)]
    assert [u.key for u in await listed(s3, bucket)] == ["old/c"]
    assert await abort_each(s3_, [*old]) == [(u, None) for u in old]


async def test_bad_ages_are_refused_before_any_request() -> None:
    s3 = S3(object(), TransferConfig())  # any request would fail: it has no methods
    with pytest.raises(ValueError, match="older_than"):
        await abort_uploads(s3, "b", older_than=-HOUR)
    with pytest.raises(ValueError, match="timezone-aware"):
        await abort_uploads(s3, "b", older_than=HOUR, now=datetime.datetime(2026, 1, 1))


# -- pages ---------------------------------------------------------------------------------


async def test_1100_uploads_are_each_listed_once_then_all_aborted(
    s3: Any, bucket: str, server: str
) -> None:
    keys = [f"many/{i % 37:02d}/{i:04d}" for i in range(1100)]
    ids = await create(s3, bucket, keys)
    calls = record_listings(s3)
    uploads = await listed(s3, bucket, "many/")
    assert len(uploads) == 1100
    assert {u.upload_id for u in uploads} == ids
    assert sorted(u.key for u in uploads) == sorted(keys)
    assert all(call["MaxUploads"] == 1000 for call in calls)
    # SeaweedFS pages at the 1,000 asked for; moto answers everything at once.
    assert len(calls) == (2 if server == "seaweedfs" else 1)

    outcomes = await abort_each(S3(s3, FAST_RETRIES), uploads)
    assert [error for _, error in outcomes] == [None] * 1100
    assert await listed(s3, bucket) == []


@ON_SEAWEEDFS
async def test_small_pages_follow_the_markers_the_server_gives(s3: Any, bucket: str) -> None:
    ids = await create(s3, bucket, [f"k/{i % 6}" for i in range(20)])  # several per key
    calls = record_listings(s3)
    uploads = await listed(s3, bucket, page_size=7)
    assert sorted(u.upload_id for u in uploads) == sorted(ids)  # each exactly once
    assert len(calls) == 3
    assert "UploadIdMarker" not in calls[0]
    assert calls[1]["UploadIdMarker"]
    assert calls[2]["UploadIdMarker"] != calls[1]["UploadIdMarker"]
    await abort_each(S3(s3, FAST_RETRIES), uploads)


class PagedS3(S3):
    """ListMultipartUploads as AWS pages it, from a list, with no server."""

    def __init__(self, pages: list[Response]) -> None:
        super().__init__(None, TransferConfig())
        self.pages = pages
        self.params: list[Mapping[str, Any]] = []

    async def call(self, operation: str, params: Mapping[str, Any], **_: Any) -> Response:
        assert operation == "list_multipart_uploads"
        self.params.append(params)
        return self.pages[len(self.params) - 1]


def page(*keys: str, truncated: bool = False, **markers: str) -> Response:
    initiated = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    uploads = [{"Key": k, "UploadId": f"id-{k}", "Initiated": initiated} for k in keys]
    return {"Uploads": uploads, "IsTruncated": truncated, **markers}


async def test_aws_style_markers_are_sent_back_and_a_stuck_page_is_an_error() -> None:
    s3 = PagedS3(
        [
            page("a", "b", truncated=True, NextKeyMarker="b", NextUploadIdMarker="id-b"),
            page("c"),
        ]
    )
    assert [u.key async for u in list_uploads(s3, "bucket", "p/")] == ["a", "b", "c"]
    assert s3.params[1] == {
        "Bucket": "bucket",
        "Prefix": "p/",
        "MaxUploads": 1000,
        "KeyMarker": "b",
        "UploadIdMarker": "id-b",
    }
    stuck = PagedS3([page("a", truncated=True, NextKeyMarker="a")] * 2 + [page()])
    with pytest.raises(AsyncupError, match="without a new marker"):
        _ = [u async for u in list_uploads(stuck, "bucket")]
    with pytest.raises(AsyncupError, match="without a new marker"):
        _ = [u async for u in list_uploads(PagedS3([page("a", truncated=True)]), "bucket")]


# -- failures, one upload at a time ------------------------------------------------------------


async def test_a_failed_abort_is_reported_and_the_others_go(
    s3: Any, bucket: str, proxied: Any, proxy: FaultProxy
) -> None:
    await create(s3, bucket, [f"f/{i}" for i in range(6)])
    proxy.fail("AbortMultipartUpload", "403")  # AccessDenied: not retried
    proxy.fail("AbortMultipartUpload", "503", times=2)  # retried by asyncup's policy
    async with Uploader(client=proxied, config=FAST_RETRIES) as up:
        assert len([u async for u in up.list_uploads(bucket, "f/")]) == 6
        outcomes = await up.abort_uploads(bucket, "f/", older_than=datetime.timedelta(0))
    failed = [(u, error) for u, error in outcomes if error is not None]
    assert len(outcomes) == 6
    assert len(failed) == 1
    upload, error = failed[0]
    assert isinstance(error, ClientError)
    assert error.response["Error"]["Code"] == "AccessDenied"
    assert proxy.faults_injected == {"403": 1, "503": 2}
    assert await listed(s3, bucket) == [upload]


async def test_a_listing_error_is_raised(s3: Any) -> None:
    with pytest.raises(ClientError, match="NoSuchBucket"):
        await listed(s3, "asyncup-no-such-bucket")


# -- the command -------------------------------------------------------------------------------


async def uploads_cmd(*args: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    """Run `asyncup uploads ARGS` with stdin not a terminal; the output decoded."""
    run = await anyio.run_process(
        [sys.executable, "-m", "asyncup", "uploads", *args, "--endpoint-url", endpoint],
        stdin=subprocess.DEVNULL,
        check=False,
        env=os.environ,
    )
    return subprocess.CompletedProcess(
        run.args, run.returncode, run.stdout.decode(), run.stderr.decode()
    )


async def test_cli_ls_lists_each_upload(s3: Any, bucket: str, endpoint: str) -> None:
    ids = await create(s3, bucket, ["logs/a.gz", "logs/b.gz", "other/c"])
    run = await uploads_cmd("ls", f"s3://{bucket}/logs/", endpoint=endpoint)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert sorted(line.split()[2] for line in lines) == ["logs/a.gz", "logs/b.gz"]
    assert {line.split()[3] for line in lines} < ids
    assert "2 unfinished uploads" in run.stderr

    run = await uploads_cmd("ls", f"s3://{bucket}", "--json", endpoint=endpoint)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert {r["upload_id"] for r in records} == ids
    assert {r["key"] for r in records} == {"logs/a.gz", "logs/b.gz", "other/c"}
    assert all(r["bucket"] == bucket and r["initiated"].endswith("Z") for r in records)
    assert all(r["age_seconds"] >= 0 for r in records)
    await abort_each(S3(s3, FAST_RETRIES), await listed(s3, bucket))


@ON_MOTO  # moto dates every upload 2010-11-10: all are older than a day
async def test_cli_abort_dry_run_refusal_and_yes(s3: Any, bucket: str, endpoint: str) -> None:
    await create(s3, bucket, ["tmp/a", "tmp/b", "keep/c"])
    url = f"s3://{bucket}/tmp/"
    run = await uploads_cmd("abort", url, "--older-than", "1d", "--dry-run", endpoint=endpoint)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("would abort:") == 2
    assert "none was" in run.stderr
    assert len(await listed(s3, bucket)) == 3

    run = await uploads_cmd("abort", url, "--older-than", "1d", endpoint=endpoint)
    assert run.returncode == 2
    assert "--yes" in run.stderr
    assert run.stdout == ""
    assert len(await listed(s3, bucket)) == 3

    run = await uploads_cmd(
        "abort", url, "--older-than", "2w", "--yes", "--json", endpoint=endpoint
    )
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert sorted(r["key"] for r in records) == ["tmp/a", "tmp/b"]
    assert all(r["status"] == "aborted" and r["error"] is None for r in records)
    assert [u.key for u in await listed(s3, bucket)] == ["keep/c"]


@ON_SEAWEEDFS
async def test_cli_abort_keeps_fresh_uploads(s3: Any, bucket: str, endpoint: str) -> None:
    await create(s3, bucket, ["fresh"])
    run = await uploads_cmd(
        "abort", f"s3://{bucket}", "--older-than", "30m", "--yes", endpoint=endpoint
    )
    assert run.returncode == 0, run.stderr
    assert "no unfinished uploads initiated before" in run.stderr
    assert [u.key for u in await listed(s3, bucket)] == ["fresh"]
    await abort_each(S3(s3, FAST_RETRIES), await listed(s3, bucket))


async def test_cli_usage_errors_exit_2() -> None:
    for args in (
        ["ls", "bucket/prefix"],
        ["abort", "s3://bucket", "--older-than", "1 day", "--yes"],
        ["abort", "s3://bucket", "--yes"],
    ):
        run = await uploads_cmd(*args, endpoint="http://127.0.0.1:9")
        assert run.returncode == 2, (args, run.stderr)
