"""The frozen Services container: everything a request or a job needs, built once.

Passed explicitly to ``create_app`` and to workers; there is no global state. Tests build it
with their own clock and HTTP transport (the fake fediverse).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from fedblog.clock import Clock, SystemClock
from fedblog.settings import Settings
from fedblog.store.db import make_engine
from fedblog.urls import Urls


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    urls: Urls
    clock: Clock


def build_services(settings: Settings, *, clock: Clock | None = None, engine: Engine | None = None) -> Services:
    return Services(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        urls=Urls(settings.base_url, settings.handle),
        clock=clock or SystemClock(),
    )
