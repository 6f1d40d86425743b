"""A fast start's record (``start``, ``fast``): what an earlier process's client said that the
lean path needs, and where it is kept; read without an event loop or botocore's client.

A record holds each bucket's endpoint and signing region, the User-Agent, the timeouts, the
answers' header members and how to make the client's TLS context again (no key). It is kept
in the user's cache directory (``cachedir``: a folder that is the user's own and that no one
else may write) under a name that stands for everything botocore reads to say it: asyncup's
and botocore's versions, Python's and the system's, the Uploader's endpoint, region, TLS
setting and concurrency, every ``AWS_`` environment variable but the secrets, the proxy and
CA bundle variables, the system's proxies (macOS, Windows), and the AWS config and
credentials files' sizes and times. The credentials are the environment's keys, read as
botocore's first provider reads them (``environment_keys``; keys with an expiration are
refreshed by botocore, so they make no fast start).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._core import wire
from . import cachedir

if TYPE_CHECKING:
    import ssl

FORMAT = 4
"""What a record holds, and how (``record_path`` names the records for it)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a bucket's writes go, as botocore sent its first one."""

    scheme: str
    host: str
    bucket_path: str
    region: str

    def url(self, target: str) -> str:
        return f"{self.scheme}://{self.host}{target}"


@dataclass(slots=True)
class Record:
    """What a client said that a fast start needs (``fast.recorded`` reads it off a client)."""

    agent: str
    endpoint_url: str | None
    connect_timeout: float | None
    read_timeout: float | None
    keep: int
    idle_for: float
    tls: dict[str, Any] | None
    """What makes the client's TLS context again (``tls_settings``); None: it cannot be."""
    outputs: dict[str, dict[str, tuple[str, str]]]
    modeled: frozenset[str]
    """The error codes the client raises as classes of their own (the rest: ClientError)."""
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def frozen(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "agent": self.agent,
            "endpoint_url": self.endpoint_url,
            "timeouts": (self.connect_timeout, self.read_timeout),
            "keep": self.keep,
            "idle_for": self.idle_for,
            "tls": self.tls,
            "outputs": self.outputs,
            "modeled": sorted(self.modeled),
            "endpoints": {
                bucket: (at.scheme, at.host, at.bucket_path, at.region)
                for bucket, at in self.endpoints.items()
            },
        }

    @classmethod
    def thawed(cls, data: Mapping[str, Any]) -> Record | None:
        """The record ``frozen`` kept, or None for anything else."""
        try:
            if data["format"] != FORMAT:
                return None
            connect, read = data["timeouts"]
            return cls(
                agent=str(data["agent"]),
                endpoint_url=data["endpoint_url"],
                connect_timeout=connect,
                read_timeout=read,
                keep=int(data["keep"]),
                idle_for=float(data["idle_for"]),
                tls=data["tls"] if isinstance(data["tls"], dict) else None,
                modeled=frozenset(map(str, data["modeled"])),
                outputs={
                    name: {header: (member, kind) for header, (member, kind) in members.items()}
                    for name, members in data["outputs"].items()
                },
                endpoints={
                    bucket: Endpoint(*map(str, fields))
                    for bucket, fields in data["endpoints"].items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError):  # another format
            return None


_TLS = (
    "options",
    "verify_flags",
    "minimum_version",
    "maximum_version",
    "post_handshake_auth",
    "check_hostname",
    "verify_mode",
    "keylog_filename",
)


def tls_settings(context: ssl.SSLContext, authorities: str | None) -> dict[str, Any] | None:
    """What makes ``context`` (whose trusted CAs were loaded from ``authorities``) again with
    ``tls_context``, without botocore's HTTP session (~50 ms of imports); None for a context
    with ciphers or a certificate of its own."""
    import ssl

    plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if context.protocol != plain.protocol or context.get_ciphers() != plain.get_ciphers():
        return None
    settings = {name: getattr(context, name) for name in _TLS}
    settings["authorities"] = authorities
    return {name: value if isinstance(value, bool | str | None) else int(value)
            for name, value in settings.items()}  # fmt: skip


def tls_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS context ``tls_settings`` describes (in a thread: the CAs are read)."""
    import ssl  # (~4 ms: for HTTPS only)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.options = ssl.Options(settings["options"])
    context.verify_flags = ssl.VerifyFlags(settings["verify_flags"])
    context.minimum_version = ssl.TLSVersion(settings["minimum_version"])
    context.maximum_version = ssl.TLSVersion(settings["maximum_version"])
    context.post_handshake_auth = settings["post_handshake_auth"]
    if settings["authorities"]:
        context.load_verify_locations(settings["authorities"])
    if not settings["check_hostname"]:
        context.check_hostname = False  # before CERT_NONE may be set
    context.verify_mode = ssl.VerifyMode(settings["verify_mode"])
    context.check_hostname = settings["check_hostname"]
    if settings["keylog_filename"]:
        context.keylog_filename = settings["keylog_filename"]
    return context


_SECRETS = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
)
# Read besides by the client's HTTP session: its proxies, its CAs (botocore's ``verify``), the
# TLS key log (urllib3's).
_OTHERS = frozenset(
    {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE",
     "SSL_CERT_DIR", "SSLKEYLOGFILE"}
)  # fmt: skip


def environment_keys() -> tuple[str, str, str | None] | None:
    """The keys botocore's first provider would find in the environment, if they are static:
    (access key, secret key, token)."""
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret or os.environ.get("AWS_CREDENTIAL_EXPIRATION"):
        return None
    token = os.environ.get("AWS_SECURITY_TOKEN") or os.environ.get("AWS_SESSION_TOKEN")
    return access, secret, token or None


def record_path(
    endpoint_url: str | None, region_name: str | None, verify: object, concurrency: int
) -> str | None:
    """Where the record for an Uploader made with these settings, in this environment, is
    kept; None when there is no cache directory."""
    import botocore  # the package alone: its version

    # botocore reads settings (region, endpoint_url, ca_bundle, s3 = ...) from both files.
    files = [
        _stamp(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"),
        _stamp(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"),
    ]
    environment = sorted(
        (name, value)
        for name, value in os.environ.items()
        if (name.startswith("AWS_") and name not in _SECRETS) or name.upper() in _OTHERS
    )
    about = "\0".join(
        map(
            str,
            (
                FORMAT,
                _installed(),
                botocore.__version__,
                sys.version,
                os.uname().release if hasattr(os, "uname") else sys.platform,
                endpoint_url,
                region_name,
                verify,
                concurrency,
                files,
                environment,
                _system_proxies(),
            ),
        )
    )
    return cachedir.entry("start", about, ".marshal")


def _stamp(path: str) -> str:
    """``path`` as botocore finds it (variables, then ``~``), and its size and time."""
    path = os.path.expanduser(os.path.expandvars(path))
    try:
        stat = os.stat(path)
    except OSError:
        return f"{path} none"
    return f"{path} {stat.st_size} {stat.st_mtime_ns} {stat.st_ino}"


def _system_proxies() -> object:
    """The proxies the system's settings give (macOS, Windows), which botocore's session
    reads besides the environment's (``_OTHERS``, the only ones elsewhere)."""
    if sys.platform not in ("darwin", "win32"):
        return None
    import urllib.request

    return sorted(urllib.request.getproxies().items())


def _installed() -> str:
    """asyncup as installed: the files that read and write records and ``client``'s (which
    make the User-Agent, with asyncup's version), as a new version or a change rewrites
    them. (Its version from the package's metadata costs ~30 ms to read.)"""
    here = os.path.dirname(__file__)
    names = ("record.py", "fast.py", "start.py", "client.py")
    stats = [os.stat(os.path.join(here, name)) for name in names]
    return " ".join(f"{stat.st_size}:{stat.st_mtime_ns}" for stat in stats)


def find(
    endpoint_url: str | None, region_name: str | None, verify: object, concurrency: int
) -> tuple[str, Record | None] | None:
    """Where the record for these settings is kept, and the record if there is one (a
    blocking read); None without a place to keep one."""
    path = record_path(endpoint_url, region_name, verify, concurrency)
    if path is None:
        return None
    data = cachedir.read(path)
    return path, Record.thawed(data) if data is not None else None


def signed_head(
    record: Record, request: wire.Request, at: Endpoint, who: wire.Identity, length: int | None
) -> bytes:
    """A fast start's request head (``fast``, ``oneshot``): signed as the client signs it,
    with the User-Agent the record says."""
    headers = wire.sign(request, at.host, who)
    headers.append(("User-Agent", record.agent))
    return wire.request_head(request.method, request.target, at.host, headers, length=length)
