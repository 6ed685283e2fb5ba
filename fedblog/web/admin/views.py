"""GET /admin (dashboard), GET /admin/followers, POST /admin/deliveries/retry."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.admin.dashboard import CHART_RANGES, load_dashboard, load_followers, retry_now
from fedblog.web.admin.guard import Admin, admin_action, admin_page
from fedblog.web.common import page_number, renderer_of, services_of

KIND_LABELS = {
    "reply": "replied to", "comment": "commented on", "like": "liked", "repost": "boosted",
    "pingback": "linked to (pingback)", "webmention": "linked to (Webmention)", "mention": "mentioned",
}


@admin_page
async def dashboard(request: Request, admin: Admin) -> Response:
    services = services_of(request)
    raw = request.query_params.get("days", str(CHART_RANGES[0]))
    if raw not in {str(d) for d in CHART_RANGES}:
        raise HTTPException(400, f"days={raw[:20]!r}: choose one of {', '.join(map(str, CHART_RANGES))}")
    data = await services.run_db(load_dashboard, services, int(raw))
    retried = request.query_params.get("retried", "")
    return renderer_of(request).page(
        "admin/dashboard.html",
        {"d": data, "csrf": admin.csrf, "nav": "dashboard", "ranges": CHART_RANGES, "kinds": KIND_LABELS,
         "retried": int(retried) if retried.isascii() and retried.isdigit() else None,
         "retried_target": request.query_params.get("target", "")[:300]},
    )


@admin_page
async def followers(request: Request, admin: Admin) -> Response:
    services = services_of(request)
    page = page_number(request)
    data = await services.run_db(load_followers, services, page)
    if page > data.last_page:
        raise HTTPException(404, f"There is no page {page}; the last page is {data.last_page}.")
    return renderer_of(request).page("admin/followers.html", {"f": data, "csrf": admin.csrf, "nav": "followers"})


@admin_action
async def retry_deliveries(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    """Make the failing deliveries to one inbox (``inbox``) or one host (``host``) due now."""
    inbox, host = form.get("inbox", "").strip(), form.get("host", "").strip()
    if bool(inbox) == bool(host):
        raise HTTPException(400, "Say which deliveries to retry: an inbox URL or a host, not both.")
    if len(inbox) > 2000 or len(host) > 255:
        raise HTTPException(400, "That inbox URL or host is too long.")
    services = services_of(request)
    changed = await services.run_db(retry_now, services, inbox=inbox or None, host=host or None)
    query = urlencode({"retried": changed, "target": inbox or host})
    return RedirectResponse(f"/admin?{query}#deliveries", status_code=303)
