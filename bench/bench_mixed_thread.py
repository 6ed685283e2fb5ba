#!/usr/bin/env python3
"""The 300-comment post page with a *mixed* thread, against the same synthetic ceiling, in one run.

Like ``bench_pages.py`` (whose method, servers, wrk runs and report this reuses), but the 300
interactions of the big post come from every channel and are published as fedblog publishes them:
fediverse replies (stored as the inbox stores them), web comments with consent (published as
``Create(Note)`` of their guest, some answering fediverse replies), pingbacks (notes of their site)
and Webmentions (replies and mentions as notes, likes and reposts as ``Like``/``Announce`` of their
site), each through ``fedblog.federation.local_comments.publish``: guest and site actors, keys,
signed Notes and activities are all in the database the server reads. The ceiling renders the same
``post.html`` from a JSON snapshot of the same rows (``ceiling_pages_app.py``).

Target: req/s (c50) >= 0.5x the ceiling's, unloaded p50 (c1) <= 2x; median of per-round ratios.

    python bench/bench_mixed_thread.py --rounds 3 --duration 10 --check
    python bench/bench_mixed_thread.py --rounds 1 --duration 3 --latency-duration 2   # smoke

Prints a Markdown report and writes JSON to bench/results/mixed-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench_pages as bp
from benchlib import finish_workdir, free_port

MIXED_SLUG = "bench-mixed-thread"
PAGES = {"mixed": MIXED_SLUG}
COMMENTS = 300


def mixed_post_source() -> str:
    return bp.big_post_source().replace(f"slug: {bp.BIG_SLUG}", f"slug: {MIXED_SLUG}").replace(
        "title: A busy thread with three hundred comments",
        "title: A mixed thread of fediverse replies, web comments and linkbacks")


def plan() -> list[dict[str, Any]]:
    """300 interactions: 40% fediverse replies, 30% web comments, 10% pingbacks, 20% Webmentions."""
    rng = random.Random(301)
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for i in range(COMMENTS):
        user = f"reader{rng.randint(1, 60)}"
        roll = rng.random()
        channel = "fediverse" if roll < 0.4 else "web" if roll < 0.7 else "pingback" if roll < 0.8 else "webmention"
        answerable = [j for j, c in enumerate(out) if c["channel"] in ("fediverse", "web")]
        out.append({
            "channel": channel, "user": user, "html": f"<p>{bp._paragraph(rng)}</p>",
            "parent": rng.choice(answerable) if channel in ("fediverse", "web") and answerable and rng.random() < 0.45
            else None,
            "wm_kind": rng.choice(("reply", "mention", "like", "repost")),
            "published_at": start + timedelta(minutes=7 * i),
        })
    return out


def build_database(database_url: str, env: dict[str, str]) -> dict[str, Any]:
    from sqlmodel import Session

    from fedblog.blog import interactions as rec
    from fedblog.blog.markup import sanitize_remote_html
    from fedblog.blog.posts import parse_post_source, save_post
    from fedblog.federation import local_comments
    from fedblog.services import build_services
    from fedblog.settings import load_settings
    from fedblog.store import interactions as interaction_store
    from fedblog.store import posts as post_store
    from fedblog.store.db import migrate, session_scope
    from fedblog.store.tables import Interaction

    services = build_services(load_settings(env))
    engine = services.engine
    try:
        migrate(engine)
        with session_scope(engine) as session:
            post = save_post(session, parse_post_source(mixed_post_source(), where="bench post"),
                             now=datetime(2026, 11, 20, 9, tzinfo=UTC), default_author="Ann",
                             default_language="en").post
            assert post.id is not None
            ids: list[int] = []
            for n, c in enumerate(plan()):
                parent = ids[c["parent"]] if c["parent"] is not None else None
                html, when, user = sanitize_remote_html(c["html"]), c["published_at"], c["user"]
                if c["channel"] == "fediverse":
                    item = Interaction(
                        post_id=post.id, parent_id=parent, kind="reply", via="activitypub", status="visible",
                        ap_id=f"https://social.example/users/{user}/statuses/{1000 + n}",
                        author_name=user.capitalize(), author_url=f"https://social.example/@{user}",
                        author_handle=f"{user}@social.example", author_avatar=f"https://social.example/avatars/{user}.png",
                        content_html=html, published_at=when)
                    session.add(item)
                    session.flush()
                elif c["channel"] == "web":
                    item = rec.record_web_comment(session, "approve-all", author=rec.Author(
                        user.capitalize(), url=f"https://{user}.example/"), post_id=post.id, parent_id=parent,
                        content_html=html, published_at=when)
                elif c["channel"] == "pingback":
                    item = rec.record_pingback(session, "approve-all", post_id=post.id,
                                               source_url=f"https://{user}.example/posts/{n}", site_name=user,
                                               title=f"A post by {user}", published_at=when)
                    item.content_html = html
                else:
                    item = rec.record_webmention(session, "approve-all", post_id=post.id,
                                                 source_url=f"https://{user}.example/notes/{n}",
                                                 author=rec.Author(user.capitalize(), url=f"https://{user}.example/"),
                                                 title=None, content_html=html, published_at=when)
                    item.kind = c["wm_kind"]
                item.federated = True
                local_comments.publish(session, services, item, quiet=True)
                assert item.id is not None
                ids.append(item.id)
        snapshot: dict[str, Any] = {}
        with Session(engine) as session:
            p = post_store.get_post_by_slug(session, MIXED_SLUG)
            assert p is not None and p.id is not None
            snapshot[MIXED_SLUG] = {
                "post": bp._plain_row(p),
                "tags": [bp._plain_row(t) for t in post_store.tags_for_posts(session, [p.id]).get(p.id, [])],
                "interactions": [bp._plain_row(i) for i in interaction_store.list_for_post(session, p.id)],
            }
            published = sum(1 for i in snapshot[MIXED_SLUG]["interactions"]
                            if i["via"] != "activitypub" and i["ap_id"])
        with engine.connect() as conn:
            if database_url.startswith("sqlite"):
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        print(f"mixed thread: {len(snapshot[MIXED_SLUG]['interactions'])} interactions, {published} published "
              "local comments and linkbacks", file=sys.stderr)
        return snapshot
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10, help="seconds of each loaded c50 run (default 10)")
    ap.add_argument("--latency-duration", type=float, default=5, help="seconds of each unloaded c1 run (default 5)")
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 2 <= args.duration <= 600 or not 2 <= args.latency_duration <= 600 \
            or not 0 <= args.warmup <= 60:
        ap.error("--rounds must be 1-50, --duration and --latency-duration 2-600 s, --warmup 0-60 s")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    bp.PAGES = PAGES  # the shared measuring and reporting code reads the pages from here
    workdir = Path(tempfile.mkdtemp(prefix="fedblog-bench-mixed-"))
    try:
        ports = {"fedblog": free_port(), "ceiling": free_port()}
        env = {
            **os.environ,
            "FEDBLOG_BASE_URL": f"http://127.0.0.1:{ports['fedblog']}",
            "FEDBLOG_DATA_DIR": str(workdir / "data"),
            "FEDBLOG_DATABASE_URL": f"sqlite:///{workdir / 'data' / 'fedblog.db'}",
            "FEDBLOG_SECRET_KEY": "bench",
            "FEDBLOG_WORKER": "off",
            "FEDBLOG_PAGE_CACHE_MB": "0",  # the render path, as bench_pages.py measures it
            "BENCH_PAGES_SNAPSHOT": str(workdir / "snapshot.json"),
        }
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        snapshot = build_database(env["FEDBLOG_DATABASE_URL"], env)
        Path(env["BENCH_PAGES_SNAPSHOT"]).write_text(json.dumps(snapshot), encoding="utf-8")
        lua = workdir / "report.lua"
        lua.write_text(bp.WRK_LUA, encoding="utf-8")
        measurements: list[bp.Measurement] = []
        bodies: dict[tuple[str, str], bytes] = {}
        for rnd in range(1, args.rounds + 1):
            order = bp.SERVERS if rnd % 2 else tuple(reversed(bp.SERVERS))
            for conns, seconds in ((50, args.duration), (1, args.latency_duration)):
                for name in order:
                    m = bp.measure(name, "mixed", conns, seconds, rnd, ports[name], env, workdir, lua, bodies,
                                   args.warmup)
                    measurements.append(m)
                    print(f"round {rnd} mixed {name:8} c{conns:<3} {m.rps:9,.0f} req/s  p50 {m.p50_ms:7.2f} ms  "
                          f"errors {m.errors}", file=sys.stderr)
        identical = bp.same_page(bodies[("fedblog", "mixed")], bodies[("ceiling", "mixed")])
        sizes = {"mixed": len(bodies[("fedblog", "mixed")])}
        table, summary = bp.summarize(measurements, args.rounds, sizes)
        env_info = bp.environment()
        print("\n".join([
            f"## fedblog mixed-thread page vs synthetic ceiling ({args.rounds} rounds, c50 {args.duration:g} s, "
            f"c1 {args.latency_duration:g} s)", "",
            f"git {env_info['git']}, Python {env_info['python']}, {env_info['cpus']} CPUs; /posts/{MIXED_SLUG}: "
            f"{sizes['mixed']:,} B, identical HTML from both servers: {'yes' if identical else 'NO'}", "", table]))
        bp.RESULTS.mkdir(exist_ok=True)
        out = bp.RESULTS / f"mixed-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps({"args": vars(args), "environment": env_info, "identical_html": identical,
                                   "summary": summary, "measurements": [asdict(m) for m in measurements]},
                                  indent=2), encoding="utf-8")
        failed = not all(c["pass"] for c in summary["checks"].values()) or not identical
        return 1 if args.check and (failed or any(m.errors for m in measurements)) else 0
    finally:
        finish_workdir(workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
