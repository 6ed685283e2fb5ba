"""Writing a WordPress export into the blog: posts, tags, comments, pingbacks, old URLs.

``WpImporter.add`` takes the records ``fedblog.blog.wordpress.read_wxr`` yields and writes them in
transactions of about ``batch_rows`` rows. Everything is keyed by (site, WordPress id) in
``import_item``, so importing the same file again adds nothing, and a newer export of the same
site adds only what is new. Imported history is quiet: no activity and no delivery is written,
so followers receive nothing. What is not imported is counted per reason in ``ImportReport``.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from fedblog.blog.interactions import Imported, record_imports
from fedblog.blog.markup import html_to_text
from fedblog.blog.posts import slugify, tag_name
from fedblog.blog.wordpress import WpComment, WpItem, WpSite
from fedblog.blog.wp_html import comment_html, linkback_parts, post_html, shortcodes_in, uploads_in
from fedblog.store import posts as post_store
from fedblog.store.tables import ImportItem, Interaction, LegacyPath, Post, PostTag
from fedblog.urls import post_path

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
PUBLIC, DRAFT_STATUSES = "publish", ("draft", "pending", "future", "private")
LINKBACKS = ("pingback", "trackback")
EXAMPLES = 5
MEDIA_FOLDER = "media"  # under the data directory; served at /media/ (fedblog.web.media)
_INTERACTIONS = Interaction.__table__  # type: ignore[attr-defined]  # sqlmodel does not declare __table__
_IMPORT_ITEMS = ImportItem.__table__  # type: ignore[attr-defined]
_POSTS = Post.__table__  # type: ignore[attr-defined]
_POST_TAGS = PostTag.__table__  # type: ignore[attr-defined]
_LEGACY = LegacyPath.__table__  # type: ignore[attr-defined]
# built once: building a statement per post cost more than running it
_IMPORTED_POST = sa.select(col(ImportItem.post_id)).where(
    col(ImportItem.source) == sa.bindparam("source"), col(ImportItem.kind) == "post",
    col(ImportItem.wp_id) == sa.bindparam("wp_id"))
_POST_WITH_SLUG = sa.select(col(Post.id)).where(col(Post.slug) == sa.bindparam("slug"))
_TAKEN_PATHS = sa.select(col(LegacyPath.path)).where(col(LegacyPath.path).in_(sa.bindparam("paths", expanding=True)))


@dataclass
class ImportReport:
    posts: int = 0
    drafts: int = 0
    comments: int = 0
    linkbacks: int = 0
    old_urls: int = 0
    posts_already: int = 0
    comments_already: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def skip(self, reason: str, example: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples[reason]) < EXAMPLES:
            self.examples[reason].append(example[:120])

    def note(self, what: str, example: str) -> None:
        """Imported, but with something the reader should know (counted and exemplified too)."""
        self.notes[what] += 1
        if len(self.examples[what]) < EXAMPLES:
            self.examples[what].append(example[:120])


def _skip_reason(item: WpItem, include_pages: bool) -> str | None:
    if item.post_type == "attachment":
        return "attachment entry (a media file's record: files are handled where posts use them)"
    if item.post_type not in ("post", "page"):
        return f"{item.post_type} (WordPress internals, not content)"
    if item.post_type == "page" and not include_pages:
        return "page (pages are not posts here: --pages imports them as posts)"
    if item.status != PUBLIC and item.status not in DRAFT_STATUSES:
        return f"post with status {item.status or 'none'} (trash, auto-draft and revisions are not imported)"
    return None


def _comment_skip_reason(c: WpComment) -> str | None:
    if c.approved != "1":
        return {
            "spam": "spam comment",
            "0": "unapproved comment (held for moderation)",
            "trash": "trashed comment",
            "post-trashed": "trashed comment",
        }.get(c.approved, f"comment with status {c.approved[:20]!r}")
    if c.type not in ("comment", *LINKBACKS):
        return f"comment of type {c.type[:30]!r} (a plugin's, not a reader's comment)"
    if c.type in LINKBACKS and not _web_url(c.url):
        return f"{c.type} without a source URL"
    return None


def _web_url(url: str | None) -> str | None:
    if not url:
        return None
    url = url.strip()
    return url[:2000] if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname else None


def choose_slug(item: WpItem) -> str:
    """WordPress's slug when it fits ours ([a-z0-9-]); else one made from it or from the title."""
    raw = unquote(item.slug).lower()
    if _SLUG_RE.match(raw) and len(raw) <= 200:
        return raw
    return slugify(raw) or slugify(item.title) or f"post-{item.wp_id}"


