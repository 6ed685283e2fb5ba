"""Helpers every endpoint module shares: the Services and renderer of the app, query parsing."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from fedblog.services import Services
from fedblog.web.templating import Renderer


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def renderer_of(request: Request) -> Renderer:
    return request.app.state.renderer  # type: ignore[no-any-return]


def page_number(request: Request) -> int:
    """The ``page`` query parameter: a whole number >= 1, or a 400 that says so."""
    raw = request.query_params.get("page", "1")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 100_000:
        raise HTTPException(400, f"page={raw[:40]!r} is not a page number: use ?page=2")
    return int(raw)
