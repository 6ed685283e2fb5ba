"""Jinja2 environment: every filter and global registered in one place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

from fedblog import __version__
from fedblog.admin.editor import srcset
from fedblog.clock import utc
from fedblog.services import Services
from fedblog.web.middleware import HTML_HEADERS


def _human_date(dt: datetime) -> str:
    dt = utc(dt)
    return f"{dt.strftime('%B')} {dt.day}, {dt.year}"


def _human_datetime(dt: datetime) -> str:
    dt = utc(dt)
    return f"{dt.strftime('%B')} {dt.day}, {dt.year} at {dt.strftime('%H:%M')} UTC"


def _iso(dt: datetime) -> str:
    return utc(dt).isoformat().replace("+00:00", "Z")


def _rfc822(dt: datetime) -> str:
    return format_datetime(utc(dt), usegmt=True)


class _Site:
    """``site`` in templates (macros too): the effective profile of the moment (fedblog.blog.site)."""

    def __init__(self, services: Services) -> None:
        self._cache = services.site

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache.current(), name)


def build_environment(services: Services) -> Environment:
    env = Environment(
        loader=PackageLoader("fedblog", "templates"),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(human_date=_human_date, human_datetime=_human_datetime, iso=_iso, rfc822=_rfc822)
    env.globals.update(settings=services.settings, urls=services.urls, version=__version__, site=_Site(services))
    env.globals["media_srcset"] = lambda media: srcset(media, services.urls.media)  # the editor's uploads
    return env


class Renderer:
    """Renders with the effective profile as ``site`` (title, description, handle...) on every page."""

    def __init__(self, services: Services) -> None:
        self.env = build_environment(services)

    def page(
        self, name: str, context: dict[str, Any], *, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status_code, headers={**HTML_HEADERS, **(headers or {})})

    def text(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(**context)
