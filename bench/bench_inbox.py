#!/usr/bin/env python3
"""Inbox throughput of ``fedblog serve`` against a synthetic ceiling, in one run.

Load: signed ``Create(Note)`` replies to one of the blog's posts, each with a distinct activity id
and Note id, pre-signed (draft-cavage rsa-sha256, ``(request-target) host date digest``) by 100
remote actors on unresolvable ``*.bench.invalid`` hosts whose keys are already cached in fedblog's
``actor`` table (so no fetch can happen; one fetch would fail and show as an error), replayed by
``wrk -t1 -c50 --latency -s bench/inbox.lua URL -- requests.bin OFFSET`` (each request once).

Servers (a fresh process and a fresh database per round and server; uvloop + httptools, 1 worker):

* ``fedblog``: ``python -m fedblog serve`` with FEDBLOG_WORKER=off, FEDBLOG_MODERATION=approve-all,
  SQLite in a temp data dir made by ``fedblog init`` + fedblog's own code (post, cached actors);
* ``ceiling``: ``bench/inbox_ceiling_app.py`` (one worker, the same checks and one row per POST, no fedblog code).

Method (the ceiling is a synthetic server measured in the same run that does the same protocol work
without fedblog's logic; fedblog is judged by the ratio to it, not by absolute figures, because this
shared machine moves absolute req/s by +-25 % between runs while same-run ratios hold):
2 s wrk warm-up (its requests come from the start of
the file, the measured run continues where the warm-up stopped), then a 10 s measured run; server
CPU = user+sys from /proc/<pid>/stat over the measured window / requests; >= 3 rounds; verdict =
median of the per-round ratios. After each run the database is checked: every 202 is a stored row,
no duplicates, the cached actors untouched. Before the rounds: an in-process trace of a few POSTs
(SQL statements, sessions, outbound requests per POST) and an strace pass (socket/connect syscalls
of the fedblog process under load = outbound attempts, must be 0).

    python bench/bench_inbox.py                       # 3 rounds x 10 s (~3 min)
    python bench/bench_inbox.py --rounds 5 --duration 10 --profile
    python bench/bench_inbox.py --check               # exit 1 if a target is missed or a check fails

Prints a Markdown report; writes JSON to bench/results/inbox-<UTC time>.json. 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
LUA = BENCH_DIR / "inbox.lua"
sys.path.insert(0, str(BENCH_DIR))
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

import gen_inbox_requests as gen  # noqa: E402
from benchlib import Server, finish_workdir, fmt, free_port, git, med, package_versions, wrk_version  # noqa: E402

POST_SLUG = "bench-inbox-target"
POST_SOURCE = f"""---
title: A post the fediverse replies to
slug: {POST_SLUG}
date: 2026-11-20T09:00:00Z
tags: [bench]
---
The inbox benchmark posts its replies here.
"""
SERVERS = ("fedblog", "ceiling")
TARGET_RATIO = 0.8  # fedblog / ceiling req/s: target
FLOOR_RATIO = 0.5  # never below
CPU_RATIO_MAX = 2.0  # server CPU per request: at most twice the ceiling's
MAX_FILE_AGE_S = 45 * 60  # Dates are accepted for 65 minutes: regenerate well before


# ---------------------------------------------------------------------------------------------
# Databases


def fedblog_env(workdir: Path, rnd: str, port: int) -> dict[str, str]:
    data = workdir / f"fedblog-{rnd}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDBLOG_")}
    env.update(
        {
            "FEDBLOG_BASE_URL": f"http://127.0.0.1:{port}",
            "FEDBLOG_DATA_DIR": str(data),
            "FEDBLOG_DATABASE_URL": f"sqlite:///{data / 'fedblog.db'}",
            "FEDBLOG_SECRET_KEY": "bench",
            "FEDBLOG_WORKER": "off",
            "FEDBLOG_MODERATION": "approve-all",
            # one client address (wrk on loopback) sends everything: this measures the inbox, not the
            # rate limiter (bench_hostile.py measures that)
            "FEDBLOG_RATE_LIMIT": "0",
            "FEDBLOG_RATE_LIMIT_HOST": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def build_fedblog_db(env: dict[str, str], actors: list[dict[str, Any]]) -> Path:
    """``fedblog init``, then the post (fedblog's publish) and the 100 cached actors (fedblog's tables)."""
    done = subprocess.run(
        [sys.executable, "-m", "fedblog", "init"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"fedblog init failed:\n{done.stdout}\n{done.stderr}")
    from fedblog.blog.posts import parse_post_source
    from fedblog.federation.publishing import publish
    from fedblog.services import build_services
    from fedblog.settings import ensure_secret_key, load_settings
    from fedblog.store.db import session_scope
    from fedblog.store.tables import Actor

    services = build_services(ensure_secret_key(load_settings(env)))
    try:
        now = services.clock.now()
        with session_scope(services.engine) as session:
            publish(session, services, parse_post_source(POST_SOURCE, where="bench post"))
            for a in actors:
                session.add(
                    Actor(
                        ap_id=a["ap_id"],
                        type="Person",
                        host=a["host"],
                        preferred_username=a["username"],
                        handle=a["handle"],
                        name=a["name"],
                        url=a["url"],
                        icon_url=a["icon_url"],
                        inbox=a["inbox"],
                        shared_inbox=a["shared_inbox"],
                        key_id=a["key_id"],
                        public_key_pem=a["public_key_pem"],
                        fetched_at=now,
                    )
                )
        with services.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        services.engine.dispose()
    return Path(env["FEDBLOG_DATABASE_URL"].split("///", 1)[1])


def actor_snapshot(db: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return {
            r[0]: tuple(r[1:])
            for r in conn.execute(
                "SELECT key_id, ap_id, public_key_pem, fetched_at, handle, name, inbox, raw FROM actor "
                "WHERE key_id LIKE '%.bench.invalid/%'"
            )
        }


def check_fedblog_db(
    db: Path, seeded: dict[str, tuple[Any, ...]], accepted: int, sent: int
) -> dict[str, Any]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        q = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        replies = q("SELECT count(*) FROM interaction WHERE kind='reply'")
        distinct = q("SELECT count(DISTINCT ap_id) FROM interaction WHERE kind='reply'")
        res = {
            "replies": replies,
            "duplicates": replies - distinct,
            "visible": q(
                "SELECT count(*) FROM interaction WHERE kind='reply' AND status='visible'"
            ),
            "inbox_items": q("SELECT count(*) FROM inbox_item"),
            "inbox_processed": q("SELECT count(*) FROM inbox_item WHERE state='processed'"),
            "inbox_not_processed": q("SELECT count(*) FROM inbox_item WHERE state!='processed'"),
            "dead_letters": q("SELECT count(*) FROM dead_letter"),
            "deliveries_queued": q("SELECT count(*) FROM delivery"),
            "wrong_author": q(
                "SELECT count(*) FROM interaction i LEFT JOIN actor a ON a.id=i.actor_id "
                "WHERE i.kind='reply' AND (a.id IS NULL OR i.author_handle IS NOT a.handle)"
            ),
        }
    res["actors_changed"] = sum(
        1 for k, v in actor_snapshot(db).items() if seeded.get(k) != v
    ) + abs(len(seeded) - len(actor_snapshot(db)))
    res["accepted"], res["sent"] = accepted, sent
    res["ok"] = (
        accepted <= replies <= sent
        and res["duplicates"] == 0
        and res["inbox_processed"] == replies
        and res["dead_letters"] == 0
        and res["wrong_author"] == 0
        and res["actors_changed"] == 0
        and res["inbox_not_processed"] == 0
    )
    return res


def check_ceiling_db(db: Path, accepted: int, sent: int) -> dict[str, Any]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute("SELECT count(*) FROM inbox_row").fetchone()[0]
        distinct = conn.execute("SELECT count(DISTINCT ap_id) FROM inbox_row").fetchone()[0]
    return {
        "replies": rows,
        "duplicates": rows - distinct,
        "accepted": accepted,
        "sent": sent,
        "ok": accepted <= rows <= sent and rows == distinct,
    }


# ---------------------------------------------------------------------------------------------
# Processes


def server_command(name: str, port: int) -> list[str]:
    if name == "fedblog":
        return [
            sys.executable,
            "-m",
            "fedblog",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(BENCH_DIR),
        "--factory",
        "inbox_ceiling_app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def _python_child(pid: int) -> int:
    """The first descendant of ``pid`` running Python (the server under strace)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    stat = (p / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    return int(p.name)
        time.sleep(0.05)
    raise SystemExit(f"no child process of {pid}")


def start_server(
    name: str,
    port: int,
    env: dict[str, str],
    log: Path,
    ready_path: str,
    wrap: list[str] | None = None,
) -> Server:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            (wrap or []) + server_command(name, port),
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(name, proc, f"http://127.0.0.1:{port}", log, pid=_python_child(proc.pid) if wrap else 0)
    server.wait_ready(ready_path)
    return server


def run_wrk(
    url: str, conns: int, seconds: float, requests_file: Path, offset: int
) -> dict[str, Any]:
    cmd = [
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{seconds:g}s",
        "--timeout=10s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        str(requests_file),
        str(offset),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    res: dict[str, Any] = json.loads(line.removeprefix("BENCHJSON "))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["errors"] = sum(
        res[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")
    )
    res["non2xx"] = res["s_non2xx"]
    if res["wrapped"]:
        raise SystemExit(
            f"the request file ran out ({res['generated']} requests from offset {offset}); "
            "raise --max-rate so that more requests are generated"
        )
    return res


# ---------------------------------------------------------------------------------------------
# The request file


@dataclass
class RequestFile:
    dir: Path
    meta: dict[str, Any]
    actors: list[dict[str, Any]]

    @property
    def path(self) -> Path:
        return self.dir / "requests.bin"

    @property
    def actors_file(self) -> Path:
        return self.dir / "actors.json"

    def age(self) -> float:
        return time.time() - self.meta["generated_at"]


def make_requests(
    workdir: Path, count: int, host: str, actors: list[dict[str, Any]] | None
) -> RequestFile:
    out = workdir / "requests"
    t0 = time.monotonic()
    meta = gen.generate(
        out, count=count, host=host, in_reply_to=f"http://{host}/posts/{POST_SLUG}", actors=actors
    )
    acts = json.loads((out / "actors.json").read_text(encoding="utf-8"))
    print(
        f"generated {count:,} signed requests ({meta['bytes'] / 1e6:,.0f} MB, body {meta['body_bytes']:,} B) "
        f"in {time.monotonic() - t0:.1f} s",
        file=sys.stderr,
    )
    return RequestFile(out, meta, acts)


# ---------------------------------------------------------------------------------------------
# One measurement


@dataclass
class Measurement:
    round: int
    server: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cpu_us_per_req: float
    requests: int
    non2xx: int
    socket_errors: int
    accepted_202: int
    warmup_requests: int
    offset: int
    db: dict[str, Any] = field(default_factory=dict)
    native: dict[str, bool] = field(default_factory=dict)


def measure(
    name: str,
    rnd: int,
    ports: dict[str, int],
    workdir: Path,
    reqs: RequestFile,
    args: argparse.Namespace,
) -> Measurement:
    tag = f"r{rnd}"
    log = workdir / f"{name}-{tag}.log"
    if name == "fedblog":
        env = fedblog_env(workdir, tag, ports["fedblog"])
        db = build_fedblog_db(env, reqs.actors)
        seeded = actor_snapshot(db)
        ready = f"/posts/{POST_SLUG}"
    else:
        db = workdir / f"ceiling-{tag}.db"
        env = {
            **os.environ,
            "BENCH_INBOX_ACTORS": str(reqs.actors_file),
            "BENCH_INBOX_DB": str(db),
            "BENCH_INBOX_HOST": reqs.meta["host"],
        }
        ready = "/health"
    server = start_server(name, ports[name], env, log, ready)
    try:
        url = server.base + "/inbox"
        warm = run_wrk(url, args.conns, args.warmup, reqs.path, 0)
        native = server.native_modules()
        hz = os.sysconf("SC_CLK_TCK")
        before = server.cpu_ticks()
        res = run_wrk(url, args.conns, args.duration, reqs.path, warm["next"])
        after = server.cpu_ticks()
        if server.proc.poll() is not None:
            raise SystemExit(f"{name} died during the run; see {log}")
    finally:
        server.stop()
    accepted = warm["s202"] + res["s202"]
    sent = warm["generated"] + res["generated"]
    check = (
        check_fedblog_db(db, seeded, accepted, sent)
        if name == "fedblog"
        else check_ceiling_db(db, accepted, sent)
    )
    cpu_us = (after - before) / hz * 1e6 / max(res["requests"], 1)
    return Measurement(
        rnd,
        name,
        res["rps"],
        res["p50_us"] / 1000,
        res["p90_us"] / 1000,
        res["p99_us"] / 1000,
        cpu_us,
        res["requests"],
        warm["non2xx"] + res["non2xx"],
        warm["errors"] - warm["err_status"] + res["errors"] - res["err_status"],
        res["s202"],
        warm["generated"],
        warm["next"],
        check,
        native,
    )


# ---------------------------------------------------------------------------------------------
# Outbound check: the fedblog process under strace (socket/connect syscalls only, seccomp-bpf)


def outbound_check(
    ports: dict[str, int], workdir: Path, reqs: RequestFile, seconds: float, conns: int
) -> dict[str, Any]:
    if shutil.which("strace") is None:
        return {"checked": False, "why": "strace is not installed"}
    env = fedblog_env(workdir, "strace", ports["fedblog"])
    build_fedblog_db(env, reqs.actors)
    trace = workdir / "strace.txt"
    wrap = [
        "strace",
        "-f",
        "--seccomp-bpf",
        "-e",
        "trace=socket,connect,sendto,sendmsg,sendmmsg",
        "-o",
        str(trace),
    ]
    server = start_server(
        "fedblog",
        ports["fedblog"],
        env,
        workdir / "fedblog-strace.log",
        f"/posts/{POST_SLUG}",
        wrap=wrap,
    )
    try:
        time.sleep(0.5)
        lines_before = len(trace.read_text(errors="replace").splitlines())
        res = run_wrk(server.base + "/inbox", conns, seconds, reqs.path, 0)
        time.sleep(0.5)
        during = trace.read_text(errors="replace").splitlines()[lines_before:]
    finally:
        server.stop()
    calls = [ln for ln in during if re.search(r"\b(socket|connect|sendto|sendmsg|sendmmsg)\(", ln)]
    return {
        "checked": True,
        "requests": res["requests"],
        "s202": res["s202"],
        "non2xx": res["non2xx"],
        "outbound_syscalls": len(calls),
        "examples": calls[:5],
    }


# ---------------------------------------------------------------------------------------------
# In-process trace: SQL statements, sessions, outbound HTTP per POST, and a cProfile breakdown


def _parse_raw(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers = dict(ln.split(": ", 1) for ln in lines[1:])
    return path, headers, body


def explain(
    workdir: Path, port: int, reqs: RequestFile, n: int = 200, in_flight: int = 50
) -> dict[str, Any]:
    """POST ``n`` requests through fedblog's full ASGI app in-process and count what each costs."""
    import httpx
    from sqlalchemy import event

    from fedblog.app import create_app
    from fedblog.services import build_services
    from fedblog.settings import ensure_secret_key, load_settings

    env = fedblog_env(workdir, "explain", port)
    build_fedblog_db(env, reqs.actors)
    services = build_services(ensure_secret_key(load_settings(env)))
    app = create_app(services)
    stmts: list[str] = []
    sql_time = [0.0]
    starts: list[float] = []
    checkouts = [0]
    commits = [0]
    outbound: list[str] = []

    @event.listens_for(services.engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        stmts.append(statement)
        starts.append(time.perf_counter())

    @event.listens_for(services.engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        sql_time[0] += time.perf_counter() - starts.pop()

    @event.listens_for(services.engine, "commit")
    def _commit(conn):  # type: ignore[no-untyped-def]
        commits[0] += 1

    @event.listens_for(services.engine.pool, "checkout")
    def _checkout(dbapi_conn, record, proxy):  # type: ignore[no-untyped-def]
        checkouts[0] += 1

    original_send = httpx.AsyncClient.send

    async def counting_send(self, request, **kw):  # type: ignore[no-untyped-def]
        if not isinstance(
            self._transport, httpx.ASGITransport
        ):  # not the bench's own client: fedblog's
            outbound.append(str(request.url))
        return await original_send(self, request, **kw)

    raws = gen.read_requests(reqs.path, 0, n + 1)
    parsed = [_parse_raw(r) for r in raws]

    async def go() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        out: dict[str, Any] = {}
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://127.0.0.1:{port}"
        ) as client:

            async def post(i: int) -> int:
                path, headers, body = parsed[i]
                h = {
                    k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")
                }
                r = await client.post(path, content=body, headers=h)
                return r.status_code

            assert await post(0) == 202, "the first in-process POST was not accepted"
            stmts.clear(), commits.__setitem__(0, 0), checkouts.__setitem__(0, 0), outbound.clear()
            sql_time[0] = 0.0
            per_request: list[int] = []
            statuses = collections.Counter()
            c0, w0 = time.process_time(), time.perf_counter()
            one: list[str] = []
            for i in range(1, n + 1):
                k = len(stmts)
                statuses[await post(i)] += 1
                per_request.append(len(stmts) - k)
                if i == 1:
                    one = stmts[k:]
            cpu = time.process_time() - c0
            wall = time.perf_counter() - w0
            out.update(
                {
                    "posts": n,
                    "statuses": dict(statuses),
                    "statements_per_post": statistics.median(per_request),
                    "statements_min_max": [min(per_request), max(per_request)],
                    "connection_checkouts_per_post": checkouts[0] / n,
                    "commits_per_post": commits[0] / n,
                    "outbound_requests": len(outbound),
                    "outbound_examples": outbound[:3],
                    "cpu_us_per_post": cpu / n * 1e6,
                    "wall_us_per_post": wall / n * 1e6,
                    "sql_execute_us_per_post": sql_time[0] / n * 1e6,
                    "statements_of_one_post": [" ".join(s.split())[:160] for s in one],
                }
            )
            # Timed steps over the next n POSTs (fresh ids): each fedblog step wrapped in a timer
            more = gen.read_requests(reqs.path, n + 1, 2 * n + 1)
            parsed[:] = [_parse_raw(r) for r in more]
            timers, undo = _install_step_timers(app)
            try:
                c0 = time.process_time()
                for i in range(len(parsed)):
                    await post(i)
                timed_cpu = time.process_time() - c0
            finally:
                undo()
            out["steps_us_per_post"] = [
                {
                    "step": label,
                    "us_per_post": t / len(parsed) * 1e6,
                    "calls_per_post": c / len(parsed),
                }
                for label, (t, c) in timers.items()
            ]
            out["steps_cpu_us_per_post"] = timed_cpu / len(parsed) * 1e6
            # cProfile over another n POSTs, dumped for deep dives (python -m pstats explain.prof, with --keep)
            more = gen.read_requests(reqs.path, 2 * n + 1, 3 * n + 1)
            parsed[:] = [_parse_raw(r) for r in more]
            prof = cProfile.Profile()
            prof.enable()
            for i in range(len(parsed)):
                await post(i)
            prof.disable()
            prof.dump_stats(str(workdir / "explain.prof"))
            # Another n POSTs, `in_flight` at a time as wrk sends them: how the group commit batches them
            more = gen.read_requests(reqs.path, 3 * n + 1, 4 * n + 1)
            parsed[:] = [_parse_raw(r) for r in more]
            box = app.state.inbox
            b0, i0, k0, m0 = box.commits.batches, box.commits.items, len(stmts), commits[0]
            gate = asyncio.Semaphore(in_flight)

            async def gated(i: int) -> int:
                async with gate:
                    return await post(i)

            burst = collections.Counter(await asyncio.gather(*[gated(i) for i in range(len(parsed))]))
            out["burst"] = {
                "in_flight": in_flight,
                "posts": len(parsed),
                "statuses": dict(burst),
                "batches": box.commits.batches - b0,
                "items": box.commits.items - i0,
                "statements_per_post": (len(stmts) - k0) / len(parsed),
                "commits_per_post": (commits[0] - m0) / len(parsed),
            }
        return out

    httpx.AsyncClient.send = counting_send  # type: ignore[method-assign]
    try:
        return asyncio.run(go())
    finally:
        httpx.AsyncClient.send = original_send  # type: ignore[method-assign]
        services.engine.dispose()


def _install_step_timers(app: Any) -> tuple[dict[str, list[float]], Any]:
    """Wrap fedblog's inbox steps in timers of the thread's CPU time (inclusive; one request at a time,
    and CPU rather than wall so that a busy machine does not inflate them). Returns
    ({label: [seconds, calls]}, undo)."""
    import sqlalchemy.orm

    from fedblog.activitypub import httpsig
    from fedblog.federation import conversations, inbox_commit
    from fedblog.federation import inbox as inbox_mod
    from fedblog.federation.contract import Steps
    from fedblog.federation.inbox import Inbox
    from fedblog.store import deferred

    timers: dict[str, list[float]] = {}
    patches: list[tuple[Any, str, Any]] = []
    clock = time.thread_time

    def wrap(
        label: str, owner: Any, name: str, *, is_async: bool = False, static: bool = False
    ) -> None:
        original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if original is None:  # the step no longer exists in fedblog: nothing to time
            return
        fn = original.__func__ if static else original
        slot = timers.setdefault(label, [0.0, 0])
        if is_async:

            async def timed(*a: Any, **kw: Any) -> Any:
                t = clock()
                try:
                    return await fn(*a, **kw)
                finally:
                    slot[0] += clock() - t
                    slot[1] += 1
        else:

            def timed(*a: Any, **kw: Any) -> Any:  # type: ignore[misc]
                t = clock()
                try:
                    return fn(*a, **kw)
                finally:
                    slot[0] += clock() - t
                    slot[1] += 1

        setattr(owner, name, staticmethod(timed) if static else timed)
        patches.append((owner, name, original))

    box = app.state.inbox
    wrap("Inbox.receive (whole pipeline)", Inbox, "receive", is_async=True)
    wrap(
        "  httpsig.prepare_verification (parse headers, Digest, Date)",
        inbox_mod.httpsig,
        "prepare_verification",
    )
    wrap("  Inbox._precheck_many (block + dedupe, one query per batch)", box.prechecks, "_flush")
    wrap("  Inbox._verify", Inbox, "_verify", is_async=True)
    wrap(
        "    resolve_key (Session + SELECT actor by key_id)",
        inbox_mod,
        "resolve_key",
        is_async=True,
    )
    wrap("    _verify_with (PEM parse + RSA verify)", inbox_mod, "_verify_with")
    wrap("      httpsig.verify_signature (RSA verify)", httpsig, "verify_signature")
    wrap("  Inbox._dispatch (after verification)", Inbox, "_dispatch", is_async=True)
    wrap("  Inbox._apply_many (group commit: the whole transaction)", box.commits, "_flush")
    wrap("    markers.marked (marker query)", inbox_commit, "marked")
    wrap("    deferred.flush (executemany of the replies)", deferred, "flush")
    wrap(
        "    conversations.find_target (post id memoised per transaction)",
        conversations,
        "find_target",
    )
    wrap(
        "    conversations.ensure_actor (Session SELECT, then Session merge + commit)",
        conversations,
        "ensure_actor",
        is_async=True,
    )
    wrap("    conversations.sanitize_remote_html", conversations, "sanitize_remote_html")
    wrap("  Session.commit (every Session)", sqlalchemy.orm.Session, "commit")
    wrap(
        "  Session.close (every Session, incl. connection return)", sqlalchemy.orm.Session, "close"
    )
    wrap("  Session.merge (Actor)", sqlalchemy.orm.Session, "merge")
    create = box.handlers["Create"]
    prep, apply = create.prepare, create.apply
    p_slot = timers.setdefault("    prepare_create (handler, before the transaction)", [0.0, 0])
    a_slot = timers.setdefault("    apply_create (handler, inside the transaction)", [0.0, 0])

    async def timed_prepare(*a: Any) -> Any:
        t = clock()
        try:
            return await prep(*a)
        finally:
            p_slot[0] += clock() - t
            p_slot[1] += 1

    def timed_apply(*a: Any) -> Any:
        t = clock()
        try:
            return apply(*a)
        finally:
            a_slot[0] += clock() - t
            a_slot[1] += 1

    box.handlers["Create"] = Steps(timed_prepare, timed_apply, flush_first=create.flush_first)

    def undo() -> None:
        box.handlers["Create"] = create
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)

    return timers, undo


# ---------------------------------------------------------------------------------------------
# Profile under load (py-spy)


def profile_under_load(
    ports: dict[str, int], workdir: Path, reqs: RequestFile, args: argparse.Namespace
) -> dict[str, Any]:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        return {"profiled": False, "why": "py-spy is not installed (pip install py-spy)"}
    env = fedblog_env(workdir, "profile", ports["fedblog"])
    build_fedblog_db(env, reqs.actors)
    server = start_server(
        "fedblog", ports["fedblog"], env, workdir / "fedblog-profile.log", f"/posts/{POST_SLUG}"
    )
    raw = workdir / "pyspy.txt"
    try:
        url = server.base + "/inbox"
        warm = run_wrk(url, args.conns, args.warmup, reqs.path, 0)
        spy = subprocess.Popen(
            [
                pyspy,
                "record",
                "-p",
                str(server.pid),
                "-d",
                f"{int(args.duration)}",
                "-r",
                "250",
                "--nonblocking",
                "--format",
                "raw",
                "-o",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.5)
        res = run_wrk(url, args.conns, args.duration, reqs.path, warm["next"])
        try:
            _, err = spy.communicate(timeout=args.duration + 60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
    finally:
        server.stop()
    if not raw.exists():
        return {"profiled": False, "why": (err or b"").decode(errors="replace")[-500:]}
    keep = RESULTS / f"inbox-pyspy-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.txt"
    RESULTS.mkdir(exist_ok=True)
    shutil.copy(raw, keep)
    summary = summarize_pyspy(raw)
    summary.update(
        {"profiled": True, "rps_under_pyspy": res["rps"], "raw": str(keep.relative_to(REPO))}
    )
    return summary


LIBS = (
    ("sqlalchemy/", "SQLAlchemy"),
    ("sqlmodel/", "SQLModel"),
    ("pydantic", "pydantic"),
    ("starlette/", "Starlette"),
    ("uvicorn/", "uvicorn"),
    ("fedblog/", "fedblog (own code)"),
    ("json/", "json"),
    ("cryptography/", "cryptography"),
    ("asyncio/", "asyncio"),
    ("email/", "email (dates)"),
)


def summarize_pyspy(raw: Path) -> dict[str, Any]:
    """Attribute each sample to (a) the deepest fedblog frame on its stack (that function plus the
    library code it calls directly) and (b) the library of the leaf frame."""
    by_fedblog: collections.Counter[str] = collections.Counter()
    by_lib: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for ln in raw.read_text(errors="replace").splitlines():
        stack, _, count = ln.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own = [
            f
            for f in frames
            if "(fedblog/" in f and "fedblog/__main__" not in f and "fedblog/cli.py" not in f
        ]
        by_fedblog[own[-1] if own else "(outside fedblog: server, HTTP parsing, event loop)"] += c
        for f in set(own):
            incl[f] += c
        leaf = frames[-1]
        path = leaf[leaf.rfind("(") + 1 :]
        by_lib[
            next(
                (name for prefix, name in LIBS if path.startswith(prefix)),
                path.split("/")[0].rstrip(")"),
            )
        ] += c
    pct = lambda c: round(c / max(total, 1) * 100, 1)  # noqa: E731
    return {
        "samples": total,
        "deepest_fedblog_frame": [(f, pct(c)) for f, c in by_fedblog.most_common(25)],
        "fedblog_inclusive": [(f, pct(c)) for f, c in incl.most_common(30)],
        "leaf_library": [(f, pct(c)) for f, c in by_lib.most_common(15)],
    }


# ---------------------------------------------------------------------------------------------
# Report


def summarize(ms: list[Measurement], rounds: int) -> tuple[str, dict[str, Any]]:
    def pick(server: str) -> list[Measurement]:
        return sorted((m for m in ms if m.server == server), key=lambda m: m.round)

    lines = [
        "| server | req/s | p50 ms | p99 ms | server CPU us/req | non-2xx | socket errors "
        "| 202s (measured) | DB check |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    configs: dict[str, Any] = {}
    for server in SERVERS:
        xs = pick(server)
        db_ok = all(m.db.get("ok") for m in xs)
        lines.append(
            f"| {server} | {fmt([m.rps for m in xs])} | {fmt([m.p50_ms for m in xs], 1)} | "
            f"{fmt([m.p99_ms for m in xs])} | {fmt([m.cpu_us_per_req for m in xs])} | "
            f"{sum(m.non2xx for m in xs)} | {sum(m.socket_errors for m in xs)} | "
            f"{sum(m.accepted_202 for m in xs):,} | {'ok' if db_ok else 'FAILED'} |"
        )
        configs[server] = {
            "rps_median": med([m.rps for m in xs]),
            "cpu_us_per_req_median": med([m.cpu_us_per_req for m in xs]),
            "non2xx": sum(m.non2xx for m in xs),
            "db_ok": db_ok,
        }
    ours, ceil = pick("fedblog"), pick("ceiling")
    rps = [a.rps / b.rps for a, b in zip(ours, ceil, strict=True)]
    cpu = [a.cpu_us_per_req / b.cpu_us_per_req for a, b in zip(ours, ceil, strict=True)]
    errors = sum(m.non2xx + m.socket_errors for m in ms)
    db_ok = all(m.db.get("ok") for m in ms)
    ratio = med(rps)
    verdict = (
        "PASS"
        if ratio >= TARGET_RATIO
        else "BELOW TARGET (above floor)"
        if ratio >= FLOOR_RATIO
        else "FAIL (below floor)"
    )
    if errors or not db_ok:
        verdict = "FAIL (errors or DB check)"
    lines += [
        "",
        f"Ratios fedblog/ceiling, median [min-max] of {rounds} per-round ratios:",
        "",
        "| check | value | target | verdict |",
        "|---|---|---|---|",
        f"| req/s ratio | {fmt(rps, 2)} | >= {TARGET_RATIO} (never < {FLOOR_RATIO}) | {verdict} |",
        f"| CPU us/req ratio | {fmt(cpu, 2)} | <= {CPU_RATIO_MAX} | "
        f"{'PASS' if med(cpu) <= CPU_RATIO_MAX else 'FAIL'} |",
    ]
    return "\n".join(lines), {
        "configs": configs,
        "rps_ratio": rps,
        "cpu_ratio": cpu,
        "errors": errors,
        "db_ok": db_ok,
        "verdict": verdict,
        "pass": ratio >= TARGET_RATIO and med(cpu) <= CPU_RATIO_MAX and not errors and db_ok,
    }


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "wrk": wrk_version(),
        "git": git("rev-parse", "--short", "HEAD"),
        "sqlite": sqlite3.sqlite_version,
        "versions": package_versions(
            ("starlette", "uvicorn", "uvloop", "httptools", "sqlalchemy", "sqlmodel", "cryptography", "fedblog")
        ),
    }

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3, help="rounds (>= 3 for a verdict; default 3)")
    ap.add_argument(
        "--duration", type=float, default=10, help="seconds of each measured run (default 10)"
    )
    ap.add_argument(
        "--warmup", type=float, default=2, help="seconds of wrk warm-up per server (default 2)"
    )
    ap.add_argument("--conns", type=int, default=50, help="wrk connections (default 50)")
    ap.add_argument(
        "--max-rate",
        type=float,
        default=3000,
        help="req/s the request file is sized for: (warm-up + duration) x this (default 3000)",
    )
    ap.add_argument(
        "--explain-posts", type=int, default=200, help="POSTs of the in-process trace (default 200)"
    )
    ap.add_argument("--no-explain", action="store_true", help="skip the in-process trace")
    ap.add_argument("--no-strace", action="store_true", help="skip the strace outbound check")
    ap.add_argument(
        "--profile", action="store_true", help="also profile fedblog under load with py-spy"
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the temporary data dirs and server logs"
    )
    ap.add_argument(
        "--check", action="store_true", help="exit 1 if a target is missed or a check fails"
    )
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 1 <= args.duration <= 300 or not 0.5 <= args.warmup <= 60:
        ap.error("--rounds must be 1-50, --duration 1-300 s, --warmup 0.5-60 s")
    if (
        not 1 <= args.conns <= 1000
        or not 10 <= args.max_rate <= 20000
        or not 10 <= args.explain_posts <= 5000
    ):
        ap.error("--conns 1-1000, --max-rate 10-20000, --explain-posts 10-5000")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="fedblog-bench-inbox-"))
    try:
        ports = {"fedblog": free_port(), "ceiling": free_port()}
        host = f"127.0.0.1:{ports['fedblog']}"  # the Host every request is signed for
        count = int(args.max_rate * (args.warmup + args.duration)) + 2000
        env_info = environment()
        reqs = make_requests(workdir, max(count, 2 * args.explain_posts + 2), host, None)

        trace: dict[str, Any] = {}
        if not args.no_explain:
            trace = explain(workdir, ports["fedblog"], reqs, args.explain_posts, args.conns)
            print(
                f"in-process: {trace['statements_per_post']} SQL statements, "
                f"{trace['connection_checkouts_per_post']:.1f} connection checkouts, "
                f"{trace['outbound_requests']} outbound requests per POST",
                file=sys.stderr,
            )
        outbound: dict[str, Any] = {"checked": False, "why": "--no-strace"}
        if not args.no_strace:
            outbound = outbound_check(ports, workdir, reqs, min(3.0, args.duration), args.conns)
            print(f"strace: {outbound}", file=sys.stderr)

        measurements: list[Measurement] = []
        for rnd in range(1, args.rounds + 1):
            order = (
                SERVERS if rnd % 2 else tuple(reversed(SERVERS))
            )  # alternate who goes first: drift cancels
            for name in order:
                if reqs.age() > MAX_FILE_AGE_S:
                    reqs = make_requests(workdir, count, host, reqs.actors)
                m = measure(name, rnd, ports, workdir, reqs, args)
                measurements.append(m)
                print(
                    f"round {rnd} {name:8} {m.rps:8,.0f} req/s  p50 {m.p50_ms:7.1f} ms  cpu {m.cpu_us_per_req:7,.0f} "
                    f"us/req  non-2xx {m.non2xx}  202 {m.accepted_202:,}  rows {m.db.get('replies'):,}  "
                    f"db {'ok' if m.db.get('ok') else 'FAILED ' + json.dumps(m.db)}",
                    file=sys.stderr,
                )

        prof: dict[str, Any] = {}
        if args.profile:
            prof = profile_under_load(ports, workdir, reqs, args)

        table, summary = summarize(measurements, args.rounds)
        native = next((m.native for m in measurements if m.server == "fedblog"), {})
        report = [
            f"## fedblog inbox vs synthetic ceiling ({args.rounds} rounds, wrk -t1 -c{args.conns} "
            f"-d{args.duration:g}s, warm-up {args.warmup:g} s)",
            "",
            f"git {env_info['git']}, Python {env_info['python']}, SQLite {env_info['sqlite']}, "
            f"{env_info['cpus']} CPUs, "
            f"{env_info['wrk']}, load average at start {env_info['loadavg_start'][0]:.2f}; `fedblog serve` runs "
            f"uvloop: {native.get('uvloop')}, httptools: {native.get('httptools')}",
            "",
            f"Load: {reqs.meta['count']:,} distinct pre-signed `Create(Note)` replies ({reqs.meta['body_bytes']:,} B "
            f"bodies) from {reqs.meta['actors']} actors with cached keys, `POST /inbox`, Host {host}.",
            "",
            table,
        ]
        if trace:
            report += [
                "",
                f"In-process trace of {trace['posts']} POSTs through fedblog's ASGI app "
                f"(statuses {trace['statuses']}): "
                f"**{trace['statements_per_post']:g} SQL statements per POST** "
                f"(min-max {trace['statements_min_max'][0]}-{trace['statements_min_max'][1]}), "
                f"{trace['connection_checkouts_per_post']:.1f} connection checkouts, "
                f"{trace['commits_per_post']:.1f} commits, {trace['outbound_requests']} outbound HTTP requests; "
                f"CPU {trace['cpu_us_per_post']:,.0f} us/POST in-process, of which in sqlite3 execute "
                f"{trace['sql_execute_us_per_post']:,.0f} us (the ceiling does 1 INSERT + 1 commit).",
            ]
            if "burst" in trace:
                b = trace["burst"]
                report += [
                    "",
                    f"Group commit: {b['posts']} more POSTs, {b['in_flight']} in flight (statuses {b['statuses']}): "
                    f"{b['items']} activities in {b['batches']} transactions "
                    f"(**{b['items'] / max(b['batches'], 1):.1f} per commit**), "
                    f"{b['statements_per_post']:.2f} SQL statements (an executemany counts once) and "
                    f"{b['commits_per_post']:.2f} commits per POST (in-process: every POST in flight arrives in "
                    "the same loop turn; under wrk, batches are smaller).",
                ]
        if outbound.get("checked"):
            report += [
                "",
                f"Outbound check (fedblog under strace, {outbound['requests']:,} requests, "
                f"{outbound['s202']:,} x 202): **{outbound['outbound_syscalls']} socket/connect/send "
                f"syscalls** (0 = no fetch attempted).",
            ]
        print("\n".join(report))
        if trace:
            print("\nStatements of one POST:\n")
            for i, s in enumerate(trace["statements_of_one_post"], 1):
                print(f"{i:2}. `{s}`")
            print(
                f"\nWhere the time goes, in-process, one POST at a time (inclusive thread CPU us per POST; whole POST "
                f"incl. ASGI + test client {trace['steps_cpu_us_per_post']:,.0f} us CPU):\n"
            )
            print("| step | us/POST | calls/POST |\n|---|---|---|")
            for st in trace["steps_us_per_post"]:
                print(
                    f"| {st['step'].replace('  ', '&nbsp;&nbsp;')} | {st['us_per_post']:,.0f} | "
                    f"{st['calls_per_post']:.1f} |"
                )
        if prof.get("profiled"):
            print(
                f"\npy-spy under load ({prof['samples']:,} samples at 250 Hz, {prof['rps_under_pyspy']:,.0f} req/s "
                f"while sampled; raw stacks {prof['raw']}).\n"
            )
            print("| fedblog function (inclusive) | % of samples |\n|---|---|")
            for f, pct in prof["fedblog_inclusive"][:22]:
                print(f"| `{f}` | {pct} |")
            print("\n| leaf frame's library | % of samples |\n|---|---|")
            for f, pct in prof["leaf_library"][:10]:
                print(f"| {f} | {pct} |")
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"inbox-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        env_info["loadavg_end"] = os.getloadavg()
        out.write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "environment": env_info,
                    "fedblog_native": native,
                    "requests": reqs.meta,
                    "summary": summary,
                    "in_process": trace,
                    "outbound_check": outbound,
                    "profile": prof,
                    "measurements": [asdict(m) for m in measurements],
                },
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
        print(f"\nJSON: {out.relative_to(REPO)}", file=sys.stderr)
        bad_outbound = outbound.get("checked") and (
            outbound["outbound_syscalls"] or outbound["non2xx"]
        )
        bad_trace = bool(trace) and (trace["outbound_requests"] or set(trace["statuses"]) != {202})
        return 1 if args.check and (not summary["pass"] or bad_outbound or bad_trace) else 0
    finally:
        finish_workdir(workdir, args.keep)

if __name__ == "__main__":
    sys.exit(main())
