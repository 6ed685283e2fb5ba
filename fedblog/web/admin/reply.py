"""/admin/reply?to=<comment id>: the owner answers a comment (a Note from the blog actor).

The public post page links here for every comment; it stays the same for everyone (cacheable),
and the admin session cookie (Path=/admin) is only sent here, where the form is.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.federation import owner_reply
from fedblog.web.admin.guard import Admin, admin_action, admin_page
from fedblog.web.common import renderer_of, services_of


def _comment_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise HTTPException(400, "Say which comment to answer: ?to=<comment id>.")
    return int(raw)


@admin_page
async def reply_page(request: Request, admin: Admin) -> Response:
    services = services_of(request)
    target = await services.run_db(owner_reply.load_target, services, _comment_id(request.query_params.get("to", "")))
    if target is None:
        raise HTTPException(404, "There is no such comment (it may have been deleted).")
    return renderer_of(request).page("admin/reply.html", {"c": target, "csrf": admin.csrf, "nav": "moderation",
                                                          "max_chars": owner_reply.MAX_REPLY_CHARS})


@admin_action
async def reply_submit(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    services = services_of(request)
    comment_id = _comment_id(form.get("to", ""))
    try:
        new_id, _queued = await services.run_db(owner_reply.post_reply, services, comment_id, form.get("content", ""))
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return RedirectResponse(services.urls.comment(new_id), status_code=303)
