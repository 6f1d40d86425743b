"""aioboto3: upload_fileobj for the file and the stream, put_object for small objects."""

from __future__ import annotations

import asyncio
from typing import Any

import aioboto3
from _common import async_chunks, load_spec, measure, read_small_objects
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


class AsyncStream:
    """A non-seekable object with an awaitable read(n), as aioboto3 accepts."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._chunks = async_chunks(spec)
        self._buffer = b""

    async def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = await anext(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        size = len(self._buffer) if size < 0 else size
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


async def upload(spec: dict[str, Any], small: list[tuple[str, bytes]]) -> None:
    session = aioboto3.Session()
    config = TransferConfig(
        multipart_threshold=spec["part_size"],
        multipart_chunksize=spec["part_size"],
        max_concurrency=spec["concurrency"],
    )
    async with session.client(
        "s3",
        endpoint_url=spec["endpoint"],
        verify=spec["ca_bundle"],
        config=Config(max_pool_connections=spec["concurrency"] + 4),
    ) as client:
        bucket, key = spec["bucket"], spec["key"]
        if spec["case"] == "small":
            limit = asyncio.Semaphore(spec["concurrency"])

            async def put(name: str, body: bytes) -> None:
                async with limit:
                    await client.put_object(Bucket=bucket, Key=name, Body=body)

            await asyncio.gather(*(put(name, body) for name, body in small))
        elif spec["case"] == "stream":
            await client.upload_fileobj(AsyncStream(spec), bucket, key, Config=config)
        else:
            with open(spec["path"], "rb") as source:  # noqa: ASYNC230 (as its docs do)
                await client.upload_fileobj(source, bucket, key, Config=config)


def main() -> None:
    spec = load_spec()
    small = read_small_objects(spec) if spec["case"] == "small" else []
    measure(lambda: asyncio.run(upload(spec, small)))


if __name__ == "__main__":
    main()
