"""Signing outbound requests: an ``httpx.Auth`` that adds draft-cavage HTTP Signatures.

GETs sign ``(request-target) host date``; POSTs sign ``(request-target) host date digest``
(https://docs.joinmastodon.org/spec/security/). Date, Digest and Signature are regenerated for
every attempt; the body is signed exactly as sent.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from fedblog.activitypub.httpsig import sign_request


class HttpSignatureAuth(httpx.Auth):
    """Sign each request with ``private_key`` as ``key_id``, at ``now()``."""

    requires_request_body = True

    def __init__(self, key_id: str, private_key: RSAPrivateKey, now: Callable[[], datetime]) -> None:
        self.key_id = key_id
        self._key = private_key
        self._now = now

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        body = request.content if request.method not in ("GET", "HEAD") else None
        added = sign_request(
            request.method,
            str(request.url),
            dict(request.headers),
            body,
            key_id=self.key_id,
            private_key=self._key,
            now=self._now(),
        )
        for name, value in added.items():
            request.headers[name] = value
        yield request
