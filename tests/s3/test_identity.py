"""Who the Uploader's own client signs as (issue 17): boto3's ways, each on the fast client.

On SeaweedFS, which checks every signature: the default chain is made wrong for each test,
so an upload that succeeds signed with what the test gave, and one given wrong keys fails.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.credentials import AioCredentials, AioRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.session import Session

import asyncup
from asyncup._s3.client import sends_from_files
from tests.conftest import MiB, assert_object, random_bytes
from tests.servers import ACCESS_KEY, SECRET_KEY

pytestmark = pytest.mark.timeout(60)
ON_SEAWEEDFS = pytest.mark.parametrize("server", ["seaweedfs"], indirect=True)

CONFIG = asyncup.TransferConfig(part_size=5 * MiB, multipart_threshold=5 * MiB)
DATA = random_bytes(6 * MiB, seed=17)  # two parts: Create, UploadPart x2, Complete
EXPIRED = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
FAR = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def wrong_chain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The default chain finds keys SeaweedFS refuses, and the profiles the tests use (asked
    for after the bucket is made, with the right keys, by the fixtures)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    config = tmp_path / "aws-config"
    config.write_text(
        f"[profile tenant]\naws_access_key_id = {ACCESS_KEY}\n"
        f"aws_secret_access_key = {SECRET_KEY}\nregion = us-east-1\n"
        "[profile stranger]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return config


refreshed_in: list[threading.Thread] = []
FRESH = {
    "access_key": ACCESS_KEY,
    "secret_key": SECRET_KEY,
    "token": "",
    "expiry_time": FAR.isoformat(),
}


def botocore_refreshable() -> RefreshableCredentials:
    """botocore's refreshable credentials, expired: the first signature refreshes them,
    which (a blocking call in real life: STS, SSO) must happen off the event loop."""

    def refresh() -> dict[str, str]:
        refreshed_in.append(threading.current_thread())
        return FRESH

    return RefreshableCredentials("old", "old", None, EXPIRED, refresh, "test")


def aio_refreshable() -> AioRefreshableCredentials:
    async def refresh() -> dict[str, str]:
        return FRESH

    return AioRefreshableCredentials("old", "old", None, EXPIRED, refresh, "test")


def botocore_session() -> Session:
    session = Session()
    session.set_credentials(ACCESS_KEY, SECRET_KEY)
    return session


def aio_session() -> AioSession:
    session = AioSession()
    session.set_credentials(ACCESS_KEY, SECRET_KEY)
    return session


WAYS: dict[str, Callable[[], dict[str, Any]]] = {
    "profile": lambda: {"profile": "tenant"},
    "keys": lambda: {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY},
    "aiobotocore session": lambda: {"session": aio_session()},
    "botocore session": lambda: {"session": botocore_session()},
    "botocore credentials": lambda: {"credentials": Credentials(ACCESS_KEY, SECRET_KEY)},
    "aiobotocore credentials": lambda: {"credentials": AioCredentials(ACCESS_KEY, SECRET_KEY)},
    "botocore refreshable": lambda: {"credentials": botocore_refreshable()},
    "aiobotocore refreshable": lambda: {"credentials": aio_refreshable()},
}


@ON_SEAWEEDFS
@pytest.mark.parametrize("way", WAYS)
async def test_each_way_signs_on_asyncups_own_fast_client(
    way: str, endpoint: str, s3: Any, bucket: str, tmp_path: Path, wrong_chain: Path
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    refreshed_in.clear()
    async with asyncup.Uploader(endpoint_url=endpoint, config=CONFIG, **WAYS[way]()) as up:
        assert sends_from_files(up.client)  # parts from threads and from the file
        result = await up.upload(path, bucket, "obj")
    assert result.parts == 2
    await assert_object(s3, bucket, "obj", DATA, CONFIG.part_size)
    if way == "botocore refreshable":
        assert refreshed_in
        assert threading.main_thread() not in refreshed_in


@ON_SEAWEEDFS
async def test_without_any_the_default_chain_signs(
    endpoint: str, bucket: str, wrong_chain: Path
) -> None:
    """The control: the wrong default chain is what an Uploader without any way uses."""
    async with asyncup.Uploader(endpoint_url=endpoint, config=CONFIG) as up:
        with pytest.raises(asyncup.UploadError):
            await up.upload(b"x", bucket, "obj")


@ON_SEAWEEDFS
@pytest.mark.parametrize(
    "given",
    [
        {"profile": "stranger"},
        {"aws_access_key_id": "nobody", "aws_secret_access_key": "nothing"},
        {"credentials": Credentials("nobody", "nothing")},
    ],
    ids=["profile", "keys", "credentials"],
)
async def test_wrong_keys_given_are_the_ones_used(
    given: dict[str, Any], endpoint: str, s3: Any, bucket: str, wrong_chain: Path
) -> None:
    async with asyncup.Uploader(endpoint_url=endpoint, config=CONFIG, **given) as up:
        with pytest.raises(asyncup.UploadError):
            await up.upload(DATA, bucket, "obj")
    assert "Contents" not in await s3.list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize(
    ("given", "error", "words"),
    [
        ({"client": object(), "profile": "tenant"}, ValueError, "not with client="),
        ({"profile": "tenant", "credentials": Credentials("a", "b")}, ValueError, "one of"),
        ({"aws_access_key_id": "a"}, ValueError, "go together"),
        ({"aws_secret_access_key": "b"}, ValueError, "go together"),
        ({"profile": ""}, TypeError, "non-empty str"),
        ({"session": "default"}, TypeError, "AioSession"),
        ({"credentials": ("a", "b")}, TypeError, "get_frozen_credentials"),
    ],
)
def test_bad_identities_are_refused_when_the_uploader_is_made(
    given: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        asyncup.Uploader(**given)


async def test_an_unknown_profile_is_refused_before_any_request() -> None:
    # Nothing listens on port 1: a request would fail with a connection error instead.
    with pytest.raises(ValueError, match="no profile named 'absent'"):
        async with asyncup.Uploader(endpoint_url="http://127.0.0.1:1", profile="absent"):
            pass
