"""The one frozen Settings object.

Built once from a mapping (the process environment, passed in by the CLI) plus CLI overrides.
Nothing else in fedblog reads ``os.environ``. Every error names the variable and how to fix it,
in one line, so the CLI can print it as is.

| variable | default | meaning |
| --- | --- | --- |
| FEDBLOG_BASE_URL | http://127.0.0.1:8000 | public URL; every ActivityPub id is built from it |
| FEDBLOG_DOMAIN | host of the base URL | the domain in ``@handle@domain`` (WebFinger); may be a parent domain |
| FEDBLOG_HANDLE | blog | the blog actor's username |
| FEDBLOG_NAME | fedblog | display name of the blog |
| FEDBLOG_DESCRIPTION | A blog on the fediverse | shown on the about page and the actor |
| FEDBLOG_AUTHOR | the blog name | default author of posts |
| FEDBLOG_LANGUAGE | en | content language (BCP 47) |
| FEDBLOG_DATA_DIR | ./fedblog-data | keys, SQLite file, secret key |
| FEDBLOG_DATABASE_URL | sqlite:///DATA_DIR/fedblog.db | SQLAlchemy URL; postgresql://… for PostgreSQL |
| FEDBLOG_SECRET_KEY | generated into DATA_DIR/secret_key | signs form tokens and admin sessions |
| FEDBLOG_POSTS_PER_PAGE | 10 | home page size |
| FEDBLOG_ALLOW_PRIVATE_HOSTS | (empty) | hostnames the guarded client may reach on non-global addresses |
| FEDBLOG_MODERATION | first-contact | first-contact, approve-all or hold-all (the admin's choice wins once saved) |
| FEDBLOG_COMMENT_CONSENT_DEFAULT | off | whether the web comment form's consent box starts ticked (on/off) |
| FEDBLOG_COMMENT_RATE_LIMIT | 10 | web comment form POSTs per client IP per comment window (0: off); more get 429 |
| FEDBLOG_COMMENT_RATE_WINDOW | 600 | the comment rate-limit window, in seconds |
| FEDBLOG_COMMENT_MIN_SECONDS | 3 | the comment form is refused when sent sooner than this after the page was served |
| FEDBLOG_WORKER | on | run the delivery worker inside `fedblog serve` (on/off) |
| FEDBLOG_DELIVERY_CONCURRENCY | 50 | parallel deliveries per worker process |
| FEDBLOG_DELIVERY_PER_HOST | 16 | parallel deliveries to one host, per worker process |
| FEDBLOG_DELIVERY_LEASE | 30 | seconds a claimed delivery stays leased unless renewed (every third of it) |
| FEDBLOG_DELIVERY_TIMEOUT | 30 | wall-clock deadline of one delivery POST, in seconds (connect: at most 5 s) |
| FEDBLOG_FETCH_DEADLINE | 10 | seconds a key, actor or object fetch on the inbox's request path may take |
| FEDBLOG_ADMIN_SESSION_HOURS | 168 | how long an admin login lasts (hours) |
| FEDBLOG_RATE_LIMIT | 300 | inbox POSTs per client IP per window (0: off); more get 429 + Retry-After |
| FEDBLOG_RATE_LIMIT_HOST | 3000 | accepted inbox POSTs per signing host per window (0: off) |
| FEDBLOG_RATE_WINDOW | 300 | the rate-limit window, in seconds |
| FEDBLOG_LINKBACK_RATE_LIMIT | 20 | pingback and Webmention POSTs per client IP per window (0: off) |
| FEDBLOG_LINKBACK_RATE_LIMIT_HOST | 10 | pingbacks and Webmentions naming one source host per window (0: off) |
| FEDBLOG_TRUSTED_PROXIES | 127.0.0.1,::1 | proxy addresses/networks whose X-Forwarded-For/-Proto are believed |
| FEDBLOG_HEADER_TIMEOUT | 10 | seconds a client has to send a request's headers (`fedblog serve`) |
| FEDBLOG_BODY_TIMEOUT | 15 | seconds a client has to send a request's body |
| FEDBLOG_PAGE_CACHE_MB | 32 | memory for rendered post pages and Articles per process (0: no cache) |
| FEDBLOG_DB_WRITE_TIMEOUT | 5 | seconds an inbox write waits for a locked database before answering 503 |
| SSL_CERT_FILE | (system/certifi) | CA bundle trusted for outbound TLS |
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MODERATION_MODES = ("first-contact", "approve-all", "hold-all")
_HANDLE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$")
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


# the names of guest and site actors (fedblog.federation.guests): guest-<n>, site-<n>
GUEST_HANDLE_PREFIX, SITE_HANDLE_PREFIX = "guest-", "site-"


def reserved_handle(handle: str) -> bool:
    """Whether ``handle`` starts like a guest or site actor's name (any case, as WebFinger compares):
    the blog's handle may not, so ``@guest-5@example.net`` can only ever name a guest."""
    return handle.lower().startswith((GUEST_HANDLE_PREFIX, SITE_HANDLE_PREFIX))


