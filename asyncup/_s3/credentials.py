"""Who an Uploader's own client signs as: boto3's ways to say it, on asyncup's own client.

A profile name, an aiobotocore session, a botocore or boto3 session, explicit keys (and a
session token), or a credentials object (botocore's or aiobotocore's, refreshable or not,
or any object with ``get_frozen_credentials()``). Without any of them, the default chain.
Each gives a client asyncup makes itself, so it keeps the fast path (parts sent from
threads and from files) that a caller's own client does not get.
"""

from __future__ import annotations

import inspect
from typing import Any

import anyio.to_thread
from aiobotocore.credentials import AioCredentialResolver, AioCredentials
from aiobotocore.session import AioSession, get_session
from botocore.credentials import Credentials, ReadOnlyCredentials

from .identity import Identity


async def session_for(identity: Identity | None) -> tuple[AioSession, bool, dict[str, Any]]:
    """The session to make the client from, whether it is asyncup's own (a caller's session
    is never changed), and what ``create_client`` is given besides (keys, a region)."""
    if identity is None:
        return get_session(), True, {}
    if identity.access_key is not None:
        keys = {
            "aws_access_key_id": identity.access_key,
            "aws_secret_access_key": identity.secret_key,
            "aws_session_token": identity.token,
        }
        return get_session(), True, keys
    if identity.profile is not None:
        session = AioSession(profile=identity.profile)
        # Reads the AWS config files: a thread, not the event loop.
        profiles = await anyio.to_thread.run_sync(lambda: session.available_profiles)
        if identity.profile not in profiles:
            raise ValueError(f"no profile named {identity.profile!r} in the AWS config files")
        return session, True, {}
    if isinstance(identity.session, AioSession):
        return identity.session, False, {}
    extra: dict[str, Any] = {}
    if identity.session is not None:  # botocore's or boto3's: its credentials and region
        found = await anyio.to_thread.run_sync(identity.session.get_credentials)
        if found is None:
            raise ValueError("the session given has no credentials")
        region = getattr(identity.session, "region_name", None)
        if region is None and hasattr(identity.session, "get_config_variable"):
            region = identity.session.get_config_variable("region")
        if region is not None:
            extra["region_name"] = region
    else:
        found = identity.credentials
    session = get_session()
    resolver = AioCredentialResolver(providers=[_Given(as_async(found))])
    session.register_component("credential_provider", resolver)
    return session, True, extra


def as_async(credentials: Any) -> Any:
    """``credentials`` as aiobotocore's signer wants them: ``await get_frozen_credentials()``.

    aiobotocore's own are used as they are; botocore's static ones are copied; anything
    else whose ``get_frozen_credentials`` is sync (botocore's refreshable credentials, an
    object of the caller's) is asked in a worker thread whenever a refresh may run, since a
    refresh is a blocking request (STS, SSO, a container's endpoint).
    """
    if inspect.iscoroutinefunction(credentials.get_frozen_credentials):
        return credentials
    if type(credentials) is Credentials:
        frozen = credentials.get_frozen_credentials()
        return AioCredentials(frozen.access_key, frozen.secret_key, frozen.token, "explicit")
    return _SyncCredentials(credentials)


class _SyncCredentials(AioCredentials):  # type: ignore[misc]
    """A caller's credentials with a blocking ``get_frozen_credentials``, made awaitable."""

    def __init__(self, inner: Any) -> None:  # no super().__init__: nothing is copied
        self._inner = inner
        self.method = getattr(inner, "method", None) or "asyncup-given"

    @property
    def access_key(self) -> str:
        return str(self._inner.access_key)

    @property
    def secret_key(self) -> str:
        return str(self._inner.secret_key)

    @property
    def token(self) -> str | None:
        token = self._inner.token
        return None if token is None else str(token)

    @property
    def account_id(self) -> str | None:
        return getattr(self._inner, "account_id", None)

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:
        refresh_needed = getattr(self._inner, "refresh_needed", None)
        if callable(refresh_needed) and not refresh_needed():
            frozen = self._inner.get_frozen_credentials()  # no refresh due: no I/O
        else:
            frozen = await anyio.to_thread.run_sync(self._inner.get_frozen_credentials)
        return ReadOnlyCredentials(
            frozen.access_key, frozen.secret_key, frozen.token, getattr(frozen, "account_id", None)
        )


class _Given:
    """A credential provider with one answer: the credentials the caller gave."""

    METHOD = "asyncup-given"
    CANONICAL_NAME = "asyncup-given"

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    async def load(self) -> Any:
        return self._credentials
