"""The web comment form's pure parts: its signed token, the fields' rules, the text's HTML.

No I/O here (``web/comments.py`` has the endpoints), so every rule is a plain function.

* **Token**: ``post.parent.issued.nonce.mac``, the MAC an HMAC-SHA256 with the blog's secret key
  over the post, the comment replied to (0: none), the issue time (Unix seconds) and a random
  nonce. It proves the form came from one of our pages, binds it to what it answers, and dates
  it: a form sent less than ``FEDBLOG_COMMENT_MIN_SECONDS`` after it was served is refused as a
  bot's, one older than ``TOKEN_TTL`` as stale (the form comes back, filled in, with a new token).
* **Fields**: the limits WordPress itself applies to its comment form (``wp_get_comment_fields_max_lengths``:
  name 245, email 100, URL 200, text 65,525 bytes), tightened: name 100, email 320 (RFC 5321's
  64 + 1 + 255), website 2,000, text 10,000 characters. The website must be http(s).
* **Text**: plain text only. Escaped; blank lines split paragraphs, single newlines are line
  breaks, http(s) URLs become ``rel="nofollow ugc"`` links; then the one sanitiser, as for
  every HTML we did not write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlsplit

from fedblog.blog.markup import sanitize_remote_html

TOKEN_TTL = 24 * 3600  # seconds a served form stays good
MAX_BODY = 256 * 1024  # bytes of a form POST, read before parsing (10,000 characters may be 120 KB encoded)
MAX_FIELDS = 20
MAX_NAME, MAX_EMAIL, MAX_WEBSITE, MAX_TEXT = 100, 320, 2000, 10_000
MAX_LINKS = 2  # more links than this and the comment waits for the admin (WordPress's comment_max_links default)
HONEYPOT = "homepage"  # hidden with CSS; people leave it empty, form-filling bots do not
PLACEHOLDER = b"fedblog:form-token:"  # in cached pages: fedblog:form-token:<post>:<parent>, filled per response

_URL = re.compile(r"https?://[^\s<>\"'\x00-\x1f]+", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$")
_HOSTLIKE = re.compile(r"^[\w-]+(\.[\w-]+)+(:\d{1,5})?([/?#]|$)", re.UNICODE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # keeps \t and \n


# -- the token ------------------------------------------------------------------------------------
def _mac(secret: str, message: str) -> str:
    digest = hmac.digest(secret.encode(), b"fedblog-comment-form:" + message.encode(), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_token(secret: str, post_id: int, parent_id: int, issued: int, nonce: str | None = None) -> str:
    message = f"{post_id}.{parent_id}.{issued}.{nonce or secrets.token_urlsafe(12)}"
    return f"{message}.{_mac(secret, message)}"


@dataclass(frozen=True)
class Token:
    post_id: int
    parent_id: int
    issued: int
    nonce: str


def read_token(secret: str, token: str) -> Token | None:
    """The token's contents if its MAC is ours, else None."""
    parts = token.split(".")
    if len(token) > 200 or len(parts) != 5 or not all((p.isascii() and p.isdigit()) for p in parts[:3]):
        return None
    message = ".".join(parts[:4])
    if not hmac.compare_digest(_mac(secret, message), parts[4]):
        return None
    return Token(int(parts[0]), int(parts[1]), int(parts[2]), parts[3])


Plan = tuple[list[bytes], list[tuple[int, int]]]  # the body cut at its placeholders; each one's (post, parent)
MAX_PLANS = 32  # cut bodies kept (a few per post version served now; each holds its body's bytes)
_plans: dict[int, tuple[bytes, Plan]] = {}  # id(body) -> (body, plan): the body held, so its id stays its own


def _plan(body: bytes) -> Plan:
    """Where ``body``'s placeholders are: found once per body object (a cached page's bytes are
    served many times; looked up by identity, so a 100 KB page is never hashed or compared)."""
    found = _plans.get(id(body))
    if found is not None and found[0] is body:
        return found[1]
    pieces, slots, pos = [], [], 0
    start = body.find(PLACEHOLDER)
    while start >= 0:
        end = start + len(PLACEHOLDER)
        stop = end
        while stop < len(body) and body[stop:stop + 1] in b"0123456789:":
            stop += 1
        ids = body[end:stop].split(b":")
        if len(ids) == 2 and all(ids):
            pieces.append(body[pos:start])
            slots.append((int(ids[0]), int(ids[1])))
            pos = stop
        start = body.find(PLACEHOLDER, stop)
    pieces.append(body[pos:])
    if len(_plans) >= MAX_PLANS:
        _plans.clear()
    plan = (pieces, slots)
    _plans[id(body)] = (body, plan)
    return plan


