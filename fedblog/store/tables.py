"""SQLModel tables: the whole schema, in one place.

Every comment-like thing a reader can leave (fediverse reply, like, boost, web comment,
pingback, Webmention, imported comment) is one ``Interaction`` row, so the post page renders
one merged, threaded list with a single query.

Datetimes are stored as UTC. SQLite hands them back naive; ``fedblog.clock.utc`` fixes that.
Migrations in ``store/migrations`` must match this module (a test checks it).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def _dt(*, nullable: bool = False, index: bool = False) -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable, index=index)


# ---------------------------------------------------------------------------------------------
# Revision 0001: the blog


class Post(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=200, sa_column_kwargs={"unique": True}, index=True)
    # the path of the post's ActivityPub id (fedblog.urls.post_path): /posts/slug, or /posts/slug/2...
    # after a deletion; a deleted incarnation keeps its row (slug renamed) so its id answers 410
    ap_path: str = Field(max_length=300, unique=True, index=True)
    title: str = Field(max_length=500)
    summary: str | None = Field(default=None)
    content_md: str  # the source as written: Markdown, or the HTML of an imported post (content_format)
    content_html: str
    content_format: str = Field(default="markdown", max_length=20, sa_column_kwargs={"server_default": "markdown"})
    author_name: str = Field(max_length=200)
    author_url: str | None = Field(default=None, max_length=2000)
    language: str = Field(default="en", max_length=35)
    image_url: str | None = Field(default=None, max_length=2000)
    draft: bool = Field(default=False)
    published_at: datetime = Field(sa_column=_dt(index=True))
    updated_at: datetime = Field(sa_column=_dt())
    deleted_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    # Revision 0003: bumped by database triggers in the same transaction as any change to the post,
    # its tags or its interactions (every process agrees): the key of rendered-page caches and ETags
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    changed_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    # 0009_editor: a draft the scheduler publishes at this time (then cleared)
    scheduled_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True, index=True))


class Tag(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, sa_column_kwargs={"unique": True}, index=True)
    label: str = Field(max_length=100)


class PostTag(SQLModel, table=True):
    __tablename__ = "post_tag"
    post_id: int = Field(foreign_key="post.id", primary_key=True, ondelete="CASCADE")
    tag_id: int = Field(foreign_key="tag.id", primary_key=True, ondelete="CASCADE", index=True)


class Actor(SQLModel, table=True):
    """A remote fediverse actor we have fetched, or a local guest actor (web commenter, site)."""

    id: int | None = Field(default=None, primary_key=True)
    ap_id: str = Field(max_length=2000, sa_column_kwargs={"unique": True})
    type: str = Field(default="Person", max_length=40)
    host: str = Field(max_length=255, index=True)
    preferred_username: str | None = Field(default=None, max_length=255)
    handle: str | None = Field(default=None, max_length=512)
    name: str | None = Field(default=None, max_length=500)
    summary: str | None = None
    url: str | None = Field(default=None, max_length=2000)
    icon_url: str | None = Field(default=None, max_length=2000)
    inbox: str | None = Field(default=None, max_length=2000)
    shared_inbox: str | None = Field(default=None, max_length=2000)
    key_id: str | None = Field(default=None, max_length=2000, index=True)
    public_key_pem: str | None = None
    is_local: bool = Field(default=False)
    private_key_pem: str | None = None
    fetched_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    raw: str | None = None
    # 0014_comments: what makes a local guest or site actor stable (a digest of name + email, or
    # name + website, or a site's origin); NULL for remote actors
    guest_key: str | None = Field(default=None, max_length=64, sa_column_kwargs={"unique": True}, index=True)


class Interaction(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("post_id", "source_url", name="uq_interaction_post_source"),
        # Revision 0003: one index per hot query shape, so a page costs the same however many rows
        # other posts have (docs/performance.md): the page thread, then counts and reply-id pages,
        # then one comment's replies. Equality columns first, the ORDER BY columns last.
        sa.Index("ix_interaction_thread", "post_id", "status", "published_at", "id"),
        sa.Index("ix_interaction_post_kind", "post_id", "status", "kind", "via", "published_at", "id"),
        sa.Index("ix_interaction_parent_kind", "parent_id", "status", "kind", "via", "published_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", ondelete="CASCADE")  # indexed by ix_interaction_thread
    parent_id: int | None = Field(default=None, foreign_key="interaction.id", index=True, ondelete="SET NULL")
    kind: str = Field(max_length=20)  # reply | comment | like | repost | pingback | webmention | mention
    via: str = Field(max_length=20)  # activitypub | form | pingback | webmention | import
    status: str = Field(default="visible", max_length=20, index=True)  # visible | pending | hidden | spam | deleted
    ap_id: str | None = Field(default=None, max_length=2000, sa_column_kwargs={"unique": True})
    activity_ap_id: str | None = Field(default=None, max_length=2000, index=True)
    in_reply_to_ap_id: str | None = Field(default=None, max_length=2000, index=True)
    actor_id: int | None = Field(default=None, foreign_key="actor.id", index=True, ondelete="CASCADE")
    author_name: str = Field(max_length=500)
    author_url: str | None = Field(default=None, max_length=2000)
    author_handle: str | None = Field(default=None, max_length=512)
    author_avatar: str | None = Field(default=None, max_length=2000)
    title: str | None = Field(default=None, max_length=1000)
    content_html: str = ""
    source_url: str | None = Field(default=None, max_length=2000)
    published_at: datetime = Field(sa_column=_dt(index=True))
    updated_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    # the sender's own `updated` (or `published`), unclamped: edits are ordered by it
    remote_updated_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    raw: str | None = None
    # 0014_comments: a web commenter's email, for the owner only (never shown, never federated)
    author_email: str | None = Field(default=None, max_length=320)
    # 0014_comments: published to the fediverse as an activity of a local guest or site actor (a
    # web comment only with its author's consent)
    federated: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # 0014_comments: how it was authenticated, as JSON (HTTP signature evidence, or integrity proof)
    evidence: str | None = None


# ---------------------------------------------------------------------------------------------
# Revision 0002: federation


class LocalKey(SQLModel, table=True):
    """A local actor's key pair (fedblog.federation.keys)."""

    __tablename__ = "local_key"
    id: int | None = Field(default=None, primary_key=True)
    # the local actor: "blog" or "guest:<Actor.id>" (fedblog.urls.BLOG_ACTOR, guest_ref)
    owner: str = Field(max_length=100, sa_column_kwargs={"unique": True})
    # Revision 0013_actors_jobs: NULL until the actor first signs a delivery (made then)
    rsa_private_pem: str | None = None
    ed25519_private_pem: str
    created_at: datetime = Field(sa_column=_dt())


