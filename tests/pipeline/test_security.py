"""Secrets never leak: not in asyncup's logs (DEBUG included), reprs or error messages.

The uploads run with distinctive fake credentials (moto accepts any) and an SSE-C key,
through the fault proxy, which records every request: the signatures of those requests are
secrets too. What is checked is everything asyncup writes or raises: every log record but
botocore's own (which prints request headers at DEBUG, SSE-C keys and tokens included, when
the user turns it on: shown here, never switched on by asyncup) and the servers' (moto and
the proxy run in this process, on the other side of the wire).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import asyncup
from tests.cli.test_cp import cp
from tests.conftest import MiB, assert_object, random_bytes
from tests.faultproxy import FaultProxy

pytestmark = [
    pytest.mark.parametrize("server", ["moto"], indirect=True),  # moto takes any credentials
    pytest.mark.timeout(90),
]

ACCESS_KEY_ID = "AKIAASYNCUPLEAKTEST7"
SECRET_ACCESS_KEY = "asyncupLEAKtest/secret+access/key/9f3b2c7d"
SESSION_TOKEN = "asyncupLEAKtestSessionToken" + "Zq7x" * 16
SSE_C_KEY = b"asyncup LEAK test SSE-C key 32B!"  # 32 bytes: AES-256
SSE_C_KEY_MD5 = base64.b64encode(hashlib.md5(SSE_C_KEY).digest()).decode()

SECRETS = {
    "access key id": ACCESS_KEY_ID,
    "secret access key": SECRET_ACCESS_KEY,
    "session token": SESSION_TOKEN,
    "SSE-C key": SSE_C_KEY.decode(),
    "SSE-C key, base64": base64.b64encode(SSE_C_KEY).decode(),
    "SSE-C key, hex": SSE_C_KEY.hex(),
    # What a signed request or a presigned URL carries, whatever its values.
    "presigned signature": "X-Amz-Signature",
    "presigned credential": "X-Amz-Credential",
    "presigned token": "X-Amz-Security-Token",
    "SigV4 header": "AWS4-HMAC-SHA256 Credential=",
}
# The SSE-C key's MD5 may be shown: S3 sends it back in every answer, it reveals no key.

CONFIG = asyncup.TransferConfig(
    part_size=5 * MiB,
    multipart_threshold=5 * MiB,
    concurrency=2,
    max_attempts=3,
    retry_base_delay=0.01,
    abort_timeout=5,
)
EXTRA_ARGS = {"SSECustomerKey": SSE_C_KEY, "Metadata": {"owner": "security-test"}}
DATA = random_bytes(11 * MiB, seed=5)  # three parts
CLIENT_SIDE_ONLY = ("botocore", "aiobotocore")  # the user's to switch on; shown below
SERVER_SIDE = ("moto", "werkzeug", "aiohttp.access", "aiohttp.server", "aiohttp.web")


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncup's own clients find these in the default credential chain."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


def signatures(proxy: FaultProxy) -> dict[str, str]:
    """The Authorization header and the signature of every request the proxy saw."""
    found: dict[str, str] = {}
    for number, (operation, headers) in enumerate(proxy.requests):
        authorization = headers["authorization"]
        assert ACCESS_KEY_ID in authorization  # the fake credentials were really used
        assert headers["x-amz-security-token"] == SESSION_TOKEN
        found[f"Authorization of request {number} ({operation})"] = authorization
        signature = re.search(r"Signature=([0-9a-f]{64})", authorization)
        assert signature is not None
        found[f"signature of request {number} ({operation})"] = signature.group(1)
    return found


def rendered(error: BaseException) -> list[str]:
    """The error as a user or a log sees it: str, repr and the traceback with its causes."""
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    cause = error.__cause__ or error.__context__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    return texts


def formatted(records: list[logging.LogRecord]) -> Iterator[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in records:
        yield formatter.format(record)  # the message, its arguments and any traceback


def leaks(texts: list[str], secrets: dict[str, str]) -> list[str]:
    return [
        f"{name} in {text[:300]!r}"
        for text in texts
        for name, secret in secrets.items()
        if secret in text
    ]


async def upload_every_way(proxy: FaultProxy, bucket: str) -> list[str]:
    """A full upload, retried ones and failed ones (the abort failing too), with SSE-C:
    everything asyncup returned or raised, rendered as text."""
    texts: list[str] = [repr(CONFIG)]
    events: list[asyncup.UploadEvent] = []
    async with asyncup.Uploader(endpoint_url=proxy.url, config=CONFIG) as up:
        texts.append(repr(up))
        options: dict[str, Any] = {"extra_args": EXTRA_ARGS, "on_event": events.append}
        texts.append(repr(await up.upload(DATA, bucket, "full", **options)))

        proxy.fail("CreateMultipartUpload", "503")
        proxy.fail("UploadPart", "503", times=2, part=2)
        proxy.fail("CompleteMultipartUpload", "500")
        texts.append(repr(await up.upload(DATA, bucket, "retried", **options)))
        proxy.fail("PutObject", "503")
        texts.append(repr(await up.upload(b"small", bucket, "retried-small", **options)))
        assert proxy.faults_injected["503"] == 4

        failures = [
            [("UploadPart", "403", 1, 2)],  # refused, not retried, aborted
            # A connection error, retried out (aiohttp itself may retry a reset once).
            [("UploadPart", "reset", 2 * CONFIG.max_attempts, 3)],
            # Refused, and the abort refused too: warnings, "may be left behind".
            [
                ("UploadPart", "403", 1, 1),
                ("AbortMultipartUpload", "403", 3, None),
                ("ListParts", "403", 3, None),
            ],
            [("PutObject", "403", 1, None)],
        ]
        for number, faults in enumerate(failures):
            for operation, fault, times, part in faults:
                proxy.fail(operation, fault, times=times, part=part)
            source = b"small" if faults[0][0] == "PutObject" else DATA
            with pytest.raises(asyncup.UploadError) as caught:
                await up.upload(source, bucket, f"failed-{number}", **options)
            texts += rendered(caught.value)
            proxy.rules.clear()
        assert caught.value.abort_succeeded is None  # PutObject: nothing to abort
    texts += [repr(event) for event in events]
    return texts


async def test_no_secret_in_logs_reprs_or_errors_with_everything_at_debug(
    fake_credentials: None,
    proxy: FaultProxy,
    s3: Any,
    bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger, botocore's included
    texts = await upload_every_way(proxy, bucket)
    await assert_object(s3, bucket, "full", DATA, 5 * MiB)

    ours = [r for r in caplog.records if not r.name.startswith(CLIENT_SIDE_ONLY + SERVER_SIDE)]
    messages = [r.getMessage() for r in ours]
    # The failures were logged: retries, failed aborts and the orphan left behind.
    assert any("retrying" in message for message in messages)
    assert any("aborting upload" in message for message in messages)
    assert any("may be left behind" in message for message in messages)
    secrets = {**SECRETS, **signatures(proxy)}
    assert leaks(texts + list(formatted(ours)), secrets) == []

    # botocore's own DEBUG logging, switched on here, does print the secrets: the reason
    # asyncup never switches it on (see the next test) and leaves it out of its messages.
    botocore = "\n".join(formatted([r for r in caplog.records if r.name.startswith("botocore")]))
    assert base64.b64encode(SSE_C_KEY).decode() in botocore
    assert SESSION_TOKEN in botocore


async def test_asyncup_never_switches_botocores_debug_logging_on(
    fake_credentials: None, proxy: FaultProxy, proxied: Any, bucket: str
) -> None:
    """With logging as a user leaves it (root at WARNING), no botocore DEBUG record is
    made: asyncup sets no level and adds no handler on botocore's loggers."""

    def botocore_loggers() -> dict[str, tuple[int, list[logging.Handler], bool]]:
        return {
            name: (logger.level, list(logger.handlers), logger.propagate)
            for name, logger in logging.root.manager.loggerDict.items()
            if name.startswith(CLIENT_SIDE_ONLY) and isinstance(logger, logging.Logger)
        }

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.NOTSET)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    root.addHandler(handler)
    try:
        before = botocore_loggers()
        async with asyncup.Uploader(endpoint_url=proxy.url, config=CONFIG) as up:
            await up.upload(DATA, bucket, "own-client", extra_args=EXTRA_ARGS)
        await asyncup.upload(DATA, bucket, "callers-client", client=proxied, config=CONFIG)
        after = botocore_loggers()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    level, handlers, propagates = before["botocore"]
    assert (level, propagates) == (logging.NOTSET, True)
    assert all(isinstance(h, logging.NullHandler) for h in handlers)  # botocore's own
    assert after == before
    assert proxy.counts["UploadPart"] == 6  # both uploads went through
    assert [r.name for r in records if r.levelno < logging.WARNING] == []