def old_paths(item: WpItem, slug: str) -> list[str]:
    """The URLs a WordPress blog answered for this post: its permalink as exported, ``/?p=ID``
    (``/?page_id=ID`` for pages), ``/YYYY/MM/DD/slug/`` (the post's local date, as WordPress
    builds it) and ``/slug/``. Stored decoded, as the web layer sees the request path."""
    paths: list[str] = []
    parts = urlsplit(item.link)
    if parts.path and (parts.path != "/" or parts.query):
        paths.append(unquote(parts.path) + (f"?{parts.query}" if parts.query else ""))
    paths.append(f"/?page_id={item.wp_id}" if item.post_type == "page" else f"/?p={item.wp_id}")
    wp_slug = unquote(item.slug) or slug
    day = item.date_local or item.date_gmt
    if day is not None and item.post_type == "post":
        paths.append(f"/{day:%Y/%m/%d}/{wp_slug}/")
    paths.append(f"/{wp_slug}/")
    return [p[:1000] for p in dict.fromkeys(paths)]


@dataclass(frozen=True)
class MediaCopy:
    """Files of the WordPress uploads folder (``wp-content/uploads``, as copied from the old server)
    copied into ``target`` (the blog's data directory) and served under ``base_url``."""

    source: Path
    target: Path
    base_url: str

    def copy(self, url: str) -> str | None:
        rel = unquote(urlsplit(url).path.split("/wp-content/uploads/", 1)[-1])
        src, dst = (self.source / rel).resolve(), (self.target / rel).resolve()
        if not (src.is_relative_to(self.source.resolve()) and dst.is_relative_to(self.target.resolve())):
            return None
        if not src.is_file():
            return None
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
        return self.base_url + "/".join(quote(part) for part in rel.split("/"))


