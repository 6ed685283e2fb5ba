"""A WordPress import started from the admin: one at a time, in a background thread.

The uploaded WXR file is already on disk (under the data directory); the same importer as
``fedblog import wordpress`` reads it twice, streaming (check and count, then import), in a
thread of its own so the event loop never waits on it. The page polls ``current()``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine

from fedblog.blog.wordpress import WpItem, WxrError, check_file, read_wxr
from fedblog.blog.wp_import import WpImporter, report_lines
from fedblog.federation import local_comments
from fedblog.services import Services

log = logging.getLogger(__name__)


@dataclass
class ImportJob:
    filename: str
    size: int
    started_at: datetime
    state: str = "checking"  # checking | importing | done | failed
    done: int = 0
    total: int = 0
    lines: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state in ("checking", "importing")

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


_JOBS: WeakKeyDictionary[Engine, ImportJob] = WeakKeyDictionary()  # one blog, one database, one job
_LOCK = threading.Lock()


class Busy(Exception):
    """An import is already running."""


def current(services: Services) -> ImportJob | None:
    return _JOBS.get(services.engine)


def start(services: Services, path: Path, filename: str, *, include_pages: bool) -> tuple[ImportJob, threading.Thread]:
    """Start importing ``path`` (removed when done); Busy if another import runs."""
    with _LOCK:
        running = _JOBS.get(services.engine)
        if running is not None and running.running:
            raise Busy("An import is already running: wait for it to finish.")
        job = ImportJob(filename=filename, size=path.stat().st_size, started_at=services.clock.now())
        _JOBS[services.engine] = job
    thread = threading.Thread(target=_run, args=(services, job, path, include_pages), name="wp-import", daemon=True)
    thread.start()
    return job, thread


def _run(services: Services, job: ImportJob, path: Path, include_pages: bool) -> None:
    try:
        site, job.total = check_file(path)  # a damaged or hostile file is refused before any write
        job.state = "importing"
        importer = WpImporter(
            services.engine, site, now=services.clock.now(), default_author=services.settings.author,
            language=services.settings.language, include_pages=include_pages,
        )
        try:
            with path.open("rb") as f:
                for record in read_wxr(f, where=job.filename):
                    if isinstance(record, WpItem):
                        importer.add(record)
                        job.done += 1
            report = importer.finish()
        except BaseException:
            importer.abort()
            raise
        published = local_comments.publish_import_run(services, importer.now)
        job.lines = [line.replace(str(path), job.filename) for line in report_lines(site, report)]
        job.lines.append(f"{published} comment(s) and linkback(s) published as activities of guest and site "
                         "actors (not sent).")
        job.state = "done"
    except WxrError as exc:
        job.error, job.state = str(exc).replace(str(path), job.filename), "failed"
    except Exception:  # a bug or an outage: say so on the page, keep the details in the log
        log.exception("WordPress import of %s failed", job.filename)
        job.error, job.state = "The import stopped on an unexpected error; the server log has the details.", "failed"
    finally:
        path.unlink(missing_ok=True)