class Follower(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    actor_ap_id: str = Field(max_length=2000, sa_column_kwargs={"unique": True})
    inbox: str = Field(max_length=2000)
    shared_inbox: str | None = Field(default=None, max_length=2000)
    follow_ap_id: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(sa_column=_dt(index=True))  # indexed by 0007_admin (the dashboard chart)


class Activity(SQLModel, table=True):
    """An activity we emitted; its body is stable across delivery retries."""

    id: int | None = Field(default=None, primary_key=True)
    ap_id: str = Field(max_length=2000, sa_column_kwargs={"unique": True})
    type: str = Field(max_length=40)
    object_ap_id: str | None = Field(default=None, max_length=2000, index=True)
    body: str
    created_at: datetime = Field(sa_column=_dt(index=True))
    # Revision 0013_actors_jobs: the local actor that sends it and signs its deliveries
    actor: str = Field(default="blog", max_length=100, sa_column_kwargs={"server_default": "blog"})


class Delivery(SQLModel, table=True):
    """One row per (activity, inbox): the transactional outbox. Also the queue of other background
    jobs (``kind`` other than "deliver", fedblog.jobs.handlers): they share the claims, leases and
    retry policy; such a row has no activity, ``inbox`` is the URL the job contacts and
    ``payload`` its JSON arguments."""

    __table_args__ = (sa.UniqueConstraint("activity_id", "inbox", name="uq_delivery_activity_inbox"),)

    id: int | None = Field(default=None, primary_key=True)
    # Revision 0013_actors_jobs: NULL for a job that is not a delivery
    activity_id: int | None = Field(default=None, foreign_key="activity.id", index=True, ondelete="CASCADE")
    kind: str = Field(default="deliver", max_length=40, sa_column_kwargs={"server_default": "deliver"})
    payload: str | None = None
    inbox: str = Field(max_length=2000)
    host: str = Field(max_length=255, index=True)
    state: str = Field(default="pending", max_length=20, index=True)  # pending | sent | gave_up | cancelled
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_dt(index=True))
    lease_until: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    leased_by: str | None = Field(default=None, max_length=100)
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime = Field(sa_column=_dt())
    finished_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))


