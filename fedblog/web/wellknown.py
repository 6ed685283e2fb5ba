"""WebFinger, host-meta and NodeInfo."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from sqlalchemy import func
from sqlmodel import Session, select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fedblog import __version__
from fedblog.activitypub import vocab
from fedblog.activitypub.origin import canonical_url, host_of, normalise_host
from fedblog.federation.guests import find_local, parse_username, username_of
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store import posts as post_store
from fedblog.store.tables import Interaction
from fedblog.urls import Urls
from fedblog.web.common import services_of
from fedblog.web.negotiation import JRDResponse

CORS = {"Access-Control-Allow-Origin": "*"}


def _account(resource: str) -> tuple[str, str] | None:
    """(user, domain) of an ``acct:user@domain`` resource (also without ``acct:`` or with a leading ``@``)."""
    account = resource[len("acct:") :] if resource.lower().startswith("acct:") else resource
    user, sep, domain = account.removeprefix("@").rpartition("@")
    return (user, domain) if sep and user else None


def _is_url(resource: str) -> bool:
    return ":" in resource and not resource.lower().startswith("acct:")


def _our_domain(domain: str, settings: Settings) -> bool:
    """The handle domain or the blog's host, in any spelling: case, a trailing dot, Unicode or IDNA
    form (RFC 5891), and the blog's host with its port as written, or without a default one."""
    ours = {normalise_host(settings.domain), host_of(settings.base_url)}
    port = urlsplit(settings.base_url).port
    host = domain
    if port is not None and domain.endswith(f":{port}"):
        host = domain[: -len(f":{port}")]
        return normalise_host(host) == host_of(settings.base_url)
    return normalise_host(host) in ours


def _answers_to(resource: str, settings: Settings, urls: Urls, handle: str) -> bool:
    """Whether ``resource`` names the blog's account: its acct names (any spelling of the domain), or its URLs.

    The handle domain (FEDBLOG_DOMAIN) may differ from the blog's host. Mastodon then asks both:
    ``acct:{preferredUsername}@{host of the actor id}`` on the blog itself first, then the
    ``subject`` it was told, on the handle domain (Mastodon app/services/resolve_account_service.rb
    ``process_webfinger!``; app/services/activitypub/fetch_remote_actor_service.rb ``check_webfinger!``).
    """
    if _is_url(resource):
        return any(canonical_url(resource) == canonical_url(u) for u in (urls.actor(), urls.home(), settings.base_url))
    account = _account(resource)
    return account is not None and account[0].lower() == handle.lower() and _our_domain(account[1], settings)


def _guest_named(resource: str, settings: Settings, urls: Urls) -> tuple[int, str | None] | None:
    """(row id, the username asked for or None for a URL) of the guest or site actor ``resource``
    may name: ``acct:guest-<n>@`` / ``acct:site-<n>@`` the handle domain or the blog's host, or the
    actor's URL. The caller checks that such a local actor exists."""
    if _is_url(resource):
        number = urls.match_guest(resource)
        return None if number is None or "#" in resource else (number, None)
    account = _account(resource)
    if account is None or not _our_domain(account[1], settings):
        return None
    number = parse_username(account[0])
    return None if number is None else (number, account[0])


def _guest_username(services: Services, number: int, username: str | None) -> str | None:
    with Session(services.engine) as session:
        actor = find_local(session, number, username, public=True)
        return username_of(actor) if actor is not None else None


async def webfinger(request: Request) -> Response:
    services = services_of(request)
    s, urls = services.settings, services.urls
    handle = services.site.current().handle  # the effective handle (the admin may change it)
    resource = unquote(request.query_params.get("resource", "")).strip()
    if not resource:
        raise HTTPException(400, "Missing ?resource=acct:user@domain")
    if _answers_to(resource, s, urls, handle):
        # Always the handle domain as subject, whichever name was asked: that is the account's canonical
        # name, and the one Mastodon confirms with its second lookup.
        return JRDResponse(vocab.webfinger_document(
            subject=f"acct:{handle}@{s.domain}", actor_id=urls.actor(), profile_url=urls.home()))
    guest = _guest_named(resource, s, urls)
    username = await services.run_db(_guest_username, services, *guest) if guest is not None else None
    if guest is not None and username is not None:
        # a guest or site actor (docs/guest-actors.md): named on the handle domain, like the blog
        actor_id = urls.guest_actor(guest[0])
        return JRDResponse(vocab.webfinger_document(
            subject=f"acct:{username}@{s.domain}", actor_id=actor_id, profile_url=actor_id))
    raise HTTPException(404, f"No account {resource[:200]!r} here; try acct:{handle}@{s.domain}")


async def host_meta(request: Request) -> Response:
    services = services_of(request)
    template = f"{services.settings.base_url}/.well-known/webfinger?resource={{uri}}"
    if "json" in request.headers.get("accept", "") or request.url.path.endswith(".json"):
        return JSONResponse(vocab.host_meta_json(template), headers=CORS)
    return Response(vocab.host_meta_xml(template), media_type="application/xrd+xml", headers=CORS)


async def nodeinfo_links(request: Request) -> Response:
    return JSONResponse(vocab.nodeinfo_links(services_of(request).settings.base_url), headers=CORS)


def _usage(services: Services) -> tuple[int, int]:
    with Session(services.engine) as session:
        posts = post_store.count_posts(session)
        comments = session.exec(
            select(func.count()).select_from(Interaction).where(Interaction.status == "visible")
        ).one()
    return posts, comments


async def nodeinfo(request: Request) -> Response:
    services = services_of(request)
    version = request.path_params["version"]
    if version not in ("2.0", "2.1"):
        raise HTTPException(404, "NodeInfo 2.0 and 2.1 are served.")
    posts, comments = await services.run_db(_usage, services)
    site = services.site.current()
    doc = vocab.nodeinfo_document(version, software_version=__version__, name=site.name,
                                  description=site.description_text, local_posts=posts, local_comments=comments)
    profile = f"http://nodeinfo.diaspora.software/ns/schema/{version}#"
    return JSONResponse(doc, headers=CORS, media_type=f'application/json; profile="{profile}"')
