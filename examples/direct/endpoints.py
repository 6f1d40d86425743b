"""The four direct-upload endpoints, framework-free: JSON in, (status, JSON) out.

``examples/aiohttp_app.py`` and ``examples/starlette_app.py`` route to these; the browser
side is ``asyncup-direct.js``. Handles stay on the server (a client could otherwise name
another key in a handle it sends back): here in memory, keyed by upload id; a service with
several instances keeps ``handle.to_json()`` in its database instead.
"""

from __future__ import annotations

from typing import Any

import asyncup
from asyncup import direct


class DirectEndpoints:
    def __init__(self, uploader: asyncup.Uploader, bucket: str, *, prefix: str = "") -> None:
        self.uploader = uploader
        self.bucket = bucket
        self.prefix = prefix
        self.handles: dict[str, direct.DirectUpload] = {}

    async def handle(self, action: str, body: Any) -> tuple[int, dict[str, Any]]:
        """Run ``action`` (begin, urls, complete, abort) on the request's JSON ``body``."""
        if not isinstance(body, dict):
            return 400, {"error": "the body must be a JSON object"}
        try:
            if action == "begin":
                return 200, await self.begin(body)
            upload = self.handles.get(str(body.get("upload_id")))
            if upload is None:
                return 404, {"error": "no such upload"}
            if action == "urls":
                return 200, await self.urls(upload, body)
            if action == "complete":
                return 200, await self.complete(upload, body)
            if action == "abort":
                gone = await direct.abort(self.uploader, upload)
                self.handles.pop(upload.upload_id, None)
                return 200, {"aborted": gone}
            return 404, {"error": f"no action {action!r}"}
        except direct.PartsRefusedError as exc:  # the client can send those parts again
            return 409, {
                "error": str(exc),
                "missing": list(exc.missing),
                "extra": list(exc.extra),
                "wrong_size": list(exc.wrong_size),
                "mismatched": list(exc.mismatched),
            }
        except (ValueError, TypeError) as exc:  # refused before any request
            return 400, {"error": str(exc)}
        except asyncup.UploadError as exc:
            return 502, {"error": str(exc)}

    async def begin(self, body: dict[str, Any]) -> dict[str, Any]:
        key, size = body.get("key"), body.get("size")
        if not isinstance(key, str) or not isinstance(size, int):
            raise ValueError("begin needs a key (str) and a size (int)")
        extra = {"ContentType": body.get("content_type") or "binary/octet-stream"}
        upload = await direct.begin(
            self.uploader, self.bucket, self.prefix + key, size, extra_args=extra
        )
        self.handles[upload.upload_id] = upload
        return {
            "upload_id": upload.upload_id,
            "key": key,
            "size": upload.size,
            "part_size": upload.part_size,
            "part_count": upload.part_count,
            "checksum_algorithm": upload.checksum_algorithm,
        }

    async def urls(self, upload: direct.DirectUpload, body: dict[str, Any]) -> dict[str, Any]:
        checksums = {int(n): c for n, c in (body.get("checksums") or {}).items()}
        numbers = body.get("numbers")
        grants = await direct.sign_parts(self.uploader, upload, numbers, checksums=checksums)
        return {"parts": [grant.to_dict() for grant in grants]}

    async def complete(self, upload: direct.DirectUpload, body: dict[str, Any]) -> dict[str, Any]:
        result = await direct.complete(self.uploader, upload, body.get("parts") or [])
        self.handles.pop(upload.upload_id, None)
        return {
            "key": result.key,
            "size": result.size,
            "etag": result.etag,
            "parts": result.parts,
            "checksum": result.checksum,
            "verified_by": result.verified_by,
        }
