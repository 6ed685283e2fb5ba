"""The owner's password: length rules and scrypt hashing (pure functions, no I/O).

scrypt (RFC 7914) with N=2^15, r=8, p=3: one of the parameter sets the OWASP Password Storage
Cheat Sheet lists as equivalent to its minimum (32 MiB of memory per hash). The parameters are
stored with each hash, so they can be raised later without breaking stored passwords.
Length rules follow NIST SP 800-63B-4 section 3.1.1.2: at least 15 characters for a password used
alone, no composition rules, at least 64 allowed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

MIN_LENGTH = 15
MAX_LENGTH = 1024
N, R, P = 2**15, 8, 3
DKLEN = 32
SCHEME = "scrypt"


class PasswordRuleError(ValueError):
    """The password breaks a rule; the message says which, in one line."""


def check_rules(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordRuleError(
            f"the admin password must have at least {MIN_LENGTH} characters (a few words make a good one)"
        )
    if len(password) > MAX_LENGTH:
        raise PasswordRuleError(f"the admin password must have at most {MAX_LENGTH} characters")


@dataclass(frozen=True)
class _Params:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * r * n + (1 << 20)
    )


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$digest`` (base64), with a fresh 16-byte random salt."""
    check_rules(password)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, N, R, P, DKLEN)
    b64 = base64.b64encode
    return f"{SCHEME}${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def _parse(encoded: str) -> _Params | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and len(digest) >= 16):
        return None
    return _Params(n, r, p, salt, digest)


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches ``encoded``; constant-time comparison of the digests."""
    params = _parse(encoded)
    if params is None or len(password) > MAX_LENGTH:
        return False
    digest = _scrypt(password, params.salt, params.n, params.r, params.p, len(params.digest))
    return hmac.compare_digest(digest, params.digest)
