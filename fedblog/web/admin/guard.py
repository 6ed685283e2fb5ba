"""What every admin endpoint shares: the session cookie, the login redirect, CSRF, small forms.

Cookies follow RFC 6265bis: ``HttpOnly``, ``SameSite=Lax``, ``Path=/admin``, ``Secure`` when the
blog is served over https, and an expiry equal to the session's. Admin responses are never
cached, framed or indexed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.admin import auth
from fedblog.web.common import services_of

SESSION_COOKIE = "fedblog_admin"
LOGIN_COOKIE = "fedblog_admin_login"
COOKIE_PATH = "/admin"
MAX_FORM_BYTES = 16 * 1024
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex, nofollow",
}


@dataclass(frozen=True)
class Admin:
    """The logged-in owner, as far as a request is concerned."""

    token: str
    csrf: str


def private(response: Response) -> Response:
    response.headers.update(PRIVATE_HEADERS)
    return response


def is_https(request: Request) -> bool:
    return services_of(request).settings.base_url.startswith("https://")


def set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int,
               expires: datetime | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, expires=expires, path=COOKIE_PATH, secure=is_https(request),
        httponly=True, samesite="lax",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, secure=is_https(request), httponly=True, samesite="lax")


def client_ip(request: Request) -> str:
    """The client's address (behind a proxy, uvicorn's --proxy-headers has already applied it)."""
    return (request.client.host if request.client else "") or "unknown"


def safe_next(raw: str | None) -> str:
    """A local /admin path to return to after login; anything else (other hosts, //x, \\x) is /admin."""
    if not raw or len(raw) > 500 or "\\" in raw or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        return "/admin"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or raw.startswith("//"):
        return "/admin"
    if not (parts.path == "/admin" or parts.path.startswith("/admin/")) or parts.path.startswith("/admin/log"):
        return "/admin"
    return raw


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return private(RedirectResponse(f"/admin/login?next={quote(safe_next(target), safe='/')}", status_code=303))


async def current_admin(request: Request) -> Admin | None:
    services = services_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    csrf = await services.run_db(auth.session_csrf, services, token)
    return Admin(token, csrf) if csrf is not None else None


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (what our pages post): 413 above 16 KiB, 415 for other types."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise HTTPException(413, "This form is too large.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "This form is too large.")
    if not body:
        return {}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Send the form as application/x-www-form-urlencoded (the admin pages do).")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The form could not be read: it is not UTF-8 urlencoded text.") from None
    return dict(pairs)


Endpoint = Callable[[Request], Awaitable[Response]]
AdminEndpoint = Callable[[Request, Admin], Awaitable[Response]]


def admin_page(fn: AdminEndpoint) -> Endpoint:
    """A GET page for the owner only: others are sent (303) to the login page."""

    async def endpoint(request: Request) -> Response:
        admin = await current_admin(request)
        if admin is None:
            return login_redirect(request)
        return private(await fn(request, admin))

    return endpoint


FormEndpoint = Callable[[Request, Admin, dict[str, str]], Awaitable[Response]]


def admin_action(fn: FormEndpoint) -> Endpoint:
    """A POST for the owner only, with the session's CSRF token; else 403 and nothing changes."""

    async def endpoint(request: Request) -> Response:
        admin = await current_admin(request)
        form = await read_form(request)
        if admin is None:
            raise HTTPException(403, "You are not logged in (or your session has ended): log in again.")
        if not auth.check_csrf(admin.csrf, form.get("csrf", "")):
            raise HTTPException(
                403, "The form's security token is missing or wrong: reload the page and submit it again."
            )
        return private(await fn(request, admin, form))

    return endpoint
