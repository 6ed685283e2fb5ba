"""The web comment form: the post page's form, the reply page, ``POST /comments``, the author's view.

* ``post_page`` wraps ``pages.post_page``: the cached page holds a placeholder where the form's
  token goes (``comment_form.PLACEHOLDER``), filled with a fresh token per response, so the cached
  bytes stay the same for every reader. The bytes then differ between responses by that token
  alone, so the page's ETag is weak (RFC 9110 §8.8.1); a 304 keeps the reader's copy and its
  older token, which the POST accepts for ``TOKEN_TTL`` and then answers with the form again,
  filled in, with a new token.
* ``reply_page`` (``/comments/{id}/reply``): the comment replied to and a form bound to it (one
  "Reply" link per comment instead of a form per comment, as WordPress's ``?replytocom=``).
* ``submit`` (``POST /comments``): per-IP rate limit (the client address ``ProxyHeaders`` set
  from trusted proxies only), body cap, signed token, fill time, honeypot, field rules; any
  problem answers 4xx with the form filled in and the problem named next to its field, nothing
  stored. Accepted: the commenter's guest actor, the recorder (first status by that actor's
  approval), ``local_comments.publish`` in the same transaction; 303 to the comment's permalink
  with a view key (``comment_form.view_key``) that shows the author a pending comment.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fedblog.blog.interactions import Author, record_web_comment
from fedblog.blog.threads import COMMENT_KINDS
from fedblog.federation import guests, local_comments
from fedblog.services import Services
from fedblog.store.db import database_unavailable, request_write_limits, session_scope
from fedblog.store.tables import Interaction, Post
from fedblog.urls import parse_id
from fedblog.web import comment_form as form
from fedblog.web import pages
from fedblog.web.common import renderer_of, services_of
from fedblog.web.middleware import SlidingWindow
from fedblog.web.negotiation import wants_activitypub

PRIVATE = {"cache-control": "no-store", "referrer-policy": "no-referrer", "x-robots-tag": "noindex"}
MAX_SENT = 10_000  # recent tokens remembered (per process) to answer a double submit with the same comment


class FormState:
    """Per process: the per-IP counter and the tokens recently used."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.limiter = (SlidingWindow(settings.comment_rate_limit, settings.comment_rate_window,
                                      lambda: services.clock.now().timestamp())
                        if settings.comment_rate_limit else None)
        self.sent: OrderedDict[str, tuple[str, int]] = OrderedDict()  # nonce -> (digest, comment id)

    def remember(self, nonce: str, digest: str, comment_id: int) -> None:
        self.sent[nonce] = (digest, comment_id)
        if len(self.sent) > MAX_SENT:
            self.sent.popitem(last=False)


def form_state(request: Request) -> FormState:
    state: FormState | None = getattr(request.app.state, "comment_form", None)
    if state is None:
        state = request.app.state.comment_form = FormState(services_of(request))
    return state


def new_token(services: Services, post_id: int, parent_id: int) -> str:
    return form.sign_token(services.settings.secret_key, post_id, parent_id, int(services.clock.now().timestamp()))


def token_filler(services: Services) -> Callable[[bytes], bytes]:
    """A cached post page with fresh form tokens in it: what ``post_page`` does per response, for the
    cached page at the edge (web/fastpage.py) too."""
    return lambda body: form.fill_placeholders(body, lambda post, parent: new_token(services, post, parent))


def permalink(services: Services, comment_id: int) -> str:
    return f"{services.urls.comment(comment_id)}?key={form.view_key(services.settings.secret_key, comment_id)}"


# -- pages ----------------------------------------------------------------------------------------
async def post_page(request: Request) -> Response:
    """The post page with a fresh form token in it (see the module's docstring)."""
    response = await pages.post_page(request)
    if wants_activitypub(request):
        return response
    etag = response.headers.get("etag")
    if etag and not etag.startswith("W/"):
        response.headers["etag"] = "W/" + etag
    if response.status_code != 200:
        return response
    services = services_of(request)
    body = token_filler(services)(bytes(response.body))
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    return Response(body, status_code=200, headers=headers)


@dataclass(frozen=True)
class Target:
    post: Any  # the live post's row
    parent: Any | None  # the comment answered, if it is still shown
    parent_gone: bool  # a comment was named but is not shown (any more)


def _check_target(session: Session, post_id: int, parent_id: int) -> Target:
    post = session.get(Post, post_id)
    if post is None or post.draft:
        raise HTTPException(404, "There is no such post to comment on.")
    if post.deleted_at is not None:
        raise HTTPException(410, "This post was deleted by its author; it takes no more comments.")
    parent = session.get(Interaction, parent_id) if parent_id else None
    if parent is not None and (parent.post_id != post_id or parent.status != "visible"
                               or parent.kind not in COMMENT_KINDS):
        parent = None
    return Target(post, parent, bool(parent_id) and parent is None)


