"""`asyncup cp`: the real command, run as a subprocess against the suite's S3 servers."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError

import asyncup
from asyncup import UploadResult
from asyncup._cli.cp_sources import Item
from asyncup._cli.render import Outcome, RichReporter
from asyncup._core import records
from tests.conftest import MiB, assert_object, interrupt, random_bytes, read_object, wait_quiet
from tests.faultproxy import FaultProxy

ON_MOTO = pytest.mark.parametrize("server", ["moto"], indirect=True)
NOWHERE = "http://127.0.0.1:9"  # nothing listens: a command that sent a request would fail


async def cp(*args: str, stdin: bytes | None = None, env: Any = None) -> Any:
    """Run `asyncup cp ARGS` to completion; the CompletedProcess, output decoded."""
    run = await anyio.run_process(
        [sys.executable, "-m", "asyncup", "cp", *args],
        input=stdin,
        check=False,
        env=env or os.environ,
    )
    return subprocess.CompletedProcess(
        run.args, run.returncode, run.stdout.decode(), run.stderr.decode()
    )


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


async def keys(s3: Any, bucket: str) -> list[str]:
    listing = await s3.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


async def test_a_file_reaches_its_key_with_its_attributes(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    data = random_bytes(6 * MiB + 123, seed=1)
    (tmp_path / "video.bin").write_bytes(data)
    run = await cp(
        str(tmp_path / "video.bin"),
        f"s3://{bucket}/media/video.bin",
        *("--endpoint-url", endpoint, "--part-size", "5MiB", "--multipart-threshold", "5MiB"),
        *("--content-type", "video/x-test", "--cache-control", "max-age=60"),
        *("--metadata", "owner=me", "--metadata", "team=storage"),
        *("--tag", "env=test", "--tag", "kind=a b"),
    )
    assert run.returncode == 0, run.stderr
    assert f"-> s3://{bucket}/media/video.bin" in run.stdout
    assert "1 file uploaded" in run.stdout
    await assert_object(s3, bucket, "media/video.bin", data, 5 * MiB)
    head = await s3.head_object(Bucket=bucket, Key="media/video.bin")
    assert head["ContentType"] == "video/x-test"
    assert head["CacheControl"] == "max-age=60"
    assert head["Metadata"] == {"owner": "me", "team": "storage"}
    tagging = await s3.get_object_tagging(Bucket=bucket, Key="media/video.bin")
    tags = {tag["Key"]: tag["Value"] for tag in tagging["TagSet"]}
    assert tags == {"env": "test", "kind": "a b"}


@pytest.mark.parametrize("server", ["seaweedfs"], indirect=True)  # applies SSE-C; moto does not
async def test_an_sse_c_key_file_encrypts_every_part(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    key = bytes(range(32))
    (tmp_path / "key").write_bytes(key)
    data = random_bytes(6 * MiB, seed=6)
    (tmp_path / "secret.bin").write_bytes(data)
    run = await cp(
        str(tmp_path / "secret.bin"), f"s3://{bucket}/secret.bin", "--endpoint-url", endpoint,
        "--sse-c-key-file", str(tmp_path / "key"), "--part-size", "5MiB",
        "--multipart-threshold", "5MiB",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    response = await s3.get_object(
        Bucket=bucket, Key="secret.bin", SSECustomerAlgorithm="AES256", SSECustomerKey=key
    )
    async with response["Body"] as body:
        assert await body.read() == data
    with pytest.raises(ClientError):
        await s3.head_object(Bucket=bucket, Key="secret.bin")  # not without the key


@ON_MOTO
async def test_a_file_to_a_prefix_keeps_its_name(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_bytes(b"hello")
    run = await cp(str(tmp_path / "notes.txt"), f"s3://{bucket}/docs/", "--endpoint-url", endpoint)
    assert run.returncode == 0, run.stderr
    assert await read_object(s3, bucket, "docs/notes.txt") == b"hello"
    head = await s3.head_object(Bucket=bucket, Key="docs/notes.txt")
    assert head["ContentType"] == "text/plain"  # guessed from the name


@ON_MOTO
async def test_a_directory_goes_to_a_prefix_through_the_filters(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    names = ["a.txt", "b.log", "sub/c.txt", "sub/d.bin", "tmp/e.txt"]
    root = tree(tmp_path / "root", {name: name.encode() for name in names})
    run = await cp(
        str(root), f"s3://{bucket}/all", "--endpoint-url", endpoint,
        "--exclude", "*.log", "--exclude", "tmp/*",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    run = await cp(
        str(root), f"s3://{bucket}/txt/", "--endpoint-url", endpoint,
        "--include", "*.txt", "--exclude", "tmp/*",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert await keys(s3, bucket) == [
        "all/a.txt", "all/sub/c.txt", "all/sub/d.bin", "txt/a.txt", "txt/sub/c.txt",
    ]  # fmt: skip
    assert await read_object(s3, bucket, "all/sub/d.bin") == b"sub/d.bin"
    assert "2 files uploaded" in run.stdout
    types = {key: (await s3.head_object(Bucket=bucket, Key=key))["ContentType"]
             for key in ("all/a.txt", "all/sub/d.bin")}  # fmt: skip
    assert types == {"all/a.txt": "text/plain", "all/sub/d.bin": "application/octet-stream"}


@ON_MOTO
async def test_stdin_of_unknown_length_goes_multipart(s3: Any, bucket: str, endpoint: str) -> None:
    data = random_bytes(7 * MiB, seed=2)
    run = await cp(
        "-", f"s3://{bucket}/stream.bin", "--endpoint-url", endpoint, "--json",
        "--part-size", "5MiB", "--multipart-threshold", "5MiB",
        stdin=data,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    [line] = json_lines(run.stdout)
    assert line["ok"]
    assert line["source"] == "-"
    assert (line["size"], line["parts"]) == (len(data), 2)
    await assert_object(s3, bucket, "stream.bin", data, 5 * MiB)


@ON_MOTO
async def test_dry_run_sends_nothing(s3: Any, bucket: str, endpoint: str, tmp_path: Path) -> None:
    root = tree(tmp_path / "root", {"a.txt": b"a", "sub/b.txt": b"bb"})
    run = await cp(str(root), f"s3://{bucket}/p/", "--endpoint-url", endpoint, "--dry-run")
    assert run.returncode == 0, run.stderr
    assert f"(dry run) upload: {root / 'a.txt'} -> s3://{bucket}/p/a.txt (1 bytes)" in run.stdout
    assert f"-> s3://{bucket}/p/sub/b.txt" in run.stdout
    assert await keys(s3, bucket) == []


@ON_MOTO
async def test_json_lines_describe_each_object(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    files = {"big.bin": random_bytes(6 * MiB, seed=3), "small.txt": b"small", "empty": b""}
    root = tree(tmp_path / "root", files)
    run = await cp(
        str(root), f"s3://{bucket}", "--endpoint-url", endpoint, "--json", "--part-size", "5MiB",
        "--multipart-threshold", "5MiB", "--checksum-algorithm", "none",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = {line["key"]: line for line in json_lines(run.stdout)}
    assert set(lines) == set(files)
    for key, line in lines.items():
        head = await s3.head_object(Bucket=bucket, Key=key)
        assert line["ok"] is True
        assert line["error"] is None
        assert line["size"] == head["ContentLength"] == len(files[key])
        assert line["etag"] == head["ETag"]
        assert line["seconds"] >= 0
        # No checksum sent: every write's ETag was compared with its MD5.
        assert (line["verified_by"], line["unverified_reason"]) == ("asyncup", None)
    assert lines["big.bin"]["parts"] == 2
    assert "3 files uploaded" in run.stderr  # the summary stays out of the JSON lines


@ON_MOTO
async def test_a_failed_object_does_not_stop_the_others(
    s3: Any, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    root = tree(tmp_path / "root", {f"f{i}.txt": b"x" * i for i in range(1, 4)})
    proxy.fail("PutObject", "403")
    run = await cp(str(root), f"s3://{bucket}/", "--endpoint-url", proxy.url, "--json")
    assert run.returncode == 1
    lines = json_lines(run.stdout)
    failed = [line for line in lines if not line["ok"]]
    assert len(lines) == 3
    assert len(failed) == 1
    assert "AccessDenied" in failed[0]["error"]
    assert len(await keys(s3, bucket)) == 2
    assert "1 failed" in run.stderr


@ON_MOTO
async def test_fail_fast_stops_at_the_first_failure(
    bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    root = tree(tmp_path / "root", {f"f{i}.txt": b"x" for i in range(4)})
    proxy.fail("PutObject", "403")
    run = await cp(
        str(root), f"s3://{bucket}/", "--endpoint-url", proxy.url, "--jobs", "1", "--fail-fast"
    )
    assert run.returncode == 1
    assert proxy.counts["PutObject"] == 1
    assert "3 not uploaded" in run.stdout


@ON_MOTO
async def test_many_files_share_one_budget_of_requests(
    s3: Any, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """4 files of 2 parts at once, --concurrency 2: one Uploader keeps 2 parts in flight in
    all (an Uploader per file would allow 8)."""
    files = {f"f{i}.bin": random_bytes(6 * MiB, seed=10 + i) for i in range(4)}
    root = tree(tmp_path / "root", files)
    proxy.delay("UploadPart", 0.3)
    run = await cp(
        str(root), f"s3://{bucket}/", "--endpoint-url", proxy.url, "--jobs", "4",
        "--concurrency", "2", "--part-size", "5MiB", "--multipart-threshold", "5MiB",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert proxy.counts["UploadPart"] == 8
    assert proxy.max_parts_in_flight == 2
    assert proxy.counts["CreateMultipartUpload"] == 4
    assert await keys(s3, bucket) == sorted(files)


FAST_START_PROBE = """
import sys
from asyncup._cli.main import main
code = main(sys.argv[1:])
print(sorted({name.split(".")[0] for name in sys.modules} & {"aiobotocore", "aiohttp"}))
sys.exit(code)
"""


@ON_MOTO
async def test_a_second_cp_to_a_bucket_makes_no_client(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    """The first command's client is recorded (``_s3.start``); the second writes to the same
    bucket without making one: neither aiobotocore nor aiohttp is even imported."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    (tmp_path / "a.txt").write_bytes(b"first")
    (tmp_path / "b.txt").write_bytes(b"second")
    args = ["--endpoint-url", endpoint, "--content-type", "text/x-b", "-q"]
    first = await cp(str(tmp_path / "a.txt"), f"s3://{bucket}/a", *args, env=env)
    assert first.returncode == 0, first.stderr
    command = [sys.executable, "-c", FAST_START_PROBE, "cp", str(tmp_path / "b.txt")]
    second = await anyio.run_process([*command, f"s3://{bucket}/b", *args], env=env)
    assert second.stdout.decode().strip() == "[]"
    assert await read_object(s3, bucket, "b") == b"second"
    head = await s3.head_object(Bucket=bucket, Key="b")
    assert head["ContentType"] == "text/x-b"


