"""The demo blog: the sample post with its comments and pingback, from ``demo/demo.json``.

The fixture ships inside the package. Comments keep their order, author names and websites;
``parent`` (a 1-based comment number) threads a reply under the comment it answers.
"""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from typing import Any

from sqlmodel import Session

from fedblog.blog.interactions import Imported, record_imports
from fedblog.blog.posts import PostDraft, save_post
from fedblog.store import posts as post_store
from fedblog.store.tables import Post


def load_fixture() -> dict[str, Any]:
    text = resources.files("fedblog.demo").joinpath("demo.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def load_demo(session: Session, *, default_language: str = "en") -> Post | None:
    """Insert the demo post and its thread unless a post with its slug exists. Caller commits."""
    data = load_fixture()
    meta = data["post"]
    if post_store.get_post_by_slug(session, meta["slug"]) is not None:
        return None
    published = _ts(meta["published"])
    draft = PostDraft(
        title=meta["title"],
        slug=meta["slug"],
        body_markdown=meta["body_markdown"],
        published_at=published,
        tags=tuple(meta["tags"]),
        summary=meta["summary"],
        author_name=meta["author_name"],
        author_url=meta["author_url"],
    )
    post = save_post(
        session, draft, now=published, default_author=meta["author_name"], default_language=default_language
    ).post
    assert post.id is not None
    by_number: dict[int, int] = {}
    for c in data["comments"]:  # one by one: a reply names the id of the comment it answers
        parent = by_number[c["parent"]] if c.get("parent") else None
        by_number[c["number"]] = record_imports(session, [Imported(
            post_id=post.id, parent_id=parent, kind="comment", via="import", author_name=c["author_name"],
            author_url=c.get("author_url"), content_html=c["content_html"], published_at=_ts(c["published"]),
        )])[0]
    pb = data["pingback"]
    record_imports(session, [Imported(
        post_id=post.id, kind="pingback", via="pingback", author_name=pb["site_name"], author_url=pb["source_url"],
        title=pb["title"], source_url=pb["source_url"], published_at=_ts(pb["published"]),
    )])
    return post