def fill_placeholders(body: bytes, make: Callable[[int, int], str]) -> bytes:
    """Replace every ``fedblog:form-token:<post>:<parent>`` in ``body`` (a cached page) with a
    fresh token from ``make(post, parent)``. A page without a form is returned as is."""
    pieces, slots = _plan(body)
    if not slots:
        return body
    out = [pieces[0]]
    for (post, parent), piece in zip(slots, pieces[1:], strict=True):
        out += [make(post, parent).encode(), piece]
    return b"".join(out)


def view_key(secret: str, comment_id: int) -> str:
    """The key in the link that lets a commenter see their own comment while it waits for moderation."""
    digest = hmac.new(secret.encode(), f"fedblog-comment-view:{comment_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def check_view_key(secret: str, comment_id: int, key: str) -> bool:
    return bool(key) and hmac.compare_digest(view_key(secret, comment_id).encode(), key.encode()[:64])


# -- the fields -----------------------------------------------------------------------------------
@dataclass
class Submission:
    """What the commenter sent: the cleaned fields (what is stored), what they typed (to give the
    form back as it was) and the problems found, by field."""

    post_id: int
    parent_id: int
    name: str = ""
    email: str = ""
    website: str = ""  # normalised: http(s), https:// added to a bare host
    text: str = ""
    federate: bool = False
    errors: dict[str, str] = field(default_factory=dict)  # field -> what is wrong with it
    typed: dict[str, str] = field(default_factory=dict)

    def values(self) -> dict[str, object]:
        return {**self.typed, "federate": self.federate}


def _clean_line(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", _CONTROL.sub(" ", value)).split())


def clean_text(value: str) -> str:
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", _CONTROL.sub("", value)).strip()


def normalise_website(value: str) -> str | None:
    """An http(s) URL, ``https://`` added to a bare host name (``example.org/me``); None if unusable."""
    value = value.strip()
    if not value:
        return ""
    if not value.lower().startswith(("http://", "https://")):
        if not _HOSTLIKE.match(value):
            return None
        value = "https://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    if any(c.isspace() for c in value) or (port is not None and port == 0):
        return None
    return value


def validate(fields: dict[str, str], post_id: int, parent_id: int) -> Submission:
    """The submission with each field cleaned and every problem named next to its field."""
    typed = {k: _CONTROL.sub("", fields.get(k, "").replace("\r\n", "\n")) for k in ("name", "email", "website", "text")}
    sub = Submission(post_id, parent_id, name=_clean_line(fields.get("name", "")),
                     email=fields.get("email", "").strip(), website=fields.get("website", "").strip(),
                     text=clean_text(fields.get("text", "")), federate=fields.get("federate", "") == "on", typed=typed)
    if not sub.name:
        sub.errors["name"] = "Please give a name (it is shown with your comment; a nickname is fine)."
    elif len(sub.name) > MAX_NAME:
        sub.errors["name"] = f"The name is {len(sub.name)} characters long; at most {MAX_NAME} please."
    if len(sub.email) > MAX_EMAIL:
        sub.errors["email"] = f"The email address is longer than {MAX_EMAIL} characters."
    elif sub.email and not _EMAIL.match(sub.email):
        sub.errors["email"] = "This is not an email address (like you@example.org); you may leave it empty."
    if len(sub.website) > MAX_WEBSITE:
        sub.errors["website"] = f"The website address is longer than {MAX_WEBSITE} characters."
    elif (site := normalise_website(sub.website)) is None:
        sub.errors["website"] = "The website must be an http:// or https:// address (or left empty)."
    else:
        sub.website = site
    if not sub.text:
        sub.errors["text"] = "The comment is empty."
    elif len(sub.text) > MAX_TEXT:
        sub.errors["text"] = (f"The comment is {len(sub.text):,} characters long; at most {MAX_TEXT:,} please "
                              "(it is all still here: shorten it and send it again).")
    return sub


# -- the text -------------------------------------------------------------------------------------
def _link(url: str) -> tuple[str, str]:
    """(the URL, the punctuation after it): a sentence's final dot or an unbalanced ) is not the URL's."""
    tail = ""
    while url and (url[-1] in ".,;:!?'\"" or (url[-1] == ")" and url.count("(") < url.count(")"))):
        url, tail = url[:-1], url[-1] + tail
    return url, tail


def text_to_html(text: str) -> tuple[str, int]:
    """The comment's HTML and its number of links."""
    links = 0
    paragraphs = []
    for para in re.split(r"\n\s*\n", text.strip()):
        if not para.strip():
            continue
        out, pos = [], 0
        for m in _URL.finditer(para):
            url, tail = _link(m.group(0))
            out.append(escape(para[pos:m.start()]))
            if len(url) > len("https://"):
                out.append(f'<a href="{escape(url)}">{escape(url)}</a>')
                links += 1
            else:
                out.append(escape(url))
            out.append(escape(tail))
            pos = m.end()
        out.append(escape(para[pos:]))
        paragraphs.append("<p>" + "".join(out).strip().replace("\n", "<br>\n") + "</p>")
    return sanitize_remote_html("\n".join(paragraphs)), links
