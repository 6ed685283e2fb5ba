"""Fakes of servers that demand signed GETs: GoToSocial (always) and Mastodon in secure mode.

GoToSocial, as its docs describe it (docs/federation/http_signatures.md, "Quirks"; and
docs/federation/access_control.md):

* it signs with ``algorithm="hs2019"`` (an RSA-SHA256 signature) over ``(request-target) host date``
  on GET and ``+ digest`` on POST;
* its keyId is ``https://host/users/name/main-key`` (a path, no fragment), and that URL answers a
  *stub* of the actor: ``id`` is the actor's URL, with ``preferredUsername``, ``type`` and
  ``publicKey {id: <the key URL>, owner: <the actor>, publicKeyPem}``; the full actor is at ``owner``;
* it refuses unsigned GETs and POSTs with 401. (GoToSocial's own code serves the key stub without
  authentication, ``internal/processing/fedi/user.go``; this fake is stricter and refuses it too,
  so a test passes only if every one of our fetches is signed.)
* its actors have no ``sharedInbox``.

Mastodon with AUTHORIZED_FETCH (docs.joinmastodon.org/admin/config/#authorized_fetch,
docs.joinmastodon.org/spec/activitypub/#secure-mode): actor and status documents answer 401 to
unsigned GETs; signed ones are verified (the signer's key fetched over the network) before they
are served.

Both record every GET they answered in ``gets`` as (path, signer keyId or None, status).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fediverse import signing
from tests.fediverse.instance import AS, FakeActor, FakeInstance

SEC = "https://w3id.org/security/v1"


def _key_id_of(signature: str) -> str | None:
    for part in signature.split(","):
        name, _, value = part.strip().partition("=")
        if name == "keyId":
            return value.strip('"')
    return None


class _SignedGetsOnly(FakeInstance):
    """A FakeInstance whose ActivityPub GETs need a signature that verifies."""

    def __init__(self, host: str, network: Any, flavour: str) -> None:
        super().__init__(host, network, flavour)
        self.gets: list[tuple[str, str | None, int]] = []

    async def _signer(self, request: Request) -> tuple[str | None, Response | None]:
        """(the verified signer's keyId, None) or (None, the 401 to answer)."""
        headers = dict(request.headers)
        key_id = _key_id_of(headers.get("signature", ""))
        if key_id is None:
            return None, JSONResponse({"error": "Request not signed"}, status_code=401)
        async with httpx.AsyncClient(transport=self.network.transport()) as c:
            r = await c.get(key_id.split("#")[0], headers={"Accept": "application/activity+json"})
        doc = r.json() if r.status_code == 200 else {}
        pk = doc.get("publicKey") if isinstance(doc, dict) else None
        if not isinstance(pk, dict) or pk.get("id") != key_id:
            return None, JSONResponse({"error": f"cannot get key {key_id}"}, status_code=401)
        path_qs = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        ok, why = signing.verify("GET", path_qs, headers, b"", pk["publicKeyPem"])
        if not ok:
            return None, JSONResponse({"error": why}, status_code=401)
        return key_id, None

    async def _guarded(self, request: Request, serve: Any) -> Response:
        key_id, refusal = await self._signer(request)
        response = refusal if refusal is not None else await serve(request)
        self.gets.append((request.url.path, key_id, response.status_code))
        return response

    async def _actor(self, request: Request) -> Response:
        return await self._guarded(request, super()._actor)

    async def _object(self, request: Request) -> Response:
        return await self._guarded(request, super()._object)

    def unsigned_gets(self) -> list[str]:
        return [path for path, key_id, _ in self.gets if key_id is None]


class SecureMastodon(_SignedGetsOnly):
    """Mastodon with AUTHORIZED_FETCH: unsigned GETs of actors and objects get 401."""

    def __init__(self, host: str, network: Any) -> None:
        super().__init__(host, network, "mastodon")


@dataclass
class GtsActor(FakeActor):
    flavour: str = "gotosocial"

    @property
    def key_id(self) -> str:
        return self.id + "/main-key"

    def document(self) -> dict[str, Any]:
        doc = super().document()
        doc.pop("endpoints")  # no sharedInbox on GoToSocial actors
        return doc

    def stub(self) -> dict[str, Any]:
        """What the keyId URL answers (GoToSocial docs, http_signatures.md "Quirks")."""
        return {
            "@context": [SEC, AS],
            "id": self.id,
            "preferredUsername": self.username,
            "publicKey": {"id": self.key_id, "owner": self.id, "publicKeyPem": signing.public_pem(self.key)},
            "type": "Person",
        }


class GoToSocial(_SignedGetsOnly):
    """GoToSocial: hs2019 signatures, path keyIds answering an actor stub, every GET signed."""

    def __init__(self, host: str, network: Any) -> None:
        super().__init__(host, network, "gotosocial")
        self.app.router.routes.insert(0, Route("/users/{name}/main-key", self._main_key))

    def actor(self, username: str, name: str | None = None) -> FakeActor:
        a = GtsActor(self.host, username, name or username.title())
        self.actors[a.id] = a
        return a

    async def _main_key(self, request: Request) -> Response:
        async def serve(request: Request) -> Response:
            actor = self.actors.get(f"https://{self.host}/users/{request.path_params['name']}")
            if not isinstance(actor, GtsActor):
                return Response(status_code=404)
            return Response(json.dumps(actor.stub()), media_type="application/activity+json")

        return await self._guarded(request, serve)
