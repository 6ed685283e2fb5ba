"""Recording delivery outcomes: one transaction per batch, run in the database thread pool.

Sync code on purpose: the runner calls these through ``Services.run_db`` so the event loop never
waits on the database.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from fedblog.clock import utc
from fedblog.jobs import queue
from fedblog.jobs.delivery import Outcome
from fedblog.jobs.retry import UNAVAILABLE_AFTER_DAYS, next_attempt
from fedblog.services import Services
from fedblog.store.federation import clear_host_failures

log = logging.getLogger("fedblog.worker")


def claim(services: Services, worker: str, limit: int, per_host: int, exclude: set[str],
          known_bodies: set[int], kinds: Collection[str] | None = None
          ) -> tuple[list[queue.Claimed], dict[int, queue.Outgoing]]:
    """Lease up to ``limit`` due rows of ``kinds`` (fair across hosts) and fetch the activity
    bodies not yet known."""
    s = services.settings
    now = services.clock.now()
    with Session(services.engine) as session:
        claimed = queue.claim_due(session, worker=worker, now=now, limit=limit, per_host=per_host,
                                  lease=timedelta(seconds=s.delivery_lease_seconds), exclude_hosts=exclude,
                                  kinds=kinds)
        missing = {c.activity_id for c in claimed if c.activity_id is not None} - known_bodies
        bodies = queue.activity_bodies(session, list(missing))
    return claimed, bodies


def has_due(services: Services, exclude: set[str], kinds: Collection[str] | None = None) -> bool:
    with Session(services.engine) as session:
        return queue.has_due(session, now=services.clock.now(), exclude_hosts=exclude, kinds=kinds)


def bodies(services: Services, activity_ids: set[int]) -> dict[int, queue.Outgoing]:
    with Session(services.engine) as session:
        return queue.activity_bodies(session, list(activity_ids))


def renew(services: Services, worker: str, ids: Sequence[int]) -> set[int]:
    until = services.clock.now() + timedelta(seconds=services.settings.delivery_lease_seconds)
    with Session(services.engine) as session:
        return queue.renew(session, ids, worker=worker, until=until)


def release(engine: Engine, worker: str, ids: Sequence[int]) -> None:
    with Session(engine) as session:
        queue.release(session, ids, worker=worker)
        session.commit()


def write(services: Services, worker: str, batch: Sequence[tuple[queue.Claimed, Outcome]]) -> Counter[str]:
    """Settle ``batch`` in one transaction; returns how many were sent / retried / gave up / gone."""
    now = services.clock.now()
    counts: Counter[str] = Counter()
    with Session(services.engine) as session:
        unavailable: dict[str, bool] = {}
        w = worker
        sent = [item for item, out in batch if out.kind == "sent"]
        queue.mark_sent(session, [item.id for item in sent], worker=w, now=now)
        counts["sent"] = len(sent)
        clear_host_failures(session, {item.host for item in sent}, now)
        for item, out in batch:
            if out.kind == "sent":
                continue
            if out.kind == "gone" and item.kind == queue.DELIVER:
                queue.mark_gave_up(session, item.id, worker=w, now=now, status=out.status, error=out.error)
                removed = queue.remove_followers_at(session, item.inbox)
                log.info("inbox %s is gone (410): removed %d follower(s)", item.inbox, removed)
                counts["gone"] += 1
            elif out.kind in ("give_up", "gone"):  # "gone" from another job: no followers to remove
                queue.mark_gave_up(session, item.id, worker=w, now=now, status=out.status, error=out.error)
                counts["gave_up"] += 1
            else:
                if item.host not in unavailable:
                    unavailable[item.host] = queue.record_host_failure(
                        session, item.host, now, days_for_unavailable=UNAVAILABLE_AFTER_DAYS)
                at = next_attempt(item.attempts + 1, now, utc(item.created_at), retry_after=out.retry_after,
                                  host_unavailable=unavailable[item.host])
                if at is None:
                    queue.mark_gave_up(session, item.id, worker=w, now=now, status=out.status,
                                       error=f"gave up after retrying for days; last error: {out.error}")
                    counts["gave_up"] += 1
                else:
                    queue.mark_retry(session, item.id, worker=w, now=now, at=at, status=out.status, error=out.error)
                    counts["retried"] += 1
        session.commit()
    return counts
