#!/usr/bin/env python3
"""Accepted web comments per second: ``fedblog serve``'s ``POST /comments`` against a same-run ceiling.

fedblog does everything a real comment costs: body cap and parse, the signed token (HMAC) and its
fill time, the field rules, the text's HTML (escape, links, the sanitiser), the commenter's guest
actor (found by name + email), the moderation rules, the insert (the post-version trigger fires),
``local_comments.publish`` (its proof signing once that lands), the 303. The ceiling
(``ceiling_comment_app.py``, same uvicorn, same database) only parses the form and inserts one row.

Requests: ``wrk -t1 -cCONNS`` POSTs from a Lua script, every request a distinct comment (a run id
and a counter in the text) by one of 50 returning commenters (each has a guest actor after the
warm-up), each with the consent box ticked; the tokens are signed with the bench's secret key,
issued 10 s before the run (past the 3 s fill time). The comment rate limit is off
(``FEDBLOG_COMMENT_RATE_LIMIT=0``: one loopback address sends everything); moderation is
``approve-all``. The figure is **rows stored** during the measured window per second (counted in
the database, not wrk's answers), fedblog / ceiling per round; the verdict is the median ratio.

    python bench/bench_comment_form.py                    # 3 rounds x 8 s, c16, SQLite
    python bench/bench_comment_form.py --rounds 1 --duration 3
    python bench/bench_comment_form.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    python bench/bench_comment_form.py --check            # exit 1 if the target is missed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import Server, exit_code, finish_workdir, fmt, free_port, git, med, print_checks, wrk_version

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
SLUG = "bench-comments"
TARGET_RATIO = 0.25  # fedblog / ceiling accepted comments per second: at least

LUA = r"""
local counter = 0
request = function()
  counter = counter + 1
  local who = counter % 50
  local body = string.format(
    "post=%d&parent=0&token=%s&name=Reader+%d&email=reader%d%%40example.org&website=&homepage=" ..
    "&text=Comment+%s-%d+from+the+bench.%%0A%%0AWith+a+link%%3A+https%%3A%%2F%%2Fexample.org%%2Fp%%2F%d&federate=on",
    POST_ID, "TOKEN", who, who, "RUN", counter, counter)
  return wrk.format("POST", "/comments", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def build_database(database_url: str) -> int:
    from fedblog.blog.posts import parse_post_source, save_post
    from fedblog.store.db import make_engine, migrate, session_scope

    engine = make_engine(database_url)
    try:
        migrate(engine)
        with session_scope(engine) as session:
            draft = parse_post_source(f"---\ntitle: Comment here\nslug: {SLUG}\n---\nA post to comment on.\n",
                                      where="bench post")
            post = save_post(session, draft, now=datetime.now(UTC), default_author="Ann", default_language="en").post
            assert post.id is not None
            return post.id
    finally:
        engine.dispose()


def count_rows(database_url: str) -> int:
    from sqlalchemy import text

    from fedblog.store.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM interaction WHERE via = 'form'")).scalar_one())
    finally:
        engine.dispose()


def server_command(name: str, port: int) -> list[str]:
    if name == "fedblog":
        return [sys.executable, "-m", "fedblog", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--log-level", "warning"]
    return [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "--factory", "ceiling_comment_app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning"]


def run_wrk(url: str, conns: int, seconds: float, lua: Path) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--timeout=10s", "--latency", "-s", str(lua), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    res: dict[str, Any] = json.loads(line.removeprefix("BENCHJSON "))
    res["seconds"] = res["duration_us"] / 1e6
    return res


def lua_for(workdir: Path, post_id: int, token: str, run: str) -> Path:
    path = workdir / f"comments-{run}.lua"
    path.write_text(LUA.replace("POST_ID", str(post_id)).replace("TOKEN", token).replace("RUN", run))
    return path


def measure(name: str, args: argparse.Namespace, env: dict[str, str], workdir: Path, post_id: int,
            token: str) -> dict[str, Any]:
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(server_command(name, port), env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(name, proc, f"http://127.0.0.1:{port}", log)
    try:
        server.wait_ready(f"/posts/{SLUG}" if name == "fedblog" else "/ready")
        url = server.base + "/comments"
        if args.warmup > 0:
            run_wrk(url, args.conns, args.warmup, lua_for(workdir, post_id, token, secrets.token_hex(4)))
            server.wait_idle()
        before = count_rows(env["FEDBLOG_DATABASE_URL"])
        res = run_wrk(url, args.conns, args.duration, lua_for(workdir, post_id, token, secrets.token_hex(4)))
        server.wait_idle()
        stored = count_rows(env["FEDBLOG_DATABASE_URL"]) - before
        if server.proc.poll() is not None:
            raise SystemExit(f"{name} died during the run; see {log}")
    finally:
        server.stop()
    return {"server": name, "stored": stored, "answers": res["requests"], "errors": res["errors"],
            "per_s": stored / res["seconds"], "p50_ms": res["p50_us"] / 1000, "p99_ms": res["p99_us"] / 1000}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8, help="seconds of each measured wrk run (default 8)")
    ap.add_argument("--warmup", type=float, default=2, help="seconds of wrk warm-up per server (default 2)")
    ap.add_argument("--conns", type=int, default=16, help="wrk connections (default 16)")
    ap.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    ap.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    sys.path.insert(0, str(REPO))
    from fedblog.web.comment_form import sign_token

    workdir = Path(tempfile.mkdtemp(prefix="bench-comments-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'fedblog.db'}"
    secret = secrets.token_urlsafe(32)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FEDBLOG_")},
           "FEDBLOG_BASE_URL": "http://127.0.0.1:8000", "FEDBLOG_DATA_DIR": str(workdir / "data"),
           "FEDBLOG_DATABASE_URL": database_url, "FEDBLOG_SECRET_KEY": secret, "FEDBLOG_WORKER": "off",
           "FEDBLOG_COMMENT_RATE_LIMIT": "0", "FEDBLOG_MODERATION": "approve-all", "PYTHONPATH": str(REPO)}
    try:
        post_id = build_database(database_url)
        token = sign_token(secret, post_id, 0, int(time.time()) - 10)
        rounds: list[dict[str, Any]] = []
        for rnd in range(1, args.rounds + 1):
            order = ("fedblog", "ceiling") if rnd % 2 else ("ceiling", "fedblog")
            ms = {name: measure(name, args, env, workdir, post_id, token) for name in order}
            ratio = ms["fedblog"]["per_s"] / ms["ceiling"]["per_s"]
            flat = {f"{n}_{k}": v for n, m in ms.items() for k, v in m.items()}
            rounds.append({"round": rnd, **flat, "ratio": ratio})
            print(f"round {rnd}: fedblog {ms['fedblog']['per_s']:.0f}/s ({ms['fedblog']['stored']} stored, "
                  f"{ms['fedblog']['errors']} errors), ceiling {ms['ceiling']['per_s']:.0f}/s, ratio {ratio:.2f}",
                  file=sys.stderr)
    finally:
        finish_workdir(workdir, args.keep)
    ratios = [r["ratio"] for r in rounds]
    ours, ceiling = [r["fedblog_per_s"] for r in rounds], [r["ceiling_per_s"] for r in rounds]
    database = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(f"# Comment form: accepted comments per second, c{args.conns}, {args.rounds} x {args.duration:g} s, "
          f"{database}; git {git('rev-parse', '--short', 'HEAD')}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {wrk_version()}")
    print(f"\nfedblog {fmt(ours)}/s, ceiling {fmt(ceiling)}/s (rows stored in the measured window per second)")
    errors = sum(r["fedblog_errors"] + r["ceiling_errors"] for r in rounds)
    missed = print_checks([
        ("fedblog / ceiling accepted comments per second", fmt(ratios, 2), f">= {TARGET_RATIO}",
         med(ratios) >= TARGET_RATIO),
        ("wrk errors (socket errors, timeouts, 4xx/5xx)", str(errors), "0", errors == 0),
    ])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"comment-form-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({"rounds": rounds, "args": vars(args)}, indent=2, default=str))
    return exit_code(missed, args.check)


if __name__ == "__main__":
    sys.exit(main())
