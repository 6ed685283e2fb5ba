"""GET /interact?uri=...&who=...: send a reader to their own server to reply or follow."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.federation.interact import InteractError, interaction_url
from fedblog.web.common import services_of


async def interact(request: Request) -> Response:
    services = services_of(request)
    uri = request.query_params.get("uri", "")
    who = request.query_params.get("who", "")
    if not (services.urls.match_post(uri) or services.urls.is_actor(uri)):
        raise HTTPException(400, "Only this blog's posts and account can be interacted with here.")
    if not who.strip():
        raise HTTPException(400, "Type your fediverse handle (like @you@mastodon.social) or your server's name.")
    try:
        target = await interaction_url(services, who, uri)
    except InteractError as exc:
        raise HTTPException(400, str(exc)) from None
    return RedirectResponse(target, status_code=303)
