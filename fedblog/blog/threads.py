"""Turn a post's flat interaction list into what the page shows: a comment tree whose top level
interleaves, by date, comments, fediverse replies and one-line linkbacks (pingbacks, trackbacks,
Webmention mentions), as WordPress lists pingbacks among its comments; and reaction groups. Pure;
one pass; no queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Items are interaction rows: ``Interaction`` objects or plain rows with the same attributes.
Interaction = Any

COMMENT_KINDS = ("comment", "reply", "webmention", "mention")
LINKBACK_KINDS = ("pingback", "trackback")
LINE_KINDS = (*LINKBACK_KINDS, "mention")  # shown as one line ("Pingback: <title> · <site>"), not as a comment
REACTION_KINDS = ("like", "repost")
MAX_DEPTH = 6  # deeper replies are shown at this depth, still in order


@dataclass
class Node:
    item: Interaction
    depth: int
    children: list[Node] = field(default_factory=list)
    parent_item: Interaction | None = None
    linkback: bool = False  # a one-line item at its date among the top-level comments


@dataclass
class Thread:
    roots: list[Node]
    linkbacks: list[Interaction]  # also in ``roots``, at their date
    likes: list[Interaction]
    reposts: list[Interaction]
    comment_count: int


def build_thread(items: Sequence[Interaction]) -> Thread:
    """Nest comments under their parents; a reply whose parent is not shown becomes a root; a
    linkback is a root at its date (it answers no comment, and none nests under it)."""
    nodes: dict[int, Node] = {}
    roots: list[Node] = []
    linkbacks: list[Interaction] = []
    likes: list[Interaction] = []
    reposts: list[Interaction] = []
    for it in items:  # items come in display order, so a parent precedes its replies
        if it.kind in LINE_KINDS:
            linkbacks.append(it)
            roots.append(Node(item=it, depth=0, linkback=True))
            continue
        if it.kind == "like":
            likes.append(it)
            continue
        if it.kind == "repost":
            reposts.append(it)
            continue
        parent = nodes.get(it.parent_id) if it.parent_id is not None else None
        if parent is None:
            node = Node(item=it, depth=0)
            roots.append(node)
        else:
            depth = min(parent.depth + 1, MAX_DEPTH)
            node = Node(item=it, depth=depth, parent_item=parent.item)
            parent.children.append(node)
        assert it.id is not None
        nodes[it.id] = node
    return Thread(roots=roots, linkbacks=linkbacks, likes=likes, reposts=reposts, comment_count=len(nodes))
