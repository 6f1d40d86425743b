"""Who an Uploader's own client signs as, checked before anything is imported or sent
(``credentials`` makes the client's session from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """At most one way of saying who signs; see ``check_identity``."""

    profile: str | None = None
    session: Any = None
    access_key: str | None = None
    secret_key: str | None = None
    token: str | None = None
    credentials: Any = None


def check_identity(client: object, identity: Identity) -> Identity | None:
    """``identity`` checked before any request: None when it says nothing (the default
    chain), a ``ValueError`` or ``TypeError`` naming what is wrong otherwise."""
    given = [
        name
        for name, value in (
            ("profile", identity.profile),
            ("session", identity.session),
            ("aws_access_key_id", identity.access_key or identity.secret_key or identity.token),
            ("credentials", identity.credentials),
        )
        if value is not None
    ]
    if not given:
        return None
    if client is not None:
        raise ValueError(f"{given[0]}= applies to the Uploader's own client; not with client=")
    if len(given) > 1:
        raise ValueError(f"give one of profile, session, keys or credentials; got {given}")
    if identity.profile is not None and (
        not isinstance(identity.profile, str) or not identity.profile
    ):
        raise TypeError(f"profile must be a non-empty str; got {identity.profile!r}")
    if given == ["aws_access_key_id"]:
        keys = (identity.access_key, identity.secret_key)
        if not all(isinstance(key, str) and key for key in keys):
            raise ValueError("aws_access_key_id and aws_secret_access_key go together (both str)")
        if identity.token is not None and not isinstance(identity.token, str):
            raise TypeError("aws_session_token must be a str")
    session = identity.session
    if session is not None and not callable(getattr(session, "get_credentials", None)):
        raise TypeError(
            "session must be an aiobotocore AioSession, or a botocore or boto3 Session;"
            f" got {type(session).__name__}"
        )
    credentials = identity.credentials
    if credentials is not None and not callable(
        getattr(credentials, "get_frozen_credentials", None)
    ):
        raise TypeError(
            "credentials must have get_frozen_credentials() (botocore's or aiobotocore's"
            f" Credentials); got {type(credentials).__name__}"
        )
    return identity
