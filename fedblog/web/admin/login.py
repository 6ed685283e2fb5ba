"""GET/POST /admin/login and POST /admin/logout."""

from __future__ import annotations

import asyncio
import secrets
import threading
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.admin import auth
from fedblog.admin.passwords import verify_password
from fedblog.web.admin.guard import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Admin,
    admin_action,
    clear_cookie,
    client_ip,
    current_admin,
    private,
    read_form,
    safe_next,
    set_cookie,
)
from fedblog.web.common import renderer_of, services_of

LOGIN_NONCE_SECONDS = 3600
_HASHING = threading.BoundedSemaphore(2)  # scrypt takes 32 MiB and most of a second: two at a time


def _verify(password: str, encoded: str) -> bool:
    with _HASHING:
        return verify_password(password, encoded)


def _form(request: Request, nonce: str, *, next_url: str, error: str | None = None, status: int = 200,
          headers: dict[str, str] | None = None, has_password: bool = True) -> Response:
    services = services_of(request)
    context: dict[str, Any] = {
        "csrf": auth.login_form_token(services.settings.secret_key, nonce),
        "next": next_url,
        "error": error,
        "has_password": has_password,
    }
    response = renderer_of(request).page("admin/login.html", context, status_code=status, headers=headers)
    set_cookie(request, response, LOGIN_COOKIE, nonce, max_age=LOGIN_NONCE_SECONDS)
    return private(response)


async def login_page(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    if await current_admin(request) is not None:
        return private(RedirectResponse(next_url, status_code=303))
    services = services_of(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not (16 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum()):
        nonce = secrets.token_urlsafe(24)
    has_password = await services.run_db(auth.has_password, services)
    return _form(request, nonce, next_url=next_url, has_password=has_password)


async def login_submit(request: Request) -> Response:
    services = services_of(request)
    form = await read_form(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not auth.check_login_form_token(services.settings.secret_key, nonce, form.get("csrf", "")):
        raise HTTPException(
            403, "The login form's security token is missing or wrong (cookies off, or an old page): "
            "open /admin/login again."
        )
    next_url = safe_next(form.get("next"))
    ip = client_ip(request)
    gate = await services.run_db(auth.login_gate, services, ip)
    if gate.retry_after is not None:
        minutes = -(-gate.retry_after // 60)
        return _form(request, nonce, next_url=next_url, status=429, headers={"Retry-After": str(gate.retry_after)},
                     error=f"Too many failed logins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.")
    if gate.encoded is None:
        return _form(request, nonce, next_url=next_url, status=403, has_password=False,
                     error="No admin password is set yet.")
    password = form.get("password", "")
    if not password or not await asyncio.to_thread(_verify, password, gate.encoded):
        await services.run_db(auth.record_failure, services, ip)
        return _form(request, nonce, next_url=next_url, status=401,
                     headers={"WWW-Authenticate": 'FormLogin realm="fedblog admin"'},
                     error="That password is not right.")
    new = await services.run_db(auth.start_session, services, ip)
    response = private(RedirectResponse(next_url, status_code=303))
    seconds = int((new.expires_at - services.clock.now()).total_seconds())
    set_cookie(request, response, SESSION_COOKIE, new.token, max_age=seconds, expires=new.expires_at)
    clear_cookie(request, response, LOGIN_COOKIE)
    return response


@admin_action
async def logout(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    services = services_of(request)
    await services.run_db(auth.end_session, services, admin.token)
    response = RedirectResponse("/admin/login", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response
