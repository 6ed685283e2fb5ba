"""Protocol constants, bundled: JSON-LD contexts we emit, the Public address, media types.

Nothing here is fetched at run time. Extension terms are spelled exactly as Mastodon emits them,
because Akkoma and others read the compact names without JSON-LD processing.
"""

from __future__ import annotations

from typing import Any

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PUBLIC_ALIASES = frozenset({PUBLIC, "as:Public", "Public"})

ACTIVITY_JSON = "application/activity+json"
LD_JSON_PROFILE = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
JRD_JSON = "application/jrd+json"

EXTENSIONS: dict[str, Any] = {
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "sensitive": "as:sensitive",
    "Hashtag": "as:Hashtag",
    "toot": "http://joinmastodon.org/ns#",
    "featured": {"@id": "toot:featured", "@type": "@id"},
    "discoverable": "toot:discoverable",
    "indexable": "toot:indexable",
    "attributionDomains": {"@id": "toot:attributionDomains", "@type": "@id"},
    # FEP-2c59's term, as its context https://purl.archive.org/socialweb/webfinger defines it
    "webfinger": {"@id": "https://purl.archive.org/socialweb/webfinger#webfinger",
                  "@type": "http://www.w3.org/2001/XMLSchema#string"},
    "schema": "http://schema.org#",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
    # FEP-521a: keys for integrity proofs; the term lives in the CID context, defined here inline
    "assertionMethod": {"@id": "https://w3id.org/security#assertionMethod", "@type": "@id", "@container": "@set"},
}

ACTOR_CONTEXT: list[Any] = [AS_CONTEXT, SECURITY_CONTEXT, MULTIKEY_CONTEXT, EXTENSIONS]
OBJECT_CONTEXT: list[Any] = [AS_CONTEXT, {"sensitive": "as:sensitive", "Hashtag": "as:Hashtag"}]
CONVERSATION_CONTEXT: list[Any] = [AS_CONTEXT]


def is_public(addresses: object) -> bool:
    """True if ``to``/``cc`` (a string or a list) contains the Public collection."""
    if isinstance(addresses, str):
        return addresses in PUBLIC_ALIASES
    if isinstance(addresses, list):
        return any(isinstance(a, str) and a in PUBLIC_ALIASES for a in addresses)
    return False