async def test_the_command_line_shows_no_sse_c_key(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "sse-c.key"
    key_file.write_bytes(SSE_C_KEY)
    (tmp_path / "ok.bin").write_bytes(DATA)
    (tmp_path / "failed.bin").write_bytes(DATA)
    env = {
        **dict(__import__("os").environ),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
    }
    proxy.fail("UploadPart", "503", part=1)  # retried: shown in the progress
    outputs = []
    for output in ([], ["--json"]):
        run = await cp(
            str(tmp_path / "ok.bin"), f"s3://{bucket}/cli/ok.bin", "--endpoint-url", proxy.url,
            "--sse-c-key-file", str(key_file), "--part-size", "5MiB", "--jobs", "1", *output,
            env=env,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        outputs += [run.stdout, run.stderr]
    proxy.fail("UploadPart", "403", part=3)
    run = await cp(
        str(tmp_path / "failed.bin"), f"s3://{bucket}/cli/failed.bin", "--endpoint-url",
        proxy.url, "--sse-c-key-file", str(key_file), "--part-size", "5MiB", env=env,
    )  # fmt: skip
    assert run.returncode == 1
    assert "AccessDenied" in run.stdout + run.stderr
    outputs += [run.stdout, run.stderr]
    assert leaks(outputs, {**SECRETS, **signatures(proxy)}) == []
    assert proxy.faults_injected == {"503": 1, "403": 1}
    await assert_object(s3, bucket, "cli/ok.bin", DATA, 5 * MiB)
