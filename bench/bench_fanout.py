#!/usr/bin/env python3
"""Outbound fan-out: fedblog's real worker against a naive signed-POST loop, in one run.

One post is published (fedblog's own code: migrations, followers, ``publish``, one SQLite file per
case) to followers on a local receiver (``bench/receiver_app.py``: uvicorn, uvloop + httptools,
1 worker, 127.0.0.1 only; it records every POST and answers 202). Cases:

    n1000          1,000 followers, each its own inbox           -> 1,000 deliveries
    n10000_shared  10,000 followers over 1,000 shared inboxes    -> 1,000 deliveries (deduped)
    n10000         10,000 followers, each its own inbox          -> 10,000 deliveries

each at concurrency 50 and 200, by two senders:

    fedblog  ``python -m fedblog worker --once --quiet`` with FEDBLOG_DELIVERY_CONCURRENCY=C and
             FEDBLOG_DELIVERY_PER_HOST=C (everything goes to one host, 127.0.0.1, so the per-host
             cap would otherwise be the limit)
    naive    one shared ``httpx.AsyncClient(max_connections=C)``; C asyncio workers pull URLs from
             a queue, sign each POST (draft-cavage rsa-sha256, fedblog's ``sign_request``, the blog's
             own key) and POST the same body to the same URLs

Delivery phase only (enqueueing, interpreter start-up, imports and migrations are excluded):

* fedblog: from its first claim until every delivery row is settled (``sent``), both seen by
  polling the worker's SQLite file (every 2 ms / 5 ms); so it includes building its HTTP clients,
  the claims, the batched DB writes and the final flush, but not interpreter shutdown. CPU =
  user+sys of the worker process over the same span, from /proc/PID/stat at both moments.
* naive: from just before its ``AsyncClient`` is built until the client is closed after the last
  response; CPU = ``getrusage(RUSAGE_SELF)`` over the same span.
* Also reported: the receiver's view (first POST in -> last 202 out, CLOCK_MONOTONIC) and the
  receiver's CPU per request. Peak RSS = the sender process's ``ru_maxrss``.

Every run must deliver every URL exactly once, signed, with the right activity id (and for
fedblog every delivery row ``sent``); otherwise the bench stops with an error.

    python bench/bench_fanout.py                  # 2 rounds, all cases, c50 and c200 (~6 min)
    python bench/bench_fanout.py --rounds 3 --cases n1000 --concurrency 50
    python bench/bench_fanout.py --check          # exit 1 if a target is missed
    python bench/bench_fanout.py --hanging --rounds 3   # 10 % of inboxes hanging (bench/fanout_hanging.py)

Targets: fedblog/naive deliveries/s >= 3; fedblog c200/c50 >= 0.9. The naive loop is the same-run ceiling: it
does the same protocol work (sign, POST, read the answer) without fedblog's queue, retries and bookkeeping;
only ratios count, because this shared machine moves absolute figures by +-25 % between runs.
Prints a Markdown report; JSON goes to bench/results/fanout-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import exit_code, finish_workdir, fmt, free_port, git, med, package_versions, print_checks  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
sys.path.insert(0, str(REPO))

CASES: dict[str, tuple[int, int | None]] = {  # name: (followers, shared inboxes or None)
    "n1000": (1_000, None),
    "n10000_shared": (10_000, 1_000),
    "n10000": (10_000, None),
}
SENDERS = ("fedblog", "naive")
TARGET_NAIVE_RATIO = 3.0  # fedblog / naive deliveries/s: at least
TARGET_C200_RATIO = 0.9  # fedblog c200 / c50 deliveries/s: more connections must not cost throughput
RUN_TIMEOUT_S = 600.0
BASE_URL = "https://blog.bench"


# ---------------------------------------------------------------------------------------------
# Setup: one SQLite database per case, built with fedblog's own code, copied for every run


def build_case(path: Path, followers: int, shared: int | None, port: int) -> dict[str, Any]:
    """Migrate, add followers, publish one post. Returns what the naive sender needs."""
    from sqlalchemy import insert
    from sqlmodel import Session, select

    from fedblog.activitypub.keys import private_key_to_pem
    from fedblog.blog.posts import parse_post_source
    from fedblog.federation.publishing import publish
    from fedblog.services import build_services
    from fedblog.settings import load_settings
    from fedblog.store.db import migrate, session_scope
    from fedblog.store.tables import Activity, Delivery, Follower

    settings = load_settings({"FEDBLOG_DATABASE_URL": f"sqlite:///{path}", "FEDBLOG_DATA_DIR": str(path.parent),
                              "FEDBLOG_BASE_URL": BASE_URL, "FEDBLOG_SECRET_KEY": "bench"})
    services = build_services(settings)
    try:
        migrate(services.engine)
        keys = services.keys.get()
        now = services.clock.now()
        base = f"http://127.0.0.1:{port}"
        rows = [{"actor_ap_id": f"{base}/users/{i}", "inbox": f"{base}/inbox/{i}",
                 "shared_inbox": f"{base}/shared/{i % shared}" if shared else None, "created_at": now}
                for i in range(followers)]
        with session_scope(services.engine) as session:
            session.execute(insert(Follower), rows)
        with session_scope(services.engine) as session:
            publish(session, services, parse_post_source(
                "---\ntitle: Fan-out bench\nslug: fan-out\ntags: [bench]\n---\n"
                + "A post of ordinary length, sent to every follower. " * 20 + "\n"))
        with Session(services.engine) as session:
            activity = session.exec(select(Activity)).one()
            urls = list(session.exec(select(Delivery.inbox).order_by(Delivery.id)).all())
        with services.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"activity_id": activity.ap_id, "body": activity.body, "urls": urls, "key_id": services.urls.key_id(),
                "key_pem": private_key_to_pem(keys.rsa), "followers": followers, "deliveries": len(urls)}
    finally:
        services.engine.dispose()


def delivery_states(path: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM delivery GROUP BY state").fetchall())


# ---------------------------------------------------------------------------------------------
# The naive sender (runs in its own process: ``bench_fanout.py --naive-child SPEC``)


async def _naive(spec: dict[str, Any], concurrency: int) -> dict[str, Any]:
    import httpx

    from fedblog.activitypub.context import ACTIVITY_JSON
    from fedblog.activitypub.httpsig import sign_request
    from fedblog.activitypub.keys import load_private_key

    key = load_private_key(spec["key_pem"])
    body = spec["body"].encode()
    work: asyncio.Queue[str] = asyncio.Queue()
    for url in spec["urls"]:
        work.put_nowait(url)
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()  # the client is part of the phase
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0, connect=5.0), trust_env=False) as client:

        async def worker() -> None:
            while True:
                try:
                    url = work.get_nowait()
                except asyncio.QueueEmpty:
                    return
                headers = {"Content-Type": ACTIVITY_JSON, "Accept": ACTIVITY_JSON}
                headers.update(sign_request("POST", url, headers, body, key_id=spec["key_id"], private_key=key,
                                            now=datetime.now(UTC)))
                try:
                    response = await client.post(url, content=body, headers=headers)
                    statuses[response.status_code] += 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    t1, ru1 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return {"wall_s": t1 - t0, "cpu_s": cpu, "maxrss_kb": ru1.ru_maxrss, "statuses": dict(statuses),
            "errors": dict(errors), "t0": t0, "cpu_before_s": ru0.ru_utime + ru0.ru_stime}


def naive_child(spec_path: str, concurrency: int) -> int:
    spec = json.loads(Path(spec_path).read_text())
    print("BENCHJSON " + json.dumps(asyncio.run(_naive(spec, concurrency))), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# One measured run


@dataclass
class Run:
    round: int
    case: str
    sender: str
    concurrency: int
    followers: int
    deliveries: int
    wall_s: float  # the delivery phase: fedblog first claim -> exit; naive client built -> last response
    rate: float  # deliveries / wall_s
    cpu_us_per_delivery: float  # sender user+sys over the same phase
    maxrss_mb: float
    receiver_window_s: float  # first POST in -> last 202 out, at the receiver
    receiver_rate: float  # deliveries / receiver_window_s
    receiver_cpu_us_per_request: float
    startup_s: float  # sender launch -> start of the phase (interpreter, imports, migrations; excluded)
    startup_cpu_s: float
    duplicates: int
    note: str


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_child(proc: subprocess.Popen[bytes], started: Any, finished: Any,
                deadline: float) -> tuple[float | None, float, float | None, float, Any, float]:
    """Poll until ``started()``, then until ``finished()`` (sampling the child's CPU from /proc at
    both moments), then wait for the exit (rusage). Returns (t_start, cpu_start, t_end, cpu_end, rusage, t_exit)."""
    t_start = t_end = None
    cpu_start = cpu_end = 0.0
    while True:
        if t_start is None and started():
            t_start = time.monotonic()
            cpu_start = _proc_cpu_or(proc.pid, 0.0)
        if t_start is not None and t_end is None and finished():
            t_end = time.monotonic()
            cpu_end = _proc_cpu_or(proc.pid, 0.0)
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            t_exit = time.monotonic()
            if t_end is None:  # finished between two polls and exited at once: count up to the exit
                t_end, cpu_end = t_exit, ru.ru_utime + ru.ru_stime
            return t_start, cpu_start, t_end, cpu_end, ru, t_exit
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise RuntimeError(f"sender {proc.args} did not finish in {RUN_TIMEOUT_S} s")
        time.sleep(0.002 if t_start is None else 0.005)


def _proc_cpu_or(pid: int, default: float) -> float:
    try:
        return _proc_cpu(pid)
    except (OSError, IndexError):
        return default


class _Progress:
    """Polls the worker's SQLite file: has it claimed anything yet? are all rows settled?"""

    def __init__(self, db: Path) -> None:
        import sqlite3

        self.conn = sqlite3.connect(db, timeout=5, isolation_level=None)

    def started(self) -> bool:
        return self.conn.execute("SELECT 1 FROM delivery WHERE leased_by IS NOT NULL OR state <> 'pending' "
                                 "LIMIT 1").fetchone() is not None

    def finished(self) -> bool:
        return self.conn.execute("SELECT 1 FROM delivery WHERE state = 'pending' LIMIT 1").fetchone() is None

    def close(self) -> None:
        self.conn.close()


