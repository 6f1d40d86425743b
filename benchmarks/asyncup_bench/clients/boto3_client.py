"""boto3: s3transfer's upload_file (threads), or the CRT transfer client (argv 2 = "crt")."""

from __future__ import annotations

import sys
from typing import Any

import boto3
from _common import Stream, load_spec, measure, skip, small_objects
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config


def main() -> None:
    spec = load_spec()
    kind = sys.argv[2] if len(sys.argv) > 2 else "classic"
    client = boto3.client(
        "s3",
        endpoint_url=spec["endpoint"],
        verify=spec["ca_bundle"],
        config=Config(
            max_pool_connections=spec["concurrency"] + 4, s3={"addressing_style": "path"}
        ),
    )
    config = TransferConfig(
        multipart_threshold=spec["part_size"],
        multipart_chunksize=spec["part_size"],
        max_concurrency=spec["concurrency"],
        preferred_transfer_client=kind,
    )
    manager = create_transfer_manager(client, config)
    if kind == "crt" and "CRT" not in type(manager).__name__:
        skip(f"boto3 chose {type(manager).__name__}, not the CRT, for this client")
    bucket, key = spec["bucket"], spec["key"]

    def upload() -> None:
        futures: list[Any] = []
        with manager:
            if spec["case"] == "stream":
                futures.append(manager.upload(Stream(spec), bucket, key))
            elif spec["case"] == "small":
                for name, path in small_objects(spec):
                    futures.append(manager.upload(path, bucket, name))
            else:
                futures.append(manager.upload(spec["path"], bucket, key))
            for future in futures:
                future.result()

    measure(upload)


if __name__ == "__main__":
    main()
