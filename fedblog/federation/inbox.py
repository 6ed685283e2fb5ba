"""The inbox pipeline (DESIGN.md "The inbox"; SECURITY.md invariants 1-4, 8, 9).

    parse JSON (depth cap) -> blocked? -> signature headers -> key (cache, guarded fetch)
    -> verify (refetch the key once on failure) -> signer == actor -> origin containment
    -> dedupe by activity id -> handler.prepare (fetches, after verification only)
    -> one transaction: raw activity + evidence, domain change, follow-up activities -> 202

Every refusal is an ``InboxResult`` with a 4xx status and a sentence; nothing is stored then.
Handlers are registered by activity type; types without a handler are stored as "ignored".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, insert, literal_column, union_all
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.selectable import CompoundSelect
from sqlmodel import Session, col, select

from fedblog.activitypub import httpsig
from fedblog.federation import moderation
from fedblog.federation.actors import ActorError, host_of, refetch_key, resolve_key, same_id
from fedblog.federation.cache import ResolvedKey
from fedblog.net.fetch import json_depth_ok
from fedblog.services import Services
from fedblog.store import deferred
from fedblog.store.db import database_unavailable, request_write_limits
from fedblog.store.federation import clear_host_failures
from fedblog.store.groupcommit import Coalescer
from fedblog.store.tables import DeadLetter, InboxItem, ModerationRule, ObjectMarker

log = logging.getLogger("fedblog.inbox")
MAX_DEPTH = 32
MAX_ADDRESSEES = 500
MAX_URL = 2048  # an activity, actor or key id
MAX_HOST, MAX_LABELS = 253, 127  # what DNS allows


# the hot statements, built once
# blocked? already received? for a whole batch of POSTs in one round trip
_PRECHECK: "CompoundSelect[Any, str]" = union_all(  # noqa: UP037 (SQLAlchemy 2.0: not generic at run time)
    sa_select(literal_column("'b'"), col(ModerationRule.target)).where(
        col(ModerationRule.action) == "block", col(ModerationRule.target).in_(bindparam("targets", expanding=True))
    ),
    sa_select(literal_column("'s'"), col(InboxItem.ap_id)).where(
        col(InboxItem.ap_id).in_(bindparam("ids", expanding=True))
    ),
)
_INSERT_ITEM = insert(InboxItem)
_MARKED = sa_select(col(ObjectMarker.ap_id)).where(col(ObjectMarker.ap_id).in_(bindparam("ids", expanding=True)))
_MARKERS_WRITTEN = "fedblog.markers_written"  # session.info key: ids marked in this transaction


@dataclass(frozen=True)
class InboxResult:
    status: int
    reason: str


# The database could not take the write in time (SQLite locked past its busy timeout, PostgreSQL
# lock_timeout/statement_timeout, no connection: store/db.py database_unavailable): nothing was
# stored, the sender retries (503 + Retry-After).
UNAVAILABLE = InboxResult(503, "The database is busy; nothing was stored. Please retry later.")


class Refused(Exception):
    """A handler refuses the activity: nothing is stored, the sender gets ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Delivery:
    """One verified incoming activity, as handlers see it."""

    activity: dict[str, Any]
    actor: str
    key_id: str
    scheme: str
    raw: bytes
    recipient: str | None
    notes: dict[str, Any] = field(default_factory=dict)  # what prepare() learned, for apply()


Prepare = Callable[[Services, Delivery], Awaitable[None]]
Apply = Callable[[Session, Services, Delivery], str]  # returns "processed" or "ignored: why"


@dataclass(frozen=True)
class Handler:
    prepare: Prepare
    apply: Apply
    # False: apply() reads no rows that other activities of its batch may have deferred (store/deferred.py),
    # or flushes them itself before it does; True (the safe default): the inbox flushes them first
    flush_first: bool = True


async def no_preparation(services: Services, d: Delivery) -> None:
    """For handlers that need nothing fetched before their transaction."""


def id_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(ident := value.get("id"), str):
        return ident
    return None


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


def _shape_error(doc: Any, body: bytes) -> str | None:
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


