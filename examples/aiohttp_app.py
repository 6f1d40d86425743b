"""An aiohttp service that streams request bodies into S3 through one shared Uploader.

    PUT /objects/{key}   the body goes to s3://BUCKET/{key} as it arrives
    POST /direct/{begin,urls,complete,abort}
                         direct uploads: the client sends the parts straight to S3 on
                         presigned URLs (examples/direct/: the endpoints, a browser client)
    GET /direct/         a page that uploads a file that way

The Uploader lives as long as the app (a cleanup context), so every request shares one
client and one budget: requests in flight and bytes buffered stay bounded however many
clients upload at once, and a slow S3 slows the reading of each client's socket
(backpressure). A client that disconnects mid-body makes the upload fail: asyncup aborts
it, nothing is left in the bucket, and the server goes on serving.

Run: S3_BUCKET=my-bucket python examples/aiohttp_app.py  (credentials: the default chain)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

import asyncup
from examples.direct.endpoints import DirectEndpoints

UPLOADER = web.AppKey("uploader", asyncup.Uploader)
DIRECT = web.AppKey("direct", DirectEndpoints)
PAGES = Path(__file__).parent / "direct"


def make_app(
    bucket: str,
    *,
    endpoint_url: str | None = None,
    config: asyncup.TransferConfig | None = None,
    client: object = None,
) -> web.Application:
    async def uploader(app: web.Application) -> AsyncIterator[None]:
        async with asyncup.Uploader(client=client, endpoint_url=endpoint_url, config=config) as up:
            app[UPLOADER] = up
            app[DIRECT] = DirectEndpoints(up, bucket)
            yield

    async def put_object(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        try:
            result = await request.app[UPLOADER].upload(
                request.content,  # an awaitable read(n): streamed, never buffered whole
                bucket,
                key,
                extra_args={"ContentType": request.content_type},
            )
        except asyncup.UploadError as exc:
            return web.json_response({"error": str(exc)}, status=502)
        return web.json_response(
            {"key": key, "size": result.size, "etag": result.etag, "parts": result.parts}
        )

    async def direct_action(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        status, answer = await request.app[DIRECT].handle(request.match_info["action"], body)
        return web.json_response(answer, status=status)

    async def page(request: web.Request) -> web.FileResponse:
        name = request.match_info.get("name") or "demo.html"
        if name not in ("demo.html", "asyncup-direct.js"):
            raise web.HTTPNotFound()
        return web.FileResponse(PAGES / name)

    # A request's body is read ahead until aiohttp's buffer holds twice read_bufsize, then its
    # socket pauses. At aiohttp's default (64 KiB) the requests waiting for part buffers held
    # ~0.7 MiB each; at 32 KiB, 0.27 MiB: the app's peak with 120 clients fell by 47-61 MiB,
    # its CPU time unchanged (benchmarks/RESULTS.md).
    app = web.Application(handler_args={"read_bufsize": 32 * 1024})
    app.cleanup_ctx.append(uploader)
    app.router.add_put("/objects/{key:.+}", put_object)
    app.router.add_post("/direct/{action}", direct_action)
    app.router.add_get("/direct/", page)
    app.router.add_get("/direct/{name}", page)
    return app


if __name__ == "__main__":
    web.run_app(
        make_app(os.environ["S3_BUCKET"], endpoint_url=os.environ.get("S3_ENDPOINT_URL")),
        host="127.0.0.1",
        port=int(os.environ.get("PORT", "8080")),
    )
