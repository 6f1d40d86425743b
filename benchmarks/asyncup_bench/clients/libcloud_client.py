"""Apache libcloud: upload_object_via_stream (its multipart path is sequential)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import libcloud.security
from _common import chunks, load_spec, measure, small_objects
from libcloud.storage.providers import Provider, get_driver


def main() -> None:
    spec = load_spec()
    if spec["ca_bundle"]:
        libcloud.security.CA_CERTS_PATH = spec["ca_bundle"]
    url = urlsplit(spec["endpoint"])
    driver_class = get_driver(Provider.S3)

    def driver() -> Any:
        return driver_class(
            "bench", "bench", host=url.hostname, port=url.port,
            secure=url.scheme == "https", region="us-east-1",
        )  # fmt: skip

    main_driver = driver()
    container = main_driver.get_container(spec["bucket"])

    def upload() -> None:
        if spec["case"] == "small":

            def put(name: str, path: str) -> None:
                own = driver()
                with open(path, "rb") as source:
                    own.upload_object_via_stream(
                        iter([source.read()]), own.get_container(spec["bucket"]), name
                    )

            with ThreadPoolExecutor(spec["concurrency"]) as pool:
                for job in [pool.submit(put, n, p) for n, p in small_objects(spec)]:
                    job.result()
        else:
            main_driver.upload_object_via_stream(chunks(spec), container, spec["key"])

    measure(upload)


if __name__ == "__main__":
    main()
