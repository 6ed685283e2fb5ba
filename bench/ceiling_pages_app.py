"""The synthetic ceiling for ``bench_pages.py``: fedblog's own post page, rendered from memory.

A bare Starlette app with one route, ``GET /posts/{slug}``, that renders fedblog's
``post.html`` through the very Jinja2 environment fedblog uses
(``fedblog.web.templating.build_environment``) from plain in-memory objects: no database, no
ORM, no per-request work except the template render. The data is a JSON snapshot of the same
rows fedblog serves, written by ``bench_pages.py`` (``BENCH_PAGES_SNAPSHOT``), so both servers
return byte-identical HTML (the bench checks that).

Run by bench_pages.py as:
    python -m uvicorn --app-dir bench --factory ceiling_pages_app:create_app \\
        --loop uvloop --http httptools --no-access-log --log-level warning
with the same FEDBLOG_* settings as the fedblog server.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from fedblog.blog.posts import summary_text
from fedblog.blog.threads import build_thread
from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.web.templating import build_environment


def plain(row: dict[str, Any]) -> SimpleNamespace:
    """A snapshot row as a plain object; ``*_at`` ISO strings become datetimes again."""
    return SimpleNamespace(**{
        k: datetime.fromisoformat(v) if k.endswith("_at") and isinstance(v, str) else v for k, v in row.items()
    })


def create_app() -> Starlette:
    snapshot = json.loads(Path(os.environ["BENCH_PAGES_SNAPSHOT"]).read_text(encoding="utf-8"))
    services = build_services(load_settings(os.environ))  # only settings and urls are used: the engine never connects
    template = build_environment(services).get_template("post.html")
    pages: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    for slug, data in snapshot.items():
        post = plain(data["post"])
        context = {
            "post": post,
            "tags": [plain(t) for t in data["tags"]],
            "thread": build_thread([plain(i) for i in data["interactions"]]),  # type: ignore[arg-type]
            "description": summary_text(post, 200),  # type: ignore[arg-type]
        }
        link = f'<{services.urls.post(slug)}>; rel="alternate"; type="application/activity+json"'
        pages[slug] = (context, {"Link": link})

    async def post_page(request: Request) -> Response:
        found = pages.get(request.path_params["slug"])
        if found is None:
            raise HTTPException(404)
        context, headers = found
        return HTMLResponse(template.render(**context), headers=headers)

    return Starlette(routes=[Route("/posts/{slug}", post_page)])
