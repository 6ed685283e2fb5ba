"""``fedblog import wordpress FILE.xml``: bring a WordPress blog's posts and comments in.

The file is read twice, streaming: first to check all of it (a damaged or hostile file is refused
before the database is touched) and to count its items for the progress bar, then to import.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from tqdm import tqdm

from fedblog.blog.wordpress import WHAT_TO_DO, WpItem, WpSite, WxrError, read_wxr
from fedblog.blog.wp_import import MEDIA_FOLDER, ImportReport, MediaCopy, WpImporter
from fedblog.services import Services

Opened = Callable[[], AbstractContextManager[Services]]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], opened: Opened) -> None:
    imp = sub.add_parser("import", help="import another blog (WordPress export file)")
    imp_sub = imp.add_subparsers(dest="import_source", metavar="SOURCE")
    wp = imp_sub.add_parser(
        "wordpress", help="import a WordPress export (Tools → Export → All content)",
        description="Posts keep their slugs and dates, old permalinks redirect, approved comments and "
        "pingbacks keep their threading. Nothing is sent to followers. Running it again adds only what is new.",
    )
    wp.add_argument("file", metavar="FILE.xml")
    wp.add_argument("--pages", action="store_true", help="import pages too, as posts (default: skip them)")
    wp.add_argument("--media-dir", metavar="DIR", help="the old site's wp-content/uploads folder: files the "
                    "posts use are copied into the data directory and served under /media/")
    wp.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")
    wp.add_argument("--quiet", action="store_true", help="no progress bar")
    wp.set_defaults(func=lambda args: cmd_import_wordpress(args, opened))

    def import_help(_args: argparse.Namespace) -> int:
        imp.print_help()
        return 2

    imp.set_defaults(func=import_help)


def _items(path: Path, records: bool = True) -> Iterator[WpSite | WpItem | None]:
    with path.open("rb") as f:
        yield from read_wxr(f, where=str(path), records=records)


def check_file(path: Path) -> tuple[WpSite, int]:
    """Read the whole file once without storing anything: its site and number of items."""
    if not path.is_file():
        raise WxrError(f"{path}: no such file: give the path of the .xml file WordPress exported")
    site: WpSite | None = None
    count = 0
    for record in _items(path, records=False):
        if isinstance(record, WpSite):
            site = record
        else:
            count += 1
    if site is None:  # read_wxr always yields the site of a valid file
        raise WxrError(f"{path} is not a WordPress export: {WHAT_TO_DO}")
    return site, count


def cmd_import_wordpress(args: argparse.Namespace, opened: Opened) -> int:
    if not 1 <= args.batch <= 100_000:
        raise WxrError(f"--batch {args.batch} is out of range: use a number from 1 to 100000")
    path = Path(args.file)
    media_dir = Path(args.media_dir) if args.media_dir else None
    if media_dir is not None and not media_dir.is_dir():
        raise WxrError(f"--media-dir {media_dir}: no such folder: give the copy of wp-content/uploads")
    site, total = check_file(path)
    with opened() as services:
        importer = WpImporter(
            services.engine, site, now=services.clock.now(), default_author=services.settings.author,
            language=services.settings.language, include_pages=args.pages, batch_rows=args.batch,
            media=MediaCopy(media_dir, services.settings.data_dir / MEDIA_FOLDER, services.urls.base_url + "/media/")
            if media_dir is not None else None,
        )
        try:
            with tqdm(total=total, unit="item", file=sys.stderr, disable=args.quiet) as bar:
                for record in _items(path):
                    if isinstance(record, WpItem):
                        importer.add(record)
                        bar.update(1)
            report = importer.finish()
        except BaseException:
            importer.abort()
            raise
    for line in report_lines(site, report):
        print(line)
    return 0


def report_lines(site: WpSite, r: ImportReport) -> list[str]:
    out = [
        f"Imported from {site.base_site_url or site.link or 'WordPress'} (WXR {site.wxr_version}): "
        f"{r.posts} post(s), {r.drafts} draft(s), {r.comments} comment(s), {r.linkbacks} pingback(s)/trackback(s), "
        f"{r.old_urls} old URL(s) now redirecting",
    ]
    if r.posts_already or r.comments_already:
        out.append(f"Already imported before (left as they are): {r.posts_already} post(s), "
                   f"{r.comments_already} comment(s)")
    if r.skipped:
        out.append(f"Skipped {sum(r.skipped.values())}:")
        for reason, n in sorted(r.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            more = f", ... ({n - len(r.examples[reason])} more)" if n > len(r.examples[reason]) else ""
            out.append(f"  {n:>6}  {reason}: {', '.join(r.examples[reason])}{more}")
    else:
        out.append("Nothing was skipped.")
    for what, n in sorted(r.notes.items()):
        out.append(f"  note: {n} {what}: {', '.join(r.examples[what])}")
    out.append("Nothing was sent to followers: imported posts and comments are history.")
    return out
