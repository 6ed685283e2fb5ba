"""The ``fedblog`` command line.

    fedblog serve [--demo] [--host H] [--port P] [--ssl-certfile F --ssl-keyfile F]
    fedblog init
    fedblog post publish FILE.md | post list | post delete SLUG

Every failure prints one line that says what to do, and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from fedblog import __version__
from fedblog.blog.demo import load_demo
from fedblog.blog.posts import PostSourceError, delete_post, parse_post_source, save_post
from fedblog.services import Services, build_services
from fedblog.settings import SettingsError, ensure_secret_key, load_settings
from fedblog.store import posts as post_store
from fedblog.store.db import migrate, session_scope


class CliError(Exception):
    """A user-facing failure: printed as one line."""


@contextmanager
def _opened(**overrides: object) -> Iterator[Services]:
    """Services for one command; the database is migrated first and closed after."""
    settings = ensure_secret_key(load_settings(os.environ, **overrides))
    services = build_services(settings)
    try:
        migrate(services.engine)
        yield services
    finally:
        services.engine.dispose()


def cmd_init(args: argparse.Namespace) -> int:
    with _opened() as services:
        print(f"Database ready at {services.settings.database_url.split('@')[-1]}")
        print(f"Blog actor: @{services.settings.handle}@{services.settings.domain} ({services.urls.actor()})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fedblog.app import create_app

    overrides: dict[str, object] = {"base_url": args.base_url} if args.base_url else {}
    with _opened(**overrides) as services:
        if args.demo:
            with session_scope(services.engine) as session:
                post = load_demo(session, default_language=services.settings.language)
            print("Demo content loaded." if post else "Demo content already present.")
        app = create_app(services)
        scheme = "https" if args.ssl_certfile else "http"
        print(f"fedblog {__version__} serving {services.settings.base_url} on {scheme}://{args.host}:{args.port}")
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
            log_level=args.log_level,
            proxy_headers=True,
            access_log=args.access_log,
        )
    return 0


def cmd_post_publish(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file: give the path of a Markdown file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text: save the file as UTF-8") from None
    draft = parse_post_source(text, where=str(path))
    with _opened() as services, session_scope(services.engine) as session:
        result = save_post(
            session, draft, now=services.clock.now(), default_author=services.settings.author,
            default_language=services.settings.language,
        )
        url, created = services.urls.post(result.post.slug), result.created
    state = "draft saved" if draft.draft else ("published" if created else "updated")
    print(f"{state}: {url}")
    return 0


def cmd_post_list(args: argparse.Namespace) -> int:
    with _opened() as services, session_scope(services.engine) as session:
        posts = post_store.list_all_posts(session)
        if not posts:
            print("No posts yet. Publish one with: fedblog post publish FILE.md")
            return 0
        width = max(len(p.slug) for p in posts)
        for p in posts:
            flag = "draft" if p.draft else "     "
            print(f"{p.published_at:%Y-%m-%d}  {flag}  {p.slug:<{width}}  {p.title}")
    return 0


def cmd_post_delete(args: argparse.Namespace) -> int:
    with _opened() as services:
        with session_scope(services.engine) as session:
            try:
                delete_post(session, args.slug, now=services.clock.now())
            except LookupError as exc:
                raise CliError(str(exc.args[0])) from None
        print(f"deleted: {services.urls.post(args.slug)} now answers 410 Gone")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedblog",
        description="A self-hosted blog that is a first-class citizen of the fediverse.",
        epilog="Settings come from FEDBLOG_* environment variables; see the README. "
        "Example: FEDBLOG_BASE_URL=https://blog.example fedblog serve",
    )
    parser.add_argument("--version", action="version", version=f"fedblog {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the blog (web server and delivery worker)")
    serve.add_argument("--demo", action="store_true", help="load the demo post and its comments into a fresh database")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--base-url", help="public URL, overrides FEDBLOG_BASE_URL")
    serve.add_argument("--ssl-certfile", help="serve TLS with this certificate (PEM)")
    serve.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--no-access-log", dest="access_log", action="store_false", help="do not log each request")
    serve.set_defaults(func=cmd_serve)

    init = sub.add_parser("init", help="create or upgrade the database and the blog's keys")
    init.set_defaults(func=cmd_init)

    post = sub.add_parser("post", help="publish, list and delete posts")
    post_sub = post.add_subparsers(dest="post_command", metavar="ACTION")
    publish = post_sub.add_parser(
        "publish", help="publish or update a post from Markdown with front matter",
        description="Front matter keys: title (required), slug, date, tags, summary, draft, author, author_url, image, language.",
    )
    publish.add_argument("file", metavar="FILE.md")
    publish.set_defaults(func=cmd_post_publish)
    post_sub.add_parser("list", help="list posts, newest first").set_defaults(func=cmd_post_list)
    delete = post_sub.add_parser("delete", help="delete a post (its URL then answers 410 Gone)")
    delete.add_argument("slug")
    delete.set_defaults(func=cmd_post_delete)
    post.set_defaults(func=lambda a: (post.print_help(), 2)[1])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (CliError, SettingsError, PostSourceError) as exc:
        print(f"fedblog: error: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        print(f"fedblog: error: cannot use the database ({reason}): check FEDBLOG_DATABASE_URL and that the server is running", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"fedblog: error: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
