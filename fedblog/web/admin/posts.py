"""/admin/posts: the list, the editor (new / edit, preview, uploads, draft / publish / schedule), delete.

The editor form is ``multipart/form-data`` (it carries images): the body is capped at
``MAX_BODY`` (413 with a reason above it) and read before it is parsed. Every error shows the
form again with what was typed, and the uploads already made.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.admin import auth, editor
from fedblog.blog.markup import MarkdownRenderer
from fedblog.services import Services
from fedblog.web.admin.guard import Admin, admin_action, admin_page, current_admin, private
from fedblog.web.common import page_number, renderer_of, services_of

MAX_BODY = 12 * 1024 * 1024  # one or two photos from a phone, and the text
MAX_FIELDS = 60
_markdown = MarkdownRenderer()


async def _read_multipart(request: Request) -> FormData:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, f"The form is larger than {MAX_BODY // (1024 * 1024)} MB: upload smaller images.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"The form is larger than {MAX_BODY // (1024 * 1024)} MB: upload smaller images.")
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise HTTPException(415, "Send the editor form as multipart/form-data (the editor page does).")
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    replay = Request(request.scope, receive)
    try:
        return await replay.form(max_files=4, max_fields=MAX_FIELDS)
    except HTTPException:
        raise
    except Exception as exc:  # python-multipart's parse errors
        raise HTTPException(400, f"The form could not be read: {str(exc)[:120]}") from None


def _text(form: FormData, name: str, limit: int = 1_000_000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _form_from(form: FormData, post_id: int | None) -> editor.EditorForm:
    attachments = [k for k in form.getlist("attachment") if isinstance(k, str) and editor.is_media_key(k)]
    removed = {k for k in form.getlist("remove") if isinstance(k, str)}
    cover = _text(form, "cover", 64)
    return editor.EditorForm(
        post_id=post_id, title=_text(form, "title", 600), slug=_text(form, "slug", 300), body=_text(form, "body"),
        tags=_text(form, "tags", 6000), summary=_text(form, "summary", 6000), language=_text(form, "language", 40),
        date=_text(form, "date", 40), tz=_text(form, "tz", 20), send_as_new=_text(form, "send_as_new") == "1",
        cover="" if cover in removed or not editor.is_media_key(cover) else cover,
        cover_alt=_text(form, "cover_alt", 1500),
        attachments=[k for k in dict.fromkeys(attachments) if k not in removed],
        alts={k: _text(form, f"alt_{k}", 1500) for k in attachments},
    )


async def _page(request: Request, admin: Admin, form: editor.EditorForm, *, error: str | None = None,
                preview: str | None = None, notice: str | None = None, status: int = 200) -> Response:
    services = services_of(request)
    media = await services.run_db(editor.media_of, services, form)
    attached = [(k, media[k]) for k in form.attachments if k in media]
    return renderer_of(request).page(
        "admin/edit.html",
        {"f": form, "csrf": admin.csrf, "nav": "posts", "error": error, "preview": preview, "notice": notice,
         "cover": media.get(form.cover), "attached": attached, "snippet": editor.snippet},
        status_code=status,
    )


async def _upload(request: Request, field: Any, alt: str) -> Any:
    if not isinstance(field, UploadFile) or not field.filename:
        return None
    data = await field.read()
    if not data:
        return None
    return await services_of(request).run_db(editor.store_upload, services_of(request), data, alt)


async def _editor_post(request: Request, post_id: int | None) -> Response:
    admin = await current_admin(request)
    if admin is None:  # refused before up to 12 MB are read
        raise HTTPException(403, "You are not logged in (or your session has ended): log in again.")
    fields = await _read_multipart(request)
    try:
        return await _editor_submit(request, admin, fields, post_id)
    finally:
        await fields.close()  # the spooled upload files


async def _editor_submit(request: Request, admin: Admin, fields: FormData, post_id: int | None) -> Response:
    if not auth.check_csrf(admin.csrf, _text(fields, "csrf", 200)):
        raise HTTPException(403, "The form's security token is missing or wrong: reload the page and submit it again.")
    services = services_of(request)
    form = _form_from(fields, post_id)
    if post_id is not None:  # what the page shows about the stored post comes from the database
        try:
            stored = await services.run_db(editor.load_form, services, post_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        form.slug_fixed, form.public = stored.slug_fixed, stored.public
        form.scheduled_at, form.published_at = stored.scheduled_at, stored.published_at
        if stored.slug_fixed:
            form.slug = stored.slug
    action = _text(fields, "action", 20)
    if action not in editor.ACTIONS:
        return private(await _page(request, admin, form, error="Choose what to do: preview, save, publish or schedule.",
                             status=400))
    try:  # uploads first: they are kept even if the post itself has an error to fix
        cover = await _upload(request, fields.get("cover_file"), form.cover_alt)
        if cover is not None:
            form.cover = cover.key
        image = await _upload(request, fields.get("image_file"), _text(fields, "image_alt", 1500))
        if image is not None and image.key not in form.attachments:
            form.attachments.append(image.key)
            form.alts[image.key] = image.alt
    except editor.ImageError as exc:
        return private(await _page(request, admin, form, error=f"That upload was not stored: {exc.reason}", status=400))
    if action == "preview":
        html = await services.run_db(_render_preview, services, form.body)
        return private(await _page(request, admin, form, preview=html))
    try:
        saved = await services.run_db(editor.save, services, form, action)
    except editor.FormError as exc:
        return private(await _page(request, admin, form, error=str(exc), status=400))
    target = f"/admin/posts/{saved.post_id}/edit?saved={action}"
    if saved.notice:
        target += "&quiet=1"
    return private(RedirectResponse(target, status_code=303))


def _render_preview(services: Services, body: str) -> str:
    with Session(services.engine) as session:
        return editor.with_image_sizes(session, services, _markdown.render(body))


@admin_page
async def post_list(request: Request, admin: Admin) -> Response:
    services = services_of(request)
    page = page_number(request)
    data = await services.run_db(editor.list_posts, services, page)
    if page > data.last_page:
        raise HTTPException(404, f"There is no page {page}; the last page is {data.last_page}.")
    return renderer_of(request).page("admin/posts.html", {"p": data, "csrf": admin.csrf, "nav": "posts"})


@admin_page
async def new_post(request: Request, admin: Admin) -> Response:
    return await _page(request, admin, editor.EditorForm(language=services_of(request).settings.language))


async def new_post_submit(request: Request) -> Response:
    return await _editor_post(request, None)


def _post_id(request: Request) -> int:
    raw = request.path_params["post_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise HTTPException(404, "There is no such post.")
    return int(raw)


@admin_page
async def edit_post(request: Request, admin: Admin) -> Response:
    services = services_of(request)
    try:
        form = await services.run_db(editor.load_form, services, _post_id(request))
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    saved = request.query_params.get("saved", "")
    notice = _SAVED.get(saved)
    if request.query_params.get("quiet") == "1" and form.published_at is not None:
        notice = editor.quiet_notice(form.published_at, editor.SEND_AS_NEW)
    return await _page(request, admin, form, notice=notice)


_SAVED = {"draft": "Saved as a draft.", "publish": "Published.", "schedule": "Scheduled."}


async def edit_post_submit(request: Request) -> Response:
    return await _editor_post(request, _post_id(request))


@admin_page
async def confirm_delete(request: Request, admin: Admin) -> Response:
    services = services_of(request)
    try:
        form = await services.run_db(editor.load_form, services, _post_id(request))
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    return renderer_of(request).page("admin/delete.html", {"f": form, "csrf": admin.csrf, "nav": "posts"})


@admin_action
async def delete_post(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    services = services_of(request)
    try:
        await services.run_db(editor.delete, services, _post_id(request))
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    return RedirectResponse("/admin/posts?deleted=1", status_code=303)
