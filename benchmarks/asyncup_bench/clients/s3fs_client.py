"""s3fs: put_file for the file, open('wb') for the stream, put_file for small objects."""

from __future__ import annotations

import asyncio
from typing import Any

import s3fs
from _common import chunks, load_spec, measure, small_objects


async def upload(spec: dict[str, Any]) -> None:
    fs = s3fs.S3FileSystem(
        endpoint_url=spec["endpoint"],
        client_kwargs={"verify": spec["ca_bundle"], "region_name": "us-east-1"},
        config_kwargs={"max_pool_connections": spec["concurrency"] + 4},
        max_concurrency=spec["concurrency"],
        asynchronous=True,
        skip_instance_cache=True,
    )
    session = await fs.set_session()
    target = f"{spec['bucket']}/{spec['key']}"
    try:
        if spec["case"] == "small":
            limit = asyncio.Semaphore(spec["concurrency"])

            async def put(name: str, path: str) -> None:
                async with limit:
                    await fs._put_file(path, f"{spec['bucket']}/{name}")

            await asyncio.gather(*(put(name, path) for name, path in small_objects(spec)))
        elif spec["case"] == "stream":
            # s3fs's file object is synchronous; run it off the loop like a caller would.
            def write() -> None:
                sync = s3fs.S3FileSystem(
                    endpoint_url=spec["endpoint"],
                    client_kwargs={"verify": spec["ca_bundle"], "region_name": "us-east-1"},
                    skip_instance_cache=True,
                )
                with sync.open(target, "wb", block_size=spec["part_size"]) as out:
                    for chunk in chunks(spec):
                        out.write(chunk)

            await asyncio.to_thread(write)
        else:
            await fs._put_file(spec["path"], target, chunksize=spec["part_size"])
    finally:
        await session.close()


def main() -> None:
    spec = load_spec()
    measure(lambda: asyncio.run(upload(spec)))


if __name__ == "__main__":
    main()