class WpImporter:
    def __init__(
        self, engine: Engine, site: WpSite, *, now: datetime, default_author: str, language: str,
        include_pages: bool = False, batch_rows: int = 500, media: MediaCopy | None = None,
    ) -> None:
        self.media = media
        self.site, self.now, self.language = site, now, language
        self.default_author, self.include_pages, self.batch_rows = default_author, include_pages, batch_rows
        self.report = ImportReport()
        self.session = Session(engine, expire_on_commit=False)
        self._pending = 0
        self._tags: dict[str, int] = {}
        self._source = site.base_site_url[:500] or "(unknown site)"

    # -- driving -----------------------------------------------------------------------------
    def add(self, item: WpItem) -> None:
        reason = _skip_reason(item, self.include_pages)
        if reason is not None:
            self.report.skip(reason, item.attachment_url or item.link or item.title or str(item.wp_id))
            return
        post = self._post(item)
        if post is not None:
            self._comments(item, *post)
        self._count(0)

    def finish(self) -> ImportReport:
        self.session.commit()
        self.session.close()
        return self.report

    def abort(self) -> None:
        self.session.rollback()
        self.session.close()

    def _count(self, rows: int) -> None:
        self._pending += rows
        if self._pending >= self.batch_rows:
            self.session.commit()  # rows are written with Core inserts: no objects pile up
            self._pending = 0

    # -- posts -------------------------------------------------------------------------------
    def _imported_post(self, wp_id: int) -> int | None:
        """Our id of the post imported before from this site's post ``wp_id``, if any."""
        found = self.session.execute(_IMPORTED_POST, {"source": self._source, "wp_id": wp_id}).first()
        return int(found[0]) if found is not None else None

    def _post(self, item: WpItem) -> tuple[int, bool] | None:
        """(post id, imported before) of the item's post, written now if new. Core inserts: the
        import writes thousands of rows and reads none of them back as objects."""
        known = self._imported_post(item.wp_id)
        if known is not None:
            self.report.posts_already += 1
            return known, True
        slug = choose_slug(item)
        if self.session.execute(_POST_WITH_SLUG, {"slug": slug}).first() is not None:
            self.report.skip("post whose slug is already used by a post on this blog", f"{slug} ({item.title})")
            return None
        draft = item.status != PUBLIC or item.has_password
        if item.has_password and item.status == PUBLIC:
            self.report.note("password-protected post: imported as a draft", item.link or slug)
        published = item.date_gmt or item.date_local or item.modified_gmt or self.now
        values = dict(
            slug=slug, ap_path=post_path(slug), title=(item.title or "Untitled")[:500],
            summary=html_to_text(item.excerpt) or None, content_md=item.content, content_format="html",
            content_html=post_html(self._media(item.content, slug)),
            author_name=(self.site.authors.get(item.creator) or item.creator or self.default_author)[:200],
            author_url=None, image_url=None, language=self.language, draft=draft, published_at=published,
            updated_at=max(published, item.modified_gmt or published), deleted_at=None,
        )
        post_id = int(self.session.execute(sa.insert(_POSTS).returning(_POSTS.c.id), values).scalar_one())
        labels = [label for domain, nicename, label in item.categories
                  if domain in ("category", "post_tag") and label and nicename != "uncategorized"]
        tag_ids = list(dict.fromkeys(self._tag(label) for label in labels))
        if tag_ids:
            self.session.execute(sa.insert(_POST_TAGS), [{"post_id": post_id, "tag_id": t} for t in tag_ids])
        self.session.execute(sa.insert(_IMPORT_ITEMS), dict(
            source=self._source, kind="post", wp_id=item.wp_id, post_id=post_id, interaction_id=None,
            wp_parent_id=None, author_email=None, imported_at=self.now))
        rows = 2 + len(tag_ids)
        if draft:
            self.report.drafts += 1
        else:
            self.report.posts += 1
            rows += self._old_paths(item, slug, post_id)
        for name in sorted(shortcodes_in(item.content)):
            self.report.note(f"post with a [{name}] shortcode (shown as text: only WordPress expands it)", slug)
        self._count(rows)
        return post_id, False

    def _media(self, content: str, slug: str) -> str:
        """Copy the uploads a post uses from ``--media-dir`` and point the post at our copies; an
        upload not given stays linked at its WordPress URL and is reported."""
        for url in uploads_in(content):
            local = self.media.copy(url) if self.media is not None else None
            if local is None:
                why = "not found in --media-dir" if self.media is not None else "give the files with --media-dir"
                self.report.skip(f"media file used by a post, still linked at its WordPress URL ({why})", url)
            else:
                content = content.replace(url, local)
                self.report.note("media file copied from --media-dir", f"{slug}: {url.rsplit('/', 1)[-1]}")
        return content

    def _tag(self, label: str) -> int:
        label = label[:100]
        name = tag_name(label)[:100]
        if name not in self._tags:
            tag = post_store.get_or_create_tag(self.session, name, label)
            assert tag.id is not None
            self._tags[name] = tag.id
        return self._tags[name]

    def _old_paths(self, item: WpItem, slug: str, post_id: int) -> int:
        paths = old_paths(item, slug)
        taken = {p for (p,) in self.session.execute(_TAKEN_PATHS, {"paths": paths}).all()}
        for path in paths:
            if path in taken:
                self.report.skip("old URL that already leads to another post (kept for the first)", path)
        fresh = [{"path": p, "post_id": post_id} for p in paths if p not in taken]
        if fresh:
            self.session.execute(sa.insert(_LEGACY), fresh)
        self.report.old_urls += len(fresh)
        return len(fresh)

    # -- comments ----------------------------------------------------------------------------
    def _comments(self, item: WpItem, post_id: int, existed: bool) -> None:
        if not item.comments:
            return
        known: dict[int, int] = {}
        sources: set[str] = set()
        if existed:
            stmt = sa.select(col(ImportItem.wp_id), col(ImportItem.interaction_id)).where(
                col(ImportItem.post_id) == post_id, col(ImportItem.kind) == "comment",
                col(ImportItem.source) == self._source)
            known = {w: i for w, i in self.session.execute(stmt).all() if i is not None}
            src = sa.select(col(Interaction.source_url)).where(
                col(Interaction.post_id) == post_id, col(Interaction.source_url).is_not(None))
            sources = {s for (s,) in self.session.execute(src).all()}
        fresh: list[WpComment] = []
        for c in item.comments:
            reason = _comment_skip_reason(c)
            if reason is not None:
                self.report.skip(reason, f"#{c.wp_id} by {c.author[:40]} on {item.link or item.title}")
            elif c.wp_id in known:
                self.report.comments_already += 1
            elif c.type in LINKBACKS and _web_url(c.url) in sources:
                self.report.skip(f"second {c.type} from the same page", f"{c.url}")
            else:
                if c.type in LINKBACKS:
                    sources.add(_web_url(c.url) or "")
                fresh.append(c)
        fresh.sort(key=lambda c: (c.date_gmt or c.date_local or self.now, c.wp_id))
        new: dict[int, int] = {}
        for start in range(0, len(fresh), self.batch_rows):
            chunk = fresh[start:start + self.batch_rows]
            ids = self._insert_comments(chunk, post_id)
            new.update(zip((c.wp_id for c in chunk), ids, strict=True))
            self._link_parents(chunk, new, known, post_id)
            self._count(2 * len(chunk))

    def _insert_comments(self, chunk: Iterable[WpComment], post_id: int) -> list[int]:
        items: list[Imported] = []
        for c in chunk:
            url = _web_url(c.url)
            published = c.date_gmt or c.date_local or self.now
            if c.type in LINKBACKS:  # stored as the demo stores its pingback: a site, a title, a source
                site, title = linkback_parts(c.author, url)
                items.append(Imported(post_id=post_id, kind=c.type, via=c.type, author_name=site, author_url=url,
                                      title=title[:1000] or None, content_html=comment_html(c.content),
                                      source_url=url, published_at=published))
                self.report.linkbacks += 1
            else:
                items.append(Imported(post_id=post_id, kind=c.type, via="import",
                                      author_name=c.author or "Anonymous", author_url=url,
                                      content_html=comment_html(c.content), published_at=published))
                self.report.comments += 1
        return record_imports(self.session, items)

    def _link_parents(self, chunk: list[WpComment], new: dict[int, int], known: dict[int, int], post_id: int) -> None:
        """Thread the chunk under its parents (inserted earlier, or in a previous import), and
        remember each comment's WordPress id and its commenter's email (private)."""
        updates = [{"iid": new[c.wp_id], "pid": new.get(c.parent) or known.get(c.parent)}
                   for c in chunk if c.parent]
        updates = [u for u in updates if u["pid"] is not None]
        if updates:
            stmt = (sa.update(_INTERACTIONS).where(_INTERACTIONS.c.id == sa.bindparam("iid"))
                    .values(parent_id=sa.bindparam("pid")))
            self.session.connection().execute(stmt, updates)
        self.session.execute(sa.insert(_IMPORT_ITEMS), [
            dict(source=self._source, kind="comment", wp_id=c.wp_id, post_id=post_id, interaction_id=new[c.wp_id],
                 wp_parent_id=c.parent or None, author_email=c.email[:320] if c.email else None,
                 imported_at=self.now)
            for c in chunk
        ])


def report_lines(site: WpSite, r: ImportReport) -> list[str]:
    out = [
        f"Imported from {site.base_site_url or site.link or 'WordPress'} (WXR {site.wxr_version}): "
        f"{r.posts} post(s), {r.drafts} draft(s), {r.comments} comment(s), {r.linkbacks} pingback(s)/trackback(s), "
        f"{r.old_urls} old URL(s) now redirecting",
    ]
    if r.posts_already or r.comments_already:
        out.append(f"Already imported before (left as they are): {r.posts_already} post(s), "
                   f"{r.comments_already} comment(s)")
    if r.skipped:
        out.append(f"Skipped {sum(r.skipped.values())}:")
        for reason, n in sorted(r.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            more = f", ... ({n - len(r.examples[reason])} more)" if n > len(r.examples[reason]) else ""
            out.append(f"  {n:>6}  {reason}: {', '.join(r.examples[reason])}{more}")
    else:
        out.append("Nothing was skipped.")
    for what, n in sorted(r.notes.items()):
        out.append(f"  note: {n} {what}: {', '.join(r.examples[what])}")
    out.append("Nothing was sent to followers: imported posts and comments are history.")
    return out
