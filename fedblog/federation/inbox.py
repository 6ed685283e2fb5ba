"""The inbox pipeline: verification -> origin checks -> dedupe -> dispatch.

    parse JSON (depth cap) -> blocked? -> signature headers -> key (cache, guarded fetch)
    -> verify (refetch the key once on failure) -> signer == actor -> origin containment
    -> dedupe by activity id -> handler.prepare (fetches, after verification only)
    -> one transaction: raw activity + evidence, domain change, follow-up activities -> 202

Every refusal is an ``InboxResult`` with a 4xx status and a sentence; nothing is stored then.
Handlers are registered by activity type; types without a handler are stored as "ignored".
The contract with handlers is federation/contract.py; the pure checks, federation/validation.py;
the transaction, federation/inbox_commit.py; dead letters, federation/dead_letters.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, literal_column, union_all
from sqlalchemy import select as sa_select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.selectable import CompoundSelect
from sqlmodel import Session, col

from fedblog.activitypub import httpsig
from fedblog.federation import dead_letters, moderation
from fedblog.federation.actors import ActorError, refetch_key, resolve_key, same_id
from fedblog.federation.cache import ResolvedKey
from fedblog.federation.contract import Delivery, Handler, InboxResult, Refused, id_of
from fedblog.federation.inbox_commit import UNAVAILABLE, GroupCommit, Ready
from fedblog.federation.markers import marked
from fedblog.federation.validation import origin_problem, shape_error, url_problem
from fedblog.services import Services
from fedblog.store.db import database_unavailable, request_write_limits
from fedblog.store.groupcommit import Coalescer
from fedblog.store.tables import InboxItem, ModerationRule

__all__ = ["Delivery", "Handler", "Inbox", "InboxResult", "Refused"]

log = logging.getLogger("fedblog.inbox")

# the hot statement, built once
# blocked? already received? for a whole batch of POSTs in one round trip
_PRECHECK: "CompoundSelect[Any, str]" = union_all(  # noqa: UP037 (SQLAlchemy 2.0: not generic at run time)
    sa_select(literal_column("'b'"), col(ModerationRule.target)).where(
        col(ModerationRule.action) == "block", col(ModerationRule.target).in_(bindparam("targets", expanding=True))
    ),
    sa_select(literal_column("'s'"), col(InboxItem.ap_id)).where(
        col(InboxItem.ap_id).in_(bindparam("ids", expanding=True))
    ),
)


def _verify_with(sig: httpsig.SignatureInput, key: ResolvedKey) -> httpsig.Verification:
    if key.public_key is None:
        failure = httpsig.VerifyFailure(
            httpsig.FailureReason.key_mismatch, "the sender's publicKeyPem is not a usable key"
        )
        return httpsig.Verification(ok=False, key_id=sig.key_id, scheme=sig.scheme, failure=failure)
    return httpsig.verify_signature(sig, key.public_key)


class Inbox:
    def __init__(self, services: Services, handlers: Mapping[str, Handler[Any]]) -> None:
        self.services = services
        self.handlers = dict(handlers)
        self.remote = services.remote
        self.expected_host = urlsplit(services.settings.base_url).netloc
        # group commit (store/groupcommit.py): the POSTs ready in one loop turn share their round trips
        # both run in the database pool (services.run_db): the event loop never waits on the database
        self.prechecks: Coalescer[tuple[str, list[str]], tuple[bool, bool] | None] = Coalescer(
            self._precheck_many, run=services.run_db, concurrency=2)
        self.group_commit = GroupCommit(services, self.handlers)
        self.commits = self.group_commit.coalescer

    @property
    def split_batches(self) -> int:
        """Batches rolled back and applied again in halves."""
        return self.group_commit.split_batches

    async def retry_failed(self, item_id: int) -> str:
        """Apply a dead-lettered activity again (federation/dead_letters.py); returns its new state."""
        return await dead_letters.retry_failed(self.group_commit, item_id)

    async def receive(self, *, method: str, target: str, headers: Mapping[str, str], body: bytes,
                      scheme: str, recipient: str | None) -> InboxResult:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return InboxResult(400, "The body is not valid JSON.")
        problem = shape_error(doc, body)
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
        problem = origin_problem(doc, actor)
        if problem:
            return InboxResult(400, f"Refused: {problem}.")
        delivery = Delivery(
            activity=doc, actor=actor, key_id=sig.key_id, scheme=sig.scheme, raw=body, recipient=recipient,
            evidence=httpsig.evidence(sig),
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
        prepared: Any = None
        if handler is not None and isinstance(d.activity.get("object"), str) and d.activity["type"] == "Create":
            try:  # spare a fetch for something already deleted
                dropped = bool(await self.services.run_db(self._marked_now, d))
            except SQLAlchemyError as exc:
                if database_unavailable(exc):
                    return UNAVAILABLE
                raise
        try:
            if handler is not None and not dropped:
                prepared = await handler.prepare(self.services, d)
        except Refused as exc:
            return InboxResult(exc.status, exc.reason)
        except ActorError as exc:
            if exc.temporary:
                return InboxResult(503, f"Cannot fetch what the activity needs now ({exc.reason}); please retry later.")
            return InboxResult(400, f"Refused: {exc.reason}")
        return await self.commits.submit(Ready(d, prepared))

    def _marked_now(self, d: Delivery) -> set[str]:
        with Session(self.services.engine) as session:
            return marked(session, [d])


def _key_refusal(key_id: str, exc: ActorError) -> InboxResult:
    if exc.temporary:  # worth retrying: the sender retries after the 503's Retry-After
        return InboxResult(503, f"Cannot get key {key_id} now ({exc.reason}); nothing was stored. Please retry later.")
    return InboxResult(401, f"Signature refused: cannot get key {key_id}: {exc.reason}")
