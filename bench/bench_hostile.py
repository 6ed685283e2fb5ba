#!/usr/bin/env python3
"""Server memory under hostile inbox traffic: a real ``fedblog serve``, bounded in count and time.

One fresh server (SQLite, FEDBLOG_WORKER=off, default rate limits: 300 POSTs / 5 min per client
address, trusted proxy 127.0.0.1 so that ``X-Forwarded-For`` can stand for many clients) gets:

1. a benign phase: ``--benign`` good signed replies from 100 known actors through 20 client
   addresses (under every limit); the server's RSS after it is the **same-run reference**;
2. a hostile phase: up to ``--requests`` POSTs within ``--seconds``, from tens of thousands of
   made-up client addresses: invalid JSON, unsigned activities with fresh ids, signatures whose keyId
   names a fresh host each time (each leaves a failed-fetch mark), more good replies, replays of
   good bytes (to the same inbox: "Already received."; to another inbox path: 401), a one-address
   flood (429 after 300), too deep bodies, too large ones (413 from Content-Length) and bodies just
   under the 1 MiB cap (read in full, then refused); then a burst: ``--burst`` connections each
   send such a body at the same moment, twice.

Reported: RSS before, after the benign phase (the reference), peak and after the hostile phase;
``hostile/benign`` RSS ratio (target <= 1.5) and the absolute ceiling (target <= 250 MB), and the
counts of each answer. Everything is on 127.0.0.1; the forged keyIds name non-global addresses
(198.18.0.0/15, RFC 2544), which fedblog's fetch guard refuses without any network traffic.

    python bench/bench_hostile.py                      # 40,000 hostile requests, <= 180 s
    python bench/bench_hostile.py --requests 8000 --seconds 60   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email.utils import formatdate
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
for p in (str(REPO), str(BENCH_DIR)):
    if p not in sys.path:
        sys.path.insert(0, p)

import benchlib  # noqa: E402
import gen_inbox_requests as gen  # noqa: E402
from bench_inbox import POST_SLUG, build_fedblog_db, fedblog_env  # noqa: E402

RSS_CEILING_MB = 250.0
GROWTH_CEILING = 1.5
MAX_REQUESTS = 200_000


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def post(host: str, path: str, body: bytes, extra: dict[str, str] | None = None) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/activity+json",
            f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def with_forwarded(raw: bytes, ip: str | None, path: str | None = None) -> bytes:
    if path is not None:  # the same bytes to another inbox path (a replay attempt)
        raw = raw.replace(b"POST /inbox ", f"POST {path} ".encode(), 1)
    if ip is None:
        return raw
    return raw.replace(b"\r\n", f"\r\nX-Forwarded-For: {ip}\r\n".encode(), 1)


def made_up_ip(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


class Traffic:
    """The hostile mix, one request per call, by sequence number (deterministic)."""

    def __init__(self, host: str, good: list[bytes]) -> None:
        self.host, self.good, self.sent_good = host, good, 0
        self.nonce = uuid.uuid4().hex[:8]
        self.big = b'{"type": "Note", "content": "' + b"x" * 1_000_000 + b'"}'

    def forged(self, i: int) -> bytes:
        signer = f"https://198.18.{(i >> 8) & 255}.{i & 255}/users/u{i}"
        doc = {"@context": gen.AS, "id": f"{signer}/follows/{self.nonce}{i}", "type": "Follow", "actor": signer,
               "object": f"http://{self.host}/users/blog"}
        body = json.dumps(doc).encode()
        digest = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
        junk = base64.b64encode(hashlib.sha512(body).digest() * 4).decode()
        sig = (f'keyId="{signer}#main-key",algorithm="rsa-sha256",headers="(request-target) host date digest",'
               f'signature="{junk}"')
        return post(self.host, "/inbox", body, {"Date": formatdate(usegmt=True), "Digest": digest, "Signature": sig})

    def request(self, i: int) -> tuple[str, bytes]:
        kind = i % 10
        ip = made_up_ip(i)
        if kind in (0, 1):
            body = b'{"id": "https://x.example/' + str(i).encode()
            return "bad-json", with_forwarded(post(self.host, "/inbox", body), ip)
        if kind in (2, 3):
            doc = {"@context": gen.AS, "id": f"https://u{i}.example/a/{self.nonce}{i}", "type": "Like",
                   "actor": f"https://u{i}.example/users/x", "object": f"http://{self.host}/posts/{POST_SLUG}"}
            return "unsigned", with_forwarded(post(self.host, "/users/blog/inbox", json.dumps(doc).encode()), ip)
        if kind in (4, 5):
            return "forged-key", with_forwarded(self.forged(i), ip)
        if kind == 6 and self.sent_good < len(self.good):
            self.sent_good += 1
            return "good", with_forwarded(self.good[self.sent_good - 1], made_up_ip(i % 2000 + 70_000))
        if kind in (6, 7) and self.sent_good:
            raw = self.good[(i * 7919) % max(1, self.sent_good // 2)]  # sent well before: stored by now
            if (i // 10) % 2:
                return "replay-other-path", with_forwarded(raw, ip, "/users/blog/inbox")
            return "replay", with_forwarded(raw, ip)
        if kind == 8:
            return "one-address-flood", post(self.host, "/inbox", b"{}")
        if i % 50 == 9:
            return "too-large", with_forwarded(post(self.host, "/inbox", b"{" + b" " * 1_100_000 + b"}"), ip)
        if i % 50 in (19, 29):  # just under the 1 MiB cap: read and buffered in full, then refused
            return "big-body", with_forwarded(post(self.host, "/inbox", self.big), ip)
        return "too-deep", with_forwarded(post(self.host, "/inbox", b"[" * 64 + b"]" * 64), ip)


async def exchange(port: int, items: Any, counts: collections.Counter[str], stop_at: float) -> None:
    """One keep-alive connection: send each request, read its answer; reconnect when closed."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    for kind, raw in items:
        if time.monotonic() > stop_at:
            break
        for _attempt in range(2):
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                writer.write(raw)
                await writer.drain()
                status_line = await asyncio.wait_for(reader.readline(), 60)
                if not status_line:
                    raise ConnectionError("closed")
                length, close = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "connection" and "close" in value.lower():
                        close = True
                await reader.readexactly(length)
                counts[f"{kind} {status_line.split()[1].decode()}"] += 1
                if close:
                    writer.close()
                    reader = writer = None
                break
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, OSError):
                if writer is not None:
                    writer.close()
                reader = writer = None
                counts[f"{kind} connection-reset"] += 1
    if writer is not None:
        writer.close()