def _verify_with(sig: httpsig.SignatureInput, key: ResolvedKey) -> httpsig.Verification:
    if key.public_key is None:
        failure = httpsig.VerifyFailure(
            httpsig.FailureReason.key_mismatch, "the sender's publicKeyPem is not a usable key"
        )
        return httpsig.Verification(ok=False, key_id=sig.key_id, scheme=sig.scheme, failure=failure)
    return httpsig.verify_signature(sig, key.public_key)


class Inbox:
    def __init__(self, services: Services, handlers: Mapping[str, Handler]) -> None:
        self.services = services
        self.handlers = dict(handlers)
        self.remote = services.remote
        self.expected_host = urlsplit(services.settings.base_url).netloc
        # group commit (store/groupcommit.py): the POSTs ready in one loop turn share their round trips
        # both run in the database pool (services.run_db): the event loop never waits on the database
        self.prechecks: Coalescer[tuple[str, list[str]], tuple[bool, bool] | None] = Coalescer(
            self._precheck_many, run=services.run_db, concurrency=2)
        self.commits: Coalescer[Delivery, InboxResult] = Coalescer(self._apply_many, run=services.run_db)
        self.split_batches = 0  # batches rolled back and applied again in halves

    async def receive(self, *, method: str, target: str, headers: Mapping[str, str], body: bytes,
                      scheme: str, recipient: str | None) -> InboxResult:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return InboxResult(400, "The body is not valid JSON.")
        problem = _shape_error(doc, body)
        if problem:
            return InboxResult(400, f"Refused: {problem}.")
        actor = id_of(doc["actor"])
        assert actor is not None
        sig = httpsig.prepare_verification(method, target, headers, body, now=self.services.clock.now(), scheme=scheme,
                                           expected_host=self.expected_host)
        if isinstance(sig, httpsig.VerifyFailure):
            return InboxResult(sig.status, f"Signature refused ({sig.reason.value}): {sig.detail}")
        if problem := url_problem(sig.key_id, "signature's keyId"):
            return InboxResult(400, f"Refused: {problem}.")
        checked = await self.prechecks.submit((doc["id"], moderation.block_targets((actor, sig.key_id))))
        if checked is None:
            return InboxResult(503, "The database is unavailable; nothing was stored. Please retry later.")
        blocked, seen = checked
        if blocked:
            return InboxResult(403, "Refused: this actor or its domain is blocked here.")
        verified = await self._verify(sig, doc, actor)  # before "seen": a replay learns nothing unverified
        if isinstance(verified, InboxResult):
            return verified
        actor = verified  # the signer's id as its own document spells it (hosts compare normalised)
        if seen:  # a verified redelivery: its key is cached, so this costs a signature check and no write
            return InboxResult(202, "Already received.")
        problem = self._origin_problem(doc, actor)
        if problem:
            return InboxResult(400, f"Refused: {problem}.")
        delivery = Delivery(
            activity=doc, actor=actor, key_id=sig.key_id, scheme=sig.scheme, raw=body, recipient=recipient
        )
        return await self._dispatch(delivery)

    async def _verify(self, sig: httpsig.SignatureInput, doc: dict[str, Any], actor: str) -> InboxResult | str:
        """The verified signer's id, or the refusal: 503 + Retry-After when the key cannot be had now."""
        try:
            key = await resolve_key(self.services, self.remote, sig.key_id)
        except ActorError as exc:
            if exc.status == 410 and doc["type"] == "Delete" and id_of(doc.get("object")) == actor:
                return InboxResult(202, "Ignored: a Delete of an actor we never knew.")
            return _key_refusal(sig.key_id, exc)
        result = _verify_with(sig, key)
        if not result.ok:
            try:  # the sender may have rotated its key: refetch it (once per key id per 5 minutes)
                fresh = await refetch_key(self.services, self.remote, sig.key_id)
            except ActorError as exc:
                return _key_refusal(sig.key_id, exc) if exc.temporary else InboxResult(
                    401, f"Signature refused: the signature does not verify and key {sig.key_id} "
                         f"cannot be fetched again: {exc.reason}")
            if fresh is not None:
                key, result = fresh, _verify_with(sig, fresh)
        if not result.ok:
            detail = result.failure.detail if result.failure else "the signature does not verify"
            return InboxResult(401, f"Signature refused: {detail}")
        if not same_id(key.owner, actor):
            return InboxResult(401, f"Signature refused: signed by {key.owner}, but the activity's actor is {actor}.")
        return key.owner

    @staticmethod
    def _origin_problem(doc: dict[str, Any], actor: str) -> str | None:
        actor_host = host_of(actor)
        if host_of(doc["id"]) != actor_host:
            return "the activity id is not on the actor's host"
        obj = doc.get("object")
        if isinstance(obj, dict) and isinstance(obj.get("id"), str) and doc["type"] in ("Create", "Update"):
            if host_of(obj["id"]) != actor_host:
                return "the embedded object belongs to another host"
            author = id_of(obj.get("attributedTo")) or id_of(obj.get("actor"))
            if (
                author is not None
                and not same_id(author, actor)
                and obj.get("type") not in ("Person", "Service", "Application", "Group", "Organization")
            ):
                return "the embedded object is attributed to someone else"
        return None

    def _precheck_many(self, items: list[tuple[str, list[str]]]) -> list[tuple[bool, bool] | None]:
        """(blocked, already received) for each (activity id, block targets): one statement for the batch.

        None for an item whose check could not run (the database failed): if the batch's query fails,
        each item is checked on its own, so one item cannot take the others down with it.
        """
        try:
            return self._precheck_query(items)
        except SQLAlchemyError:
            if len(items) == 1:
                log.exception("inbox pre-check failed for %s", items[0][0])
                return [None]
            log.warning("inbox pre-check of a batch of %d failed; checking each on its own", len(items), exc_info=True)
        return [self._precheck_many([item])[0] for item in items]

    def _precheck_query(self, items: list[tuple[str, list[str]]]) -> list[tuple[bool, bool] | None]:
        params = {"ids": sorted({ap_id for ap_id, _ in items}), "targets": sorted({t for _, ts in items for t in ts})}
        with self.services.engine.connect() as conn:  # a bare connection: no ORM session to build
            with request_write_limits(conn, self.services.settings.db_write_timeout, reads_only=True):
                rows = conn.execute(_PRECHECK, params).all()
        blocked = {value for kind, value in rows if kind == "b"}
        seen = {value for kind, value in rows if kind == "s"}
        return [(not blocked.isdisjoint(targets), ap_id in seen) for ap_id, targets in items]

    async def _dispatch(self, d: Delivery) -> InboxResult:
        handler = self.handlers.get(d.activity["type"])
        dropped = False
        if handler is not None and isinstance(d.activity.get("object"), str) and d.activity["type"] == "Create":
            try:  # spare a fetch for something already deleted
                dropped = bool(await self.services.run_db(self._marked_now, d))
            except SQLAlchemyError as exc:
                if database_unavailable(exc):
                    return UNAVAILABLE
                raise
        try:
            if handler is not None and not dropped:
                await handler.prepare(self.services, d)
        except Refused as exc:
            return InboxResult(exc.status, exc.reason)
        except ActorError as exc:
            if exc.temporary:
                return InboxResult(503, f"Cannot fetch what the activity needs now ({exc.reason}); please retry later.")
            return InboxResult(400, f"Refused: {exc.reason}")
        return await self.commits.submit(d)

    def _apply_many(self, ds: list[Delivery]) -> list[InboxResult]:
        """Apply a batch in one transaction. If anything in it fails (a refusal, a duplicate, a bug:
        which one is not known), the transaction is rolled back and each half is applied again the
        same way, down to one activity in its own transaction: one bad activity among n costs about
        2 log2(n) extra transactions, not n, and every sender gets the answer it would have had alone."""
        if len(ds) == 1:
            return [self._apply_one(ds[0])]
        try:
            return self._apply_together(ds)
        except Exception as exc:
            if database_unavailable(exc):  # the database, not an activity: halves would only wait again
                log.warning("the database could not take a batch of %d activities: %s", len(ds), str(exc)[:200])
                return [UNAVAILABLE] * len(ds)
            self.split_batches += 1
            log.info("a batch of %d activities failed (%s: %s); applying it in halves",
                     len(ds), type(exc).__name__, str(exc)[:200])
        half = len(ds) // 2
        return self._apply_many(ds[:half]) + self._apply_many(ds[half:])

    def _apply_together(self, ds: list[Delivery]) -> list[InboxResult]:
        now = self.services.clock.now()
        results, items = [], []
        with Session(self.services.engine) as session, \
                request_write_limits(session.connection(), self.services.settings.db_write_timeout):
            marked = self._marked(session, ds)  # one query for the batch; mark() adds what the batch marks
            for d in ds:
                written: set[str] = session.info.get(_MARKERS_WRITTEN, set())
                dropped = not (marked.isdisjoint(_marker_ids(d)) and written.isdisjoint(_marker_ids(d)))
                outcome = self._outcome(session, d, dropped)
                items.append(self._item(d, outcome, now))
                results.append(_accepted(outcome))
            deferred.flush(session)  # the replies, one executemany
            session.connection().execute(_INSERT_ITEM, items)  # one executemany
            hosts = self._hosts_to_clear(ds)
            clear_host_failures(session, hosts, now)
            session.commit()
        self._cleared(hosts)
        return results

    def _apply_one(self, d: Delivery) -> InboxResult:
        """One activity in its own transaction: the answers a batch cannot give (race, refusal, bug)."""
        try:
            return self._apply_together([d])[0]
        except IntegrityError:
            return InboxResult(202, "Already received.")  # a concurrent copy won the race
        except Refused as exc:
            return InboxResult(exc.status, exc.reason)
        except Exception as exc:  # a bug of ours: keep the activity for the admin, never 2xx-and-drop
            if database_unavailable(exc):  # locked or unreachable: nothing stored, the sender retries
                log.warning("the database could not take %s: %s", d.activity.get("id"), str(exc)[:200])
                return UNAVAILABLE
            log.exception("inbox handler failed for %s", d.activity.get("id"))
            return self._dead_letter(d, self._item(d, "failed", self.services.clock.now()), exc)

    def _outcome(self, session: Session, d: Delivery, dropped: bool) -> str:
        handler = self.handlers.get(d.activity["type"])
        if handler is None:
            return f"ignored: {d.activity['type']} is not handled"
        if dropped:
            return "ignored: deleted or undone before it arrived"
        if "ignore" in d.notes:  # prepare() found nothing of ours to act on
            return f"ignored: {d.notes['ignore']}"
        if handler.flush_first:
            deferred.flush(session)
        return handler.apply(session, self.services, d)

    @staticmethod
    def _item(d: Delivery, outcome: str, now: Any) -> dict[str, Any]:
        state = "processed" if outcome == "processed" else "ignored"
        return {
            "ap_id": d.activity["id"], "type": d.activity["type"], "actor_ap_id": d.actor, "signer_key_id": d.key_id,
            "signature_scheme": d.scheme, "raw": d.raw.decode("utf-8", "replace"), "received_at": now,
            "state": state, "error": None if state == "processed" else outcome, "processed_at": now,
        }

    def _hosts_to_clear(self, ds: list[Delivery]) -> list[str]:
        return [host for host in {host_of(d.actor) for d in ds} if self.remote.host_clear_due(host)]

    def _cleared(self, hosts: list[str]) -> None:
        for host in hosts:
            self.remote.host_cleared(host)

    def _marked_now(self, d: Delivery) -> set[str]:
        with Session(self.services.engine) as session:
            return self._marked(session, [d])

    @staticmethod
    def _marked(session: Session, ds: list[Delivery]) -> set[str]:
        """The ids among ``ds`` that a Delete or Undo, arrived first, marked (invariant 9)."""
        ids = sorted({i for d in ds for i in _marker_ids(d)})
        return set(session.connection().execute(_MARKED, {"ids": ids}).scalars())

    def _dead_letter(self, d: Delivery, item: dict[str, Any], exc: Exception) -> InboxResult:
        now = self.services.clock.now()
        error = f"{type(exc).__name__}: {exc}"[:1000]
        try:
            with Session(self.services.engine) as session:
                item = {**item, "state": "failed", "error": error, "processed_at": now}
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

    # -- dead letters ------------------------------------------------------------------------------
    async def retry_failed(self, item_id: int) -> str:
        """Apply a dead-lettered activity again, once its cause is fixed; returns its new state.

        The activity was verified when it arrived (the stored row holds the signer and scheme), so
        it is not verified again: it goes through ``prepare`` and ``apply`` as on the first day. On
        success (or when it turns out to be a duplicate, or is refused now) the row leaves the
        ``failed`` state and its dead letter is removed; if it fails again, both stay, with the new
        error. Raises LookupError for an id that is not a failed inbox item.
        """
        raw, actor, key_id, scheme = await self.services.run_db(self._load_failed, item_id)
        try:
            activity = json.loads(raw)
        except ValueError:
            return await self.services.run_db(self._settle, item_id, "failed", "the stored activity is not valid JSON")
        d = Delivery(activity=activity, actor=actor, key_id=key_id, scheme=scheme, raw=raw.encode(), recipient=None)
        handler = self.handlers.get(activity.get("type", ""))
        try:
            if handler is not None:
                await handler.prepare(self.services, d)
        except (Refused, ActorError) as exc:  # a fetch failed, say: keep it for a later retry
            reason = f"cannot prepare it: {getattr(exc, 'reason', exc)}"
            return await self.services.run_db(self._settle, item_id, "failed", reason)
        return await self.services.run_db(self._reapply, d, item_id)

    def _load_failed(self, item_id: int) -> tuple[str, str, str, str]:
        with Session(self.services.engine) as session:
            row = session.get(InboxItem, item_id)
            if row is None or row.state != "failed":
                raise LookupError(f"no failed inbox item {item_id}: see 'fedblog inbox failed'")
            return row.raw, row.actor_ap_id, row.signer_key_id, row.signature_scheme

    def _reapply(self, d: Delivery, item_id: int) -> str:
        try:
            with Session(self.services.engine) as session:
                outcome = self._outcome(session, d, bool(self._marked(session, [d])))
                deferred.flush(session)
                state = "processed" if outcome == "processed" else "ignored"
                self._settle_in(session, item_id, state, None if state == "processed" else outcome)
                session.commit()
            return state
        except IntegrityError:
            return self._settle(item_id, "ignored", "ignored: already applied under another activity")
        except Refused as exc:  # not acceptable (someone else's comment, say): as it would have been answered
            return self._settle(item_id, "ignored", f"ignored: refused on retry ({exc.status}): {exc.reason}")
        except Exception as exc:
            log.exception("retrying inbox item %s failed", item_id)
            return self._settle(item_id, "failed", f"{type(exc).__name__}: {exc}"[:1000])

    def _settle(self, item_id: int, state: str, error: str | None) -> str:
        with Session(self.services.engine) as session:
            self._settle_in(session, item_id, state, error)
            session.commit()
        return state

    def _settle_in(self, session: Session, item_id: int, state: str, error: str | None) -> None:
        row = session.get(InboxItem, item_id)
        assert row is not None
        row.state, row.error, row.processed_at = state, error, self.services.clock.now()
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


