"""The ``fedblog`` command line.

    fedblog serve [--demo] [--host H] [--port P] [--ssl-certfile F --ssl-keyfile F]
    fedblog post publish FILE.md [--send-as-new] | post list | post delete SLUG
    fedblog init [--admin-password-file F]
    fedblog admin set-password [--password-file F]
    fedblog worker [--once] | deliveries | moderation ACTION | inbox failed | inbox retry ID... | --all
    fedblog import wordpress EXPORT.xml [--pages]

Every failure prints one line that says what to do, and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import OperationalError, SQLAlchemyError
from tqdm import tqdm

from fedblog import __version__, cli_wordpress
from fedblog.blog.interactions import IllegalTransition
from fedblog.blog.markup import html_to_text
from fedblog.blog.posts import PostSourceError, parse_post_source
from fedblog.blog.wordpress import WxrError
from fedblog.cli_admin import init_password
from fedblog.cli_admin import register as register_admin
from fedblog.cli_errors import CliError
from fedblog.federation import local_comments, moderation
from fedblog.federation.handlers import build_handlers
from fedblog.federation.inbox import Inbox
from fedblog.federation.profile import announce_profile_change
from fedblog.federation.publishing import publish, quiet_notice, unpublish
from fedblog.jobs import scheduler
from fedblog.jobs.runner import DeliveryRunner, RunStats
from fedblog.services import Services, build_services
from fedblog.settings import SettingsError, ensure_secret_key, load_settings
from fedblog.store import federation as fed_store
from fedblog.store import posts as post_store
from fedblog.store.db import migrate, session_scope
from fedblog.store.federation import pending_count


@contextmanager
def _opened(**overrides: object) -> Iterator[Services]:
    """Services for one command; the database is migrated first and closed after."""
    settings = ensure_secret_key(load_settings(os.environ, **overrides))
    services = build_services(settings)
    try:
        migrate(services.engine)
        services.site.refresh(services.engine)  # the profile saved from the admin (handle, name...)
        yield services
    finally:
        services.engine.dispose()


def _announce_profile(services: Services) -> None:
    """If the actor document changed since it was last announced, queue Update(Person) to followers."""
    with session_scope(services.engine) as session:
        done = announce_profile_change(session, services)
    if done.outcome == "announced":
        print(f"Profile changed: Update queued for {done.inboxes} follower inbox(es)", flush=True)


def cmd_init(args: argparse.Namespace) -> int:
    with _opened() as services:
        services.keys.get()
        _announce_profile(services)
        init_password(services, args.admin_password_file, os.environ)
        print(f"Database ready at {services.settings.database_url.split('@')[-1]}")
        print(f"Blog actor: @{services.site.current().acct} ({services.urls.actor()})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fedblog.app import create_app
    from fedblog.web.serving import (
        MAX_CONNECTIONS,
        freeze_startup_objects,
        protocol_class,
        return_big_buffers_to_the_os,
        short_gil_turns,
    )

    overrides: dict[str, object] = {"base_url": args.base_url} if args.base_url else {}
    with _opened(**overrides) as services:
        services.keys.get()
        _announce_profile(services)
        if args.demo:
            with session_scope(services.engine) as session:
                # its comments and pingback become guest and site activities, never delivered
                post = local_comments.load_demo(session, services)
            print("Demo content loaded." if post else "Demo content already present.")
        app = create_app(services)
        settings = services.settings
        return_big_buffers_to_the_os()  # RSS falls back after a burst of large bodies
        short_gil_turns()  # the database threads get the GIL back quickly between SQLite calls
        freeze_startup_objects()  # the collector no longer walks them at every full collection
        scheme = "https" if args.ssl_certfile else "http"
        print(f"fedblog {__version__} serving {services.settings.base_url} on {scheme}://{args.host}:{args.port}")
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
            log_level=args.log_level,
            proxy_headers=False,  # X-Forwarded-* from FEDBLOG_TRUSTED_PROXIES only: fedblog/web/middleware.py
            http=protocol_class(settings.header_timeout, settings.body_timeout),
            limit_concurrency=MAX_CONNECTIONS,
            access_log=args.access_log,
            timeout_graceful_shutdown=5,  # with TLS, idle keep-alive clients otherwise block shutdown
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
    with _opened() as services:
        services.keys.get()
        with session_scope(services.engine) as session:
            result = publish(session, services, draft, send_as_new=args.send_as_new)
            url, published = services.urls.post(result.post.slug), result.post.published_at
            ap_id, queued = services.urls.post_id(result.post.ap_path), pending_count(session)
        state = "draft saved" if draft.draft else ("published" if result.created else "updated")
        print(f"{state}: {url}" + (f" (fediverse id {ap_id}: a deleted post had this slug)" if ap_id != url else ""))
        if result.quiet:
            print(quiet_notice(published))
        elif not draft.draft:
            print(f"{queued} deliveries queued; the worker in 'fedblog serve' (or 'fedblog worker') sends them")
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
        services.keys.get()
        with session_scope(services.engine) as session:
            try:
                unpublish(session, services, args.slug)
            except LookupError as exc:
                raise CliError(str(exc.args[0])) from None
        print(f"deleted: {services.urls.post(args.slug)} now answers 410 Gone")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Deliver queued activities: until idle with a progress bar (--once), or forever."""
    with _opened() as services:
        services.keys.get()
        runner = DeliveryRunner(services, concurrency=args.concurrency)
        if args.once:
            scheduled = asyncio.run(scheduler.run_once(services))  # due scheduled posts first
            if scheduled:
                print(f"published {scheduled} scheduled post{'s' if scheduled != 1 else ''}")
            with session_scope(services.engine) as session:
                total = pending_count(session, due_only=True, now=services.clock.now())
            with tqdm(total=total, unit="delivery", disable=args.quiet or total == 0) as bar:
                done = 0

                def progress(stats: RunStats) -> None:
                    nonlocal done
                    bar.update(stats.settled - done)
                    done = stats.settled

                runner.on_progress = progress
                stats = asyncio.run(_run_until_idle(services, runner))
            print(f"sent {stats.sent}, retry later {stats.retried}, gave up {stats.gave_up}, gone {stats.gone}")
            return 0
        print(f"fedblog worker {runner.worker_id}: delivering with concurrency {runner.concurrency}; Ctrl-C to stop")
        asyncio.run(_run_forever(services, runner))
    return 0


