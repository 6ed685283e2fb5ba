"""Old WordPress URLs of imported posts answer ``301 Moved Permanently`` to the post's page.

WordPress answers ``/?p=123`` (every post, whatever the permalink setting), ``/?page_id=12``,
and its permalink structure, e.g. ``/2012/03/08/slug/`` (https://wordpress.org/documentation/
article/customize-permalinks/). The import stores each old path of each post (``legacy_path``);
a 301 tells browsers and search engines the move is permanent (RFC 9110, section 15.4.2).

``/`` alone is still the home page. ``legacy_or_404`` is the last route: a path that names
no post gets what the router would have answered (a trailing-slash redirect when the other
form is a route, else 404).
"""

from __future__ import annotations

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from fedblog.services import Services
from fedblog.store.legacy import slug_for_old_path
from fedblog.web import pages
from fedblog.web.common import services_of

ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _lookup(services: Services, paths: list[str]) -> str | None:
    with Session(services.engine) as session:
        return slug_for_old_path(session, paths)


async def _moved(request: Request, paths: list[str]) -> Response | None:
    services = services_of(request)
    slug = await services.run_db(_lookup, services, paths)
    if slug is None:
        return None
    return RedirectResponse(services.urls.post(slug), status_code=301)


async def home(request: Request) -> Response:
    """``/``: the home page, unless the query names a WordPress post (``?p=``) or page (``?page_id=``)."""
    for key in ("p", "page_id"):
        value = request.query_params.get(key, "")
        if value.isascii() and value.isdigit():
            moved = await _moved(request, [f"/?{key}={int(value)}"])
            if moved is not None:
                return moved
            raise HTTPException(404, "There is no post with this old WordPress id.")
    return await pages.home(request)


async def legacy_or_404(request: Request) -> Response:
    """Any path no other route matched: an imported post's old URL, or what the router answered
    before this route existed (405 for a known path with another method, 404)."""
    others = [r for r in request.app.router.routes if not (isinstance(r, Route) and r.endpoint is legacy_or_404)]
    for route in others:  # a route of the blog with other methods (GET on an inbox): 405, as the router says
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] == Match.PARTIAL:
            raise HTTPException(405, "Method Not Allowed", headers={"Allow": ", ".join(sorted(route.methods))})
    if request.method not in ("GET", "HEAD"):
        raise HTTPException(404, "Not Found")
    path = request.url.path
    query = request.url.query
    paths = [path + (f"?{query}" if query else ""), path]
    toggled = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
    paths.append(toggled)
    moved = await _moved(request, list(dict.fromkeys(paths)))
    if moved is not None:
        return moved
    # what Starlette's router does when no route matches (redirect_slashes): the other form
    scope: Scope = {**request.scope, "path": toggled}
    for route in others:
        match, _ = route.matches(scope)
        if match == Match.FULL and toggled != path:
            return RedirectResponse(request.url.replace(path=toggled), status_code=307)
    raise HTTPException(404, "Not Found")
