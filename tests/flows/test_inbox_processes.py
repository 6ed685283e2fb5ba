"""Two real ``fedblog serve`` processes share one database, and every activity reaches both at once.

Each process batches the POSTs it has in hand (group commit), so the two race on the same unique
keys from inside larger transactions: on PostgreSQL one waits on the other's uncommitted insert,
on SQLite one waits for the other's write lock. Whatever the interleaving, each activity must have
exactly one effect, one sender must hear "Accepted." and the other "Already received.", and
nothing may be dead-lettered.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, func, select

from fedblog.blog.posts import parse_post_source
from fedblog.federation.publishing import publish
from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.db import migrate, session_scope
from fedblog.store.tables import Actor, DeadLetter, InboxItem, Interaction
from tests.fediverse import builders, signing
from tests.fediverse.instance import FakeActor
from tests.servers import clean_env, fedblog_serve, free_port

SLUG = "two-servers"


def test_the_same_activities_at_two_servers_at_once_have_one_effect_each(tmp_path: Path, database_url: str) -> None:
    ports = [free_port(), free_port()]
    public = f"http://127.0.0.1:{ports[0]}"  # both processes are this one blog
    env = clean_env(
        FEDBLOG_BASE_URL=public,
        FEDBLOG_DATA_DIR=str(tmp_path / "data"),
        FEDBLOG_DATABASE_URL=database_url,
        FEDBLOG_WORKER="off",
        FEDBLOG_MODERATION="approve-all",
    )
    services = build_services(load_settings(env))
    actors = [FakeActor("mastodon.test", f"user{i}", f"User {i}") for i in range(10)]
    now = datetime.now(UTC)
    try:
        migrate(services.engine)
        with session_scope(services.engine) as session:
            publish(session, services, parse_post_source(f"---\ntitle: Two servers\nslug: {SLUG}\n---\nHello.\n"))
            for a in actors:  # keys cached, as after an earlier visit: no fetch needed
                session.add(Actor(
                    ap_id=a.id, host=a.host, preferred_username=a.username, handle=f"{a.username}@{a.host}",
                    name=a.name, url=f"https://{a.host}/@{a.username}", inbox=a.inbox, shared_inbox=a.shared_inbox,
                    key_id=a.key_id, public_key_pem=signing.public_pem(a.key), fetched_at=now,
                ))
    finally:
        services.engine.dispose()

    post = f"{public}/posts/{SLUG}"
    authors = [actors[i % 10] for i in range(60)]
    activities = [(a, builders.reply(a, post, f"<p>twice {i}</p>", now)[0]) for i, a in enumerate(authors)]

    def send(base: str, actor: FakeActor, activity: dict[str, object]) -> tuple[str, int, str]:
        """POST as a real sender does: a 503 (a lock timeout or deadlock between the two processes'
        batches on PostgreSQL, answered with Retry-After) is retried, freshly signed."""
        body = json.dumps(activity).encode()
        for _attempt in range(5):
            headers = signing.sign("POST", f"{public}/inbox", body, actor.key, actor.key_id)  # Host: the public one
            req = urllib.request.Request(f"{base}/inbox", data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return str(activity["id"]), int(r.status), r.read().decode()
            except urllib.error.HTTPError as exc:
                if exc.code != 503 or not exc.headers.get("Retry-After"):
                    raise
                time.sleep(0.2)  # shorter than Retry-After: the test only needs the other batch to finish
        raise AssertionError(f"{activity['id']} was answered 503 five times")

    with ExitStack() as stack:
        bases = [stack.enter_context(fedblog_serve(env, p, tmp_path / f"server{n}.log", f"/posts/{SLUG}"))
                 for n, p in enumerate(ports)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
            jobs = [pool.submit(send, base, a, doc) for a, doc in activities for base in bases]
            answers = [j.result() for j in jobs]

    assert {status for _, status, _ in answers} == {202}
    by_activity: dict[str, Counter[str]] = {}
    for ap_id, _, text in answers:
        by_activity.setdefault(ap_id, Counter())[text] += 1
    assert all(c == Counter({"Accepted.": 1, "Already received.": 1}) for c in by_activity.values()), by_activity
    engine = build_services(load_settings(env)).engine
    try:
        with Session(engine) as s:
            assert s.exec(select(func.count()).select_from(Interaction).where(Interaction.kind == "reply")).one() == 60
            assert s.exec(select(func.count()).select_from(InboxItem).where(InboxItem.state == "processed")).one() == 60
            assert s.exec(select(func.count()).select_from(DeadLetter)).one() == 0
    finally:
        engine.dispose()