def _target(services: Services, post_id: int, parent_id: int) -> Target:
    with Session(services.engine) as session:
        with request_write_limits(session.connection(), services.settings.db_write_timeout, reads_only=True):
            target = _check_target(session, post_id, parent_id)
        session.expunge_all()
    return target


def _reply_target(services: Services, raw: str) -> Target:
    comment_id = parse_id(raw)
    with Session(services.engine) as session:
        item = session.get(Interaction, comment_id) if comment_id is not None else None
        if item is None or item.id is None or item.status != "visible" or item.kind not in COMMENT_KINDS:
            raise HTTPException(404, "There is no comment with this id to reply to.")
        post_id = item.post_id
    return _target(services, post_id, item.id)


def _form_page(request: Request, target: Target, sub: form.Submission, *, status: int = 200,
               message: str | None = None, headers: dict[str, str] | None = None) -> Response:
    services = services_of(request)
    parent_id = target.parent.id if target.parent is not None else 0
    context = {"post": target.post, "parent": target.parent, "message": message, "errors": sub.errors,
               "values": sub.values(), "token": new_token(services, target.post.id, parent_id)}
    return renderer_of(request).page("comment_form_page.html", context, status_code=status,
                                     headers={"Cache-Control": "no-store", **(headers or {})})


async def reply_page(request: Request) -> Response:
    """``/comments/{id}/reply``: the comment, and a form that answers it."""
    services = services_of(request)
    target = await services.run_db(_reply_target, services, request.path_params["comment_id"])
    default = form.Submission(target.post.id, 0, federate=services.site.current().comment_consent_default)
    return _form_page(request, target, default)


# -- POST /comments -------------------------------------------------------------------------------
async def _read_form(request: Request) -> dict[str, str]:
    declared = request.headers.get("content-length", "")
    too_large = HTTPException(413, f"This comment form is larger than {form.MAX_BODY // 1024} KiB; a comment "
                                   f"may have at most {form.MAX_TEXT:,} characters.")
    if declared.isascii() and declared.isdigit() and int(declared) > form.MAX_BODY:
        raise too_large
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Send the comment form as application/x-www-form-urlencoded (as browsers do).")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > form.MAX_BODY:
            raise too_large
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=form.MAX_FIELDS,
                              errors="strict"))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The comment form could not be read: it is not UTF-8 urlencoded text.") from None