def valid_handle(handle: str) -> bool:
    """A username as FEDBLOG_HANDLE (and the admin's profile page) take it."""
    return bool(_HANDLE_RE.match(handle)) and not reserved_handle(handle)


class SettingsError(ValueError):
    """A setting is wrong. The message is one line that says how to fix it."""


@dataclass(frozen=True)
class Settings:
    base_url: str = "http://127.0.0.1:8000"
    domain: str = "127.0.0.1"
    handle: str = "blog"
    name: str = "fedblog"
    description: str = "A blog on the fediverse"
    author: str = "fedblog"
    language: str = "en"
    data_dir: Path = Path("fedblog-data")
    database_url: str = "sqlite:///fedblog-data/fedblog.db"
    secret_key: str = ""
    posts_per_page: int = 10
    allow_private_hosts: frozenset[str] = frozenset()
    moderation: str = "first-contact"
    comment_consent_default: bool = False
    comment_rate_limit: int = 10  # web comment POSTs per client IP per window (0: off)
    comment_rate_window: int = 600
    comment_min_seconds: int = 3  # a form sent sooner after it was served is a bot's
    run_worker: bool = True
    delivery_concurrency: int = 50
    delivery_per_host: int = 16
    delivery_lease_seconds: int = 30
    delivery_timeout_seconds: int = 30
    fetch_deadline: int = 10
    admin_session_hours: int = 168
    ssl_cert_file: str | None = None
    rate_limit: int = 300  # GoToSocial's default: 300 requests per 5 minutes per IP
    rate_limit_host: int = 3000
    rate_window: int = 300
    linkback_rate_limit: int = 20  # pingback + Webmention POSTs per IP per window (docs/security.md)
    linkback_rate_limit_host: int = 10  # requests naming one source host per window: fetches we make there
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
    header_timeout: int = 10
    body_timeout: int = 15
    page_cache_mb: int = 32
    db_write_timeout: int = 5

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number: set it to e.g. {default}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range: use a number from {low} to {high}")
    return value


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(
                f"FEDBLOG_TRUSTED_PROXIES: {part!r} is not an IP address or network: use e.g. 127.0.0.1,172.16.0.0/12"
            ) from None
    return tuple(nets)