@ON_MOTO
async def test_a_missing_bucket_fails_with_exit_1(endpoint: str, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    run = await cp(
        str(tmp_path / "a.txt"), "s3://asyncup-no-such-bucket/a", "--endpoint-url", endpoint
    )
    assert run.returncode == 1
    assert "failed:" in run.stderr
    assert "NoSuchBucket" in run.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["FILE", "s3://b/k", "--part-size", "lots"], id="size"),
        pytest.param(["FILE", "s3://b/k", "--part-size", "1MiB"], id="part-size-too-small"),
        pytest.param(["FILE", "bucket/key"], id="not-s3-url"),
        pytest.param(["FILE", "s3://b/a/../k"], id="dot-dot"),
        pytest.param(["FILE", "s3://b/k", "--metadata", "novalue"], id="metadata"),
        pytest.param(["FILE", "s3://b/k", "--acl", "everyone"], id="acl"),
        pytest.param(["FILE", "s3://b/k", "--sse-kms-key-id", "k"], id="kms-without-sse"),
        pytest.param(["FILE", "s3://b/k", "--sse-c-key-file", os.devnull], id="sse-c-key-size"),
        pytest.param(["-", "s3://b/prefix/"], id="stdin-to-prefix"),
        pytest.param(["FILE"], id="no-dst"),
        pytest.param(["-", "s3://b/k", "--resume"], id="resume-stdin"),
        pytest.param(["FILE", "s3://b/k", "--resume-dir", "/tmp"], id="resume-dir-alone"),
    ],
)
async def test_usage_errors_exit_2(args: list[str]) -> None:
    args = [__file__ if arg == "FILE" else arg for arg in args]
    run = await cp(*args, "--endpoint-url", NOWHERE, stdin=b"")
    assert run.returncode == 2, run.stderr
    assert "usage: asyncup cp" in run.stderr


