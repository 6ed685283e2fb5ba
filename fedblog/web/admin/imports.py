"""/admin/import: upload a WordPress export (WXR) and watch the import, without JavaScript.

The upload is streamed to a file under the data directory (cap ``MAX_WXR_BYTES``); the import
runs in a background thread; the page refreshes itself every 2 seconds with
``<meta http-equiv="refresh">`` while it runs (HTML's refresh pragma is not script: a CSP of
``default-src 'self'`` does not block it).
"""

from __future__ import annotations

import os

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.admin import wp_upload
from fedblog.web.admin.guard import Admin, admin_page, private
from fedblog.web.admin.uploads import multipart_upload
from fedblog.web.common import renderer_of, services_of

MAX_WXR_BYTES = 512 * 2**20
REFRESH_SECONDS = 2


@admin_page
async def import_page(request: Request, admin: Admin) -> Response:
    job = wp_upload.current(services_of(request))
    return renderer_of(request).page("admin/import.html", {
        "job": job, "csrf": admin.csrf, "nav": "import", "refresh": REFRESH_SECONDS,
        "max_mb": MAX_WXR_BYTES // 2**20,
    })


async def import_upload(request: Request) -> Response:
    services = services_of(request)
    current = wp_upload.current(services)
    if current is not None and current.running:  # refuse before taking the upload
        raise HTTPException(409, "An import is already running: wait for it to finish.")
    _admin, up = await multipart_upload(request, services.settings.data_dir / "imports", MAX_WXR_BYTES)
    if up.path is None or up.size == 0:
        if up.path is not None:
            os.unlink(up.path)
        raise HTTPException(400, "Choose the .xml file WordPress exported (Tools → Export → All content).")
    try:
        wp_upload.start(services, up.path, up.filename or "the upload", include_pages=up.fields.get("pages") == "1")
    except wp_upload.Busy as exc:
        os.unlink(up.path)
        raise HTTPException(409, str(exc)) from None
    return private(RedirectResponse("/admin/import", status_code=303))
