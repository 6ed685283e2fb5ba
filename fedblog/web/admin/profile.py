"""GET/POST /admin/profile (title, description, images, fields, handle; pinned posts),
GET/POST /admin/settings (moderation policy, comment consent default),
POST /admin/posts/{id}/pin and /unpin.

The profile form is multipart (it carries the avatar and header); it is read with a size cap
and the session's CSRF token is checked before anything is stored. A bad value re-renders the
form with the reason (4xx) and stores nothing.
"""

from __future__ import annotations

import dataclasses
import re

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fedblog.admin import auth
from fedblog.admin import profile as use
from fedblog.blog.images import MAX_BYTES, ImageError
from fedblog.blog.site import MAX_FIELDS, ImageRef, SiteProfile
from fedblog.settings import MODERATION_MODES, reserved_handle, valid_handle
from fedblog.web.admin.guard import Admin, admin_action, admin_page, current_admin, private
from fedblog.web.common import renderer_of, services_of

MAX_PROFILE_BYTES = 2 * MAX_BYTES + 64 * 1024  # two images and the text fields
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LIMITS = {"name": 100, "author": 100, "description": 2000}
FIELD_LIMIT = 255  # Mastodon's limit for a profile field's name and value


class FormError(ValueError):
    pass


async def _page(request: Request, admin: Admin, *, error: str | None = None, status: int = 200,
                saved: str | None = None, template: str = "admin/profile.html",
                typed: FormData | None = None) -> Response:
    services = services_of(request)
    data = await services.run_db(use.load_page, services)
    if typed is not None:  # a refused form shows what was typed, not the stored values
        data = dataclasses.replace(data, site=_as_typed(data.site, typed, fixed_handle=data.followers > 0))
    return renderer_of(request).page(template, {
        "p": data, "csrf": admin.csrf, "nav": "profile" if template.endswith("profile.html") else "settings",
        "error": error, "saved": saved, "max_fields": MAX_FIELDS, "modes": MODERATION_MODES,
        "max_pinned": use.MAX_PINNED}, status_code=status)


def _as_typed(site: SiteProfile, form: FormData, *, fixed_handle: bool) -> SiteProfile:
    def raw(name: str) -> str:
        value = form.get(name)
        return value[:5000] if isinstance(value, str) else ""

    fields = tuple((raw(f"field_name_{i}"), raw(f"field_value_{i}")) for i in range(1, MAX_FIELDS + 1))
    handle = site.handle if fixed_handle else raw("handle") or site.handle
    return dataclasses.replace(site, name=raw("name"), description=raw("description"), author=raw("author"),
                               handle=handle, fields=tuple(f for f in fields if f[0] or f[1]))


@admin_page
async def profile_page(request: Request, admin: Admin) -> Response:
    saved = request.query_params.get("saved")
    return await _page(request, admin, saved=saved)


def _text(form: FormData, name: str) -> str | None:
    raw = form.get(name)
    value = raw.strip() if isinstance(raw, str) else ""
    if _CONTROL.search(value):
        raise FormError(f"The {name} has control characters; remove them.")
    limit = LIMITS.get(name, FIELD_LIMIT)
    if len(value) > limit:
        raise FormError(f"The {name} is {len(value)} characters long; the most is {limit}.")
    return value or None


def _fields(form: FormData) -> list[tuple[str, str]]:
    out = []
    for i in range(1, MAX_FIELDS + 1):
        name, value = _text(form, f"field_name_{i}"), _text(form, f"field_value_{i}")
        if name and value:
            out.append((name, value))
        elif name or value:
            raise FormError(f"Profile field {i} needs both a label and a value (or neither).")
    return out


async def _image(form: FormData, name: str) -> bytes | None:
    upload = form.get(name)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    data = await upload.read(MAX_BYTES + 1)
    if not data:
        raise FormError(f"The {name} file is empty.")
    return data


async def _read_multipart(request: Request) -> FormData:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_PROFILE_BYTES:
        raise HTTPException(413, f"The form is too large: images may be {MAX_BYTES // (1024 * 1024)} MB each.")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise HTTPException(415, "Send the profile form as multipart/form-data (the admin page does).")
    try:
        return await request.form(max_files=2, max_fields=40, max_part_size=64 * 1024)
    except Exception as exc:  # python-multipart's parse errors: bad boundary, too many parts, part too large
        raise HTTPException(400, f"The form could not be read: {str(exc)[:200]}") from None


