"""``/media/...``: files imported with ``fedblog import wordpress --media-dir``.

Only common image, audio, video and PDF types are served, with ``nosniff`` and a sandboxing
Content-Security-Policy, so a stray HTML or SVG file in an old uploads folder cannot run script on
the blog's origin (https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy/sandbox).
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from fedblog.blog.images import UPLOADS
from fedblog.blog.wp_import import MEDIA_FOLDER
from fedblog.web.common import services_of

TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".webp": "image/webp",
    ".avif": "image/avif", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".ogg": "audio/ogg", ".mp4": "video/mp4",
    ".webm": "video/webm", ".pdf": "application/pdf",
}


def _file(root: Path, rel: str) -> Path | None:
    base = root.resolve()
    target = (base / rel).resolve()
    return target if target.is_relative_to(base) and target.is_file() else None


async def media(request: Request) -> Response:
    services = services_of(request)
    rel = request.path_params["path"]
    kind = TYPES.get(Path(rel).suffix.lower())
    target = _file(services.settings.data_dir / MEDIA_FOLDER, rel) if kind else None
    if target is None or kind is None:
        raise HTTPException(404, "There is no such file.")
    # an upload's path names its content (a SHA-256): it never changes, so it can be cached for good
    forever = rel.startswith(UPLOADS + "/")
    return FileResponse(target, media_type=kind, headers={
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "public, max-age=31536000, immutable" if forever else "public, max-age=86400",
    })
