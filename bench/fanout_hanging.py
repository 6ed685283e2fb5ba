"""The fan-out bench's "10 % of inboxes hanging" case (``bench_fanout.py --hanging``).

Two runs of ``python -m fedblog worker --once --quiet`` over one post each, in one process tree:

    none     N healthy followers on the receiver (127.0.0.1, answers 202 at once)
    hanging  the same N healthy followers plus N/9 followers (10 % of all inboxes), each on its own
             loopback host 127.0.0.2, 127.0.0.3, ... whose listener accepts the connection, reads
             the request and never answers

Figure: the healthy inboxes' delivery time, from the first POST of the run (to any inbox) to the
last healthy 202, at the receivers (CLOCK_MONOTONIC, comparable across processes); reported as
the ratio hanging / none, target at most 1.2. Bounded: N is small, the delivery deadline is
``--deadline`` seconds (FEDBLOG_DELIVERY_TIMEOUT), so each hanging run ends after about that long;
loopback only. A smoke figure on a shared machine: the ratio, not the absolute times, is the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.2


class HangingHosts:
    """Listeners on 127.0.0.2 ... that accept, read and never answer (a thread with its own loop)."""

    def __init__(self, count: int, port: int) -> None:
        self.hosts = [f"127.0.0.{2 + i}" for i in range(count)]
        self.port = port
        self.first_accept: float | None = None
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hanging listeners did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.first_accept = self.first_accept or time.monotonic()
            self.accepted += 1
            try:
                while await reader.read(65536):
                    pass  # read everything, answer nothing
            finally:
                writer.close()

        async def start() -> None:
            for host in self.hosts:
                await asyncio.start_server(hang, host, self.port)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def _build(db: Path, healthy_base: str, healthy: int, hanging_hosts: list[str], port: int) -> None:
    from sqlalchemy import insert

    from fedblog.blog.posts import parse_post_source
    from fedblog.federation.publishing import publish
    from fedblog.services import build_services
    from fedblog.settings import load_settings
    from fedblog.store.db import migrate, session_scope
    from fedblog.store.tables import Follower

    settings = load_settings({"FEDBLOG_DATABASE_URL": f"sqlite:///{db}", "FEDBLOG_DATA_DIR": str(db.parent),
                              "FEDBLOG_BASE_URL": "https://blog.bench", "FEDBLOG_SECRET_KEY": "bench"})
    services = build_services(settings)
    try:
        migrate(services.engine)
        services.keys.get()
        now = services.clock.now()
        rows = [{"actor_ap_id": f"{healthy_base}/users/{i}", "inbox": f"{healthy_base}/inbox/{i}", "created_at": now}
                for i in range(healthy)]
        rows += [{"actor_ap_id": f"http://{h}:{port}/users/x", "inbox": f"http://{h}:{port}/inbox", "created_at": now}
                 for h in hanging_hosts]
        with session_scope(services.engine) as session:
            session.execute(insert(Follower), rows)
        with session_scope(services.engine) as session:
            publish(session, services, parse_post_source("---\ntitle: Hanging\nslug: hanging\n---\nHello.\n"))
    finally:
        services.engine.dispose()


def _run_once(work: Path, name: str, healthy: int, hanging: int, deadline: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from benchlib import free_port

    from tests.receiver import start_receiver

    work = work / name
    work.mkdir()
    receiver = start_receiver(work / "received.jsonl")
    hang_port = free_port()
    hosts = HangingHosts(hanging, hang_port) if hanging else None
    try:
        all_hosts = ["127.0.0.1", *(hosts.hosts if hosts else [])]
        _build(work / "fedblog.db", f"http://127.0.0.1:{receiver.port}", healthy, hosts.hosts if hosts else [],
               hang_port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDBLOG_")}
        env.update(FEDBLOG_DATABASE_URL=f"sqlite:///{work / 'fedblog.db'}", FEDBLOG_DATA_DIR=str(work),
                   FEDBLOG_BASE_URL="https://blog.bench", FEDBLOG_SECRET_KEY="bench",
                   FEDBLOG_ALLOW_PRIVATE_HOSTS=",".join(all_hosts), FEDBLOG_DELIVERY_TIMEOUT=str(deadline),
                   FEDBLOG_DELIVERY_CONCURRENCY="50", FEDBLOG_DELIVERY_PER_HOST="50")
        proc = subprocess.run([sys.executable, "-m", "fedblog", "worker", "--once", "--quiet"], env=env, cwd=work,
                              capture_output=True, text=True, timeout=deadline + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        records = receiver.records()
        if len({r.path for r in records}) != healthy:
            raise RuntimeError(f"{name}: {len({r.path for r in records})}/{healthy} healthy inboxes served")
        first = min(r.t_start for r in records)
        if hosts and hosts.first_accept is not None:
            first = min(first, hosts.first_accept)
        window = max(r.t_end for r in records) - first
        return {"run": name, "healthy": healthy, "hanging": hanging, "healthy_window_s": window,
                "hanging_accepted": hosts.accepted if hosts else 0, "worker_said": proc.stdout.strip()[-200:]}
    finally:
        receiver.stop()
        if hosts:
            hosts.stop()


def hanging_case(healthy: int = 900, deadline: int = 5, rounds: int = 1) -> tuple[str, list[dict[str, Any]]]:
    """Run the case; returns a Markdown report and the raw runs."""
    hanging = max(1, healthy // 9)
    runs: list[dict[str, Any]] = []
    lines = ["| round | healthy | hanging | healthy window s (none) | (10 % hanging) | ratio | target |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for rnd in range(1, rounds + 1):
        with tempfile.TemporaryDirectory(prefix="fedblog-bench-hanging-") as tmp:
            none = _run_once(Path(tmp), "none", healthy, 0, deadline)
            hung = _run_once(Path(tmp), "hanging", healthy, hanging, deadline)
        ratio = hung["healthy_window_s"] / none["healthy_window_s"]
        runs += [none, hung, {"round": rnd, "ratio": ratio}]
        lines.append(f"| {rnd} | {healthy} | {hanging} | {none['healthy_window_s']:.2f} | "
                     f"{hung['healthy_window_s']:.2f} | {ratio:.2f} | <= {TARGET_RATIO} |")
    return "\n".join(lines), runs


if __name__ == "__main__":
    report, raw = hanging_case()
    print(report)
    print(json.dumps(raw, indent=1))
