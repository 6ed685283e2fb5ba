"""The bare ceiling for ``bench_hug.py``: one Starlette route that answers ``hello``.

The same uvicorn as ``fedblog serve`` (uvloop and httptools when installed), no database, no
template, no middleware: what this machine can answer at all. Run as
    python -m uvicorn --app-dir bench --factory ceiling_hello_app:create_app --no-access-log
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def create_app() -> Starlette:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/hello", hello)])
