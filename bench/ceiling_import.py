#!/usr/bin/env python3
"""The ceiling for bench_import.py: read a WXR file with plain ``iterparse`` once and insert the
rows fedblog's import writes (posts, tags, comments with parents, old URLs, import_item rows)
with ``executemany`` in one transaction: ids assigned in Python, no HTML work, no checks.

    FEDBLOG_DATABASE_URL=sqlite:///path/fedblog.db python bench/ceiling_import.py export.xml [--html]

``--html`` adds fedblog's own HTML work (``post_html``, ``comment_html``: wpautop, links,
sanitising) to the same single pass, to show how much of the gap is that work.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import xml.etree.ElementTree as ET

WP = "{http://wordpress.org/export/1.2/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
NOW = "2026-12-02 12:00:00.000000"


def ts(value: str) -> str:
    return value + ".000000"


def main(path: str, html: bool = False) -> int:
    if html:
        from fedblog.blog.wp_html import comment_html, post_html  # only this variant pays for importing fedblog
    else:
        def comment_html(text: str) -> str:
            return text

        post_html = comment_html
    db = sqlite3.connect(os.environ["FEDBLOG_DATABASE_URL"].split("///", 1)[1])
    posts, tags_rows, post_tags, comments, legacy, items = [], [], [], [], [], []
    tags: dict[str, int] = {}
    next_post = next_comment = next_item = 1
    source = ""
    channel = None
    for event, el in ET.iterparse(path, events=("start", "end")):
        if event == "start":
            if el.tag == "channel":
                channel = el
            continue
        if el.tag == f"{WP}base_site_url":
            source = el.text or ""
        if el.tag != "item":
            continue
        f = {c.tag: c.text or "" for c in el if len(c) == 0}
        pid, wp_id, slug = next_post, int(f[f"{WP}post_id"]), f[f"{WP}post_name"]
        next_post += 1
        date = ts(f[f"{WP}post_date_gmt"])
        posts.append((pid, slug, f"/posts/{slug}", f["title"], None, f[CONTENT], post_html(f[CONTENT]), "Admin",
                      None, "en", None, False, date, date, None, "html"))
        items.append((next_item, source, "post", wp_id, pid, None, None, None, NOW))
        next_item += 1
        legacy.extend((p, pid) for p in (f["link"].split("old.example", 1)[1], f"/?p={wp_id}", f"/{slug}/"))
        for c in el.iter("category"):
            label = c.text or ""
            if label not in tags:
                tags[label] = len(tags) + 1
                tags_rows.append((tags[label], label.lower().replace(" ", "-"), label))
            post_tags.append((pid, tags[label]))
        ids: dict[int, int] = {}
        for c in el.iter(f"{WP}comment"):
            g = {x.tag: x.text or "" for x in c}
            if g[f"{WP}comment_approved"] != "1":
                continue
            cid, wid = next_comment, int(g[f"{WP}comment_id"])
            next_comment += 1
            ids[wid] = cid
            kind = g[f"{WP}comment_type"]
            url = g.get(f"{WP}comment_author_url") or None
            comments.append((cid, pid, ids.get(int(g[f"{WP}comment_parent"])), kind, "import", "visible",
                             g[f"{WP}comment_author"], url, comment_html(g[f"{WP}comment_content"]),
                             url if kind == "pingback" else None, ts(g[f"{WP}comment_date_gmt"])))
            items.append((next_item, source, "comment", wid, pid, cid, None, g[f"{WP}comment_author_email"], NOW))
            next_item += 1
        if channel is not None:
            channel.remove(el)
    with db:
        db.executemany("INSERT INTO post (id, slug, ap_path, title, summary, content_md, content_html, author_name, "
                       "author_url, language, image_url, draft, published_at, updated_at, deleted_at, content_format) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", posts)
        db.executemany("INSERT INTO tag (id, name, label) VALUES (?,?,?)", tags_rows)
        db.executemany("INSERT OR IGNORE INTO post_tag (post_id, tag_id) VALUES (?,?)", post_tags)
        db.executemany("INSERT INTO interaction (id, post_id, parent_id, kind, via, status, author_name, author_url, "
                       "content_html, source_url, published_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", comments)
        db.executemany("INSERT OR IGNORE INTO legacy_path (path, post_id) VALUES (?,?)", legacy)
        db.executemany("INSERT INTO import_item (id, source, kind, wp_id, post_id, interaction_id, wp_parent_id, "
                       "author_email, imported_at) VALUES (?,?,?,?,?,?,?,?,?)", items)
    db.close()
    print(f"{len(posts)} posts, {len(comments)} comments")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--html" in sys.argv[2:]))