async def _run_until_idle(services: Services, runner: DeliveryRunner) -> RunStats:
    try:
        return await runner.run_until_idle()
    finally:
        await services.http.aclose()


async def _run_forever(services: Services, runner: DeliveryRunner) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.gather(runner.run_forever(stop), scheduler.run_forever(services, stop))
    finally:
        await services.http.aclose()


def cmd_deliveries(args: argparse.Namespace) -> int:
    """Show the delivery queue: counts, then pending/failing/given-up rows with the last error."""
    states = {
        "pending": ["pending"],
        "failing": ["pending"],
        "gave-up": ["gave_up"],
        "all": ["pending", "gave_up", "sent"],
    }[args.show]
    with _opened() as services, session_scope(services.engine) as session:
        counts = fed_store.delivery_counts(session)
        print(
            "deliveries: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("pending", "sent", "gave_up", "cancelled"))
        )
        hosts = fed_store.list_unavailable_hosts(session)
        if hosts:
            print("unavailable hosts (failed on 7+ days; retried daily): " + ", ".join(h.host for h in hosts))
        rows = fed_store.list_deliveries(session, states=states, limit=args.limit)
        for d, a in rows:
            if args.show == "failing" and d.attempts == 0:
                continue
            when = d.finished_at if d.state != "pending" else d.next_attempt_at
            status = d.last_status if d.last_status is not None else "-"
            print(f"{d.state:8} {a.type:7} {d.inbox}  attempts={d.attempts} status={status} "
                  f"{'next' if d.state == 'pending' else 'at'}={when:%Y-%m-%d %H:%M}  {d.last_error or ''}")
    return 0


