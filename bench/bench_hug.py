#!/usr/bin/env python3
"""A hug of death on one post: 2,000 GETs at 200 concurrent connections against ``fedblog serve``.

Also the cached post page's throughput against the bare hello-route ceiling
(``ceiling_hello_app.py``: one Starlette route, same uvicorn) measured in the same run, and the
server's memory (peak RSS) after the load. Targets: every answer a 200, p95 < 1 s; cached post
page >= 0.3x the hello ceiling; RSS < 250 MB.

    python bench/bench_hug.py                       # 2 rounds, 5 s throughput runs
    python bench/bench_hug.py --rounds 3 --duration 8
    python bench/bench_hug.py --check               # exit 1 if a target is missed

The demo post in a fresh SQLite database (``--rows`` interactions on another post, default
10,000). 127.0.0.1 only; wrk stops after --requests answers or 60 s; every run is bounded.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from benchlib import exit_code, finish_workdir, fmt, free_port, git, print_checks
from readpath import DEMO_PATH, WRK_LUA, build_demo_db, env_for, hello_cmd, peak_rss_mb, serve_cmd, start, wrk

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO, TARGET_P95_MS, TARGET_RSS_MB = 0.3, 1000.0, 250.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, server logs)")
    args = ap.parse_args()
    if not (1 <= args.rounds <= 10 and 1 <= args.duration <= 60 and 1 <= args.requests <= 100_000
            and 1 <= args.conns <= 1000):
        raise SystemExit("keep it bounded: rounds 1-10, duration 1-60 s, requests <= 100,000, conns <= 1000")
    work = Path(tempfile.mkdtemp(prefix="fedblog-hug-"))
    lua = work / "bench.lua"
    lua.write_text(WRK_LUA)
    build_demo_db(work / "data", args.rows)
    hugs, ratios, rows = [], [], []
    for rnd in range(args.rounds):
        port = free_port()
        server = start("fedblog", serve_cmd(port), env_for(work / "data", port), work / "fedblog.log", DEMO_PATH, port)
        try:  # the hug: a cold server (one warm GET only), 200 connections at once
            hug = wrk(server.base + DEMO_PATH, conns=args.conns, seconds=60, lua=lua, threads=2, limit=args.requests)
            hug["peak_rss_mb"] = peak_rss_mb(server.pid)
            hugs.append(hug)
            wrk(server.base + DEMO_PATH, conns=50, seconds=1, lua=lua)  # warm-up
            page = wrk(server.base + DEMO_PATH, conns=50, seconds=args.duration, lua=lua)
            page["peak_rss_mb"] = peak_rss_mb(server.pid)
        finally:
            server.stop()
        port = free_port()
        hello = start("hello", hello_cmd(port), env_for(work / "data", port), work / "hello.log", "/hello", port)
        try:
            wrk(hello.base + "/hello", conns=50, seconds=1, lua=lua)
            ceiling = wrk(hello.base + "/hello", conns=50, seconds=args.duration, lua=lua)
        finally:
            hello.stop()
        ratios.append(page["rps"] / ceiling["rps"])
        rows.append({"round": rnd, "hug": hug, "page": page, "hello": ceiling})
    print(f"\n## bench_hug: {args.requests:,} GETs of the demo post at {args.conns} connections, "
          f"{args.rounds} rounds (fresh server each)\n")
    print("| round | answered | non-200 or errors | p50 ms | p95 ms | p99 ms | max ms | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r, hug in enumerate(hugs):
        print(f"| {r} | {hug['requests']:,} | {hug['errors']} | {hug['p50_us'] / 1000:.0f} | "
              f"{hug['p95_us'] / 1000:.0f} | {hug['p99_us'] / 1000:.0f} | {hug['max_us'] / 1000:.0f} | "
              f"{hug['peak_rss_mb']:.0f} |")
    print("\n| round | cached post req/s (c50) | hello ceiling req/s (c50) | ratio | server peak RSS MB |")
    print("|---|---|---|---|---|")
    for row in rows:
        p, h = row["page"], row["hello"]
        ratio = p["rps"] / h["rps"]
        print(f"| {row['round']} | {p['rps']:,.0f} | {h['rps']:,.0f} | {ratio:.2f} | {p['peak_rss_mb']:.0f} |")
    p95 = [h["p95_us"] / 1000 for h in hugs]
    rss = [max(r["page"]["peak_rss_mb"], r["hug"]["peak_rss_mb"]) for r in rows]
    errors = sum(h["errors"] for h in hugs)
    answered = sum(h["requests"] for h in hugs)
    checks = [
        ("hug: answers not 200 (or socket errors)", f"{errors} of {answered:,}", "0", errors == 0),
        ("hug: p95 latency", fmt(p95) + " ms", f"< {TARGET_P95_MS:.0f} ms every round", max(p95) < TARGET_P95_MS),
        ("cached post req/s / hello ceiling (same round)", fmt(ratios, 2), f">= {TARGET_RATIO} (median)",
         median(ratios) >= TARGET_RATIO),
        ("server peak RSS", fmt(rss) + " MB", f"< {TARGET_RSS_MB:.0f} MB every round", max(rss) < TARGET_RSS_MB),
    ]
    missed = print_checks(checks)
    verdict = {name: ok for name, _, _, ok in checks}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"hug-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"git": git("rev-parse", "HEAD"), "args": vars(args), "rounds": rows,
                               "verdict": verdict}, indent=1))
    print(f"wrote {out}")
    finish_workdir(work, args.keep)
    return exit_code(missed, args.check)


if __name__ == "__main__":
    raise SystemExit(main())
