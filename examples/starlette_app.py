"""A Starlette (or FastAPI) service that streams request bodies into S3 through one Uploader.

    PUT /objects/{key}   request.stream() goes to s3://BUCKET/{key} as it arrives
    POST /direct/{begin,urls,complete,abort}
                         direct uploads: the client sends the parts straight to S3 on
                         presigned URLs (examples/direct/: the endpoints, a browser client)
    GET /direct/         a page that uploads a file that way

One Uploader for the app's lifetime (the lifespan), shared by every request: bounded
requests in flight and bytes buffered, backpressure to each client's socket, and a client
that disconnects mid-body leaves nothing behind (asyncup aborts the upload). In FastAPI the
same handler body works with ``request: Request`` in a route, and the lifespan is passed to
``FastAPI(lifespan=...)``.

Run: S3_BUCKET=my-bucket uvicorn --factory examples.starlette_app:app_from_env
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

import asyncup
from examples.direct.endpoints import DirectEndpoints

PAGES = Path(__file__).parent / "direct"


def make_app(
    bucket: str,
    *,
    endpoint_url: str | None = None,
    config: asyncup.TransferConfig | None = None,
    client: object = None,
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with asyncup.Uploader(client=client, endpoint_url=endpoint_url, config=config) as up:
            app.state.uploader = up
            app.state.direct = DirectEndpoints(up, bucket)
            yield

    async def put_object(request: Request) -> JSONResponse:
        key = request.path_params["key"]
        try:
            result = await request.app.state.uploader.upload(
                request.stream(),  # an async iterator of chunks: streamed, never buffered whole
                bucket,
                key,
                extra_args={
                    "ContentType": request.headers.get("content-type", "binary/octet-stream")
                },
            )
        except asyncup.UploadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)
        return JSONResponse(
            {"key": key, "size": result.size, "etag": result.etag, "parts": result.parts}
        )

    async def direct_action(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        endpoints: DirectEndpoints = request.app.state.direct
        status, answer = await endpoints.handle(request.path_params["action"], body)
        return JSONResponse(answer, status_code=status)

    async def page(request: Request) -> FileResponse:
        name = request.path_params.get("name") or "demo.html"
        if name not in ("demo.html", "asyncup-direct.js"):
            raise HTTPException(404)
        media = "text/javascript" if name.endswith(".js") else "text/html"
        return FileResponse(PAGES / name, media_type=media)

    return Starlette(
        routes=[
            Route("/objects/{key:path}", put_object, methods=["PUT"]),
            Route("/direct/", page),
            Route("/direct/{name}", page),
            Route("/direct/{action}", direct_action, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    return make_app(os.environ["S3_BUCKET"], endpoint_url=os.environ.get("S3_ENDPOINT_URL"))
