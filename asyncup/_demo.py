"""An embedded S3 endpoint for the demo: moto server on 127.0.0.1, stopped on exit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from aiobotocore.session import get_session


@asynccontextmanager
async def embedded_s3() -> AsyncIterator[tuple[str, Any]]:
    """Yield (endpoint_url, client) for a moto server started on a free loopback port."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover
        raise SystemExit("the demo needs moto: pip install 'asyncup[demo]'") from exc
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    await anyio.to_thread.run_sync(server.start)
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        session = get_session()
        async with session.create_client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="asyncup-demo",
            aws_secret_access_key="asyncup-demo",
        ) as client:
            yield endpoint, client
    finally:
        await anyio.to_thread.run_sync(server.stop)
