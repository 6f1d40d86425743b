"""minio-py: fput_object for the file, put_object(length=-1) for the stream, threads for small."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import urllib3
from _common import Stream, load_spec, measure, small_objects
from minio import Minio


def main() -> None:
    spec = load_spec()
    url = urlsplit(spec["endpoint"])
    http = urllib3.PoolManager(
        maxsize=spec["concurrency"] + 4,
        ca_certs=spec["ca_bundle"],
        cert_reqs="CERT_REQUIRED" if spec["ca_bundle"] else "CERT_NONE",
        retries=urllib3.Retry(total=3, backoff_factor=0.2),
    )
    client = Minio(
        url.netloc,
        access_key="bench",
        secret_key="bench",
        secure=url.scheme == "https",
        region="us-east-1",
        http_client=http,
    )
    bucket, key, part_size = spec["bucket"], spec["key"], spec["part_size"]
    parallel = spec["concurrency"]

    def upload() -> Any:
        if spec["case"] == "small":
            with ThreadPoolExecutor(parallel) as pool:
                jobs = [
                    pool.submit(client.fput_object, bucket, name, path)
                    for name, path in small_objects(spec)
                ]
                for job in jobs:
                    job.result()
        elif spec["case"] == "stream":
            client.put_object(
                bucket, key, Stream(spec), length=-1, part_size=part_size,
                num_parallel_uploads=parallel,
            )  # fmt: skip
        else:
            client.fput_object(
                bucket, key, spec["path"], part_size=part_size, num_parallel_uploads=parallel
            )

    measure(upload)


if __name__ == "__main__":
    main()