def _base_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"FEDBLOG_BASE_URL={raw!r} is not an http(s) URL: use e.g. https://blog.example"
        )
    if parts.query or parts.fragment or parts.username:
        raise SettingsError(f"FEDBLOG_BASE_URL={raw!r} must not have a query, fragment or user")
    if parts.path not in ("", "/"):
        raise SettingsError(
            f"FEDBLOG_BASE_URL={raw!r} has a path; fedblog must be served at the root of its host"
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


def load_settings(env: Mapping[str, str], **overrides: object) -> Settings:
    """Build Settings from ``env`` (usually ``os.environ``) and explicit overrides.

    Overrides come from CLI flags and win over the environment. The secret key, when not given,
    is created once in the data directory so that it survives restarts.
    """
    base_url = _base_url(str(overrides.pop("base_url", None) or env.get("FEDBLOG_BASE_URL") or "http://127.0.0.1:8000"))
    host = urlsplit(base_url).hostname or ""
    domain = _domain(env.get("FEDBLOG_DOMAIN", ""), host)
    handle = env.get("FEDBLOG_HANDLE", "blog").strip() or "blog"
    if not _HANDLE_RE.match(handle):
        raise SettingsError(
            f"FEDBLOG_HANDLE={handle!r} is not a valid username: use letters, digits, _ . - only"
        )
    if reserved_handle(handle):
        raise SettingsError(f"FEDBLOG_HANDLE={handle!r} is taken: names starting with "
                            f"{GUEST_HANDLE_PREFIX!r} or {SITE_HANDLE_PREFIX!r} are the blog's guest and site actors")
    name = env.get("FEDBLOG_NAME", "").strip() or "fedblog"
    language = env.get("FEDBLOG_LANGUAGE", "en").strip() or "en"
    if not _LANG_RE.match(language):
        raise SettingsError(f"FEDBLOG_LANGUAGE={language!r} is not a language tag: use e.g. en or pt-BR")
    data_dir = Path(str(overrides.pop("data_dir", None) or env.get("FEDBLOG_DATA_DIR") or "fedblog-data"))
    if data_dir.exists() and not data_dir.is_dir():
        raise SettingsError(f"FEDBLOG_DATA_DIR={str(data_dir)!r} is a file: point it at a directory")
    database_url = str(
        overrides.pop("database_url", None)
        or env.get("FEDBLOG_DATABASE_URL")
        or f"sqlite:///{(data_dir / 'fedblog.db').as_posix()}"
    )
    database_url = _normalise_db_url(database_url)
    moderation = env.get("FEDBLOG_MODERATION", "first-contact").strip() or "first-contact"
    if moderation not in MODERATION_MODES:
        raise SettingsError(
            f"FEDBLOG_MODERATION={moderation!r} is unknown: use one of {', '.join(MODERATION_MODES)}"
        )
    consent = env.get("FEDBLOG_COMMENT_CONSENT_DEFAULT", "off").strip().lower() or "off"
    if consent not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
        raise SettingsError(f"FEDBLOG_COMMENT_CONSENT_DEFAULT={consent!r}: use on or off")
    worker = env.get("FEDBLOG_WORKER", "on").strip().lower()
    if worker not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
        raise SettingsError(f"FEDBLOG_WORKER={worker!r}: use on or off")
    allow = frozenset(
        h.strip().lower().rstrip(".") for h in env.get("FEDBLOG_ALLOW_PRIVATE_HOSTS", "").split(",") if h.strip()
    )
    cert = env.get("SSL_CERT_FILE") or None
    if cert and not Path(cert).is_file():
        raise SettingsError(f"SSL_CERT_FILE={cert!r} does not exist: point it at a PEM CA bundle or unset it")
    settings = Settings(
        base_url=base_url,
        domain=domain,
        handle=handle,
        name=name,
        description=env.get("FEDBLOG_DESCRIPTION", "").strip() or "A blog on the fediverse",
        author=env.get("FEDBLOG_AUTHOR", "").strip() or name,
        language=language,
        data_dir=data_dir,
        database_url=database_url,
        secret_key=env.get("FEDBLOG_SECRET_KEY", "").strip(),
        posts_per_page=_int(env, "FEDBLOG_POSTS_PER_PAGE", 10, 1, 100),
        allow_private_hosts=allow,
        moderation=moderation,
        comment_consent_default=consent in ("on", "1", "true", "yes"),
        comment_rate_limit=_int(env, "FEDBLOG_COMMENT_RATE_LIMIT", 10, 0, 1_000_000),
        comment_rate_window=_int(env, "FEDBLOG_COMMENT_RATE_WINDOW", 600, 1, 86400),
        comment_min_seconds=_int(env, "FEDBLOG_COMMENT_MIN_SECONDS", 3, 0, 600),
        run_worker=worker in ("on", "1", "true", "yes"),
        delivery_concurrency=_int(env, "FEDBLOG_DELIVERY_CONCURRENCY", 50, 1, 1000),
        delivery_per_host=_int(env, "FEDBLOG_DELIVERY_PER_HOST", 16, 1, 1000),
        delivery_lease_seconds=_int(env, "FEDBLOG_DELIVERY_LEASE", 30, 2, 3600),
        delivery_timeout_seconds=_int(env, "FEDBLOG_DELIVERY_TIMEOUT", 30, 1, 300),
        fetch_deadline=_int(env, "FEDBLOG_FETCH_DEADLINE", 10, 1, 60),
        admin_session_hours=_int(env, "FEDBLOG_ADMIN_SESSION_HOURS", 168, 1, 2160),
        ssl_cert_file=cert,
        rate_limit=_int(env, "FEDBLOG_RATE_LIMIT", 300, 0, 1_000_000),
        rate_limit_host=_int(env, "FEDBLOG_RATE_LIMIT_HOST", 3000, 0, 1_000_000),
        rate_window=_int(env, "FEDBLOG_RATE_WINDOW", 300, 1, 86400),
        linkback_rate_limit=_int(env, "FEDBLOG_LINKBACK_RATE_LIMIT", 20, 0, 1_000_000),
        linkback_rate_limit_host=_int(env, "FEDBLOG_LINKBACK_RATE_LIMIT_HOST", 10, 0, 1_000_000),
        trusted_proxies=_networks(env.get("FEDBLOG_TRUSTED_PROXIES", "127.0.0.1,::1")),
        header_timeout=_int(env, "FEDBLOG_HEADER_TIMEOUT", 10, 1, 300),
        body_timeout=_int(env, "FEDBLOG_BODY_TIMEOUT", 15, 1, 3600),
        page_cache_mb=_int(env, "FEDBLOG_PAGE_CACHE_MB", 32, 0, 1024),
        db_write_timeout=_int(env, "FEDBLOG_DB_WRITE_TIMEOUT", 5, 1, 60),
    )
    if overrides:
        settings = settings.replace(**overrides)
    return settings


def _domain(raw: str, host: str) -> str:
    """The handle domain: the base URL's host unless FEDBLOG_DOMAIN names another (split domain)."""
    domain = raw.strip().lower().rstrip(".")
    if not domain:
        return host
    if not _DOMAIN_RE.match(domain) or len(domain) > 253:
        raise SettingsError(
            f"FEDBLOG_DOMAIN={raw!r} is not a domain name: use a bare host such as example.net (no scheme, path or @)"
        )
    return domain


def _normalise_db_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not (url.startswith("sqlite") or url.startswith("postgresql+psycopg://")):
        raise SettingsError(
            f"FEDBLOG_DATABASE_URL={url.split('@')[-1]!r} is not supported: use sqlite:///path or postgresql://user@host/db"
        )
    return url


def ensure_secret_key(settings: Settings) -> Settings:
    """Return settings with a secret key, creating ``DATA_DIR/secret_key`` the first time."""
    if settings.secret_key:
        return settings
    path = settings.data_dir / "secret_key"
    if path.exists():
        key = path.read_text().strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        path.write_text(key + "\n")
        path.chmod(0o600)
    return settings.replace(secret_key=key)