class InboxItem(SQLModel, table=True):
    """A verified activity as received, kept for dedupe (>= 7 days) and evidence."""

    __tablename__ = "inbox_item"
    id: int | None = Field(default=None, primary_key=True)
    ap_id: str = Field(max_length=2000, sa_column_kwargs={"unique": True})
    type: str = Field(max_length=40)
    actor_ap_id: str = Field(max_length=2000, index=True)
    signer_key_id: str = Field(max_length=2000)
    signature_scheme: str = Field(max_length=20)
    raw: str
    state: str = Field(default="received", max_length=20, index=True)  # received | processed | ignored | failed
    error: str | None = None
    received_at: datetime = Field(sa_column=_dt(index=True))
    processed_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))


class ObjectMarker(SQLModel, table=True):
    """A persistent tombstone: this remote object was deleted or undone, drop late arrivals."""

    __tablename__ = "object_marker"
    id: int | None = Field(default=None, primary_key=True)
    ap_id: str = Field(max_length=2000, sa_column_kwargs={"unique": True})
    actor_ap_id: str = Field(max_length=2000)
    reason: str = Field(max_length=20)  # deleted | undone
    created_at: datetime = Field(sa_column=_dt())


class HostHealth(SQLModel, table=True):
    __tablename__ = "host_health"
    host: str = Field(max_length=255, primary_key=True)
    failure_days: str = ""  # comma-separated distinct UTC dates with failures since the last success
    unavailable: bool = False
    last_failure_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    last_success_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))


class ModerationRule(SQLModel, table=True):
    """A block or an approval, for an actor id or a whole domain."""

    __tablename__ = "moderation_rule"
    id: int | None = Field(default=None, primary_key=True)
    action: str = Field(max_length=10)  # block | approve
    target: str = Field(max_length=2000, index=True)  # actor id or domain
    created_at: datetime = Field(sa_column=_dt())


class DeadLetter(SQLModel, table=True):
    __tablename__ = "dead_letter"
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=20)
    ref: str = Field(max_length=2000)
    error: str
    payload: str | None = None
    created_at: datetime = Field(sa_column=_dt())


# ---------------------------------------------------------------------------------------------
# Revision 0005_profile: small facts about the blog itself


class BlogState(SQLModel, table=True):
    """One named fact about the blog, e.g. the fingerprint of the actor document last announced."""

    __tablename__ = "blog_state"
    key: str = Field(max_length=100, primary_key=True)
    value: str
    updated_at: datetime = Field(sa_column=_dt())


# ---------------------------------------------------------------------------------------------
# Revision 0007_admin: the owner's sessions and failed logins (the password hash is in blog_state)


class AdminSession(SQLModel, table=True):
    """A logged-in browser. The cookie holds a random token; only its SHA-256 is stored here."""

    __tablename__ = "admin_session"
    token_hash: str = Field(max_length=64, primary_key=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_dt())
    expires_at: datetime = Field(sa_column=_dt(index=True))


