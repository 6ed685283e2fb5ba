"""The post editor's use cases: the form as data, checks, uploads, save / publish / schedule / delete.

Everything goes through ``fedblog.federation.publishing`` (the CLI's path): the same Create /
Update / Delete in the same transaction, and the same 6-hour quiet rule (docs/publishing.md).
A scheduled post is a draft with ``scheduled_at``; ``publish_scheduled`` (the scheduler's call)
publishes it through the same path. Rules: docs/editor.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from html import escape
from pathlib import Path

from sqlmodel import Session, col, func, select

from fedblog.blog.images import WIDTHS, ImageError, store_image
from fedblog.blog.posts import PostDraft, slugify, tag_name
from fedblog.blog.wp_import import MEDIA_FOLDER
from fedblog.clock import utc
from fedblog.federation.publishing import publish, quiet_notice, unpublish
from fedblog.services import Services
from fedblog.store import media as media_store
from fedblog.store import posts as post_store
from fedblog.store.tables import Media, Post

PAGE_SIZE = 25
MAX_TEXT = 500_000  # characters of Markdown (a long novella); the multipart parser caps a field at 1 MB
ACTIONS = ("preview", "draft", "publish", "schedule")
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
# an <img> whose src is one of our uploads (relative, or absolute on any host: the key decides)
_IMG_RE = re.compile(r'<img src="(?:https?://[^/"]+)?/media/uploads/([0-9a-f]{64})/full\.(?:jpg|png|webp)"')
SIZES = "(max-width: 44rem) 100vw, 44rem"  # the text column's width (style.css)
SEND_AS_NEW = "ticking “send as new”"


class FormError(ValueError):
    """What is wrong with the form, in words for the author."""


@dataclass
class EditorForm:
    """The editor form as typed: strings, so that it can always be shown again unchanged."""

    post_id: int | None = None
    title: str = ""
    slug: str = ""
    body: str = ""
    tags: str = ""
    summary: str = ""
    language: str = ""
    date: str = ""  # datetime-local: YYYY-MM-DDTHH:MM
    tz: str = "+00:00"  # the offset the date is in
    send_as_new: bool = False
    cover: str = ""  # media key
    cover_alt: str = ""
    attachments: list[str] = field(default_factory=list)  # media keys, in order
    alts: dict[str, str] = field(default_factory=dict)  # key -> alt text
    # what the page shows about the stored post (not typed)
    slug_fixed: bool = False
    public: bool = False
    scheduled_at: datetime | None = None
    published_at: datetime | None = None


@dataclass(frozen=True)
class Saved:
    post_id: int
    slug: str
    sent: str | None
    notice: str | None


@dataclass(frozen=True)
class PostList:
    rows: list[Post]
    page: int
    last_page: int
    total: int


def media_root(services: Services) -> Path:
    return services.settings.data_dir / MEDIA_FOLDER


# -- reading ------------------------------------------------------------------------------------


def list_posts(services: Services, page: int) -> PostList:
    """Every post, newest first, deleted ones too: two queries, whatever the page."""
    with Session(services.engine) as session:
        total = session.exec(select(func.count()).select_from(Post)).one()
        rows = session.exec(
            select(Post).order_by(col(Post.id).desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
        ).all()
        for row in rows:
            session.expunge(row)
    return PostList(list(rows), page, max(1, -(-total // PAGE_SIZE)), total)


def load_form(services: Services, post_id: int) -> EditorForm:
    with Session(services.engine) as session:
        post = session.get(Post, post_id)
        if post is None or post.deleted_at is not None:
            raise LookupError("There is no such post (or it was deleted).")
        tags = post_store.tags_for_posts(session, [post_id]).get(post_id, [])
        media = media_store.media_for_posts(session, [post_id]).get(post_id, [])
    form = EditorForm(
        post_id=post_id, title=post.title, slug=post.slug, body=post.content_md,
        tags=", ".join(t.label for t in tags), summary=post.summary or "", language=post.language,
        slug_fixed=not post.draft, public=not post.draft, scheduled_at=post.scheduled_at,
        published_at=post.published_at,
    )
    when = post.scheduled_at if post.scheduled_at is not None else (post.published_at if not post.draft else None)
    if when is not None:
        form.date = utc(when).strftime("%Y-%m-%dT%H:%M")
    for role, m in media:
        form.alts[m.key] = m.alt
        if role == "cover":
            form.cover, form.cover_alt = m.key, m.alt
        else:
            form.attachments.append(m.key)
    return form


def media_of(services: Services, form: EditorForm) -> dict[str, Media]:
    keys = [k for k in [form.cover, *form.attachments] if k]
    with Session(services.engine) as session:
        found = media_store.media_by_keys(session, keys)
        for m in found.values():
            session.expunge(m)
    return found


# -- uploads ------------------------------------------------------------------------------------


def store_upload(services: Services, data: bytes, alt: str) -> Media:
    """Check and store an uploaded image and record it; ImageError (nothing stored) if it is not one."""
    stored = store_image(data, media_root(services))
    with Session(services.engine) as session:
        row = media_store.add_media(
            session, key=stored.key, path=stored.path, media_type=stored.media_type, width=stored.width,
            height=stored.height, alt=alt[:1500], now=services.clock.now(),
        )
        session.commit()
        session.refresh(row)
        session.expunge(row)
    return row


def srcset(media: Media, media_url: Callable[[str], str]) -> str:
    """The ``srcset`` of an upload: its variants (fedblog.blog.images.WIDTHS below its width), then itself."""
    base = media.path.rsplit("/", 1)[0]
    ext = media.path.rsplit(".", 1)[-1]
    items = [f"{media_url(f'{base}/{w}.{ext}')} {w}w" for w in WIDTHS if w < media.width]
    items.append(f"{media_url(media.path)} {media.width}w")
    return ", ".join(items)


def snippet(media: Media) -> str:
    """The Markdown to paste for an inline image."""
    alt = media.alt.replace("[", "").replace("]", "")
    return f"![{alt}](/media/{media.path})"


def with_image_sizes(session: Session, services: Services, html: str) -> str:
    """Our uploads in the text get absolute URLs (the text is federated), width, height and srcset."""
    keys = list(dict.fromkeys(_IMG_RE.findall(html)))
    found = media_store.media_by_keys(session, keys)

    def fix(match: re.Match[str]) -> str:
        m = found.get(match.group(1))
        if m is None:
            return match.group(0)
        url = services.urls.media(m.path)
        return (f'<img width="{m.width}" height="{m.height}" srcset="{escape(srcset(m, services.urls.media))}" '
                f'sizes="{SIZES}" loading="lazy" src="{escape(url)}"')

    return _IMG_RE.sub(fix, html)


# -- checking the form --------------------------------------------------------------------------


def parse_when(date: str, tz: str) -> datetime | None:
    """A datetime-local value (``2026-12-02T09:30``) in the offset ``tz`` (``+02:00``), as UTC."""
    date, tz = date.strip(), (tz.strip() or "+00:00")
    if not date:
        return None
    try:
        naive = datetime.fromisoformat(date)
    except ValueError:
        raise FormError(f"The date {date[:40]!r} is not a date and time like 2026-12-02T09:30.") from None
    if naive.tzinfo is not None:
        raise FormError("Give the date without an offset, and the offset in its own field.")
    if tz.upper() in ("Z", "UTC"):
        tz = "+00:00"
    match = _OFFSET_RE.match(tz)
    if not match or int(match.group(2)) > 14 or int(match.group(3)) > 59:
        raise FormError(f"The time zone offset {tz[:20]!r} is not like +02:00 or -05:00 (between -14:00 and +14:00).")
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    offset = timedelta(minutes=minutes if match.group(1) == "+" else -minutes)
    return naive.replace(tzinfo=timezone(offset)).astimezone(UTC)


def check(services: Services, form: EditorForm, action: str) -> tuple[PostDraft, datetime | None]:
    """The PostDraft to save and the time to publish at (schedule), or FormError."""
    title = form.title.strip()
    if not title:
        raise FormError("The post needs a title.")
    if len(title) > 500:
        raise FormError("The title is longer than 500 characters.")
    slug = form.slug.strip() or slugify(title)
    if not slug or not _SLUG_RE.match(slug) or len(slug) > 200:
        raise FormError(f"The slug {slug[:80]!r} is not valid: use lowercase letters, digits and single dashes.")
    if not form.body.strip():
        raise FormError("The post has no text: write it in Markdown.")
    if len(form.body) > MAX_TEXT:
        raise FormError(f"The text is longer than {MAX_TEXT:,} characters: split it into two posts.")
    tags = tuple(dict.fromkeys(t.strip() for t in form.tags.split(",") if t.strip()))
    if len(tags) > 50 or any(len(t) > 100 or not tag_name(t) for t in tags):
        raise FormError("Tags: at most 50, each under 100 characters, separated by commas.")
    language = form.language.strip() or services.settings.language
    if not _LANG_RE.match(language) or len(language) > 35:
        raise FormError(f"The language {language[:40]!r} is not a language tag like en or pt-BR.")
    if len(form.summary) > 5000:
        raise FormError("The summary is longer than 5000 characters.")
    when = parse_when(form.date, form.tz)
    now = services.clock.now()
    if action == "schedule":
        if form.public:
            raise FormError("This post is already published: it cannot be scheduled.")
        if when is None or when <= now:
            raise FormError("To schedule, give a date and time in the future.")
    elif action == "publish" and when is not None and when > now + timedelta(minutes=1):
        raise FormError("That date is in the future: use “Schedule” to publish then, or clear the date.")
    elif action == "draft" and form.public:
        raise FormError("This post is published: use “Update”, or delete it to take it down.")
    cover = services.urls.media(media_of(services, form)[form.cover].path) if form.cover else None
    draft = PostDraft(
        title=title, slug=slug, body_markdown=form.body, published_at=when if action != "schedule" else None,
        tags=tags, summary=form.summary.strip() or None, draft=action != "publish", image_url=cover,
        language=language,
    )
    return draft, when if action == "schedule" else None


# -- saving -------------------------------------------------------------------------------------


def save(services: Services, form: EditorForm, action: str) -> Saved:
    """Save the post as a draft, publish it, or schedule it; raises FormError and changes nothing."""
    draft, scheduled = check(services, form, action)
    with Session(services.engine) as session:
        current = session.get(Post, form.post_id) if form.post_id is not None else None
        if form.post_id is not None and (current is None or current.deleted_at is not None):
            raise FormError("This post no longer exists (it was deleted).")
        other = post_store.get_post_by_slug(session, draft.slug)
        if other is not None and other.deleted_at is None and (current is None or other.id != current.id):
            raise FormError(f"The slug {draft.slug!r} is taken by another post: choose another.")
        if current is not None:
            if not current.draft:  # published: the slug is part of the post's id, it stays
                draft = replace(draft, slug=current.slug)
            elif current.slug != draft.slug:  # a draft renamed: move the row, not a new post
                current.slug = draft.slug
                session.add(current)
                session.flush()
            draft = replace(draft, author_name=current.author_name, author_url=current.author_url)
            shown = utc(current.published_at).replace(second=0, microsecond=0)  # the form shows minutes
            if not current.draft and draft.published_at == shown:
                draft = replace(draft, published_at=None)  # unchanged: keep the exact time
        found = media_store.media_by_keys(session, [k for k in [form.cover, *form.attachments] if k])
        for key, alt in form.alts.items():
            if key in found:
                media_store.set_alt(session, found[key], alt.strip()[:1500])
        if form.cover in found:
            media_store.set_alt(session, found[form.cover], form.cover_alt.strip()[:1500])

        def finish(session: Session, post: Post) -> None:
            assert post.id is not None
            post.content_html = with_image_sizes(session, services, post.content_html)
            post.scheduled_at = scheduled
            session.add(post)
            media_store.set_post_media(
                session, post.id, found.get(form.cover), [found[k] for k in form.attachments if k in found])

        result = publish(session, services, draft, send_as_new=form.send_as_new, after_save=finish)
        post = result.post
        assert post.id is not None
        session.commit()
        notice = quiet_notice(post.published_at, SEND_AS_NEW) if result.quiet else None
        return Saved(post.id, post.slug, result.sent, notice)


def publish_scheduled(services: Services, post_id: int, due: datetime) -> str | None:
    """Publish one due scheduled draft, once: the conditional UPDATE lets only one process claim it.
    Returns the activity sent ("Create"), or None if another process took it (or it went away)."""
    with Session(services.engine) as session:
        if not media_store.claim_scheduled(session, post_id, due):
            session.rollback()
            return None
        post = session.get(Post, post_id)
        if post is None or post.deleted_at is not None or not post.draft:
            session.commit()
            return None
        tags = post_store.tags_for_posts(session, [post_id]).get(post_id, [])
        draft = PostDraft(
            title=post.title, slug=post.slug, body_markdown=post.content_md, tags=tuple(t.label for t in tags),
            summary=post.summary, draft=False, author_name=post.author_name, author_url=post.author_url,
            image_url=post.image_url, language=post.language,
        )

        def finish(session: Session, saved: Post) -> None:
            saved.content_html = with_image_sizes(session, services, saved.content_html)
            session.add(saved)

        result = publish(session, services, draft, after_save=finish)
        session.commit()
        return result.sent


def delete(services: Services, post_id: int) -> str:
    """Delete the post (410 from now on) and send Delete if it was public; returns its slug."""
    with Session(services.engine) as session:
        post = session.get(Post, post_id)
        if post is None or post.deleted_at is not None:
            raise LookupError("There is no such post (or it was already deleted).")
        slug = post.slug
        unpublish(session, services, slug)
        session.commit()
    return slug


def is_media_key(value: str) -> bool:
    return bool(_KEY_RE.match(value))


__all__ = ["ACTIONS", "EditorForm", "FormError", "ImageError", "Saved", "delete", "is_media_key", "list_posts",
           "load_form", "publish_scheduled", "quiet_notice", "save", "snippet", "store_upload"]
