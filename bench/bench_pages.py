#!/usr/bin/env python3
"""Post-page throughput and latency of ``fedblog serve`` against a synthetic ceiling, in one run.

Pages: (a) the demo post (43 threaded comments + a pingback) and (b) a post with 300 comments
(some threaded), both published into a fresh SQLite database with fedblog's own code. Servers:
``python -m fedblog serve`` (from the database) and ``ceiling_pages_app.py`` (the same
``post.html`` through the same Jinja2 environment, from plain in-memory objects, no DB).

Method (the ceiling is a synthetic server measured in the same run that does the same protocol work
without fedblog's logic; fedblog is judged by the ratio to it, not by absolute figures, because this
shared machine moves absolute req/s by +-25 % between runs while same-run ratios hold):
a fresh server process per configuration, 2 s wrk
warm-up, ``wrk -t1 -c50 -d10s --latency`` for req/s and ``wrk -t1 -c1 -d5s --latency`` for the
unloaded p50; server CPU from /proc/<pid>/stat over the measured window; >= 3 rounds; the
verdict is the median of per-round ratios ours/ceiling. 127.0.0.1 only; every loop is bounded.

    python bench/bench_pages.py                       # 3 rounds, 10 s loaded + 5 s unloaded runs
    python bench/bench_pages.py --rounds 3 --duration 5
    python bench/bench_pages.py --check               # exit 1 if a target is missed

Prints a Markdown report and writes JSON to bench/results/pages-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib import Server, finish_workdir, fmt, free_port, git, med, package_versions, wrk_version  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
DEMO_SLUG = "china-sent-back-north-korean-defectors"
BIG_SLUG = "bench-three-hundred-comments"
BIG_COMMENTS = 300
PAGES = {"demo": DEMO_SLUG, "post300": BIG_SLUG}
SERVERS = ("fedblog", "ceiling")
TARGET_RPS_RATIO = 0.5  # ours / ceiling req/s, c50: at least
TARGET_P50_RATIO = 2.0  # ours / ceiling unloaded p50, c1: at most

# wrk prints one JSON line from its done() hook; latencies are in microseconds.
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


_FORM_TOKEN = re.compile(rb'(<input type="hidden" name="token" value=")[^"]*(")')


def same_page(a: bytes, b: bytes) -> bool:
    """Whether two renders of a post page are the same page: equal bytes but for the comment form's
    token, which fedblog writes fresh into every response (the ceiling leaves its placeholder)."""
    return _FORM_TOKEN.sub(rb"\1\2", a) == _FORM_TOKEN.sub(rb"\1\2", b)


# ---------------------------------------------------------------------------------------------
# Data: the demo post and a 300-comment post, through fedblog's own store


_WORDS = (
    "the blog fediverse reply thread post comment server federation timeline follow boost like "
    "people write read because although however maybe really often never always reason point "
    "argument question answer agree disagree source link article government policy history "
    "economy border village market winter river mountain language family friend neighbour "
    "morning evening story news report study figure number percent year month week day"
).split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 22))]
    return " ".join(words).capitalize() + rng.choice((".", ".", ".", "?", "!"))


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(1, 4)))


def big_post_source() -> str:
    rng = random.Random(1)
    body = "\n\n".join(_paragraph(rng) for _ in range(6))
    return (
        "---\n"
        "title: A busy thread with three hundred comments\n"
        f"slug: {BIG_SLUG}\n"
        "date: 2026-11-20T09:00:00Z\n"
        "tags: [bench, fediverse, Long threads]\n"
        "summary: A post with 300 reader comments, some threaded, for the page benchmark.\n"
        "author: Ann\n"
        "---\n"
        f"{body}\n\n- one point\n- [another](https://example.org/another)\n\n> {_sentence(rng)}\n"
    )


def big_comments() -> list[dict[str, Any]]:
    """300 comments; about 45% answer an earlier one. A mix of fediverse replies and imports."""
    rng = random.Random(300)
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for i in range(BIG_COMMENTS):
        user = f"reader{rng.randint(1, 60)}"
        fedi = rng.random() < 0.6
        paras = [f"<p>{_paragraph(rng)}</p>" for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.25:
            paras.insert(0, f"<blockquote><p>{_sentence(rng)}</p></blockquote>")
        if rng.random() < 0.2:
            paras.append(f'<p>See <a href="https://example.org/{user}/{i}">this page</a>.</p>')
        out.append({
            "parent": rng.randrange(i) if i and rng.random() < 0.45 else None,
            "kind": "reply" if fedi else "comment",
            "via": "activitypub" if fedi else "import",
            "ap_id": f"https://social.example/users/{user}/statuses/{1000 + i}" if fedi else None,
            "author_name": user.capitalize(),
            "author_url": f"https://social.example/@{user}" if fedi or rng.random() < 0.3 else None,
            "author_handle": f"{user}@social.example" if fedi else None,
            "author_avatar": f"https://social.example/avatars/{user}.png" if fedi else None,
            "content_html": "".join(paras),
            "published_at": start + timedelta(minutes=7 * i),
        })
    return out


def _plain_row(row: Any) -> dict[str, Any]:
    if hasattr(row, "model_dump"):
        data = row.model_dump()
    else:  # a Row, or the plain object store.interactions.list_for_post returns
        data = dict(row._mapping) if hasattr(row, "_mapping") else dict(vars(row))
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def build_database(database_url: str) -> dict[str, Any]:
    """Migrate, load the demo, publish the 300-comment post; return the JSON snapshot of both pages."""
    from sqlmodel import Session

    from fedblog.blog.demo import load_demo
    from fedblog.blog.markup import sanitize_remote_html
    from fedblog.blog.posts import parse_post_source, save_post
    from fedblog.store import interactions as interaction_store
    from fedblog.store import posts as post_store
    from fedblog.store.db import make_engine, migrate, session_scope
    from fedblog.store.tables import Interaction

    engine = make_engine(database_url)
    try:
        migrate(engine)
        with session_scope(engine) as session:
            assert load_demo(session) is not None
            draft = parse_post_source(big_post_source(), where="bench post")
            post = save_post(session, draft, now=datetime(2026, 11, 20, 9, tzinfo=UTC), default_author="Ann",
                             default_language="en").post
            assert post.id is not None
            rows: list[Interaction] = []
            for c in big_comments():
                parent = rows[c["parent"]] if c["parent"] is not None else None
                row = Interaction(
                    post_id=post.id, parent_id=parent.id if parent else None, kind=c["kind"], via=c["via"],
                    status="visible", ap_id=c["ap_id"], author_name=c["author_name"], author_url=c["author_url"],
                    author_handle=c["author_handle"], author_avatar=c["author_avatar"],
                    content_html=sanitize_remote_html(c["content_html"]), published_at=c["published_at"],
                )
                session.add(row)
                session.flush()
                rows.append(row)
        snapshot: dict[str, Any] = {}
        with Session(engine) as session:
            for slug in PAGES.values():
                p = post_store.get_post_by_slug(session, slug)
                assert p is not None and p.id is not None
                snapshot[slug] = {
                    "post": _plain_row(p),
                    "tags": [_plain_row(t) for t in post_store.tags_for_posts(session, [p.id]).get(p.id, [])],
                    "interactions": [_plain_row(i) for i in interaction_store.list_for_post(session, p.id)],
                }
        with engine.connect() as conn:
            if database_url.startswith("sqlite"):
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return snapshot
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Processes


def server_command(name: str, port: int) -> list[str]:
    if name == "fedblog":
        return [sys.executable, "-m", "fedblog", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--log-level", "warning"]
    return [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "--factory", "ceiling_pages_app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning"]


def start_server(name: str, port: int, env: dict[str, str], workdir: Path, url_path: str) -> tuple[Server, bytes]:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(server_command(name, port), env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(name, proc, f"http://127.0.0.1:{port}", log)
    return server, server.wait_ready(url_path)


def run_wrk(url: str, conns: int, seconds: float, lua: Path) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--timeout=10s", "--latency", "-s", str(lua), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    res: dict[str, Any] = json.loads(line.removeprefix("BENCHJSON "))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["errors"] = sum(res[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    return res


@dataclass
class Measurement:
    round: int
    server: str
    page: str
    conns: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    requests: int
    errors: int
    native: dict[str, bool] = field(default_factory=dict)


def measure(name: str, page: str, conns: int, seconds: float, rnd: int, port: int, env: dict[str, str],
            workdir: Path, lua: Path, bodies: dict[tuple[str, str], bytes], warmup: float) -> Measurement:
    path = f"/posts/{PAGES[page]}"
    server, body = start_server(name, port, env, workdir, path)
    try:
        bodies.setdefault((name, page), body)
        url = server.base + path
        if warmup > 0:
            run_wrk(url, conns, warmup, lua)
            server.wait_idle()
        native = server.native_modules()
        hz = os.sysconf("SC_CLK_TCK")
        before = server.cpu_ticks()
        res = run_wrk(url, conns, seconds, lua)
        after = server.cpu_ticks()
        if server.proc.poll() is not None:
            raise SystemExit(f"{name} died during the run; see {server.log}")
    finally:
        server.stop()
    if res["requests"] == 0:
        raise SystemExit(f"{name} {page} c{conns}: no request completed in {seconds:g} s: use a longer --duration")
    cpu_us = (after - before) / hz * 1e6 / res["requests"]
    return Measurement(rnd, name, page, conns, res["rps"], res["p50_us"] / 1000, res["p99_us"] / 1000, cpu_us,
                       res["requests"], res["errors"], native)


# ---------------------------------------------------------------------------------------------
# Report


def summarize(ms: list[Measurement], rounds: int, sizes: dict[str, int]) -> tuple[str, dict[str, Any]]:
    def pick(server: str, page: str, conns: int) -> list[Measurement]:
        return sorted(
            (m for m in ms if m.server == server and m.page == page and m.conns == conns), key=lambda m: m.round
        )

    lines = [
        "| page | server | HTML KB | req/s (c50) | p50 ms (c50) | p99 ms (c50) | unloaded p50 ms (c1) "
        "| server CPU us/req (c50) | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, Any] = {}
    for page in PAGES:
        for server in SERVERS:
            loaded, idle = pick(server, page, 50), pick(server, page, 1)
            errors = sum(m.errors for m in loaded + idle)
            lines.append(
                f"| {page} | {server} | {sizes[page] / 1024:,.0f} | {fmt([m.rps for m in loaded])} | "
                f"{fmt([m.p50_ms for m in loaded], 1)} | {fmt([m.p99_ms for m in loaded], 0)} | "
                f"{fmt([m.p50_ms for m in idle], 2)} | {fmt([m.cpu_us_per_req for m in loaded])} | {errors} |"
            )
            summary[f"{page}/{server}"] = {
                "rps_median": med([m.rps for m in loaded]), "c1_p50_ms_median": med([m.p50_ms for m in idle]),
                "cpu_us_per_req_median": med([m.cpu_us_per_req for m in loaded]), "errors": errors,
            }
    lines += [
        "",
        f"Ratios ours/ceiling, median [min-max] of {rounds} per-round ratios:",
        "",
        "| page | req/s ratio (c50) | target | unloaded p50 ratio (c1) | target | CPU us/req ratio | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    checks: dict[str, Any] = {}
    for page in PAGES:
        rps = [a.rps / b.rps for a, b in zip(pick("fedblog", page, 50), pick("ceiling", page, 50), strict=True)]
        p50 = [a.p50_ms / b.p50_ms for a, b in zip(pick("fedblog", page, 1), pick("ceiling", page, 1), strict=True)]
        cpu = [a.cpu_us_per_req / b.cpu_us_per_req
               for a, b in zip(pick("fedblog", page, 50), pick("ceiling", page, 50), strict=True)]
        ok = med(rps) >= TARGET_RPS_RATIO and med(p50) <= TARGET_P50_RATIO
        lines.append(f"| {page} | {fmt(rps, 2)} | >= {TARGET_RPS_RATIO} | {fmt(p50, 2)} | <= {TARGET_P50_RATIO} | "
                     f"{fmt(cpu, 2)} | {'PASS' if ok else 'FAIL'} |")
        checks[page] = {"rps_ratio": rps, "p50_ratio": p50, "cpu_ratio": cpu, "pass": ok}
    return "\n".join(lines), {"configs": summary, "checks": checks}


def environment() -> dict[str, Any]:
    versions = package_versions(
        ("starlette", "uvicorn", "uvloop", "httptools", "jinja2", "markupsafe", "sqlalchemy", "sqlmodel", "fedblog")
    )
    return {
        "python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
        "wrk": wrk_version(), "git": git("rev-parse", "--short", "HEAD"), "versions": versions,
    }

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds (>= 3 for a verdict; default 3)")
    ap.add_argument("--duration", type=float, default=10, help="seconds of each loaded c50 run (default 10)")
    ap.add_argument("--latency-duration", type=float, default=5, help="seconds of each unloaded c1 run (default 5)")
    ap.add_argument("--warmup", type=float, default=2, help="seconds of wrk warm-up per server (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dir and server logs")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 2 <= args.duration <= 600 or not 2 <= args.latency_duration <= 600 \
            or not 0 <= args.warmup <= 60:
        ap.error("--rounds must be 1-50, --duration and --latency-duration 2-600 s, --warmup 0-60 s")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="fedblog-bench-pages-"))
    try:
        ports = {"fedblog": free_port(), "ceiling": free_port()}
        base_url = f"http://127.0.0.1:{ports['fedblog']}"  # both servers link to it, so their HTML is identical
        env = {
            **os.environ,
            "FEDBLOG_BASE_URL": base_url,
            "FEDBLOG_DATA_DIR": str(workdir / "data"),
            "FEDBLOG_DATABASE_URL": f"sqlite:///{workdir / 'data' / 'fedblog.db'}",
            "FEDBLOG_SECRET_KEY": "bench",
            "FEDBLOG_WORKER": "off",
            # the render path, as before the page cache (bench_hug.py measures the cached page)
            "FEDBLOG_PAGE_CACHE_MB": "0",
            "BENCH_PAGES_SNAPSHOT": str(workdir / "snapshot.json"),
        }
        print(f"building the database in {workdir} ...", file=sys.stderr)
        snapshot = build_database(env["FEDBLOG_DATABASE_URL"])
        Path(env["BENCH_PAGES_SNAPSHOT"]).write_text(json.dumps(snapshot), encoding="utf-8")
        lua = workdir / "report.lua"
        lua.write_text(WRK_LUA, encoding="utf-8")

        measurements: list[Measurement] = []
        bodies: dict[tuple[str, str], bytes] = {}
        for rnd in range(1, args.rounds + 1):
            order = SERVERS if rnd % 2 else tuple(reversed(SERVERS))  # alternate who goes first: drift cancels
            for page in PAGES:
                for conns, seconds in ((50, args.duration), (1, args.latency_duration)):
                    for name in order:
                        m = measure(
                            name, page, conns, seconds, rnd, ports[name], env, workdir, lua, bodies, args.warmup
                        )
                        measurements.append(m)
                        print(f"round {rnd} {page:8} {name:8} c{conns:<3} {m.rps:9,.0f} req/s  p50 {m.p50_ms:7.2f} ms  "
                              f"cpu {m.cpu_us_per_req:8,.0f} us/req  errors {m.errors}", file=sys.stderr)

        identical = {page: same_page(bodies[("fedblog", page)], bodies[("ceiling", page)]) for page in PAGES}
        sizes = {page: len(bodies[("fedblog", page)]) for page in PAGES}
        comments = {page: sum(1 for i in snapshot[PAGES[page]]["interactions"] if i["kind"] in ("comment", "reply"))
                    for page in PAGES}
        native = next((m.native for m in measurements if m.server == "fedblog"), {})
        table, summary = summarize(measurements, args.rounds, sizes)
        env_info = environment()
        report = [
            f"## fedblog post pages vs synthetic ceiling ({args.rounds} rounds, c50 {args.duration:g} s, "
            f"c1 {args.latency_duration:g} s, warm-up {args.warmup:g} s)",
            "",
            f"git {env_info['git']}, Python {env_info['python']}, {env_info['cpus']} CPUs, {env_info['wrk']}; "
            f"`fedblog serve` runs uvloop: {native.get('uvloop')}, httptools: {native.get('httptools')}",
            "",
            "Pages: "
            + ", ".join(
                f"{p} = /posts/{PAGES[p]} ({comments[p]} comments, {sizes[p]:,} B, "
                f"identical HTML from both servers: {'yes' if identical[p] else 'NO'})"
                for p in PAGES
            ),
            "",
            table,
        ]
        print("\n".join(report))
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"pages-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps({
            "args": vars(args), "environment": env_info, "fedblog_native": native, "identical_html": identical,
            "html_bytes": sizes, "comments": comments, "summary": summary,
            "measurements": [asdict(m) for m in measurements],
        }, indent=2), encoding="utf-8")
        print(f"\nJSON: {out.relative_to(REPO)}", file=sys.stderr)
        failed = not all(c["pass"] for c in summary["checks"].values()) or not all(identical.values())
        errors = sum(m.errors for m in measurements)
        if errors:
            print(f"warning: {errors} wrk errors (non-2xx, timeouts or socket errors)", file=sys.stderr)
        return 1 if args.check and (failed or errors) else 0
    finally:
        finish_workdir(workdir, args.keep)

if __name__ == "__main__":
    sys.exit(main())
