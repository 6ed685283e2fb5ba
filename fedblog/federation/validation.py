"""Pure checks of an incoming activity, before and after its signature is verified.

No I/O here: the shape of the document (an object with an http(s) id, a type and an actor, a
bounded depth and number of addressees), bounded URLs with a host name DNS could hold, and origin
containment (the activity and what it creates live on the signer's host: the same-origin rule
of FEP-fe34, which Mastodon also applies).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fedblog.federation.actors import host_of, same_id
from fedblog.federation.contract import id_of
from fedblog.net.fetch import json_depth_ok

MAX_DEPTH = 32
MAX_ADDRESSEES = 500
MAX_URL = 2000  # an activity, actor or key id: the length of the tables' id columns
MAX_HOST, MAX_LABELS = 253, 127  # what DNS allows (RFC 1035 §2.3.4)
ACTOR_TYPES = ("Person", "Service", "Application", "Group", "Organization")


def url_problem(url: str, what: str) -> str | None:
    """A URL we will look up or match rules against: bounded, with a host name DNS could hold.

    Checked before anything else is done with it: block rules are matched against the host and
    every parent domain, so an absurd host would otherwise cost work (and query parameters)
    before the signature is even checked.
    """
    if len(url) > MAX_URL:
        return f"the {what} is longer than {MAX_URL} characters"
    if len(url) <= MAX_HOST and url.count(".") < MAX_LABELS:
        return None  # its host cannot be too long or too deep (whether it has one is checked later)
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host or len(host) > MAX_HOST or host.count(".") >= MAX_LABELS:
        return f"the {what} has no valid host name"
    return None


def shape_error(doc: Any, body: bytes) -> str | None:
    """What is wrong with the parsed body as an activity, or None."""
    if not isinstance(doc, dict):
        return "the body is not a JSON object"
    # a document cannot nest deeper than it has brackets: most activities have fewer than the cap
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH and not json_depth_ok(doc, MAX_DEPTH):
        return f"the JSON nests deeper than {MAX_DEPTH} levels"
    for name in ("id", "type"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            return f"the activity has no {name}"
    if not doc["id"].startswith(("https://", "http://")):
        return "the activity id is not an http(s) URL"
    actor = id_of(doc.get("actor"))
    if actor is None:
        return "the activity has no actor"
    if problem := url_problem(doc["id"], "activity id") or url_problem(actor, "actor id"):
        return problem
    count = sum(len(v) if isinstance(v, list) else 1 for k in ("to", "cc", "bto", "bcc", "audience", "tag")
                if (v := doc.get(k)) is not None)
    obj = doc.get("object")
    if isinstance(obj, dict):
        count += sum(len(v) if isinstance(v, list) else 1 for k in ("to", "cc", "tag") if (v := obj.get(k)) is not None)
    if count > MAX_ADDRESSEES:
        return f"more than {MAX_ADDRESSEES} addressees and tags"
    return None


def origin_problem(doc: dict[str, Any], actor: str) -> str | None:
    """The activity, and the object it creates or updates, must be on the (verified) actor's host."""
    actor_host = host_of(actor)
    if host_of(doc["id"]) != actor_host:
        return "the activity id is not on the actor's host"
    obj = doc.get("object")
    if isinstance(obj, dict) and isinstance(obj.get("id"), str) and doc["type"] in ("Create", "Update"):
        if host_of(obj["id"]) != actor_host:
            return "the embedded object belongs to another host"
        author = id_of(obj.get("attributedTo")) or id_of(obj.get("actor"))
        if author is not None and not same_id(author, actor) and obj.get("type") not in ACTOR_TYPES:
            return "the embedded object is attributed to someone else"
    return None
