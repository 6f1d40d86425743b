"""asyncup.direct in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven through WebDriver by selenium; nothing downloads a browser).

The page is the example app's (``examples/aiohttp_app.py``, ``/direct/``), with the
dependency-free client ``examples/direct/asyncup-direct.js``. It makes a file of ~20 MiB in
the page and sends its parts straight to SeaweedFS on 127.0.0.1, another origin than the
page's: the bucket's CORS rule (``direct.cors_configuration``) must let the PUTs through and
expose each answer's ETag. SeaweedFS applies bucket CORS and checks every presigned
signature and checksum. moto's server cannot prove the rule: it adds CORS headers of its own
to every answer whatever the bucket's rule says (seen: Access-Control-Allow-Origin echoing
an origin the rule does not list, on the PUT itself), so it is not used here.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest
from aiohttp import web

import asyncup
from asyncup import direct
from examples.aiohttp_app import make_app
from tests.conftest import MiB, assert_object, make_client

pytestmark = pytest.mark.timeout(180)

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SIZE = 4 * 5 * MiB + 777_777  # 5 parts of 5 MiB, the last one short
BLOCK = 64 * 1024
STAMP = 1_700_000_000_000  # the File's lastModified: the same file when the page comes back

# The page makes the file: a 64 KiB block of xorshift32 bytes, repeated, each copy starting
# with its index (so that a part sent at the wrong offset cannot match).
MAKE_FILE = """
const size = arguments[0], block = arguments[1], stamp = arguments[2];
const base = new Uint8Array(block);
let x = 2463534242;
for (let i = 0; i < block; i++) {
  x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
  base[i] = x & 0xff;
}
const bytes = new Uint8Array(size);
for (let k = 0; k * block < size; k++) {
  const copy = base.slice(0, Math.min(block, size - k * block));
  const index = [k >>> 24, (k >>> 16) & 255, (k >>> 8) & 255, k & 255];
  for (let j = 0; j < 4 && j < copy.length; j++) copy[j] = index[j];
  bytes.set(copy, k * block);
}
window.testFile = new File([bytes], "made.bin", {type: "application/octet-stream",
                                                  lastModified: stamp});
