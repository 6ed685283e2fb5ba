"""The blog's own key pair: RSA-2048 for HTTP Signatures, Ed25519 for integrity proofs.

Created once (``fedblog init`` or the first ``serve``), stored in the database so every process
signs with the same key, and loaded lazily: building Services never touches the database.
The row's creation time is when the blog was set up; the actor serves it as ``published``.
Private keys are never served and never logged.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from fedblog.activitypub import keys as keylib
from fedblog.clock import utc
from fedblog.store.tables import LocalKey

BLOG_OWNER = "blog"


@dataclass(frozen=True)
class KeyPair:
    rsa: RSAPrivateKey
    rsa_public_pem: str
    ed25519: Ed25519PrivateKey
    ed25519_multibase: str
    created_at: datetime  # when the blog was set up: the actor's ``published`` ("Joined" in Mastodon)

    def __repr__(self) -> str:  # never print key material
        return "KeyPair(<redacted>)"


def _load(row: LocalKey) -> KeyPair:
    rsa = keylib.load_private_key(row.rsa_private_pem)
    ed = keylib.load_private_key(row.ed25519_private_pem)
    assert isinstance(rsa, RSAPrivateKey) and isinstance(ed, Ed25519PrivateKey)
    return KeyPair(
        rsa=rsa,
        rsa_public_pem=keylib.public_key_to_pem(rsa.public_key()),
        ed25519=ed,
        ed25519_multibase=keylib.ed25519_public_key_to_multibase(ed.public_key()),
        created_at=utc(row.created_at),
    )


def ensure_keys(engine: Engine, now: datetime, owner: str = BLOG_OWNER) -> KeyPair:
    """Load the owner's keys, creating them the first time (safe against a concurrent creator)."""
    with Session(engine) as session:
        row = session.exec(select(LocalKey).where(LocalKey.owner == owner)).first()
        if row is not None:
            return _load(row)
        row = LocalKey(
            owner=owner,
            rsa_private_pem=keylib.private_key_to_pem(keylib.generate_rsa_private_key()),
            ed25519_private_pem=keylib.private_key_to_pem(keylib.generate_ed25519_private_key()),
            created_at=now,
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # another process created them first: use theirs
            session.rollback()
            row = session.exec(select(LocalKey).where(LocalKey.owner == owner)).one()
        return _load(row)


class KeyRing:
    """Lazily loaded blog keys, shared by every request and job of one process."""

    def __init__(self, engine: Engine, now: Callable[[], datetime]) -> None:
        self._engine = engine
        self._now = now
        self._lock = threading.Lock()
        self._keys: KeyPair | None = None

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
