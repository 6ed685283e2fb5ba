"""``fedblog import wordpress FILE.xml``: bring a WordPress blog's posts and comments in.

The file is read twice, streaming: first to check all of it (a damaged or hostile file is refused
before the database is touched) and to count its items for the progress bar, then to import.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from tqdm import tqdm

from fedblog.blog.wordpress import WpItem, WxrError, check_file, wxr_records
from fedblog.blog.wp_import import MEDIA_FOLDER, MediaCopy, WpImporter, report_lines
from fedblog.federation import local_comments
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
                for record in wxr_records(path):
                    if isinstance(record, WpItem):
                        importer.add(record)
                        bar.update(1)
            report = importer.finish()
        except BaseException:
            importer.abort()
            raise
        # the comments and linkbacks become guest and site activities, served but never delivered
        published = local_comments.publish_import_run(services, importer.now)
    for line in report_lines(site, report):
        print(line)
    print(f"{published} comment(s) and linkback(s) published as activities of guest and site actors (not sent).")
    return 0
