""""Reply from your fediverse account" / "Follow": find where to send the reader.

The reader types a handle (``@me@example.social``) or just their instance (``example.social``).
For a handle we ask its server's WebFinger for a FEP-3b86 Object intent or the OStatus subscribe
template; otherwise, and as a fallback, Mastodon's and GoToSocial's ``/authorize_interaction``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fedblog.net.fetch import FetchError, fetch_json
from fedblog.services import Services

_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}(:\d{1,5})?$")
_USER = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
INTENT_RELS = ("https://w3id.org/fep/3b86/Object", "http://ostatus.org/schema/1.0/subscribe")


class InteractError(ValueError):
    """The reader's input is not a handle or an instance; the message says what to type."""


def parse_who(text: str) -> tuple[str | None, str]:
    """``(user, host)`` from ``@me@host``, ``me@host``, ``host`` or ``https://host/...``."""
    value = text.strip().lower()
    value = re.sub(r"^https?://", "", value).split("/", 1)[0].lstrip("@")
    user, _, host = value.rpartition("@")
    if not _HOST.match(host) or (user and not _USER.match(user)):
        raise InteractError(
            "Type your fediverse handle (like @you@mastodon.social) or your server (like mastodon.social)."
        )
    return (user or None), host


async def interaction_url(services: Services, who: str, uri: str) -> str:
    user, host = parse_who(who)
    fallback = f"https://{host}/authorize_interaction?uri={quote(uri, safe='')}"
    if user is None:
        return fallback
    try:
        doc = await fetch_json(
            services.http, f"https://{host}/.well-known/webfinger?resource=acct:{user}@{host}",
            policy=services.policy, accept="application/jrd+json, application/json", deadline=5.0, max_redirects=5,
        )
    except FetchError:
        return fallback
    links = doc.data.get("links")
    if not isinstance(links, list):
        links = []
    for rel in INTENT_RELS:
        for link in links:
            if isinstance(link, dict) and link.get("rel") == rel and isinstance(link.get("template"), str):
                template: str = link["template"]
                if template.startswith("https://") and "{uri}" in template:
                    return template.replace("{uri}", quote(uri, safe=""))
    return fallback