async def profile_submit(request: Request) -> Response:
    admin = await current_admin(request)
    if admin is None:
        raise HTTPException(403, "You are not logged in (or your session has ended): log in again.")
    form = await _read_multipart(request)
    try:
        token = form.get("csrf")
        if not auth.check_csrf(admin.csrf, token if isinstance(token, str) else ""):
            raise HTTPException(
                403, "The form's security token is missing or wrong: reload the page and submit it again.")
        return private(await _save_profile(request, admin, form))
    finally:
        await form.close()


async def _save_profile(request: Request, admin: Admin, form: FormData) -> Response:
    services = services_of(request)
    try:
        handle = _text(form, "handle")
        if handle is not None and reserved_handle(handle):
            raise FormError(f"The handle {handle[:70]!r} is taken: names starting with 'guest-' or 'site-' "
                            "belong to the blog's guest commenters and linking sites. Nothing was saved.")
        if handle is not None and not valid_handle(handle):
            raise FormError(f"The handle {handle[:70]!r} is not a valid username: use letters, digits, _ . - only.")
        values: dict[str, str | None] = {
            "name": _text(form, "name"), "description": _text(form, "description"),
            "author": _text(form, "author"), "handle": handle,
            "fields": use.fields_value(_fields(form)),
        }
        for name in ("avatar", "header"):
            data = await _image(form, name)
            if data is not None:
                ref: ImageRef = await services.run_db(use.store_profile_image, services, data, name == "header")
                values[name] = ref.to_json()
            elif form.get(f"{name}_reset") == "1":
                values[name] = None
    except FormError as exc:
        return await _page(request, admin, error=str(exc), status=400, typed=form)
    except ImageError as exc:
        return await _page(request, admin, error=f"That file was not taken: {exc.reason} Nothing was saved.",
                           status=400, typed=form)
    result = await services.run_db(use.save_profile, services, values)
    if result.error:
        return await _page(request, admin, error=result.error, status=409, typed=form)
    return RedirectResponse(f"/admin/profile?saved={result.inboxes}", status_code=303)


@admin_page
async def settings_page(request: Request, admin: Admin) -> Response:
    return await _page(request, admin, saved=request.query_params.get("saved"), template="admin/settings.html")


@admin_action
async def settings_submit(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    services = services_of(request)
    mode = form.get("moderation", "")
    if mode not in MODERATION_MODES:
        return await _page(request, admin, error=f"Choose a moderation policy: one of {', '.join(MODERATION_MODES)}.",
                           status=400, template="admin/settings.html")
    values: dict[str, str | None] = {"moderation": mode,
                                     "comment_consent_default": "1" if form.get("comment_consent_default") else "0"}
    await services.run_db(use.save_profile, services, values)
    return RedirectResponse("/admin/settings?saved=1", status_code=303)


def _post_id(request: Request) -> int:
    raw = str(request.path_params["post_id"])
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise HTTPException(404, "There is no such post.")
    return int(raw)


async def _pin(request: Request, pinned: bool) -> Response:
    services = services_of(request)
    error = await services.run_db(use.set_pinned, services, _post_id(request), pinned)
    if error is not None:
        raise HTTPException(404 if error.startswith("There is no") else 409, error)
    return RedirectResponse("/admin/profile#pinned", status_code=303)


@admin_action
async def pin(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    return await _pin(request, True)


@admin_action
async def unpin(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    return await _pin(request, False)


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/profile", profile_page, methods=["GET"], name="admin_profile"),
        Route("/admin/profile", profile_submit, methods=["POST"], name="admin_profile_submit"),
        Route("/admin/settings", settings_page, methods=["GET"], name="admin_settings"),
        Route("/admin/settings", settings_submit, methods=["POST"], name="admin_settings_submit"),
        Route("/admin/posts/{post_id}/pin", pin, methods=["POST"], name="admin_pin"),
        Route("/admin/posts/{post_id}/unpin", unpin, methods=["POST"], name="admin_unpin"),
    ]
