"""Credentials that change mid-upload: revoked (one clear error, the orphan swept later with
good credentials) and rotated (the upload goes on with the new key, the object identical).

These need a moto that checks signatures against the IAM users it knows, so they run on a
moto server process of their own (auth is a process-wide switch in moto):
``POST /moto-api/reset-auth`` with a count N lets N more requests through unchecked, then
checks every request. The fixture sets IAM up unchecked (an admin, a bucket), then turns
checking on for good (N = 0).
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession, get_session
from botocore.credentials import CredentialProvider

import asyncup
from tests.conftest import MiB, assert_object, client_config, random_bytes
from tests.faultproxy import FaultProxy
from tests.servers import moto_process

pytestmark = pytest.mark.timeout(90)

BUCKET = "credentials"


def allow(action: str) -> dict[str, Any]:
    """An IAM policy allowing ``action`` on everything."""
    statement = {"Effect": "Allow", "Action": action, "Resource": "*"}
    return {"Version": "2012-10-17", "Statement": [statement]}


S3_ONLY, EVERYTHING = allow("s3:*"), allow("*")
# One part in flight at a time: the order in which requests reach moto, and so which of them
# a revocation or a rotation falls between, is then the order of the parts.
CONFIG = asyncup.TransferConfig(
    part_size=5 * MiB,
    multipart_threshold=5 * MiB,
    concurrency=1,
    retry_base_delay=0.05,
    abort_timeout=10,
)
DATA = random_bytes(16 * MiB, seed=16)  # four parts
_users = itertools.count()


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class AuthMoto:
    endpoint: str
    admin: Keys
    """Allowed everything (IAM included)."""


def reset_auth(endpoint: str, unchecked: int) -> None:
    """Let ``unchecked`` more requests through without checking their credentials, then
    check every one."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=str(unchecked).encode(),
        headers={"Content-Type": "text/plain"},  # a form body would reach moto empty
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def client(service: str, endpoint: str, keys: Keys) -> AbstractAsyncContextManager[Any]:
    return get_session().create_client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        config=client_config(),
    )


async def new_user(moto: AuthMoto, policy: dict[str, Any]) -> tuple[str, Keys]:
    """An IAM user with ``policy`` and an access key, made by the admin."""
    name = f"user-{next(_users)}"
    async with client("iam", moto.endpoint, moto.admin) as iam:
        await iam.create_user(UserName=name)
        await iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = (await iam.create_access_key(UserName=name))["AccessKey"]
    return name, Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def auth_moto() -> Iterator[AuthMoto]:
    with moto_process() as endpoint:
        import botocore.session

        anyone = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        session = botocore.session.get_session()
        iam = session.create_client("iam", endpoint_url=endpoint, region_name="us-east-1", **anyone)
        s3 = session.create_client("s3", endpoint_url=endpoint, region_name="us-east-1", **anyone)
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="p", PolicyDocument=json.dumps(EVERYTHING))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        s3.create_bucket(Bucket=BUCKET)
        iam.close()
        s3.close()
        reset_auth(endpoint, 0)
        yield AuthMoto(endpoint, Keys(key["AccessKeyId"], key["SecretAccessKey"]))


@pytest.fixture
async def auth_proxy(auth_moto: AuthMoto) -> AsyncIterator[FaultProxy]:
    """The fault proxy in front of the checking moto: it counts and records the requests
    (it forwards them as signed, Host included)."""
    async with FaultProxy(auth_moto.endpoint) as proxy:
        yield proxy


def key_ids(proxy: FaultProxy) -> list[tuple[str, str]]:
    """(operation, access key id) of every request the proxy saw, in order."""
    found = []
    for operation, headers in proxy.requests:
        match = re.search(r"Credential=([^/]+)/", headers["authorization"])
        assert match is not None
        found.append((operation, match.group(1)))
    return found