def mark(session: Session, services: Services, ap_id: str, actor: str, reason: str) -> None:
    """A Delete or Undo named ``ap_id`` before its original arrived: leave a persistent marker, so the
    late original is dropped (invariant 9), by this transaction's later activities too."""
    if session.exec(select(ObjectMarker.id).where(col(ObjectMarker.ap_id) == ap_id)).first() is None:
        session.add(ObjectMarker(ap_id=ap_id, actor_ap_id=actor, reason=reason, created_at=services.clock.now()))
    session.info.setdefault(_MARKERS_WRITTEN, set()).add(ap_id)


def _marker_ids(d: Delivery) -> list[str]:
    """A late original is dropped when its own id, or the id of what it creates or reacts to, is marked."""
    ids = [d.activity["id"]]
    obj_id = id_of(d.activity.get("object"))
    if obj_id and d.activity["type"] in ("Create", "Follow", "Like", "Announce"):
        ids.append(obj_id)
    return ids


def _key_refusal(key_id: str, exc: ActorError) -> InboxResult:
    if exc.temporary:  # worth retrying: the sender retries after the 503's Retry-After
        return InboxResult(503, f"Cannot get key {key_id} now ({exc.reason}); nothing was stored. Please retry later.")
    return InboxResult(401, f"Signature refused: cannot get key {key_id}: {exc.reason}")


def _accepted(outcome: str) -> InboxResult:
    return InboxResult(202, "Accepted." if outcome == "processed" else f"Accepted ({outcome}).")
