"""/admin/moderation: the queue of pending items, bulk actions, author rules, block lists."""

from __future__ import annotations

import os
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.activitypub.origin import host_of
from fedblog.admin import queue
from fedblog.urls import parse_id
from fedblog.web.admin.guard import Admin, admin_action, admin_page, private
from fedblog.web.admin.uploads import list_form, multipart_upload
from fedblog.web.common import page_number, renderer_of, services_of

MAX_CSV_BYTES = 4 * 2**20
DONE = {  # what the page says after an action: fixed sentences, only numbers and a target filled in
    "approve": "{n} item(s) approved; their authors' next replies are shown at once "
               "(a web commenter's only with the same email).",
    "spam": "{n} item(s) marked as spam; their fediverse authors are blocked.",
    "delete": "{n} item(s) deleted.",
    "trusted": "{target} is always approved now; {n} of their waiting item(s) shown.",
    "blocked": "{target} is blocked; {n} of their item(s) hidden.",
    "unruled": "Rule removed: {target}.",
    "imported": "Domain blocks imported: {added} added, {skipped} skipped (already blocked), {invalid} invalid.",
}


def _back(**params: object) -> Response:
    return RedirectResponse("/admin/moderation?" + urlencode({k: v for k, v in params.items()}), status_code=303)


def _message(request: Request) -> str | None:
    q = request.query_params
    template = DONE.get(q.get("done", ""))
    if template is None:
        return None
    nums = {k: parse_id(q.get(k, "")) or 0 for k in ("n", "added", "skipped", "invalid")}
    return template.format(target=q.get("target", "")[:300], **nums)


@admin_page
async def page(request: Request, admin: Admin) -> Response:
    services = services_of(request)
    number = page_number(request)
    data = await services.run_db(queue.load_queue, services, number)
    if number > data.last_page:
        raise HTTPException(404, f"There is no page {number}; the last page is {data.last_page}.")
    bad = request.query_params.get("invalid_examples", "")[:500]
    return renderer_of(request).page("admin/moderation.html", {
        "q": data, "csrf": admin.csrf, "nav": "moderation", "message": _message(request),
        "invalid_examples": bad,
    })


async def bulk(request: Request) -> Response:
    """One POST for many items: ``action`` and one ``id`` per ticked checkbox."""
    _admin, pairs = await list_form(request)
    action = next((v for k, v in pairs if k == "action"), "")
    if action not in queue.ACTIONS:
        raise HTTPException(400, f"Choose what to do: {', '.join(queue.ACTIONS)}.")
    raw_ids = [v for k, v in pairs if k == "id"]
    if not raw_ids:
        raise HTTPException(400, "Tick at least one item first.")
    if not all((v.isascii() and v.isdigit()) and len(v) < 19 for v in raw_ids):
        raise HTTPException(400, "An item id is not a number.")
    services = services_of(request)
    n = await services.run_db(queue.act, services, action, [int(v) for v in raw_ids])
    return private(_back(done=action, n=n))


def _item_id(form: dict[str, str]) -> int:
    raw = form.get("id", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise HTTPException(400, "Say which item: its id is missing or not a number.")
    return int(raw)


@admin_action
async def author(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    """Rules about one item's author: ``what`` = approve | block-actor | block-domain."""
    services = services_of(request)
    what, item_id = form.get("what", ""), _item_id(form)
    try:
        if what == "approve":
            target, n = await services.run_db(queue.always_approve, services, item_id)
            return _back(done="trusted", target=target, n=n)
        if what in ("block-actor", "block-domain"):
            target, n = await services.run_db(queue.block_author, services, item_id, what.removeprefix("block-"))
            return _back(done="blocked", target=target, n=n)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    raise HTTPException(400, "Choose approve, block-actor or block-domain.")


@admin_action
async def add_block(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    target = form.get("target", "").strip()
    if not target or len(target) > 2000 or any(c.isspace() for c in target):
        raise HTTPException(400, "Give one actor URL (https://…) or one domain (example.social).")
    is_url = target.startswith(("https://", "http://"))
    if queue.valid_domain(host_of(target) if is_url else target) is None:
        raise HTTPException(400, f"{target[:100]!r} is neither an actor URL nor a domain.")
    services = services_of(request)
    rule_target, n = await services.run_db(queue.block_target, services, target)
    return _back(done="blocked", target=rule_target, n=n)


@admin_action
async def remove_rule(request: Request, admin: Admin, form: dict[str, str]) -> Response:
    raw = form.get("rule", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise HTTPException(400, "Say which rule: its id is missing or not a number.")
    services = services_of(request)
    removed = await services.run_db(queue.remove_rule, services, int(raw))
    if removed is None:
        raise HTTPException(404, "There is no such rule (it may have been removed already).")
    return _back(done="unruled", target=removed)


async def import_blocks(request: Request) -> Response:
    """A Mastodon domain-block export (CSV with header, or one domain per line), uploaded."""
    services = services_of(request)
    _admin, up = await multipart_upload(request, services.settings.data_dir / "uploads-tmp", MAX_CSV_BYTES)
    if up.path is None:
        raise HTTPException(400, "Choose the file to import (Mastodon: Moderation → Federation → Export).")
    try:
        data = up.path.read_bytes()
    finally:
        os.unlink(up.path)
    if not data.strip():
        raise HTTPException(400, "The file is empty.")
    try:
        report = await services.run_db(queue.import_domain_blocks, services, data)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return private(_back(done="imported", added=report.added, skipped=report.skipped, invalid=report.invalid,
                         invalid_examples=" | ".join(report.examples or [])))