def measure(rnd: int, case: str, sender: str, concurrency: int, spec: dict[str, Any], template: Path,
            workdir: Path, port: int) -> Run:
    from tests.receiver import start_receiver

    run_dir = workdir / f"r{rnd}-{case}-{sender}-c{concurrency}"
    run_dir.mkdir()
    log = run_dir / "received.jsonl"
    db = run_dir / "fedblog.db"
    receiver = start_receiver(log, port=port)
    try:
        r_cpu0 = receiver.cpu_seconds()
        out = run_dir / "sender.out"
        if sender == "fedblog":
            shutil.copy(template, db)
            env = {k: v for k, v in os.environ.items() if not k.startswith("FEDBLOG_")}
            env.update(FEDBLOG_DATABASE_URL=f"sqlite:///{db}", FEDBLOG_DATA_DIR=str(run_dir), FEDBLOG_BASE_URL=BASE_URL,
                       FEDBLOG_SECRET_KEY="bench", FEDBLOG_ALLOW_PRIVATE_HOSTS="127.0.0.1", FEDBLOG_WORKER="off",
                       FEDBLOG_DELIVERY_CONCURRENCY=str(concurrency), FEDBLOG_DELIVERY_PER_HOST=str(concurrency))
            cmd = [sys.executable, "-m", "fedblog", "worker", "--once", "--quiet"]
        else:
            env = dict(os.environ)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--naive-child", str(workdir / f"{case}.json"),
                   "--concurrency", str(concurrency)]
        progress = _Progress(db) if sender == "fedblog" else None
        if progress:
            started, finished = progress.started, progress.finished
        else:  # the naive sender times itself; this is only for the start-up column
            started, finished = (lambda: log.exists() and log.stat().st_size > 0), (lambda: False)
        t_launch = time.monotonic()
        with out.open("wb") as f:
            proc = subprocess.Popen(cmd, env=env, cwd=run_dir, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            t_first, cpu_first, t_done, cpu_done, ru, t_exit = _wait_child(proc, started, finished,
                                                                            t_launch + RUN_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            if progress:
                progress.close()
        output = out.read_text(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{sender} exited with {proc.returncode}:\n{output[-3000:]}")
        time.sleep(0.05)
        r_cpu = receiver.cpu_seconds() - r_cpu0
        records = receiver.records()
    finally:
        receiver.stop()

    # Correctness first: every URL exactly once, signed, the right activity.
    n = spec["deliveries"]
    paths = Counter(r.path for r in records)
    expected = {u.split(str(port), 1)[1] for u in spec["urls"]}
    problems = []
    if set(paths) != expected:
        problems.append(f"{len(expected - set(paths))} URLs never received")
    if not all(r.signed for r in records):
        problems.append("unsigned POSTs")
    if {r.activity_id for r in records} != {spec["activity_id"]}:
        problems.append("wrong activity id")
    duplicates = sum(c - 1 for c in paths.values())
    note = ""
    if sender == "fedblog":
        states = delivery_states(db)
        if states != {"sent": n}:
            problems.append(f"delivery rows {states}")
        if t_first is None:
            problems.append("never saw a claim")
        cpu = cpu_done - cpu_first
        sender_wall = t_done - (t_first or t_done)
        note = [line for line in output.splitlines() if line.startswith("sent ")][-1:]
        note = note[0] if note else output[-200:]
        note += f"; exit {t_exit - t_done:.2f} s after the last row was settled"
        startup_cpu = cpu_first
    else:
        res = json.loads([line for line in output.splitlines() if line.startswith("BENCHJSON ")][-1][10:])
        if res["statuses"] != {"202": n} or res["errors"]:
            problems.append(f"statuses {res['statuses']} errors {res['errors']}")
        cpu, sender_wall = res["cpu_s"], res["wall_s"]
        t_first, startup_cpu = res["t0"], res["cpu_before_s"]
        note = f"exit {t_exit - (t_first + sender_wall):.2f} s after the last response"
    if problems:
        raise RuntimeError(f"round {rnd} {case} {sender} c{concurrency}: " + "; ".join(problems))
    window = max(r.t_end for r in records) - min(r.t_start for r in records)
    startup = (t_first or t_exit) - t_launch
    return Run(round=rnd, case=case, sender=sender, concurrency=concurrency, followers=spec["followers"],
               deliveries=n, wall_s=sender_wall, rate=n / sender_wall, cpu_us_per_delivery=cpu / n * 1e6,
               maxrss_mb=ru.ru_maxrss / 1024, receiver_window_s=window, receiver_rate=n / window,
               receiver_cpu_us_per_request=r_cpu / len(records) * 1e6, startup_s=startup, startup_cpu_s=startup_cpu,
               duplicates=duplicates, note=note)


# ---------------------------------------------------------------------------------------------
# Report


def summarize(runs: list[Run], cases: list[str], concs: list[int]) -> tuple[str, dict[str, Any]]:
    def pick(case: str, sender: str, c: int) -> list[Run]:
        return sorted((r for r in runs if r.case == case and r.sender == sender and r.concurrency == c),
                      key=lambda r: r.round)

    lines = [
        "| case | followers | deliveries | sender | C | wall s | deliveries/s | sender CPU us/delivery | "
        "peak RSS MB | deliveries/s at the receiver | receiver CPU us/req | start-up s (excluded) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        for c in concs:
            for sender in SENDERS:
                rs = pick(case, sender, c)
                if not rs:
                    continue
                lines.append(
                    f"| {case} | {rs[0].followers:,} | {rs[0].deliveries:,} | {sender} | {c} | "
                    f"{fmt([r.wall_s for r in rs], 2)} | "
                    f"{fmt([r.rate for r in rs])} | {fmt([r.cpu_us_per_delivery for r in rs])} | "
                    f"{fmt([r.maxrss_mb for r in rs])} | {fmt([r.receiver_rate for r in rs])} | "
                    f"{fmt([r.receiver_cpu_us_per_request for r in rs])} | "
                    f"{fmt([r.startup_s for r in rs], 2)} |"
                )
    lines += ["", "Ratios, median [min-max] of the per-round ratios:", "",
              "| case | check | value | target | verdict |", "|---|---|---|---|---|"]
    checks: dict[str, Any] = {}
    for case in cases:
        for c in concs:
            fed, naive = pick(case, "fedblog", c), pick(case, "naive", c)
            if fed and naive:
                ratio = [a.rate / b.rate for a, b in zip(fed, naive, strict=True)]
                cpu = [a.cpu_us_per_delivery / b.cpu_us_per_delivery for a, b in zip(fed, naive, strict=True)]
                ok = med(ratio) >= TARGET_NAIVE_RATIO
                lines.append(
                    f"| {case} | fedblog / naive deliveries/s, C={c} | {fmt(ratio, 2)} | >= {TARGET_NAIVE_RATIO} "
                    f"| {'PASS' if ok else 'FAIL'} |"
                )
                lines.append(f"| {case} | fedblog / naive CPU per delivery, C={c} | {fmt(cpu, 2)} | (reported) | |")
                checks[f"{case}/c{c}/fedblog_vs_naive"] = {"ratios": ratio, "cpu_ratios": cpu, "pass": ok}
        if 50 in concs and 200 in concs:
            for sender in SENDERS:
                lo, hi = pick(case, sender, 50), pick(case, sender, 200)
                if lo and hi:
                    ratio = [b.rate / a.rate for a, b in zip(lo, hi, strict=True)]
                    ok = med(ratio) >= TARGET_C200_RATIO
                    target = f">= {TARGET_C200_RATIO}" if sender == "fedblog" else "(reference)"
                    verdict = ("PASS" if ok else "FAIL") if sender == "fedblog" else ""
                    lines.append(
                        f"| {case} | {sender} C=200 / C=50 deliveries/s | {fmt(ratio, 2)} | {target} | {verdict} |"
                    )
                    checks[f"{case}/{sender}/c200_vs_c50"] = {
                        "ratios": ratio,
                        "pass": ok if sender == "fedblog" else None,
                    }
    return "\n".join(lines), checks


def environment() -> dict[str, Any]:
    versions = package_versions(("httpx", "httpcore", "anyio", "sniffio", "uvicorn", "uvloop", "httptools",
                                 "sqlalchemy", "cryptography", "fedblog"))
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
            "git": git("rev-parse", "--short", "HEAD"),
            "fedblog_jobs_uncommitted_changes": bool(git("status", "--porcelain", "fedblog/jobs")),
            "versions": versions}

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--concurrency", default="50,200", help="comma-separated (default 50,200)")
    ap.add_argument("--senders", default=",".join(SENDERS), help="comma-separated: fedblog,naive")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, receiver logs)")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--hanging", action="store_true",
                    help="only the '10 %% of inboxes hanging' case (bench/fanout_hanging.py): healthy inboxes' "
                         "delivery time next to hanging ones, as a ratio to a run without them (target <= 1.2)")
    ap.add_argument("--naive-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.hanging:
        from fanout_hanging import TARGET_RATIO, hanging_case

        if not 1 <= args.rounds <= 5:
            ap.error("--hanging: --rounds 1-5")
        report, raw = hanging_case(rounds=args.rounds)
        print(report)
        ratios = [r["ratio"] for r in raw if "ratio" in r]
        windows = {run: [r["healthy_window_s"] for r in raw if r.get("run") == run] for run in ("none", "hanging")}
        missed = print_checks([
            ("healthy inboxes' delivery time, 10 % hanging / none", fmt(ratios, 2), f"<= {TARGET_RATIO} (median)",
             med(ratios) <= TARGET_RATIO),
            ("healthy window, no hanging inboxes", fmt(windows["none"], 2) + " s", "(reported)", True),
            ("healthy window, 10 % hanging", fmt(windows["hanging"], 2) + " s", "(reported)", True),
        ])
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"fanout-hanging-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps({"git": git("rev-parse", "HEAD"), "runs": raw, "missed": missed}, indent=1))
        print(f"wrote {out}")
        return exit_code(missed, args.check)
    concs = [int(c) for c in args.concurrency.split(",")]
    if args.naive_child:
        return naive_child(args.naive_child, concs[0])
    cases = args.cases.split(",")
    senders = args.senders.split(",")
    if not 1 <= args.rounds <= 20 or any(c not in CASES for c in cases) or any(not 1 <= c <= 1000 for c in concs) \
            or any(s not in SENDERS for s in senders):
        ap.error("--rounds 1-20; --cases from the list; --concurrency 1-1000; --senders fedblog,naive")

    workdir = Path(tempfile.mkdtemp(prefix="fedblog-bench-fanout-"))
    try:
        port = free_port()  # every receiver listens here, so the followers' URLs stay valid
        specs, templates = {}, {}
        for case in cases:
            followers, shared = CASES[case]
            print(f"building {case}: {followers:,} followers ...", file=sys.stderr)
            templates[case] = workdir / f"{case}.db"
            specs[case] = build_case(templates[case], followers, shared, port)
            (workdir / f"{case}.json").write_text(json.dumps(specs[case]))
        runs: list[Run] = []
        for rnd in range(1, args.rounds + 1):
            order = senders if rnd % 2 else list(reversed(senders))  # alternate who goes first
            for case in cases:
                for c in concs:
                    for sender in order:
                        r = measure(rnd, case, sender, c, specs[case], templates[case], workdir, port)
                        runs.append(r)
                        print(
                            f"round {rnd} {case:13} {sender:7} c{c:<3} {r.deliveries:6,} in {r.wall_s:6.2f} s "
                            f"{r.rate:7,.0f}/s  cpu {r.cpu_us_per_delivery:6,.0f} us/delivery  "
                            f"rss {r.maxrss_mb:5.0f} MB  "
                            f"(receiver {r.receiver_rate:,.0f}/s; "
                            f"start-up {r.startup_s:.2f} s, {r.startup_cpu_s:.2f} s CPU) "
                            f"{r.note}",
                            file=sys.stderr,
                        )
        table, checks = summarize(runs, cases, concs)
        env_info = environment()
        report = [
            f"## Fan-out: fedblog worker vs naive shared-client loop ({args.rounds} rounds)",
            "",
            f"git {env_info['git']}"
            f"{' + uncommitted fedblog/jobs changes' if env_info['fedblog_jobs_uncommitted_changes'] else ''}, "
            f"Python {env_info['python']}, {env_info['cpus']} CPUs, load {env_info['loadavg'][0]:.2f}; "
            f"httpx {env_info['versions']['httpx']}, httpcore {env_info['versions']['httpcore']}; "
            "fedblog with FEDBLOG_DELIVERY_PER_HOST = C (one receiver host).",
            "",
            table,
        ]
        text = "\n".join(report)
        print(text)
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS / f"fanout-{stamp}.json"
        out.write_text(json.dumps({"environment": env_info, "runs": [asdict(r) for r in runs], "checks": checks,
                                   "report": text}, indent=2))
        print(f"\nJSON: {out}", file=sys.stderr)
        if args.check and not all(v["pass"] for v in checks.values() if v.get("pass") is not None):
            return 1
        return 0
    finally:
        finish_workdir(workdir, args.keep)

if __name__ == "__main__":
    sys.exit(main())
