"""Key pairs of local actors: RSA-2048 for HTTP Signatures, Ed25519 for integrity proofs.

One ``local_key`` row per local actor, keyed by its reference (``fedblog.urls.BLOG_ACTOR`` for
the blog, ``guest_ref(n)`` for a guest actor). The blog's keys are created once (``fedblog init``
or the first ``serve``) with both key types. Another actor's row may start with an Ed25519 key
only (``create_actor_keys``, in the caller's transaction); its RSA key is made the first time the
actor signs a delivery (``KeyRing.signing_key``), race-safe across processes: whoever stores it
first wins and every process then uses that one.

Keys are stored in the database so every process signs with the same key, and loaded lazily:
building Services never touches the database. The blog's keys stay in memory once loaded; other
actors' keys are kept in a bounded in-process cache (least recently used dropped first).
Private keys are never served and never logged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from fedblog.activitypub import keys as keylib
from fedblog.clock import utc
from fedblog.store.tables import LocalKey
from fedblog.urls import BLOG_ACTOR

BLOG_OWNER = BLOG_ACTOR  # the former name, kept for callers
CACHE_SIZE = 1024  # other actors' key pairs kept in memory per process


class UnknownActorKeys(LookupError):
    """No key pair is stored for this local actor."""


@dataclass(frozen=True)
class ActorKeys:
    """A local actor's keys. ``rsa`` is None until the actor first signs a delivery."""

    actor: str
    ed25519: Ed25519PrivateKey
    ed25519_multibase: str
    rsa: RSAPrivateKey | None
    rsa_public_pem: str | None
    created_at: datetime

    def __repr__(self) -> str:  # never print key material
        return f"ActorKeys({self.actor!r}, <redacted>)"


@dataclass(frozen=True)
class KeyPair:
    """The blog's keys (both types always present)."""

    rsa: RSAPrivateKey
    rsa_public_pem: str
    ed25519: Ed25519PrivateKey
    ed25519_multibase: str
    created_at: datetime  # when the blog was set up: the actor's ``published`` ("Joined" in Mastodon)

    def __repr__(self) -> str:  # never print key material
        return "KeyPair(<redacted>)"


def _actor_keys(row: LocalKey) -> ActorKeys:
    ed = keylib.load_private_key(row.ed25519_private_pem)
    assert isinstance(ed, Ed25519PrivateKey)
    rsa = keylib.load_private_key(row.rsa_private_pem) if row.rsa_private_pem else None
    assert rsa is None or isinstance(rsa, RSAPrivateKey)
    return ActorKeys(
        actor=row.owner,
        ed25519=ed,
        ed25519_multibase=keylib.ed25519_public_key_to_multibase(ed.public_key()),
        rsa=rsa,
        rsa_public_pem=keylib.public_key_to_pem(rsa.public_key()) if rsa is not None else None,
        created_at=utc(row.created_at),
    )


def _pair(keys: ActorKeys) -> KeyPair:
    assert keys.rsa is not None and keys.rsa_public_pem is not None
    return KeyPair(rsa=keys.rsa, rsa_public_pem=keys.rsa_public_pem, ed25519=keys.ed25519,
                   ed25519_multibase=keys.ed25519_multibase, created_at=keys.created_at)


def _row(session: Session, actor: str) -> LocalKey | None:
    return session.exec(select(LocalKey).where(LocalKey.owner == actor)).first()


def create_actor_keys(session: Session, actor: str, now: datetime, *, rsa: bool = False) -> LocalKey:
    """Add a key pair row for ``actor`` in the caller's transaction (not committed): an Ed25519
    key, and an RSA key only if ``rsa`` (otherwise it is made when the actor first signs)."""
    row = LocalKey(
        owner=actor,
        rsa_private_pem=keylib.private_key_to_pem(keylib.generate_rsa_private_key()) if rsa else None,
        ed25519_private_pem=keylib.private_key_to_pem(keylib.generate_ed25519_private_key()),
        created_at=now,
    )
    session.add(row)
    return row


def read_actor_keys(engine: Engine, actor: str) -> ActorKeys:
    """The stored keys of ``actor`` (a database read); ``UnknownActorKeys`` if it has none."""
    with Session(engine) as session:
        row = _row(session, actor)
        if row is None:
            raise UnknownActorKeys(actor)
        return _actor_keys(row)