@ON_MOTO
@pytest.mark.timeout(40)
async def test_sigint_aborts_the_uploads_and_exits_130(
    s3: Any, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(random_bytes(12 * MiB, seed=4))
    proxy.delay("UploadPart", 5)
    command = [sys.executable, "-m", "asyncup", "cp", str(tmp_path / "big.bin")]
    command += [f"s3://{bucket}/big.bin", "--endpoint-url", proxy.url, "--part-size", "5MiB"]
    async with await anyio.open_process(command, env=os.environ) as process:
        with anyio.fail_after(20):
            await proxy.seen["UploadPart"].wait()
        returncode, stderr = await interrupt(process)
    assert returncode == 130, stderr
    assert "interrupted" in stderr
    assert proxy.counts["AbortMultipartUpload"] >= 1
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
    assert await keys(s3, bucket) == []


def recorded_parts(journals: Path) -> set[int]:
    """The parts recorded in the one journal under ``journals`` (none before it exists)."""
    found = list(journals.glob("*.resume")) if journals.exists() else []
    if not found:
        return set()
    return set(records.parse(found[0].read_text())[1])


@ON_MOTO
@pytest.mark.timeout(50)
async def test_sigint_with_resume_keeps_the_upload_and_the_same_command_goes_on(
    s3: Any, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = random_bytes(21 * MiB, seed=5)  # 5 parts
    (tmp_path / "big.bin").write_bytes(data)
    journals = tmp_path / "journals"
    args = [str(tmp_path / "big.bin"), f"s3://{bucket}/big.bin", "--endpoint-url", proxy.url]
    args += ["--part-size", "5MiB", "--concurrency", "1", "--resume", "--resume-dir", str(journals)]
    proxy.delay("UploadPart", 0.4)
    command = [sys.executable, "-m", "asyncup", "cp", *args]
    async with await anyio.open_process(command, env=os.environ) as process:
        for _ in range(1000):  # 20 s at most
            if len(recorded_parts(journals)) >= 2:
                break
            await anyio.sleep(0.02)
        returncode, stderr = await interrupt(process)
    assert returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    assert proxy.counts["AbortMultipartUpload"] == 0
    assert len((await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", [])) == 1
    recorded = recorded_parts(journals)
    assert 2 <= len(recorded) < 5

    # The interrupted part may have reached the proxy whole, which sends it on after its
    # delay: let it land before the resumed run (moto fails two writes of one part at once).
    await wait_quiet(proxy)
    proxy.delays.clear()
    proxy.counts.clear()
    run = await cp(*args)
    assert run.returncode == 0, run.stderr
    assert proxy.counts["UploadPart"] == 5 - len(recorded)  # only what was missing
    assert proxy.counts["CreateMultipartUpload"] == 0
    await assert_object(s3, bucket, "big.bin", data, 5 * MiB)
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []
    assert list(journals.iterdir()) == []


@ON_MOTO
@pytest.mark.timeout(40)
async def test_sigint_while_stdin_is_silent_aborts_and_exits_130(
    s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    """A read blocked on a pipe that sends nothing does not hold up the interrupt."""
    command = [sys.executable, "-m", "asyncup", "cp", "-", f"s3://{bucket}/stream.bin"]
    command += ["--endpoint-url", proxy.url, "--part-size", "5MiB", "--multipart-threshold", "0"]
    async with await anyio.open_process(command, env=os.environ) as process:
        assert process.stdin is not None
        # A first part and a little more, then silence: the pipe stays open.
        await process.stdin.send(random_bytes(5 * MiB + 100, seed=5))
        with anyio.fail_after(20):
            await proxy.seen["CreateMultipartUpload"].wait()
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            returncode = await process.wait()
    assert returncode == 130
    assert proxy.counts["AbortMultipartUpload"] >= 1
    assert (await s3.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


@ON_MOTO
async def test_symlinks_out_of_the_root_and_loops_are_not_followed(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    outside = tree(tmp_path / "outside", {"secret.txt": b"secret"})
    root = tree(tmp_path / "root", {"a.txt": b"a", "sub/b.txt": b"b"})
    (root / "escape").symlink_to(outside)
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "sub" / "loop").symlink_to(root)
    (root / "alias").symlink_to(root / "sub")  # inside the root: followed
    run = await cp(str(root), f"s3://{bucket}/", "--endpoint-url", endpoint)
    assert run.returncode == 0, run.stderr
    assert await keys(s3, bucket) == ["a.txt", "alias/b.txt", "sub/b.txt"]
    assert "'escape': a symlink to outside SRC" in run.stderr
    assert "'escape.txt': a symlink to outside SRC" in run.stderr
    assert "'sub/loop': a symlink loop" in run.stderr


@ON_MOTO
async def test_a_file_name_that_makes_a_bad_key_fails_alone(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    root = tree(tmp_path / "root", {"good.txt": b"g", "bad\nname": b"b"})
    run = await cp(str(root), f"s3://{bucket}/", "--endpoint-url", endpoint)
    assert run.returncode == 1
    assert await keys(s3, bucket) == ["good.txt"]
    assert "control character" in run.stderr
    assert "'bad\\nname'" in run.stderr  # one line, escaped


@ON_MOTO
async def test_profile_and_no_verify_ssl_use_a_client_of_its_own(
    s3: Any, bucket: str, endpoint: str, tmp_path: Path
) -> None:
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile cptest]\naws_access_key_id = asyncup-test\n"
        "aws_secret_access_key = asyncup-test\nregion = us-east-1\n"
    )
    (tmp_path / "a.txt").write_bytes(b"a")
    env = {**os.environ, "AWS_CONFIG_FILE": str(config)}
    args = [str(tmp_path / "a.txt"), f"s3://{bucket}/a.txt", "--endpoint-url", endpoint]
    run = await cp(*args, "--profile", "cptest", "--no-verify-ssl", env=env)
    assert run.returncode == 0, run.stderr
    assert "NOT verified" in run.stderr
    assert await read_object(s3, bucket, "a.txt") == b"a"
    run = await cp(*args, "--profile", "absent", env=env)
    assert run.returncode == 1
    assert "absent" in run.stderr


def test_progress_bars_on_a_terminal() -> None:
    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    item = Item("a.bin", "bucket", "dir/a.bin", 100)
    result = UploadResult(bucket="bucket", key="dir/a.bin", etag='"e"', size=100, parts=1,
                          upload_id=None)  # fmt: skip
    with RichReporter(console) as reporter:
        reporter.begin([item])
        reporter.start(item)
        reporter.advance(item, 60)
        reporter.advance(item, 40)
        reporter.finish(Outcome(item, 0.5, result=result))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert "upload: a.bin -> s3://bucket/dir/a.bin (100 bytes, 1 part, 0.50 s)" in output
    assert "total (1 file)" in output


def test_the_total_bar_shows_parts_in_flight_and_retries() -> None:
    from rich.console import Console

    from asyncup import UploadEvent

    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    item = Item("a.bin", "bucket", "a.bin", 3 * 5 * 2**20)

    def event(kind: str, part: int, **more: Any) -> UploadEvent:
        fields: dict[str, Any] = {"bucket": "bucket", "key": "a.bin", "bytes_done": 0}
        return UploadEvent(kind=kind, part_number=part, **fields, **more)  # type: ignore[arg-type]

    with RichReporter(console) as reporter:
        reporter.begin([item])
        reporter.start(item)
        for part in (1, 2, 3):
            reporter.event(event("part_started", part))
        reporter.event(event("retry", 2, attempt=2, error="SlowDown"))
        reporter.event(event("part_done", 1))
        assert reporter.description() == "total (1 file), 2 parts in flight, 1 retry"


@pytest.mark.parametrize("follows", [True, False])
@ON_MOTO
async def test_only_a_reporter_that_follows_is_fed_each_uploads_progress_and_events(
    bucket: str, endpoint: str, tmp_path: Path, follows: bool
) -> None:
    """The command's uploads feed bars what they show; for lines, no event is even made."""
    import argparse

    from asyncup._cli.cp import add_arguments, settings_from
    from asyncup._cli.cp_uploads import upload_item
    from asyncup._cli.render import Reporter
    from asyncup._core.params import Routes

    seen: list[Any] = []

    class Following(Reporter):
        def advance(self, item: Item, amount: int) -> None:
            seen.append(amount)

        def event(self, event: Any) -> None:
            seen.append(event.kind)

    Following.follows = follows
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "a.bin"), f"s3://{bucket}/a.bin"])
    settings = settings_from(args)
    item = Item(str(tmp_path / "a.bin"), bucket, "a.bin", 1000)
    routes = Routes(settings.extra_args, settings.config.checksum_algorithm)
    async with asyncup.Uploader(endpoint_url=endpoint, config=settings.config) as uploader:
        outcome = await upload_item(uploader, routes, item, settings, Following(quiet=True))
    assert outcome.ok, outcome.error
    assert seen == (["part_started", "part_done", 1000, "done"] if follows else [])


def test_every_transfer_config_field_has_a_flag() -> None:
    import argparse
    import dataclasses

    from asyncup import TransferConfig
    from asyncup._cli.cp import add_arguments, settings_from

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {o for action in parser._actions for o in action.option_strings}
    fields = [f.name for f in dataclasses.fields(TransferConfig)]
    assert {"--" + name.replace("_", "-") for name in fields} <= flags
    args = parser.parse_args(
        [
            "src",
            "s3://bucket/key",
            "--max-bandwidth",
            "2MiB",
            "--abort-timeout",
            "5",
            "--checksum-algorithm",
            "crc32c",
        ]
    )
    config = settings_from(args).config
    assert (config.max_bandwidth, config.abort_timeout) == (2 * 2**20, 5)
    assert config.checksum_algorithm == "CRC32C"
