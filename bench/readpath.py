"""Shared by bench_growth.py and bench_hug.py: a demo database, ``fedblog serve``, wrk, RSS.

Loopback only; every wait is bounded; servers run in their own process group and are stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib import Server

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEMO_PATH = "/posts/china-sent-back-north-korean-defectors"
AP_ACCEPT = "application/activity+json"

WRK_LUA = r"""
local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
local accept = os.getenv("BENCH_ACCEPT")
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local n = 0
request = function()
  if accept and accept ~= "" then
    return wrk.format("GET", nil, {["Accept"] = accept})
  end
  return wrk.format("GET")
end
response = function(status, headers, body)
  n = n + 1
  if limit > 0 and n >= limit / threads then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def env_for(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDBLOG_")}
    env.update({
        "FEDBLOG_DATA_DIR": str(data_dir), "FEDBLOG_BASE_URL": f"http://127.0.0.1:{port}",
        "FEDBLOG_WORKER": "off", "FEDBLOG_SECRET_KEY": "bench", "PYTHONPATH": str(REPO),
    })
    env.update(extra)
    return env


def build_demo_db(data_dir: Path, other_rows: int) -> None:
    """Migrate, load the demo post, and put ``other_rows`` interactions on another post."""
    sys.path.insert(0, str(REPO))
    from sqlalchemy import insert

    from fedblog.blog.demo import load_demo
    from fedblog.blog.posts import parse_post_source, save_post
    from fedblog.store.db import make_engine, migrate, optimize, session_scope
    from fedblog.store.tables import Interaction

    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{data_dir / 'fedblog.db'}")
    migrate(engine)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        load_demo(session)
        other = save_post(session, parse_post_source("---\ntitle: Viral\nslug: viral\n---\nEveryone replied."),
                          now=now, default_author="Ann", default_language="en").post
        other_id = other.id
    batch: list[dict[str, Any]] = []
    kinds = ("reply", "reply", "like", "repost")
    for i in range(other_rows):
        batch.append(dict(post_id=other_id, parent_id=None, kind=kinds[i % 4], via="activitypub",
                          status="pending" if i % 10 == 0 else "visible", ap_id=f"https://far.example/n/{i}",
                          author_name=f"Reader {i}", content_html="<p>me too</p>",
                          published_at=now - timedelta(seconds=i)))
        if len(batch) == 5000 or i == other_rows - 1:
            with engine.begin() as conn:
                conn.execute(insert(Interaction), batch)
            batch = []
    optimize(engine, analyze=True)  # what `fedblog serve` does at start-up (migrate)
    engine.dispose()


def start(name: str, cmd: list[str], env: dict[str, str], log: Path, ready: str, port: int) -> Server:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(name, proc, f"http://127.0.0.1:{port}", log)
    server.wait_ready(ready)
    return server


def serve_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "fedblog", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning"]


def hello_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "--factory", "ceiling_hello_app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]


def wrk(url: str, *, conns: int, seconds: float, lua: Path, threads: int = 1, accept: str = "",
        limit: int = 0) -> dict[str, Any]:
    env = {**os.environ, "BENCH_LIMIT": str(limit), "BENCH_ACCEPT": accept, "BENCH_THREADS": str(threads)}
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--timeout=10s", "--latency", "-s", str(lua), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True, env=env)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    res: dict[str, Any] = json.loads(line.removeprefix("BENCHJSON "))
    res["rps"] = res["requests"] / max(res["duration_us"] / 1e6, 1e-9)
    res["errors"] = sum(res[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    return res


def rss_mb(pid: int) -> float:
    """Resident memory of the server process now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