def cmd_moderation(args: argparse.Namespace) -> int:
    with _opened() as services, session_scope(services.engine) as session:
        now = services.clock.now()
        try:
            if args.action == "list":
                pending = moderation.list_pending(session)
                if not pending:
                    print("Nothing is waiting for moderation.")
                for item in pending:
                    who = f"@{item.author_handle}" if item.author_handle else (item.author_url or "")
                    text = html_to_text(item.content_html)
                    print(f"{item.id:>6}  {item.published_at:%Y-%m-%d %H:%M}  {item.author_name} {who}  via {item.via}")
                    print(f"        {text[:160]}")
            elif args.action == "approve":
                item = moderation.approve(session, _int_arg(args.target), now, services)
                print(f"approved comment {item.id} by {item.author_name}; their next comments are shown at once")
            elif args.action == "reject":
                item = moderation.reject(session, _int_arg(args.target), services)
                print(f"rejected comment {item.id} by {item.author_name}; it stays hidden")
            else:
                if not args.target:
                    raise CliError("block needs an actor URL or a domain, e.g. 'fedblog moderation block spam.example'")
                rule, hidden = moderation.block(session, args.target, now, services)
                print(f"blocked {rule.target}; {hidden} existing comment(s) hidden")
        except (LookupError, IllegalTransition) as exc:
            raise CliError(str(exc.args[0])) from None
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    """Activities whose processing failed (a bug or an outage of ours): list them, apply them again."""
    with _opened() as services:
        with session_scope(services.engine) as session:
            failed = fed_store.list_failed_inbox_items(session)
            listed = [(i.id or 0, i.received_at, i.type, i.actor_ap_id, i.error or "") for i in failed]
        if args.action == "failed":
            if not listed:
                print("No failed inbox activities.")
                return 0
            for item_id, received, kind, actor, error in listed[: args.limit]:
                print(f"{item_id:>6}  {received:%Y-%m-%d %H:%M}  {kind:8} {actor}")
                print(f"        {error.splitlines()[0][:160] if error else ''}")
            if len(listed) > args.limit:
                print(f"... and {len(listed) - args.limit} more")
            print("Fix the cause (see the server log), then: fedblog inbox retry ID ... (or --all)")
            return 0
        if args.all:
            ids = [item_id for item_id, *_ in listed]
        elif args.ids:
            ids = [_int_arg(v, "an inbox item id: see 'fedblog inbox failed'") for v in args.ids]
            unknown = sorted(set(ids) - {item_id for item_id, *_ in listed})
            if unknown:
                raise CliError(f"no failed inbox item {', '.join(map(str, unknown))}: see 'fedblog inbox failed'")
        else:
            raise CliError("retry needs inbox item ids or --all: see 'fedblog inbox failed'")
        if not ids:
            print("No failed inbox activities.")
            return 0
        states = asyncio.run(_retry_inbox(services, ids, quiet=args.quiet))
    for item_id, state in states.items():
        print(f"{item_id:>6}  {state}")
    still = [i for i, state in states.items() if state.startswith("failed")]
    if still:
        raise CliError(f"{len(still)} of {len(states)} still fail: see 'fedblog inbox failed' for why, fix it, retry")
    return 0


async def _retry_inbox(services: Services, ids: list[int], *, quiet: bool) -> dict[int, str]:
    inbox = Inbox(services, build_handlers())
    out: dict[int, str] = {}
    try:
        with tqdm(total=len(ids), unit="activity", disable=quiet or len(ids) < 2) as bar:
            for item_id in ids:
                try:
                    out[item_id] = await inbox.retry_failed(item_id)
                except LookupError as exc:
                    out[item_id] = f"skipped: {exc.args[0]}"
                bar.update(1)
    finally:
        await services.http.aclose()
    with session_scope(services.engine) as session:  # the error of those that failed again
        errors = {i.id: i.error for i in fed_store.list_failed_inbox_items(session)}
    return {i: f"failed again: {errors.get(i) or ''}"[:200] if s == "failed" else s for i, s in out.items()}


