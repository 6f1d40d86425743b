"""asyncup: Uploader.upload of a path or an async iterator; Uploader.upload_many of many small
bytes objects.

The names used are imported by name, before the clock starts, as every peer's client imports
its library: ``import asyncup`` alone loads only the core, ``asyncup.Uploader`` the pipeline,
and the first Uploader to make a client would load the rest (aiobotocore, aiohttp and
botocore's client side: ~0.3 s of CPU) inside the timed upload; so that is imported too, as a
long-lived service has it loaded after its first Uploader.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import Any

from _common import async_chunks, load_spec, measure, read_small_objects, small_objects

if sys.argv[2:] == ["botocore"]:  # the asyncup-botocore peer: no lean path
    os.environ["ASYNCUP_LEAN"] = "0"

from asyncup import TransferConfig, Uploader

importlib.import_module("asyncup._s3.client")  # what an Uploader's first client loads


async def upload(spec: dict[str, Any], small: list[tuple[str, bytes]]) -> None:
    config = TransferConfig(
        part_size=spec["part_size"],
        multipart_threshold=spec["part_size"],
        concurrency=spec["concurrency"],
    )
    async with Uploader(endpoint_url=spec["endpoint"], config=config) as up:
        if spec["case"] == "stream":
            await up.upload(async_chunks(spec), spec["bucket"], spec["key"])
        elif spec["case"] == "small":
            await upload_many(up, small, spec)
        else:
            await up.upload(spec["path"], spec["bucket"], spec["key"])


async def upload_many(up: Uploader, small: list[tuple[str, bytes]], spec: dict[str, Any]) -> None:
    items: list[tuple[object, str]] = [(body, key) for key, body in small]
    if spec.get("small_from") == "files":  # from the files, read inside the timed upload
        items = [(path, key) for key, path in small_objects(spec)]
    summary = await up.upload_many(items, spec["bucket"], objects_in_flight=spec["concurrency"])
    if summary.errors:
        key, error = summary.errors[0]
        raise RuntimeError(f"{len(summary.errors)} objects failed; {key}: {error}")


def _small_bytes(spec: dict[str, Any]) -> bool:
    return bool(spec["case"] == "small" and spec.get("small_from", "bytes") == "bytes")


def main() -> None:
    spec = load_spec()
    small = read_small_objects(spec) if _small_bytes(spec) else []
    try:
        import uvloop
    except ImportError:
        measure(lambda: asyncio.run(upload(spec, small)))
    else:
        measure(lambda: uvloop.run(upload(spec, small)))


if __name__ == "__main__":
    main()
