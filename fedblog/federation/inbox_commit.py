"""Group commit of verified, prepared activities, and what happens when it fails.

The activities ready in one loop turn are applied in one transaction (store/groupcommit.py): the
raw activity and its evidence, the domain change, the follow-up activities. If anything in a
batch fails, it is applied again in halves. A database that cannot take the write in time gives
503 + Retry-After (RFC 9110 §15.6.4), nothing stored; a bug of ours gives a dead letter and a 202,
never a 2xx-and-drop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from fedblog.federation.actors import host_of
from fedblog.federation.contract import Delivery, Handler, Ignored, InboxResult, Outcome, Processed, Refused, Tx
from fedblog.federation.markers import marked, marker_ids
from fedblog.services import Services
from fedblog.store import deferred
from fedblog.store.db import database_unavailable, request_write_limits
from fedblog.store.federation import clear_host_failures
from fedblog.store.groupcommit import Coalescer
from fedblog.store.tables import DeadLetter, InboxItem

log = logging.getLogger("fedblog.inbox")

# The database could not take the write in time (SQLite locked past its busy timeout, PostgreSQL
# lock_timeout/statement_timeout, no connection: store/db.py database_unavailable): nothing was
# stored, the sender retries (503 + Retry-After).
UNAVAILABLE = InboxResult(503, "The database is busy; nothing was stored. Please retry later.")
_INSERT_ITEM = insert(InboxItem)


@dataclass(frozen=True)
class Ready:
    """A verified activity and what its handler's ``prepare`` returned (``Ignored``: nothing to apply)."""

    delivery: Delivery
    prepared: Any


class GroupCommit:
    def __init__(self, services: Services, handlers: Mapping[str, Handler[Any]]) -> None:
        self.services = services
        self.handlers = handlers
        self.coalescer: Coalescer[Ready, InboxResult] = Coalescer(self.apply_many, run=services.run_db)
        self.split_batches = 0  # batches rolled back and applied again in halves

    def apply_many(self, rs: list[Ready]) -> list[InboxResult]:
        """Apply a batch in one transaction. If anything in it fails (a refusal, a duplicate, a bug:
        which one is not known), the transaction is rolled back and each half is applied again the
        same way, down to one activity in its own transaction: one bad activity among n costs about
        2 log2(n) extra transactions, not n, and every sender gets the answer it would have had alone."""
        if len(rs) == 1:
            return [self.apply_one(rs[0])]
        try:
            return self.apply_together(rs)
        except Exception as exc:
            if database_unavailable(exc):  # the database, not an activity: halves would only wait again
                log.warning("the database could not take a batch of %d activities: %s", len(rs), str(exc)[:200])
                return [UNAVAILABLE] * len(rs)
            self.split_batches += 1
            log.info("a batch of %d activities failed (%s: %s); applying it in halves",
                     len(rs), type(exc).__name__, str(exc)[:200])
        half = len(rs) // 2
        return self.apply_many(rs[:half]) + self.apply_many(rs[half:])

    def apply_together(self, rs: list[Ready]) -> list[InboxResult]:
        now = self.services.clock.now()
        results, items = [], []
        with Session(self.services.engine) as session, \
                request_write_limits(session.connection(), self.services.settings.db_write_timeout):
            tx = Tx(session, self.services)
            earlier = marked(session, [r.delivery for r in rs])  # one query; tx.marked gets what the batch marks
            for r in rs:
                ids = marker_ids(r.delivery)
                dropped = not (earlier.isdisjoint(ids) and tx.marked.isdisjoint(ids))
                outcome = self.outcome(tx, r, dropped)
                items.append(item_row(r.delivery, outcome, now))
                results.append(_accepted(outcome))
            deferred.flush(session)  # the replies, one executemany
            session.connection().execute(_INSERT_ITEM, items)  # one executemany
            hosts = self._hosts_to_clear(rs)
            clear_host_failures(session, hosts, now)
            session.commit()
        for host in hosts:
            self.services.remote.host_cleared(host)
        return results

    def apply_one(self, r: Ready) -> InboxResult:
        """One activity in its own transaction: the answers a batch cannot give (race, refusal, bug)."""
        d = r.delivery
        try:
            return self.apply_together([r])[0]
        except IntegrityError:
            return InboxResult(202, "Already received.")  # a concurrent copy won the race
        except Refused as exc:
            return InboxResult(exc.status, exc.reason)
        except Exception as exc:  # a bug of ours: keep the activity for the admin, never 2xx-and-drop
            if database_unavailable(exc):  # locked or unreachable: nothing stored, the sender retries
                log.warning("the database could not take %s: %s", d.activity.get("id"), str(exc)[:200])
                return UNAVAILABLE
            log.exception("inbox handler failed for %s", d.activity.get("id"))
            return self._dead_letter(d, exc)

    def outcome(self, tx: Tx, r: Ready, dropped: bool) -> Outcome:
        d = r.delivery
        handler = self.handlers.get(d.activity["type"])
        if handler is None:
            return Ignored(f"{d.activity['type']} is not handled")
        if dropped:
            return Ignored("deleted or undone before it arrived")
        if isinstance(r.prepared, Ignored):  # prepare() found nothing of ours to act on
            return r.prepared
        if handler.flush_first:
            deferred.flush(tx.session)
        return handler.apply(tx, d, r.prepared)

    def _hosts_to_clear(self, rs: list[Ready]) -> list[str]:
        remote = self.services.remote
        return [host for host in {host_of(r.delivery.actor) for r in rs} if remote.host_clear_due(host)]

    def _dead_letter(self, d: Delivery, exc: Exception) -> InboxResult:
        now = self.services.clock.now()
        error = f"{type(exc).__name__}: {exc}"[:1000]
        try:
            with Session(self.services.engine) as session:
                item = {**item_row(d, Ignored(""), now), "state": "failed", "error": error}
                session.add(InboxItem(**item))
                session.add(
                    DeadLetter(source="inbox", ref=d.activity["id"], error=error, payload=item["raw"], created_at=now)
                )
                session.commit()
        except IntegrityError:
            return InboxResult(202, "Already received.")
        except Exception:
            log.exception("could not store a failed inbox item")
            return InboxResult(503, "Could not store the activity; please retry later.")
        return InboxResult(202, "Accepted (stored for review).")


def item_row(d: Delivery, outcome: Outcome, now: Any) -> dict[str, Any]:
    """The stored evidence of a received activity: its raw bytes, signer, scheme and outcome."""
    state = "processed" if isinstance(outcome, Processed) else "ignored"
    return {
        "ap_id": d.activity["id"], "type": d.activity["type"], "actor_ap_id": d.actor, "signer_key_id": d.key_id,
        "signature_scheme": d.scheme, "raw": d.raw.decode("utf-8", "replace"), "received_at": now,
        "state": state, "error": None if state == "processed" else str(outcome), "processed_at": now,
    }


def _accepted(outcome: Outcome) -> InboxResult:
    return InboxResult(202, "Accepted." if isinstance(outcome, Processed) else f"Accepted ({outcome}).")
