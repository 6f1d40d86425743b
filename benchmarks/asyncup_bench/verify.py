"""Verify every uploaded object: its size always, its ETag where the server's is real.

A multipart ETag depends on the part sizes, and peers cut parts their own way: the sink
says which sizes it got (``x-sink-parts``); for other servers the expected ETag is tried
for the configured part size and the peers' usual ones.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

from .measure import MiB
from .servers import Server

_USUAL_PART_SIZES = (5 * MiB, 8 * MiB, 10 * MiB, 16 * MiB, 50 * MiB, 64 * MiB)


class VerificationError(Exception):
    pass


def parse_run_lengths(text: str) -> list[int]:
    """'8*3,3' -> [8, 8, 8, 3]."""
    sizes: list[int] = []
    for run in filter(None, text.split(",")):
        size, _, count = run.partition("*")
        sizes += [int(size)] * int(count or 1)
    return sizes


def etag_for(path: str, part_sizes: Sequence[int]) -> str:
    """S3's ETag of the file at ``path`` uploaded in parts of ``part_sizes`` (one = PutObject)."""
    md5s = []
    with open(path, "rb") as source:
        for size in part_sizes:
            md5s.append(hashlib.md5(source.read(size)).digest())
    if len(part_sizes) == 1:
        return f'"{md5s[0].hex()}"'
    return f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'


def equal_parts(size: int, part_size: int) -> list[int]:
    full, rest = divmod(size, part_size)
    return [part_size] * full + ([rest] if rest else [])


class Verifier:
    def __init__(self, server: Server, bucket: str, data: dict[str, Any]) -> None:
        import botocore.session
        from botocore.config import Config

        self.server = server
        self.bucket = bucket
        self.data = data
        self._etags: dict[tuple[str, tuple[int, ...]], str] = {}
        session = botocore.session.get_session()
        self.client: Any = session.create_client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            verify=server.ca_bundle if server.ca_bundle else None,
            config=Config(retries={"max_attempts": 3}, max_pool_connections=4),
        )

    def create_bucket(self) -> None:
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except self.client.exceptions.ClientError as exc:
            if "BucketAlready" not in str(exc):
                raise

    def _expected(self, path: str, part_sizes: Sequence[int]) -> str:
        key = (path, tuple(part_sizes))
        if key not in self._etags:
            self._etags[key] = etag_for(path, part_sizes)
        return self._etags[key]

    def _check_etag(self, path: str, size: int, etag: str, sink_parts: str | None) -> bool:
        """True if ``etag`` is right; False if it cannot be checked; raises if wrong."""
        if not self.server.etag_is_md5:
            return False
        if sink_parts is not None:
            candidates = [parse_run_lengths(sink_parts)]
        else:
            count = int(etag.strip('"').partition("-")[2] or 1)
            candidates = [equal_parts(size, p) for p in _USUAL_PART_SIZES] + [[size]]
            candidates = [c for c in candidates if len(c) == count]
            if not candidates:
                return False
        for part_sizes in candidates:
            if self._expected(path, part_sizes) == etag:
                return True
        raise VerificationError(f"ETag {etag} is not that of the bytes of {path}")

    def check(self, spec: dict[str, Any]) -> str:
        """Verify what ``spec`` uploaded; say how (size, size+etag)."""
        try:
            if spec["case"] == "small":
                return self._check_small(spec)
            return self._check_one(spec)
        except VerificationError as exc:
            from .runner import PeerFailed

            raise PeerFailed(f"verification failed: {exc}") from exc

    def _check_one(self, spec: dict[str, Any]) -> str:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=spec["key"])
        except self.client.exceptions.ClientError as exc:
            raise VerificationError(f"{spec['key']} is not there ({exc})") from exc
        size = spec["size"]
        if head["ContentLength"] != size:
            raise VerificationError(f"{spec['key']} has {head['ContentLength']} bytes, not {size}")
        headers = head["ResponseMetadata"]["HTTPHeaders"]
        if self.server.name == "sink" and headers.get("x-sink-etag") != "computed":
            return "size"
        path = spec["path"]
        ok = self._check_etag(path, size, head["ETag"], headers.get("x-sink-parts"))
        return "size+etag" if ok else "size"

    def _check_small(self, spec: dict[str, Any]) -> str:
        found: dict[str, tuple[int, str]] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=spec["key"] + "/"):
            for entry in page.get("Contents", []):
                found[entry["Key"]] = (entry["Size"], entry["ETag"])
        names = sorted(os.listdir(spec["small_dir"]))
        checked_etags = True
        for name in names:
            key = f"{spec['key']}/{name}"
            path = os.path.join(spec["small_dir"], name)
            if key not in found:
                raise VerificationError(f"{key} is missing")
            size, etag = found[key]
            if size != os.path.getsize(path):
                raise VerificationError(f"{key} has {size} bytes")
            if not self._check_etag(path, size, etag, None):
                checked_etags = False
        if len(found) != len(names):
            raise VerificationError(f"{len(found)} objects under {spec['key']}/, not {len(names)}")
        return "size+etag" if checked_etags else "size"
