"""Dead-lettered inbox activities: applied again once the bug that stopped them is fixed.

The activity was verified when it arrived (the stored row holds the signer and scheme), so it is
not verified again: it goes through ``prepare`` and ``apply`` as on the first day.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from fedblog.federation.actors import ActorError
from fedblog.federation.contract import Delivery, Processed, Refused, Tx
from fedblog.federation.inbox_commit import GroupCommit, Ready
from fedblog.federation.markers import marked
from fedblog.store import deferred
from fedblog.store.tables import DeadLetter, InboxItem

log = logging.getLogger("fedblog.inbox")


async def retry_failed(commit: GroupCommit, item_id: int) -> str:
    """Apply a dead-lettered activity again; returns its new state.

    On success (or when it turns out to be a duplicate, or is refused now) the row leaves the
    ``failed`` state and its dead letter is removed; if it fails again, both stay, with the new
    error. Raises LookupError for an id that is not a failed inbox item.
    """
    services = commit.services
    raw, actor, key_id, scheme = await services.run_db(_load_failed, commit, item_id)
    try:
        activity = json.loads(raw)
    except ValueError:
        return await services.run_db(_settle, commit, item_id, "failed", "the stored activity is not valid JSON")
    d = Delivery(activity=activity, actor=actor, key_id=key_id, scheme=scheme, raw=raw.encode(), recipient=None)
    handler = commit.handlers.get(activity.get("type", ""))
    prepared: Any = None
    try:
        if handler is not None:
            prepared = await handler.prepare(services, d)
    except (Refused, ActorError) as exc:  # a fetch failed, say: keep it for a later retry
        reason = f"cannot prepare it: {getattr(exc, 'reason', exc)}"
        return await services.run_db(_settle, commit, item_id, "failed", reason)
    return await services.run_db(_reapply, commit, Ready(d, prepared), item_id)


def _load_failed(commit: GroupCommit, item_id: int) -> tuple[str, str, str, str]:
    with Session(commit.services.engine) as session:
        row = session.get(InboxItem, item_id)
        if row is None or row.state != "failed":
            raise LookupError(f"no failed inbox item {item_id}: see 'fedblog inbox failed'")
        return row.raw, row.actor_ap_id, row.signer_key_id, row.signature_scheme


def _reapply(commit: GroupCommit, r: Ready, item_id: int) -> str:
    try:
        with Session(commit.services.engine) as session:
            outcome = commit.outcome(Tx(session, commit.services), r, bool(marked(session, [r.delivery])))
            deferred.flush(session)
            state = "processed" if isinstance(outcome, Processed) else "ignored"
            _settle_in(commit, session, item_id, state, None if state == "processed" else str(outcome))
            session.commit()
        return state
    except IntegrityError:
        return _settle(commit, item_id, "ignored", "ignored: already applied under another activity")
    except Refused as exc:  # not acceptable (someone else's comment, say): as it would have been answered
        return _settle(commit, item_id, "ignored", f"ignored: refused on retry ({exc.status}): {exc.reason}")
    except Exception as exc:
        log.exception("retrying inbox item %s failed", item_id)
        return _settle(commit, item_id, "failed", f"{type(exc).__name__}: {exc}"[:1000])


def _settle(commit: GroupCommit, item_id: int, state: str, error: str | None) -> str:
    with Session(commit.services.engine) as session:
        _settle_in(commit, session, item_id, state, error)
        session.commit()
    return state


def _settle_in(commit: GroupCommit, session: Session, item_id: int, state: str, error: str | None) -> None:
    row = session.get(InboxItem, item_id)
    assert row is not None
    row.state, row.error, row.processed_at = state, error, commit.services.clock.now()
    session.add(row)
    letters = session.exec(
        select(DeadLetter).where(col(DeadLetter.source) == "inbox", col(DeadLetter.ref) == row.ap_id)
    ).all()
    for letter in letters:
        if state == "failed":
            letter.error = error or letter.error
            session.add(letter)
        else:
            session.delete(letter)
