"""Content negotiation: the same URL serves HTML to browsers and JSON to fediverse servers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fedblog.activitypub import vocab
from fedblog.activitypub.context import ACTIVITY_JSON

AP_TYPES = ("application/activity+json", "application/ld+json")


def _accept_entries(header: str) -> list[tuple[str, float]]:
    out = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for f in fields[1:]:
            if f.lower().startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        if media:
            out.append((media, q))
    return out


def wants_activitypub(request: Request) -> bool:
    """True when an ActivityStreams type is acceptable at least as much as HTML."""
    return accepts_activitypub(request.headers.get("accept", ""))


def accepts_activitypub(accept: str) -> bool:
    """``wants_activitypub`` for the raw ``Accept`` header."""
    entries = _accept_entries(accept)
    ap = max((q for m, q in entries if m in AP_TYPES), default=0.0)
    html = max((q for m, q in entries if m in ("text/html", "application/xhtml+xml")), default=0.0)
    return ap > 0 and ap >= html


class ActivityJSONResponse(Response):
    media_type = ACTIVITY_JSON

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> None:
        merged = {"Vary": "Accept", "Access-Control-Allow-Origin": "*", **(headers or {})}
        super().__init__(content, status_code=status_code, headers=merged)

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else vocab.dumps(content)  # bytes: already our JSON


class JRDResponse(ActivityJSONResponse):
    media_type = "application/jrd+json"
