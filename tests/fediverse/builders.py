"""Pure dict builders for activities shaped like Mastodon's, GoToSocial's and Misskey's."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tests.fediverse.instance import AS, PUBLIC, FakeActor

BLOG = "https://blog.test/users/blog"


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def reply(actor: FakeActor, in_reply_to: str, html: str, now: datetime, *, flavour: str | None = None,
          public: bool = True, note_id: str | None = None, embed: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Create activity, Note) for a reply in ``actor``'s server's own shape."""
    flavour = flavour or actor.flavour
    if flavour == "misskey":
        nid = note_id or f"https://{actor.host}/notes/{uuid.uuid4().hex[:10]}"
        note = {
            "id": nid,
            "type": "Note",
            "attributedTo": actor.id,
            "content": html,
            "_misskey_content": "plain",
            "published": _iso(now),
            "to": [PUBLIC] if public else [actor.id + "/followers"],
            "cc": [actor.id + "/followers"],
            "inReplyTo": in_reply_to,
            "attachment": [],
            "sensitive": False,
            "tag": [],
        }
        create = {
            "@context": [
                AS,
                "https://w3id.org/security/v1",
                {"Key": "sec:Key", "_misskey_content": "misskey:_misskey_content"},
            ],
            "id": nid + "/activity",
            "actor": actor.id,
            "type": "Create",
            "published": _iso(now),
            "object": note,
            "to": note["to"],
            "cc": note["cc"],
        }
    elif flavour == "gotosocial":
        nid = note_id or f"{actor.id}/statuses/{uuid.uuid4().hex[:26].upper()}"
        note = {
            "id": nid,
            "type": "Note",
            "attributedTo": actor.id,
            "content": html,
            "contentMap": {"en": html},
            "published": _iso(now),
            "url": f"https://{actor.host}/@{actor.username}/statuses/{nid.rsplit('/', 1)[1]}",
            "to": PUBLIC if public else actor.id + "/followers",
            "cc": [actor.id + "/followers", BLOG],
            "inReplyTo": in_reply_to,
            "tag": {"type": "Mention", "href": BLOG, "name": "@blog@blog.test"},
            "sensitive": False,
            "attachment": [],
        }
        create = {"@context": AS, "id": nid + "/activity", "actor": actor.id, "type": "Create",
                  "published": _iso(now), "object": note, "to": note["to"], "cc": note["cc"]}
    else:
        nid = note_id or f"{actor.id}/statuses/{uuid.uuid4().int % 10**18}"
        note = {"id": nid, "type": "Note", "summary": None, "inReplyTo": in_reply_to, "published": _iso(now),
                "url": f"https://{actor.host}/@{actor.username}/{nid.rsplit('/', 1)[1]}", "attributedTo": actor.id,
                "to": [PUBLIC] if public else [actor.id + "/followers"], "cc": [actor.id + "/followers", BLOG],
                "sensitive": False, "content": html, "contentMap": {"en": html}, "attachment": [],
                "tag": [{"type": "Mention", "href": BLOG, "name": "@blog@blog.test"}]}
        create = {"@context": [AS, {"ostatus": "http://ostatus.org#"}], "id": nid + "/activity", "type": "Create",
                  "actor": actor.id, "published": _iso(now), "to": note["to"], "cc": note["cc"], "object": note}
    if not embed:
        create = {**create, "object": nid}
    return create, note


def update(actor: FakeActor, note: dict[str, Any], html: str, when: datetime) -> dict[str, Any]:
    new = {**note, "content": html, "contentMap": {"en": html}, "updated": _iso(when)}
    return {"@context": AS, "id": f"{note['id']}#updates/{int(when.timestamp())}", "type": "Update",
            "actor": actor.id, "to": [PUBLIC], "object": new}


def delete(actor: FakeActor, object_id: str) -> dict[str, Any]:
    return {"@context": AS, "id": object_id + "#delete", "type": "Delete", "actor": actor.id, "to": [PUBLIC],
            "object": {"id": object_id, "type": "Tombstone"}}


def like(actor: FakeActor, target: str, *, misskey: bool = False) -> dict[str, Any]:
    doc = {
        "@context": AS,
        "id": f"{actor.id}#likes/{uuid.uuid4().hex[:8]}",
        "type": "Like",
        "actor": actor.id,
        "object": target,
    }
    if misskey:
        doc.update({"content": "👍", "_misskey_reaction": "👍"})
    return doc


def announce(actor: FakeActor, target: str, now: datetime) -> dict[str, Any]:
    return {
        "@context": AS,
        "id": f"{actor.id}/statuses/{uuid.uuid4().int % 10**18}/activity",
        "type": "Announce",
        "actor": actor.id,
        "published": _iso(now),
        "to": [PUBLIC],
        "cc": [BLOG, actor.id + "/followers"],
        "object": target,
    }


def undo(actor: FakeActor, inner: dict[str, Any]) -> dict[str, Any]:
    return {"@context": AS, "id": inner["id"] + "/undo", "type": "Undo", "actor": actor.id, "object": inner}