class AdminLoginFailure(SQLModel, table=True):
    """One failed login, kept for the rate-limit window only."""

    __tablename__ = "admin_login_failure"
    id: int | None = Field(default=None, primary_key=True)
    ip: str = Field(max_length=64, index=True)
    at: datetime = Field(sa_column=_dt(index=True))


# Revision 0008_import: what a WordPress import brought in


class LegacyPath(SQLModel, table=True):
    """An old URL of an imported post (``/?p=123``, ``/2012/03/08/slug/``...): answered with a 301."""

    __tablename__ = "legacy_path"
    path: str = Field(max_length=1000, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True, ondelete="CASCADE")


class ImportItem(SQLModel, table=True):
    """One imported WordPress post or comment, keyed by the site and its WordPress id, so that a
    second import of the same file adds nothing. A comment's email is kept here, never shown."""

    __tablename__ = "import_item"
    __table_args__ = (sa.UniqueConstraint("source", "kind", "wp_id", name="uq_import_item_source_kind_wp_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=500)  # the WordPress site's base URL (wp:base_site_url)
    kind: str = Field(max_length=20)  # post | comment
    wp_id: int
    post_id: int = Field(foreign_key="post.id", index=True, ondelete="CASCADE")
    interaction_id: int | None = Field(default=None, foreign_key="interaction.id", index=True, ondelete="CASCADE")
    wp_parent_id: int | None = None  # a comment's wp:comment_parent, as in the file
    author_email: str | None = Field(default=None, max_length=320)  # private: never rendered or sent
    imported_at: datetime = Field(sa_column=_dt())


# Revision 0009_editor: uploaded images, and which posts use them


class Media(SQLModel, table=True):
    """An uploaded image, stored by content under media/uploads/<key>/ (fedblog.blog.images)."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, sa_column_kwargs={"unique": True})  # SHA-256 of the stored file
    path: str = Field(max_length=300)  # relative to the media folder: uploads/<key>/full.<ext>
    media_type: str = Field(max_length=100)
    width: int
    height: int
    alt: str = Field(default="", max_length=1500)
    created_at: datetime = Field(sa_column=_dt())


class PostMedia(SQLModel, table=True):
    """An image a post uses: its cover, or an attachment (shown inline), in order."""

    __tablename__ = "post_media"
    post_id: int = Field(foreign_key="post.id", primary_key=True, ondelete="CASCADE")
    media_id: int = Field(foreign_key="media.id", primary_key=True, ondelete="CASCADE", index=True)
    role: str = Field(max_length=20)  # cover | attachment
    position: int = 0


# Revision 0015_linkbacks: received pingbacks and Webmentions, until and after their verification


class LinkbackRequest(SQLModel, table=True):
    """One received pingback or Webmention request (fedblog.federation.linkback_receive): answered
    at once, verified later by the ``linkback.verify`` job. ``token`` names its status page."""

    __tablename__ = "linkback_request"
    __table_args__ = (
        sa.Index("ix_linkback_request_post_state", "post_id", "state"),
        sa.Index("ix_linkback_request_host_state", "source_host", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    protocol: str = Field(max_length=20)  # webmention | pingback
    source: str = Field(max_length=2000)
    source_host: str = Field(max_length=255)
    target: str = Field(max_length=2000)
    post_id: int = Field(foreign_key="post.id", ondelete="CASCADE")
    state: str = Field(default="pending", max_length=20)  # pending | accepted | refused | deleted
    interaction_id: int | None = Field(default=None, foreign_key="interaction.id", index=True, ondelete="SET NULL")
    last_error: str | None = Field(default=None, max_length=500)  # why it was refused, or the last failed try
    created_at: datetime = Field(sa_column=_dt())
    updated_at: datetime = Field(sa_column=_dt())
