"""The contract between the inbox pipeline and its handlers: validate -> prepare -> apply.

The pipeline (federation/inbox.py) validates and verifies an activity, then hands each handler a
``Delivery``. A handler's ``prepare`` runs outside any transaction (it may fetch) and returns what
it learned as its own typed value, or ``Ignored`` when nothing here concerns it; its ``apply`` runs
inside the inbox transaction (``Tx``) with that value and returns an ``Outcome``. Either may raise
``Refused``: nothing is stored and the sender gets its status. Handlers import this module, never
the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from sqlmodel import Session

from fedblog.services import Services

P = TypeVar("P")
P_contra = TypeVar("P_contra", contravariant=True)
P_co = TypeVar("P_co", covariant=True)


@dataclass(frozen=True)
class InboxResult:
    """The answer to the sender: an HTTP status and a sentence."""

    status: int
    reason: str


class Refused(Exception):
    """A handler refuses the activity: nothing is stored, the sender gets ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """One verified incoming activity, as handlers see it (the signer is ``actor``)."""

    activity: dict[str, Any]
    actor: str
    key_id: str
    scheme: str
    raw: bytes
    recipient: str | None
    # what the signature proved (fedblog.activitypub.httpsig.evidence): stored with a reply; None when
    # not known (a dead letter applied again keeps only the key id and scheme)
    evidence: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Processed:
    """The activity changed something here."""

    def __str__(self) -> str:
        return "processed"


@dataclass(frozen=True)
class Ignored:
    """The activity is stored, but changes nothing here; ``reason`` says why."""

    reason: str

    def __str__(self) -> str:
        return "ignored: " + self.reason


Outcome = Processed | Ignored
PROCESSED = Processed()


@dataclass
class Tx:
    """One inbox transaction, as ``apply`` sees it; several activities may share it (group commit)."""

    session: Session
    services: Services
    marked: set[str] = field(default_factory=set)  # ids that Deletes/Undos of this transaction marked
    live_posts: dict[str, int | None] = field(default_factory=dict)  # id path -> live post id (posts do not change)


class Handler(Protocol[P]):
    """What the pipeline calls for one activity type."""

    # False: apply() reads no rows that other activities of its batch may have deferred (store/deferred.py),
    # or flushes them itself before it does; True (the safe default): the inbox flushes them first
    @property
    def flush_first(self) -> bool: ...

    async def prepare(self, services: Services, d: Delivery) -> P | Ignored: ...

    def apply(self, tx: Tx, d: Delivery, prepared: P) -> Outcome: ...


class _Prepare(Protocol[P_co]):
    async def __call__(self, services: Services, d: Delivery, /) -> P_co | Ignored: ...


class _Apply(Protocol[P_contra]):
    def __call__(self, tx: Tx, d: Delivery, prepared: P_contra, /) -> Outcome: ...


@dataclass(frozen=True)
class Steps(Generic[P]):
    """A Handler made of two functions."""

    prepare_fn: _Prepare[P]
    apply_fn: _Apply[P]
    flush_first: bool = True

    async def prepare(self, services: Services, d: Delivery) -> P | Ignored:
        return await self.prepare_fn(services, d)

    def apply(self, tx: Tx, d: Delivery, prepared: P) -> Outcome:
        return self.apply_fn(tx, d, prepared)


async def no_preparation(services: Services, d: Delivery) -> None:
    """For handlers that need nothing fetched before their transaction."""


def id_of(value: Any) -> str | None:
    """The id of an ActivityStreams reference: a string, or an object's ``id``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(ident := value.get("id"), str):
        return ident
    return None
