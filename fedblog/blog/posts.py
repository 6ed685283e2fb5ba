"""Writing posts: Markdown files with front matter in, Post rows out.

``parse_post_source`` is pure and raises ``PostSourceError`` with a message that says what to fix.
``save_post`` and ``delete_post`` change the database inside the caller's transaction; the
federation layer adds its activity and deliveries to the same transaction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import frontmatter
import yaml
from sqlmodel import Session

from fedblog.blog.markup import MarkdownRenderer, html_to_text
from fedblog.clock import utc
from fedblog.store import posts as post_store
from fedblog.store.tables import Post
from fedblog.urls import post_path, post_path_version

KNOWN_KEYS = {"title", "slug", "date", "tags", "summary", "draft", "author", "author_url", "image", "language"}
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_renderer = MarkdownRenderer()


class PostSourceError(ValueError):
    """The post file is not usable; the message says what to fix."""


@dataclass(frozen=True)
class PostDraft:
    title: str
    slug: str
    body_markdown: str
    published_at: datetime | None = None
    date_only: bool = False  # ``date: 2026-12-02`` without a time: published_at is that midnight, UTC
    tags: tuple[str, ...] = ()
    summary: str | None = None
    draft: bool = False
    author_name: str | None = None
    author_url: str | None = None
    image_url: str | None = None
    language: str | None = None
    warnings: tuple[str, ...] = field(default=())


def slugify(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    return text[:80].strip("-")


def tag_name(label: str) -> str:
    """The URL form of a tag: ``Human rights`` -> ``human-rights``."""
    return slugify(label) or label.strip().lower()


def _as_datetime(value: object, where: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PostSourceError(
                f"{where}: date {value!r} is not a date: use YYYY-MM-DD or 2012-03-08T09:12:00Z"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise PostSourceError(f"{where}: date must be a date like 2012-03-08, not {type(value).__name__}")


def parse_post_source(text: str, *, where: str = "post") -> PostDraft:
    """Parse Markdown with YAML front matter. Raises PostSourceError with a one-line fix."""
    try:
        doc = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise PostSourceError(
            f"{where}: the front matter is not valid YAML{line}: fix the block between the --- lines"
        ) from None
    meta = doc.metadata
    if not isinstance(meta, dict):
        raise PostSourceError(f"{where}: the front matter must be a mapping of key: value lines")
    unknown = sorted(set(meta) - KNOWN_KEYS)
    if unknown:
        raise PostSourceError(
            f"{where}: unknown front matter key(s) {', '.join(unknown)}: use only {', '.join(sorted(KNOWN_KEYS))}"
        )
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        raise PostSourceError(f"{where}: front matter needs a title, e.g. 'title: My first post'")
    if len(title) > 500:
        raise PostSourceError(f"{where}: the title is longer than 500 characters")
    slug = meta.get("slug") or slugify(title)
    if not isinstance(slug, str) or not _SLUG_RE.match(slug) or len(slug) > 200:
        raise PostSourceError(
            f"{where}: slug {slug!r} is not valid: use lowercase letters, digits and single dashes"
        )
    tags_raw = meta.get("tags", [])
    if isinstance(tags_raw, str):
        tags_raw = [t for t in (s.strip() for s in tags_raw.split(",")) if t]
    if not isinstance(tags_raw, list) or not all(isinstance(t, str | int) for t in tags_raw):
        raise PostSourceError(f"{where}: tags must be a list of words, e.g. 'tags: [travel, korea]'")
    tags = tuple(dict.fromkeys(str(t).strip() for t in tags_raw if str(t).strip()))
    if len(tags) > 50:
        raise PostSourceError(f"{where}: at most 50 tags")
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        raise PostSourceError(f"{where}: draft must be true or false")
    summary = meta.get("summary")
    if summary is not None and not isinstance(summary, str):
        raise PostSourceError(f"{where}: summary must be text")
    body = doc.content
    if not body.strip():
        raise PostSourceError(f"{where}: the post has no body: write Markdown after the front matter")
    raw_date = meta.get("date")
    published = _as_datetime(raw_date, where) if raw_date is not None else None
    date_only = (isinstance(raw_date, date) and not isinstance(raw_date, datetime)) or (
        isinstance(raw_date, str) and len(raw_date.strip()) == len("2026-12-02")
    )
    return PostDraft(
        title=title.strip(),
        slug=slug,
        body_markdown=body,
        published_at=published,
        date_only=date_only,
        tags=tags,
        summary=summary.strip() if summary else None,
        draft=draft,
        author_name=str(meta["author"]) if meta.get("author") else None,
        author_url=str(meta["author_url"]) if meta.get("author_url") else None,
        image_url=str(meta["image"]) if meta.get("image") else None,
        language=str(meta["language"]) if meta.get("language") else None,
    )


@dataclass(frozen=True)
class SaveResult:
    post: Post
    created: bool
    was_public: bool  # it was visible (published, not draft) before this save


# A date without a time names a calendar day, and the author's day may not be UTC's: the day is
# "today" while it is that date anywhere on Earth (time zones run from UTC-12 to UTC+14).
_EARLIEST_ZONE, _LATEST_ZONE = timedelta(hours=14), timedelta(hours=12)


def is_today_somewhere(day: date, now: datetime) -> bool:
    midnight = datetime.combine(day, time(0, 0), tzinfo=UTC)
    return midnight - _EARLIEST_ZONE <= utc(now) < midnight + timedelta(days=1) + _LATEST_ZONE


def resolve_published(
    draft: PostDraft, *, now: datetime, previous: datetime | None, was_public: bool, published_now: bool = False
) -> datetime:
    """When the post counts as published, by these rules (docs/publishing.md):

    - a post already public keeps its time, unless the front matter names another one;
    - a post becoming public (new, or a draft published now) is published now, unless ``date``
      names another moment; ``published_now`` (``--send-as-new``) ignores ``date`` here;
    - a date without a time that is today means "now" (for a post already public: its time);
    - a draft's time is the time it was last saved: it is set again when the draft is published.
    """
    if published_now and not was_public:
        return now
    given = draft.published_at
    if given is None:
        return utc(previous) if was_public and previous is not None else now
    if not draft.date_only:
        return given
    day = given.date()
    if was_public and previous is not None and utc(previous).date() == day:
        return utc(previous)  # an edit of a post dated today keeps the moment it went out
    return now if is_today_somewhere(day, now) else given


def save_post(
    session: Session, draft: PostDraft, *, now: datetime, default_author: str, default_language: str,
    published_now: bool = False,
) -> SaveResult:
    """Insert or update the post with ``draft.slug``; tags included. Caller commits.

    Saving over a deleted post makes a new post with a new ActivityPub id (``/posts/slug/2``...):
    the deleted one keeps its row, under a slug no author can type, so its id answers 410 and
    its comments and reactions stay with it.
    """
    html = _renderer.render(draft.body_markdown)
    post = post_store.get_post_by_slug(session, draft.slug)
    ap_path = post_path(draft.slug)
    if post is not None and post.deleted_at is not None:
        ap_path = post_path(draft.slug, post_path_version(post.ap_path) + 1)
        post.slug = f"~{post.id}"  # slugs are [a-z0-9-]: this one never meets an author's
        session.add(post)
        session.flush()
        post = None
    created = post is None
    was_public = post is not None and not post.draft
    previous = post.published_at if post is not None else None
    if post is None:
        post = Post(
            slug=draft.slug, ap_path=ap_path, title=draft.title, content_md="", content_html="", author_name="",
            published_at=now, updated_at=now,
        )
    post.title = draft.title
    post.content_md = draft.body_markdown
    post.content_format = "markdown"  # an imported post (html) edited from a Markdown file
    post.content_html = html
    post.summary = draft.summary or None
    post.author_name = draft.author_name or default_author
    post.author_url = draft.author_url
    post.image_url = draft.image_url
    post.language = draft.language or default_language
    post.draft = draft.draft
    post.published_at = resolve_published(
        draft, now=now, previous=previous, was_public=was_public, published_now=published_now
    )
    post.updated_at = now if was_public else post.published_at
    session.add(post)
    session.flush()
    tags = [post_store.get_or_create_tag(session, tag_name(label), label) for label in draft.tags]
    post_store.set_post_tags(session, post, tags)
    session.flush()
    return SaveResult(post=post, created=created, was_public=was_public)


def delete_post(session: Session, slug: str, *, now: datetime) -> Post:
    """Mark a post deleted; its URL answers 410 from now on. Raises LookupError if unknown."""
    post = post_store.get_post_by_slug(session, slug)
    if post is None or post.deleted_at is not None:
        raise LookupError(f"no post with slug {slug!r}: see 'fedblog post list'")
    post.deleted_at = now
    session.add(post)
    session.flush()
    return post


def summary_text(post: Post, limit: int = 280) -> str:
    """The post's summary, or the start of its text."""
    if post.summary:
        return post.summary
    text = html_to_text(post.content_html)
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"

