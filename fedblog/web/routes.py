"""The single route table; it mirrors ``fedblog.urls``."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fedblog.web import (
    activitypub,
    comments,
    feeds,
    guests,
    inbox,
    interact,
    linkbacks,
    media,
    pages,
    redirects,
    wellknown,
)
from fedblog.web.admin import admin_routes


def build_routes() -> list[BaseRoute]:
    return [
        # the inboxes first: the busiest routes under load, and no route above could match their paths
        Route("/inbox", inbox.inbox, methods=["POST"], name="shared_inbox"),
        Route("/users/{handle}/inbox", inbox.inbox, methods=["POST"], name="inbox"),
        Route("/", redirects.home, name="home"),  # pages.home, or an imported post's /?p=ID
        Route("/posts/{slug}", comments.post_page, name="post"),  # pages.post_page + the form's token
        Route("/posts/{slug}/{version:int}", pages.post_version, name="post_version"),
        Route("/posts/{slug}/replies", activitypub.post_replies, name="post_replies"),
        Route("/posts/{slug}/context", activitypub.post_context, name="post_context"),
        Route("/posts/{slug}/{which}", activitypub.post_reactions, name="post_reactions"),
        # a post published again under a deleted post's slug: /posts/{slug}/2... (fedblog.urls.post_path)
        Route("/posts/{slug}/{version:int}/replies", activitypub.post_replies, name="post_v_replies"),
        Route("/posts/{slug}/{version:int}/context", activitypub.post_context, name="post_v_context"),
        Route("/posts/{slug}/{version:int}/{which}", activitypub.post_reactions, name="post_v_reactions"),
        Route("/comments/{comment_id}/replies", activitypub.comment_replies, name="comment_replies"),
        Route("/comments", comments.submit, methods=["POST"], name="comment_submit"),  # the web comment form
        Route("/comments/{comment_id}/reply", comments.reply_page, name="comment_reply"),
        Route("/comments/{comment_id}", comments.comment_permalink, name="comment"),  # pages.comment_permalink + ?key=
        Route("/tags/{tag}", pages.tag_page, name="tag"),
        Route("/archive", pages.archive, name="archive"),
        Route("/about", pages.about, name="about"),
        Route("/interact", interact.interact, name="interact"),
        Route("/feed.atom", feeds.atom, name="atom"),
        Route("/feed.rss", feeds.rss, name="rss"),
        Route("/users/{handle}", activitypub.actor, name="actor"),
        Route("/users/{handle}/outbox", activitypub.outbox, name="outbox"),
        Route("/users/{handle}/followers", activitypub.followers, name="followers"),
        Route("/users/{handle}/following", activitypub.following, name="following"),
        Route("/users/{handle}/featured", activitypub.featured, name="featured"),
        Route("/guests/{guest_id}", guests.guest, name="guest"),  # guest and site actors (fedblog.urls.guest_actor)
        Route("/guests/{guest_id}/outbox", guests.guest_outbox, name="guest_outbox"),
        Route("/activities/{token}", activitypub.activity, name="activity"),
        Route("/webmention", linkbacks.webmention, methods=["GET", "POST"], name="webmention"),
        Route("/xmlrpc", linkbacks.xmlrpc, methods=["GET", "POST"], name="pingback"),
        Route("/linkbacks/{token}", linkbacks.linkback_status, name="linkback_status"),
        Route("/.well-known/webfinger", wellknown.webfinger, name="webfinger"),
        Route("/.well-known/host-meta", wellknown.host_meta, name="host_meta"),
        Route("/.well-known/host-meta.json", wellknown.host_meta, name="host_meta_json"),
        Route("/.well-known/nodeinfo", wellknown.nodeinfo_links, name="nodeinfo_links"),
        Route("/nodeinfo/{version}", wellknown.nodeinfo, name="nodeinfo"),
        *admin_routes(),
        Route("/media/{path:path}", media.media, name="media"),  # fedblog import wordpress --media-dir
        Mount("/static", StaticFiles(packages=[("fedblog", "static")]), name="static"),
        # keep last: old WordPress URLs of imported posts (301), else 404 as before
        Route("/{old_path:path}", redirects.legacy_or_404, name="legacy", methods=redirects.ANY_METHOD),
    ]