def _int_arg(value: str | None, what: str = "a comment id: see 'fedblog moderation list'") -> int:
    if value is None or not value.isdigit():
        raise CliError(f"{value!r} is not {what}")
    return int(value)


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
    init.add_argument("--admin-password-file", metavar="FILE", help="set the /admin password from FILE (- for stdin)")
    init.set_defaults(func=cmd_init)
    register_admin(sub, _opened, os.environ)

    post = sub.add_parser("post", help="publish, list and delete posts")
    post_sub = post.add_subparsers(dest="post_command", metavar="ACTION")
    publish = post_sub.add_parser(
        "publish",
        help="publish or update a post from Markdown with front matter",
        description="Front matter keys: title (required), slug, date, tags, summary, draft, author, author_url, "
        "image, language.",
    )
    publish.add_argument("file", metavar="FILE.md")
    publish.add_argument("--send-as-new", action="store_true", help="a post dated more than 6 hours ago: publish it "
                         "dated now and send it to followers (by default it is published quietly, as history)")
    publish.set_defaults(func=cmd_post_publish)
    post_sub.add_parser("list", help="list posts, newest first").set_defaults(func=cmd_post_list)
    delete = post_sub.add_parser("delete", help="delete a post (its URL then answers 410 Gone)")
    delete.add_argument("slug")
    delete.set_defaults(func=cmd_post_delete)

    def post_help(_args: argparse.Namespace) -> int:
        post.print_help()
        return 2

    post.set_defaults(func=post_help)

    worker = sub.add_parser("worker", help="deliver queued activities (run several for scale)")
    worker.add_argument("--once", action="store_true", help="deliver what is due now, with a progress bar, then exit")
    worker.add_argument(
        "--concurrency", type=int, default=None, help="parallel deliveries (default FEDBLOG_DELIVERY_CONCURRENCY)"
    )
    worker.add_argument("--quiet", action="store_true", help="no progress bar")
    worker.set_defaults(func=cmd_worker)

    deliveries = sub.add_parser("deliveries", help="show pending, failing and given-up deliveries")
    deliveries.add_argument("--show", choices=["pending", "failing", "gave-up", "all"], default="failing")
    deliveries.add_argument("--limit", type=int, default=50)
    deliveries.set_defaults(func=cmd_deliveries)

    mod = sub.add_parser("moderation", help="held comments: list, approve, reject; block actors or domains")
    mod.add_argument("action", choices=["list", "approve", "reject", "block"])
    mod.add_argument("target", nargs="?", help="a comment ID (approve/reject), or an actor URL or domain (block)")
    mod.set_defaults(func=cmd_moderation)

    inbox = sub.add_parser("inbox", help="activities whose processing failed: list them, apply them again")
    inbox.add_argument("action", choices=["failed", "retry"])
    inbox.add_argument("ids", nargs="*", help="inbox item ids to retry (see 'fedblog inbox failed')")
    inbox.add_argument("--all", action="store_true", help="retry every failed activity")
    inbox.add_argument("--limit", type=int, default=50, help="how many to list (default 50)")
    inbox.add_argument("--quiet", action="store_true", help="no progress bar")
    inbox.set_defaults(func=cmd_inbox)
    cli_wordpress.register(sub, _opened)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (CliError, SettingsError, PostSourceError, WxrError) as exc:
        print(f"fedblog: error: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        print(
            f"fedblog: error: cannot use the database ({reason}): "
            "check FEDBLOG_DATABASE_URL and that the server is running",
            file=sys.stderr,
        )
        return 2
    except SQLAlchemyError as exc:
        print(f"fedblog: error: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