async def test_credentials_revoked_mid_upload_fail_it_once_and_the_orphan_is_swept_later(
    auth_moto: AuthMoto, auth_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Credentials IAM does not know, honoured while moto lets requests through unchecked:
    # CreateMultipartUpload, the integrity probe and parts 1 and 2. Part 3 is refused: they
    # are revoked.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREVOKEDMIDUPLOAD")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "revoked-secret")
    reset_auth(auth_moto.endpoint, 4)
    try:
        with pytest.raises(asyncup.UploadError) as caught:
            await asyncup.upload(
                DATA, BUCKET, "revoked.bin", endpoint_url=auth_proxy.url, config=CONFIG
            )
    finally:
        reset_auth(auth_moto.endpoint, 0)
    error = caught.value
    assert error.code == "InvalidAccessKeyId"
    assert error.part_number == 3
    assert auth_proxy.counts["UploadPart"] == 3  # a 403 is not retried; part 4 never went
    # The abort was tried (with the same revoked credentials, so it failed): the error says
    # that the upload may be left behind, and which one.
    assert auth_proxy.counts["AbortMultipartUpload"] >= 1
    assert error.abort_succeeded is False
    message = str(error)
    assert message.startswith("upload to s3://credentials/revoked.bin (part 3) failed:")
    assert "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist" in message
    assert f"upload {error.upload_id} failed, it may be left behind" in message

    # A later sweep with good credentials removes it.
    _, good = await new_user(auth_moto, S3_ONLY)
    async with client("s3", auth_moto.endpoint, good) as s3:
        listing = await s3.list_multipart_uploads(Bucket=BUCKET, Prefix="revoked.bin")
        assert [u["UploadId"] for u in listing.get("Uploads", [])] == [error.upload_id]
        async with asyncup.Uploader(client=s3) as up:
            outcomes = await up.abort_uploads(
                BUCKET, "revoked.bin", older_than=datetime.timedelta(0)
            )
        assert [(u.upload_id, e) for u, e in outcomes] == [(error.upload_id, None)]
        listing = await s3.list_multipart_uploads(Bucket=BUCKET, Prefix="revoked.bin")
        assert listing.get("Uploads", []) == []
        objects = await s3.list_objects_v2(Bucket=BUCKET, Prefix="revoked.bin")
        assert objects.get("KeyCount", 0) == 0


class RotatingSource:
    """The current access key of one IAM user, from a source that can change under the
    client. Its credentials say they expire in 5 minutes, which is inside botocore's
    mandatory refresh window (10), so botocore asks again before signing each request."""

    def __init__(self, keys: Keys, directory: Path) -> None:
        self.keys = keys
        self.file = directory / "credentials.json"
        self.write()

    def metadata(self) -> dict[str, Any]:
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {
            "access_key": self.keys.access_key_id,
            "secret_key": self.keys.secret_access_key,
            "token": None,
            "expiry_time": expiry.isoformat(),
        }

    def write(self) -> None:
        """For ``credential_process = cat FILE`` (what a credential helper prints)."""
        data = self.metadata()
        staged = self.file.with_suffix(".tmp")
        staged.write_text(
            json.dumps(
                {
                    "Version": 1,
                    "AccessKeyId": data["access_key"],
                    "SecretAccessKey": data["secret_key"],
                    "Expiration": data["expiry_time"],
                }
            )
        )
        staged.replace(self.file)

    def rotate(self, keys: Keys) -> None:
        self.keys = keys
        self.write()


class RotatingProvider(CredentialProvider):  # type: ignore[misc]
    """A credential provider of the caller's own, as an AioSession takes it."""

    METHOD = "asyncup-test-rotating"

    def __init__(self, source: RotatingSource) -> None:
        super().__init__()
        self.source = source

    async def load(self) -> AioRefreshableCredentials:
        async def refresh() -> dict[str, Any]:
            return self.source.metadata()

        return AioRefreshableCredentials.create_from_metadata(
            self.source.metadata(), refresh, self.METHOD
        )


Upload = Callable[[Callable[[int], Awaitable[None]]], Awaitable[asyncup.UploadResult]]


@pytest.mark.parametrize("whose", ["own client, credential_process", "your client, provider"])
async def test_credentials_rotated_mid_upload_carry_it_through(
    whose: str,
    auth_moto: AuthMoto,
    auth_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    user, old = await new_user(auth_moto, S3_ONLY)
    source = RotatingSource(old, tmp_path)
    new: list[Keys] = []

    async def rotate(amount: int) -> None:
        """After part 1: a new key is issued, the source hands it out, the old key is
        deleted (one part in flight at a time: no request signed with it is on its way)."""
        if new:
            return
        async with client("iam", auth_moto.endpoint, auth_moto.admin) as iam:
            key = (await iam.create_access_key(UserName=user))["AccessKey"]
            new.append(Keys(key["AccessKeyId"], key["SecretAccessKey"]))
            source.rotate(new[0])
            await iam.delete_access_key(UserName=user, AccessKeyId=old.access_key_id)

    key = f"rotated-{whose.split(',')[0].replace(' ', '-')}.bin"
    if whose.startswith("own"):
        # asyncup's own client, from the default chain: a profile's credential_process.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        config = tmp_path / "config"
        config.write_text(f"[default]\ncredential_process = cat {source.file}\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        result = await asyncup.upload(
            DATA, BUCKET, key, endpoint_url=auth_proxy.url, config=CONFIG, on_progress=rotate
        )
    else:
        session = AioSession()
        resolver = session.get_component("credential_provider")
        resolver.insert_before("env", RotatingProvider(source))
        async with session.create_client(
            "s3", endpoint_url=auth_proxy.url, region_name="us-east-1", config=client_config()
        ) as s3:
            result = await asyncup.upload(
                DATA, BUCKET, key, client=s3, config=CONFIG, on_progress=rotate
            )

    assert result.parts == 4
    # Create, the integrity probe and part 1 went with the old key; everything after the
    # rotation with the new.
    operations = ["CreateMultipartUpload", "ProbePart"]
    operations += ["UploadPart"] * 4 + ["CompleteMultipartUpload"]
    keys = [old.access_key_id] * 3 + [new[0].access_key_id] * 4
    assert key_ids(auth_proxy) == list(zip(operations, keys, strict=True))
    async with client("s3", auth_moto.endpoint, new[0]) as s3:
        await assert_object(s3, BUCKET, key, DATA, 5 * MiB)
    async with client("s3", auth_moto.endpoint, old) as s3:
        with pytest.raises(Exception, match="InvalidAccessKeyId"):
            await s3.list_objects_v2(Bucket=BUCKET, Prefix=key)  # the old key is gone
