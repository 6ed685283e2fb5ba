"""Logging the owner in and out: sessions, CSRF tokens, the failed-login limit.

Sessions live in the database (``admin_session``), so every ``fedblog serve`` process sees the
same ones and logging out ends a session everywhere. The cookie carries a random 256-bit token;
the table stores only its SHA-256, so a leaked database copy holds no usable cookie. Each session
has its own random CSRF token (the OWASP "synchronizer token" pattern); the login form, which
has no session yet, uses a signed double-submit token instead (HMAC of a random cookie value).

Failed logins are rows in ``admin_login_failure``: at most ``PER_IP`` per client address and
``PER_ACCOUNT`` in all within ``WINDOW``; beyond that the answer is 429 with Retry-After and the
password is not even checked. Rows older than the window are deleted on each new failure.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from fedblog.admin.passwords import hash_password
from fedblog.services import Services
from fedblog.store import admin as admin_store
from fedblog.store.db import session_scope

WINDOW = timedelta(minutes=15)
PER_IP = 5
PER_ACCOUNT = 20


@dataclass(frozen=True)
class LoginGate:
    """What a login attempt may do: ``retry_after`` seconds if refused, else the stored hash (or None)."""

    retry_after: int | None
    encoded: str | None


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie, never stored
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def login_form_token(secret_key: str, nonce: str) -> str:
    """The login form's CSRF token: bound to the random ``nonce`` cookie by an HMAC with the secret key."""
    return hmac.new(secret_key.encode(), b"fedblog-admin-login:" + nonce.encode(), hashlib.sha256).hexdigest()


def check_login_form_token(secret_key: str, nonce: str, token: str) -> bool:
    return bool(nonce) and hmac.compare_digest(login_form_token(secret_key, nonce), token)


def check_csrf(expected: str, given: str) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def login_gate(services: Services, ip: str) -> LoginGate:
    """Before checking a password: is this client (or the account) over the failed-login limit?"""
    now = services.clock.now()
    with Session(services.engine) as session:
        by_ip, oldest_ip, total, oldest = admin_store.failures_since(session, now - WINDOW, ip)
        encoded = admin_store.get_password_hash(session)
    waits = [
        max(1, math.ceil((first + WINDOW - now).total_seconds()))
        for count, limit, first in ((by_ip, PER_IP, oldest_ip), (total, PER_ACCOUNT, oldest))
        if count >= limit and first is not None
    ]
    return LoginGate(max(waits) if waits else None, encoded)


def record_failure(services: Services, ip: str) -> None:
    now = services.clock.now()
    with session_scope(services.engine) as session:
        admin_store.add_failure(session, ip, now, purge_before=now - WINDOW)


def start_session(services: Services, ip: str) -> NewSession:
    """A correct password: forget this client's failures, drop expired sessions, open a new one."""
    now = services.clock.now()
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=services.settings.admin_session_hours)
    with session_scope(services.engine) as session:
        admin_store.clear_failures(session, ip)
        admin_store.purge_expired_sessions(session, now)
        admin_store.add_session(session, token_hash(token), secrets.token_urlsafe(32), now, expires)
    return NewSession(token, expires)


def session_csrf(services: Services, token: str) -> str | None:
    """The CSRF token of the live session behind cookie value ``token``, or None (no such session)."""
    if not token or len(token) > 100:
        return None
    with Session(services.engine) as session:
        row = admin_store.get_live_session(session, token_hash(token), services.clock.now())
        return row.csrf_token if row is not None else None


def end_session(services: Services, token: str) -> None:
    with session_scope(services.engine) as session:
        admin_store.delete_session(session, token_hash(token))


def set_password(services: Services, password: str) -> int:
    """Store a new owner password (scrypt); log every browser out and lift the failed-login limit.

    Returns the number of sessions ended. Raises PasswordRuleError for a too short or long password.
    """
    encoded = hash_password(password)
    now = services.clock.now()
    with session_scope(services.engine) as session:
        admin_store.set_password_hash(session, encoded, now)
        ended = admin_store.delete_all_sessions(session)
        admin_store.clear_failures(session)
    return ended


def has_password(services: Services) -> bool:
    with Session(services.engine) as session:
        return admin_store.get_password_hash(session) is not None
