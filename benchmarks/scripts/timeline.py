"""Where a fresh process's upload of 1 GiB goes, as `asyncup bench` runs it.

Usage (from the checkout, venv active; the 1 GiB file of threads.py, made once):
    [PYTHONPATH=/tmp/asyncup-NAME] python benchmarks/scripts/timeline.py http|https 5
Starts the sink, then runs the upload N times, each in a new process (after one that only
makes the bucket), and prints for each the milliseconds since the process began: asyncup
imported, the Uploader open, the first part started and done, the last part done, the
upload's end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from threads import CONCURRENCY, PART, PATH, make_file, start_sink


def child(endpoint: str, make_bucket: bool) -> None:
    began = time.perf_counter()

    def now() -> float:
        return round((time.perf_counter() - began) * 1000, 1)

    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import uvloop

    import asyncup

    marks: dict[str, float] = {"imported": now()}
    started: list[float] = []
    done: list[float] = []

    def on_event(event: asyncup.UploadEvent) -> None:
        if event.kind == "part_started":
            started.append(now())
        elif event.kind == "part_done":
            done.append(now())

    async def main() -> None:
        config = asyncup.TransferConfig(
            part_size=PART, multipart_threshold=PART, concurrency=CONCURRENCY
        )
        async with asyncup.Uploader(endpoint_url=endpoint, config=config, verify=False) as up:
            marks["opened"] = now()
            if make_bucket:
                await up.client.create_bucket(Bucket="bench")
                return
            await up.upload(PATH, "bench", "k", on_event=on_event)
            marks["uploaded"] = now()

    uvloop.run(main())
    if started:
        marks.update(first_started=started[0], first_done=done[0], last_done=done[-1])
    print(json.dumps(marks), flush=True)


def main() -> None:
    if sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3] == "bucket")
        return
    tls, runs = sys.argv[1] == "https", int(sys.argv[2])
    make_file()
    sink, endpoint = start_sink(tls)
    try:
        for run in range(runs + 1):
            role = "bucket" if run == 0 else "upload"
            subprocess.run([sys.executable, __file__, "child", endpoint, role], check=True)
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