def ensure_rsa_key(engine: Engine, actor: str) -> ActorKeys:
    """The keys of ``actor`` with an RSA key, storing a new one if it has none yet. Two processes
    doing this at once store one key: the UPDATE only fills an empty column, then both re-read."""
    keys = read_actor_keys(engine, actor)
    if keys.rsa is not None:
        return keys
    pem = keylib.private_key_to_pem(keylib.generate_rsa_private_key())
    with Session(engine) as session:
        session.execute(
            update(LocalKey)
            .where(col(LocalKey.owner) == actor, col(LocalKey.rsa_private_pem).is_(None))
            .values(rsa_private_pem=pem)
        )
        session.commit()
    return read_actor_keys(engine, actor)


def ensure_keys(engine: Engine, now: datetime, owner: str = BLOG_ACTOR) -> KeyPair:
    """Load the owner's keys (both types), creating them the first time (safe against a
    concurrent creator)."""
    with Session(engine) as session:
        row = _row(session, owner)
        if row is None:
            create_actor_keys(session, owner, now, rsa=True)
            try:
                session.commit()
            except IntegrityError:  # another process created them first: use theirs
                session.rollback()
    return _pair(ensure_rsa_key(engine, owner))


class KeyRing:
    """Lazily loaded keys of local actors, shared by every request and job of one process."""

    def __init__(self, engine: Engine, now: Callable[[], datetime], cache_size: int = CACHE_SIZE) -> None:
        self._engine = engine
        self._now = now
        self._lock = threading.Lock()
        self._keys: KeyPair | None = None
        self._cache: OrderedDict[str, ActorKeys] = OrderedDict()
        self._cache_lock = threading.Lock()  # never held during database work
        self._cache_size = cache_size

    # -- the blog ---------------------------------------------------------------------------------
    async def load(self, run_db: Callable[[Callable[[], KeyPair]], Awaitable[KeyPair]]) -> KeyPair:
        """The keys, read (or created) through ``run_db`` the first time: async code never waits on
        the database here. ``fedblog serve`` loads them at start-up; later ``get()`` calls are memory reads."""
        if self._keys is not None:
            return self._keys
        return await run_db(self.get)

    def get(self) -> KeyPair:
        """Blocking on first use (a database read): from async code, ``await load(services.run_db)``."""
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    self._keys = ensure_keys(self._engine, self._now())
        return self._keys

    def cached(self) -> KeyPair | None:
        """The keys if this process has loaded them already (no database work), else None."""
        return self._keys

    # -- any local actor --------------------------------------------------------------------------
    def cached_for(self, actor: str) -> ActorKeys | None:
        """``actor``'s keys if in memory (no database work), else None."""
        if actor == BLOG_ACTOR:
            keys = self._keys
            return None if keys is None else _blog_actor_keys(keys)
        with self._cache_lock:
            found = self._cache.get(actor)
            if found is not None:
                self._cache.move_to_end(actor)
            return found

    def keys_for(self, actor: str) -> ActorKeys:
        """``actor``'s keys (blocking: a database read unless cached; from async code run it through
        ``services.run_db``). Raises ``UnknownActorKeys`` for an actor without keys."""
        found = self.cached_for(actor)
        if found is not None:
            return found
        if actor == BLOG_ACTOR:
            return _blog_actor_keys(self.get())
        return self._remember(read_actor_keys(self._engine, actor))

    def signing_key(self, actor: str) -> RSAPrivateKey:
        """``actor``'s RSA key for HTTP Signatures, made (and stored) on its first use. Blocking."""
        keys = self.keys_for(actor)
        if keys.rsa is None:
            keys = self._remember(ensure_rsa_key(self._engine, actor))
        assert keys.rsa is not None
        return keys.rsa

    def _remember(self, keys: ActorKeys) -> ActorKeys:
        with self._cache_lock:
            self._cache[keys.actor] = keys
            self._cache.move_to_end(keys.actor)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return keys


def _blog_actor_keys(keys: KeyPair) -> ActorKeys:
    return ActorKeys(actor=BLOG_ACTOR, ed25519=keys.ed25519, ed25519_multibase=keys.ed25519_multibase,
                     rsa=keys.rsa, rsa_public_pem=keys.rsa_public_pem, created_at=keys.created_at)