async def run_phase(port: int, requests: list[tuple[str, bytes]], concurrency: int, seconds: float
                    ) -> tuple[collections.Counter[str], float]:
    counts: collections.Counter[str] = collections.Counter()
    it = iter(requests)
    t0 = time.monotonic()
    await asyncio.gather(*(exchange(port, it, counts, t0 + seconds) for _ in range(concurrency)))
    return counts, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=40_000, help="hostile-phase requests (max 200,000)")
    ap.add_argument("--seconds", type=float, default=180.0, help="time cap of the hostile phase")
    ap.add_argument("--benign", type=int, default=1000, help="good replies in the benign phase")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--burst", type=int, default=300,
                    help="then this many connections send a ~1 MB body at once, twice (0: skip)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    if (not 1 <= args.requests <= MAX_REQUESTS or not 1 <= args.seconds <= 900 or not 1 <= args.concurrency <= 512
            or not 0 <= args.burst <= 1000):
        raise SystemExit("--requests 1..200000, --seconds 1..900, --concurrency 1..512, --burst 0..1000")

    workdir = Path(tempfile.mkdtemp(prefix="fedblog-bench-hostile-"))
    port = benchlib.free_port()
    host = f"127.0.0.1:{port}"
    env = fedblog_env(workdir, "hostile", port)
    for name in ("FEDBLOG_RATE_LIMIT", "FEDBLOG_RATE_LIMIT_HOST"):  # the defaults, limits on
        env.pop(name, None)
    good_count = args.benign + args.requests // 10
    print(f"signing {good_count} good requests ...", file=sys.stderr)
    actors = gen.make_actors()
    gen.generate(workdir / "req", count=good_count, host=host, in_reply_to=f"http://{host}/posts/{POST_SLUG}",
                 actors=actors)
    good = gen.read_requests(workdir / "req" / "requests.bin")
    build_fedblog_db(env, actors)

    log = workdir / "server.log"
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "fedblog", "serve", "--port", str(port), "--no-access-log",
                             "--log-level", "warning"], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    server = benchlib.Server("fedblog", proc, f"http://{host}", log)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            try:
                peak[0] = max(peak[0], rss_kb(server.pid)[0])
            except (OSError, KeyError):
                return

    try:
        server.wait_ready("/about")
        for path in ("/", f"/posts/{POST_SLUG}", "/users/blog"):
            server.wait_ready(path)
        rss_start = rss_kb(server.pid)[0]
        threading.Thread(target=sample, daemon=True).start()

        benign = [("benign", with_forwarded(raw, f"192.0.2.{i % 20}")) for i, raw in enumerate(good[: args.benign])]
        benign_counts, benign_s = asyncio.run(run_phase(port, benign, min(args.concurrency, 16), args.seconds))
        server.wait_idle(60)
        rss_benign = rss_kb(server.pid)[0]

        traffic = Traffic(host, good[args.benign:])
        hostile = [traffic.request(i) for i in range(args.requests)]
        hostile_counts, hostile_s = asyncio.run(run_phase(port, hostile, args.concurrency, args.seconds))
        del hostile
        if args.burst:  # many bodies just under the cap at the same moment, from as many connections
            burst = [("burst", with_forwarded(post(host, "/inbox", traffic.big), made_up_ip(90_000 + i)))
                     for i in range(2 * args.burst)]
            burst_counts, _ = asyncio.run(run_phase(port, burst, args.burst, args.seconds))
            hostile_counts.update(burst_counts)
            del burst
        server.wait_idle(60)
        rss_after, hwm = rss_kb(server.pid)
        alive = server.proc.poll() is None
    finally:
        done.set()
        server.stop()

    mb = 1024.0
    sent = sum(hostile_counts.values())
    result = {
        "git": benchlib.git("rev-parse", "--short", "HEAD"),
        "requests_hostile": sent, "seconds_hostile": round(hostile_s, 1),
        "requests_benign": sum(benign_counts.values()), "seconds_benign": round(benign_s, 1),
        "rss_mb": {"start": round(rss_start / mb, 1), "after_benign": round(rss_benign / mb, 1),
                   "peak_sampled": round(max(peak[0], rss_after) / mb, 1), "after_hostile": round(rss_after / mb, 1),
                   "hwm": round(hwm / mb, 1)},
        "ratio_hostile_to_benign_rss": round(rss_after / rss_benign, 2),
        "ratio_hwm_to_ceiling": round(hwm / mb / RSS_CEILING_MB, 2),
        "benign_answers": dict(sorted(benign_counts.items())),
        "hostile_answers": dict(sorted(hostile_counts.items())),
        "server_alive": alive,
    }
    ok = (alive and result["ratio_hostile_to_benign_rss"] <= GROWTH_CEILING  # type: ignore[operator]
          and hwm / mb <= RSS_CEILING_MB)
    result["verdict"] = "pass" if ok else "FAIL"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"hostile-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"RSS after hostile / after benign = {result['ratio_hostile_to_benign_rss']} (target <= {GROWTH_CEILING}); "
          f"peak {result['rss_mb']['hwm']} MB (target <= {RSS_CEILING_MB:.0f} MB): {result['verdict']}; {out}")
    benchlib.finish_workdir(workdir, args.keep)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