window.puts = 0;
const open = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (method, url) {
  if (method === "PUT") window.puts += 1;
  return open.apply(this, arguments);
};
"""

MODULE_LOADED = """
const done = arguments[arguments.length - 1];
const timer = setInterval(() => {
  if (window.asyncupDirect) { clearInterval(timer); done(true); }
}, 10);
"""

UPLOAD = """
const [key, concurrency, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
window.asyncupDirect.uploadFile(window.testFile, {endpoint: "/direct", key, concurrency})
  .then((result) => done({result, puts: window.puts}),
        (error) => done({error: String(error && error.message || error)}));
"""

WAIT_FOR_PROGRESS = """
const [bytes, done] = [arguments[0], arguments[arguments.length - 1]];
const timer = setInterval(() => {
  if (window.progress >= bytes) { clearInterval(timer); done(window.progress); }
}, 10);
"""

START = """
window.progress = 0;
window.asyncupDirect.uploadFile(window.testFile, {endpoint: "/direct", key: arguments[0],
    concurrency: 1, onProgress: (sent) => { window.progress = sent; }});
"""


def made_file() -> bytes:
    base = bytearray(BLOCK)
    x = 2463534242
    for i in range(BLOCK):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        base[i] = x & 0xFF
    copies = []
    for k in range(-(-SIZE // BLOCK)):
        copy = bytearray(base[: min(BLOCK, SIZE - k * BLOCK)])
        copy[:4] = k.to_bytes(4, "big")[: len(copy)]
        copies.append(bytes(copy))
    return b"".join(copies)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium and chromium-driver are not installed (.ci/run does)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="asyncup-chromium-")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def app_url(seaweedfs_endpoint: str, seaweed_bucket: str) -> AsyncIterator[str]:
    config = asyncup.TransferConfig(part_size=5 * MiB)
    runner = web.AppRunner(make_app(seaweed_bucket, endpoint_url=seaweedfs_endpoint, config=config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def seaweed_bucket(seaweedfs_endpoint: str) -> AsyncIterator[str]:
    from tests.conftest import empty_and_delete

    name = f"asyncup-browser-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    async with await make_client(seaweedfs_endpoint) as s3:
        await s3.create_bucket(Bucket=name)
        yield name
        await empty_and_delete(s3, name)


async def allow(s3: Any, bucket: str, origin: str) -> None:
    await s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=direct.cors_configuration([origin]))


async def run(driver: Any, script: str, *args: Any, wait: bool = False) -> Any:
    call = driver.execute_async_script if wait else driver.execute_script
    return await anyio.to_thread.run_sync(lambda: call(script, *args))


async def open_page(driver: Any, app_url: str) -> None:
    await anyio.to_thread.run_sync(driver.get, f"{app_url}/direct/")
    await run(driver, MODULE_LOADED, wait=True)
    await run(driver, MAKE_FILE, SIZE, BLOCK, STAMP)


async def test_a_page_sends_a_file_straight_to_the_store(
    browser: Any, app_url: str, seaweedfs_endpoint: str, seaweed_bucket: str
) -> None:
    async with await make_client(seaweedfs_endpoint) as s3:
        # A rule for other pages only: the browser blocks the PUTs.
        await allow(s3, seaweed_bucket, "https://elsewhere.example")
        await open_page(browser, app_url)
        refused = await run(browser, UPLOAD, "browser/refused.bin", 4, wait=True)
        assert "network error" in refused.get("error", ""), refused
        # The page's origin, but without ExposeHeaders: the ETags are hidden.
        rule = direct.cors_configuration([app_url])
        del rule["CORSRules"][0]["ExposeHeaders"]
        await s3.put_bucket_cors(Bucket=seaweed_bucket, CORSConfiguration=rule)
        await open_page(browser, app_url)
        hidden = await run(browser, UPLOAD, "browser/hidden.bin", 4, wait=True)
        assert "ExposeHeaders: ETag" in hidden.get("error", ""), hidden
        await allow(s3, seaweed_bucket, app_url)

        await open_page(browser, app_url)
        answer = await run(browser, UPLOAD, "browser/made.bin", 4, wait=True)
        assert "error" not in answer, answer
        assert answer["result"]["parts"] == 5
        assert answer["result"]["size"] == SIZE
        assert answer["result"]["verified_by"] == "store"  # SeaweedFS checks each CRC32
        await assert_object(s3, seaweed_bucket, "browser/made.bin", made_file(), 5 * MiB)


async def test_a_page_closed_mid_upload_resumes_and_an_abandoned_one_is_swept(
    browser: Any, app_url: str, seaweedfs_endpoint: str, seaweed_bucket: str
) -> None:
    async with await make_client(seaweedfs_endpoint) as s3:
        await allow(s3, seaweed_bucket, app_url)
        key = "browser/resumed.bin"
        await open_page(browser, app_url)
        await run(browser, START, key)
        await run(browser, WAIT_FOR_PROGRESS, 2 * 5 * MiB, wait=True)
        await anyio.to_thread.run_sync(browser.get, "about:blank")  # the tab is gone

        uploads = (await s3.list_multipart_uploads(Bucket=seaweed_bucket)).get("Uploads", [])
        assert [u["Key"] for u in uploads] == [key]
        listed = await s3.list_parts(
            Bucket=seaweed_bucket, Key=key, UploadId=uploads[0]["UploadId"]
        )
        held = len(listed.get("Parts", []))
        assert 2 <= held < 5

        # The same file in a new page: only what S3 lacks is sent.
        await open_page(browser, app_url)
        answer = await run(browser, UPLOAD, key, 2, wait=True)
        assert "error" not in answer, answer
        assert answer["puts"] <= 5 - 2
        await assert_object(s3, seaweed_bucket, key, made_file(), 5 * MiB)

        # Closed mid-upload, never resumed: the sweeper removes it.
        await open_page(browser, app_url)
        await run(browser, START, "browser/abandoned.bin")
        await run(browser, WAIT_FOR_PROGRESS, 5 * MiB, wait=True)
        await anyio.to_thread.run_sync(browser.get, "about:blank")
        async with asyncup.Uploader(endpoint_url=seaweedfs_endpoint) as up:
            outcomes = await up.abort_uploads(
                seaweed_bucket, "browser/", older_than=datetime.timedelta(0)
            )
        assert [(u.key, e) for u, e in outcomes] == [("browser/abandoned.bin", None)]
        left = await s3.list_multipart_uploads(Bucket=seaweed_bucket)
        assert left.get("Uploads", []) == []
