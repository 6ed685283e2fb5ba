"""The fake fediverse's OWN HTTP-signature code, written from the draft-cavage spec.

Independent of ``fedblog.activitypub.httpsig`` on purpose: if our signer and our verifier
shared a bug, checking one with the other would prove nothing.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def sign(
    method: str,
    url: str,
    body: bytes | None,
    key: rsa.RSAPrivateKey,
    key_id: str,
    now: datetime | None = None,
    extra: dict[str, str] | None = None,
    algorithm: str = "rsa-sha256",
    created: int | None = None,
    expires: int | None = None,
) -> dict[str, str]:
    """Headers for a Mastodon-style signed request. ``created``/``expires`` (hs2019 only) sign the
    ``(created)`` and ``(expires)`` pseudo-headers too, as draft-cavage-http-signatures-12 §2.3 allows."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    date = format_datetime((now or datetime.now(UTC)).astimezone(UTC), usegmt=True)
    headers = {"Host": parts.netloc, "Date": date, **(extra or {})}
    names = ["(request-target)"]
    names += ["(created)"] if created is not None else []
    names += ["(expires)"] if expires is not None else []
    names += ["host", "date"]
    if body is not None:
        headers["Digest"] = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
        headers["Content-Type"] = "application/activity+json"
        names.append("digest")
    lines = []
    for n in names:
        if n == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        elif n in ("(created)", "(expires)"):
            lines.append(f"{n}: {created if n == '(created)' else expires}")
        else:
            lines.append(f"{n}: {headers[{'host': 'Host', 'date': 'Date', 'digest': 'Digest'}[n]]}")
    sig = base64.b64encode(key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    times = f",created={created}" if created is not None else ""
    times += f",expires={expires}" if expires is not None else ""
    headers["Signature"] = (
        f'keyId="{key_id}",algorithm="{algorithm}"{times},headers="{" ".join(names)}",signature="{sig}"'
    )
    return headers


def verify(method: str, path_qs: str, headers: dict[str, str], body: bytes, public_pem_text: str) -> tuple[bool, str]:
    """Check a request the way a careful receiver would; return (ok, why)."""
    h = {k.lower(): v for k, v in headers.items()}
    raw = h.get("signature")
    if not raw:
        return False, "no Signature header"
    params: dict[str, str] = {}
    for item in raw.split(","):
        k, _, v = item.partition("=")
        params[k.strip()] = v.strip().strip('"')
    names = params.get("headers", "date").split()
    required = ["(request-target)", "host", "date"] + (["digest"] if body else [])
    if any(r not in names for r in required):
        return False, f"signature does not cover {required}"
    if body:
        expected = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
        if h.get("digest") != expected:
            return False, "digest mismatch"
    lines = []
    for n in names:
        if n == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {path_qs}")
        else:
            lines.append(f"{n}: {h.get(n, '')}")
    key = serialization.load_pem_public_key(public_pem_text.encode())
    try:
        key.verify(
            base64.b64decode(params["signature"]), "\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256()
        )  # type: ignore[union-attr,call-arg]
    except Exception as exc:  # noqa: BLE001 - any failure is "does not verify"
        return False, f"bad signature ({type(exc).__name__})"
    return True, "ok"