def _whole(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return 0 if raw in ("", "0") else parse_id(raw)


def token_problem(services: Services, raw: str, post_id: int, parent_id: int) -> tuple[int, str] | None:
    """Why the form's token is refused (status, sentence), or None when it is good."""
    again = "Your comment is still here: check it and send it again."
    if not raw:
        return 403, f"The form's security token is missing (was the form sent from this blog's page?). {again}"
    token = form.read_token(services.settings.secret_key, raw)
    if token is None or (token.post_id, token.parent_id) != (post_id, parent_id):
        return 403, f"The form's security token is not valid for this post. {again}"
    age = int(services.clock.now().timestamp()) - token.issued
    if age < -300:
        return 403, f"The form's security token is not valid for this post. {again}"
    if age < services.settings.comment_min_seconds:
        return 403, (f"The form was sent {max(age, 0)} s after the page was served: too fast for a person, so it "
                     f"looked automated. {again}")
    if age > form.TOKEN_TTL:
        return 403, f"The form had expired (the page was served more than {form.TOKEN_TTL // 3600} hours ago). {again}"
    return None


def _store(services: Services, sub: form.Submission, content_html: str, hold: bool) -> int | Target:
    """Store the comment (its post and parent checked in the same transaction): its id, or the
    Target to give the form back with when the comment it answers is no longer shown."""
    now = services.clock.now()
    for attempt in (1, 2):  # two first comments of one new person at once: the second finds the guest
        try:
            with session_scope(services.engine) as session, \
                    request_write_limits(session.connection(), services.settings.db_write_timeout):
                target = _check_target(session, sub.post_id, sub.parent_id)
                if target.parent_gone:
                    session.expunge_all()
                    return target
                actor = guests.guest_actor(session, services, name=sub.name, email=sub.email or None,
                                           website=sub.website or None, now=now)
                item = record_web_comment(
                    session, services.site.current().moderation, author=Author(sub.name, url=sub.website or None,
                                                                               actor_id=actor.id),
                    post_id=sub.post_id, parent_id=sub.parent_id or None, content_html=content_html,
                    published_at=now, email=sub.email or None, federated=sub.federate, hold=hold,
                    # only an email (never shown) ties a comment to an approved author; a name and a
                    # website are public (docs/comments.md, "Moderation")
                    moderated_as=actor.ap_id if sub.email else None)
                local_comments.publish(session, services, item)
                assert item.id is not None
                return item.id
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _digest(sub: form.Submission) -> str:
    return hashlib.sha256("\x1f".join([sub.name, sub.email, sub.website, sub.text]).encode()).hexdigest()


async def submit(request: Request) -> Response:
    services = services_of(request)
    state = form_state(request)
    client = request.client
    wait = state.limiter.hit(client.host if client else "unknown") if state.limiter is not None else None
    fields = await _read_form(request)
    post_id, parent_id = _whole(fields.get("post")), _whole(fields.get("parent"))
    if not post_id or parent_id is None:
        raise HTTPException(400, "This form does not say which post it comments on: send it from the post's page.")
    sub = form.validate(fields, post_id, parent_id)
    if wait is not None:
        target = await services.run_db(_target, services, post_id, parent_id)
        return _form_page(request, target, sub, status=429, headers={"Retry-After": str(wait)},
                          message=f"You have sent many comments in a short time. Please wait {wait} s, then send "
                                  "this one again; it is still here.")
    problem = token_problem(services, fields.get("token", ""), post_id, parent_id)
    if problem is None and fields.get(form.HONEYPOT):
        problem = 400, ("A field meant to stay empty (it is hidden from view) was filled in, as spam robots do. If you "
                        "are a person, please send the form again.")
    if problem is None and sub.errors:
        problem = 400, "Please fix what is marked below; everything you typed is still here."
    if problem is not None:  # the database is read only to give the form back
        target = await services.run_db(_target, services, post_id, parent_id)
        if not target.parent_gone:
            return _form_page(request, target, sub, status=problem[0], message=problem[1])
        return _parent_gone(request, target, sub)
    nonce = fields["token"].split(".")[3]
    digest = _digest(sub)
    if (seen := state.sent.get(nonce)) is not None and seen[0] == digest:  # sent twice: the same comment
        return RedirectResponse(permalink(services, seen[1]), status_code=303)
    content_html, links = form.text_to_html(sub.text)
    try:  # one trip to the database: the post and parent are checked in the storing transaction
        stored = await services.run_db(_store, services, sub, content_html, links > form.MAX_LINKS)
    except (DBAPIError, PoolTimeout) as exc:  # a locked or unreachable database: nothing stored, say so
        if not database_unavailable(exc):
            raise
        return await _busy(request, sub)
    if isinstance(stored, Target):
        return _parent_gone(request, stored, sub)
    state.remember(nonce, digest, stored)
    return RedirectResponse(permalink(services, stored), status_code=303)


async def _busy(request: Request, sub: form.Submission) -> Response:
    services = services_of(request)
    busy = "The blog could not save comments just now. Please send it again in a moment"
    try:
        target = await services.run_db(_target, services, sub.post_id, sub.parent_id)
    except (DBAPIError, PoolTimeout) as exc:
        if not database_unavailable(exc):
            raise
        raise HTTPException(503, busy + ".", headers={"Retry-After": "5"}) from None
    return _form_page(request, target, sub, status=503, headers={"Retry-After": "5"},
                      message=busy + "; your comment is still here.")


def _parent_gone(request: Request, target: Target, sub: form.Submission) -> Response:
    sub.parent_id = 0
    return _form_page(request, target, sub, status=409, message=(
        "The comment you replied to is no longer shown. Send this form again to comment on the post itself."))


# -- the author's view ----------------------------------------------------------------------------
def _own_comment(services: Services, comment_id: int) -> tuple[Any, Any] | None:
    with Session(services.engine) as session:
        item = session.get(Interaction, comment_id)
        post = session.get(Post, item.post_id) if item is not None else None
        session.expunge_all()
    if item is None or post is None or post.draft:
        return None
    return item, post


async def comment_permalink(request: Request) -> Response:
    """``/comments/{id}``; with its author's ``?key=``, their comment even while it waits for the admin."""
    key = request.query_params.get("key", "")
    raw = request.path_params["comment_id"]
    services = services_of(request)
    comment_id = parse_id(raw)
    if not key or wants_activitypub(request) or comment_id is None:
        return await pages.comment_permalink(request)
    if not form.check_view_key(services.settings.secret_key, comment_id, key):
        raise HTTPException(404, "There is no comment with this id (or the link to it is incomplete).")
    found = await services.run_db(_own_comment, services, comment_id)
    if found is None:
        raise HTTPException(404, "There is no comment with this id.")
    item, post = found
    if item.status == "visible" and post.deleted_at is None:
        return RedirectResponse(services.urls.comment_anchor(post.slug, item.id), status_code=303)
    if item.status == "deleted" or post.deleted_at is not None:
        raise HTTPException(410, "This comment was deleted.")
    return renderer_of(request).page("comment_mine.html", {"post": post, "item": item}, headers=PRIVATE)
