"""obstore (Rust object_store): put_async of a path, an async iterator, or bytes.

At its defaults obstore signs every payload's SHA256; with argv 2 = "unsigned" it is made with
``unsigned_payload=True``, its documented setting for speed (the payload is then covered by
TLS alone, as asyncup's is by TLS and its CRC32 per part).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import obstore
from _common import async_chunks, load_spec, measure, read_small_objects, small_objects
from obstore.store import S3Store


async def upload(spec: dict[str, Any], small: list[tuple[str, bytes]]) -> None:
    client_options: dict[str, Any] = {"allow_http": True}
    if spec["ca_bundle"]:
        with open(spec["ca_bundle"]) as ca:  # noqa: ASYNC230 (a small file, once)
            client_options["root_certificate"] = ca.read()
    store = S3Store(
        spec["bucket"],
        endpoint=spec["endpoint"],
        region="us-east-1",
        access_key_id="bench",
        secret_access_key="bench",
        virtual_hosted_style_request=False,
        client_options=client_options,
        unsigned_payload=sys.argv[2:] == ["unsigned"],
    )
    transfer = {"chunk_size": spec["part_size"], "max_concurrency": spec["concurrency"]}
    if spec["case"] == "small":
        limit = asyncio.Semaphore(spec["concurrency"])

        async def put(name: str, body: bytes | Path) -> None:
            async with limit:
                await obstore.put_async(store, name, body)

        if spec.get("small_from") == "files":  # from the files, read inside the timed upload
            await asyncio.gather(*(put(name, Path(path)) for name, path in small_objects(spec)))
        else:
            await asyncio.gather(*(put(name, body) for name, body in small))
    elif spec["case"] == "stream":
        await obstore.put_async(store, spec["key"], async_chunks(spec), **transfer)
    else:
        await obstore.put_async(store, spec["key"], Path(spec["path"]), **transfer)


def main() -> None:
    spec = load_spec()
    files = spec.get("small_from") == "files"
    small = read_small_objects(spec) if spec["case"] == "small" and not files else []
    measure(lambda: asyncio.run(upload(spec, small)))


if __name__ == "__main__":
    main()
