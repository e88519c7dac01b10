"""The pages' two static files, served from memory: `rollon.css` and `rollon.js`.

Only these names are served (no path from the URL ever reaches the file system). Pages link
them with their content hash in the query (`static_url`), so browsers may keep them a day
and still get a new version at once after an upgrade.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

STATIC_DIR: Final = Path(__file__).parent / "static"
CACHE_MAX_AGE_S: Final = 24 * 3600
_MEDIA_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def _load() -> dict[str, StaticFile]:
    files = {}
    for path in sorted(STATIC_DIR.iterdir()):
        media_type = _MEDIA_TYPES.get(path.suffix)
        if media_type is None:
            continue
        body = path.read_bytes()
        files[path.name] = StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:16])
    return files


FILES: Final = _load()


def static_url(name: str) -> str:
    """The URL of a static file, with its version."""
    return f"/static/{name}?v={FILES[name].etag}"


router = APIRouter(include_in_schema=False)


@router.get("/static/{name}")
async def static_file(name: str, request: Request) -> Response:
    served = FILES.get(name)
    if served is None:
        return Response("no such file", status_code=404, media_type="text/plain")
    headers = {
        "ETag": f'"{served.etag}"',
        "Cache-Control": f"public, max-age={CACHE_MAX_AGE_S}",
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(served.body, media_type=served.media_type, headers=headers)
