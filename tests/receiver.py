"""A small standalone inbox receiver for the delivery-process tests and the fan-out bench.

A raw ASGI app (no framework, so the receiver costs as little CPU as possible) served by uvicorn
on 127.0.0.1 only. Every ``POST`` (any path, e.g. ``/inbox/17`` or ``/shared/3``) is read in full
and recorded as one JSON line in an append-only log file, then answered ``202``:

    ["/inbox/17", "https://blog.test/activities/…", true, 1234.5678, 1234.5801]
      path        activity id (JSON "id")            signed   t_start    t_end

``signed`` is true when a ``Signature`` header with a ``keyId`` and a ``Digest`` header are both
present and the ``SHA-256=`` digest matches the body (the signature itself is verified by other
tests). ``t_start``/``t_end`` are ``time.monotonic()`` when the request arrived and when it was
answered; on Linux that is CLOCK_MONOTONIC, comparable between processes. Each line is written
with a single ``os.write`` on an ``O_APPEND`` descriptor, so readers never see half a line from
a finished request. ``GET /health`` answers 200.

Run it (uvicorn, uvloop + httptools, one worker, 127.0.0.1 only)::

    python tests/receiver.py --log /tmp/received.jsonl [--port 0] [--delay 0.02] [--slow /slow/=1.5]

It binds the socket itself and prints ``PORT <n>`` on the first stdout line, so ``--port 0``
(the default) gives a free port without a race. ``start_receiver`` does all that for tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_DELAY = 0.0
_SLOW: list[tuple[str, float]] = []  # (path prefix, seconds): a slower answer for some paths
_LOG_FD = -1


def _signed(headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    sig = digest = b""
    for name, value in headers:
        if name == b"signature":
            sig = value
        elif name == b"digest":
            digest = value
    if b'keyId="' not in sig or not digest.startswith(b"SHA-256="):
        return False
    return digest[8:] == base64.b64encode(hashlib.sha256(body).digest())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    t_start = time.monotonic()
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/health":
        await _answer(send, 200, b"ok")
        return
    if method != "POST":
        await _answer(send, 405, b"")
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # the sender went away mid-body: nothing received, nothing recorded
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    try:
        activity_id = json.loads(body).get("id")
    except (ValueError, AttributeError):
        activity_id = None
    signed = _signed(scope["headers"], body)
    delay = next((seconds for prefix, seconds in _SLOW if path.startswith(prefix)), _DELAY)
    if delay:
        await asyncio.sleep(delay)
    line = json.dumps([path, activity_id, signed, t_start, time.monotonic()]) + "\n"
    os.write(_LOG_FD, line.encode())
    await _answer(send, 202, b"")


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    global _DELAY, _LOG_FD
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="append-only JSON-lines file of received POSTs")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to sleep per POST (a slow receiver)")
    parser.add_argument("--slow", action="append", default=[], metavar="PREFIX=SECONDS",
                        help="sleep this long instead for paths starting with PREFIX (repeatable)")
    args = parser.parse_args(argv)
    import uvicorn

    _DELAY = args.delay
    _SLOW[:] = [(prefix, float(seconds)) for prefix, _, seconds in (a.rpartition("=") for a in args.slow)]
    _LOG_FD = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off", access_log=False,
                            log_level="warning", backlog=2048, workers=1)
    uvicorn.Server(config).run(sockets=[sock])


# -- for tests and benches: start / read / stop ----------------------------------------------------

@dataclass
class Record:
    path: str
    activity_id: str | None
    signed: bool
    t_start: float
    t_end: float


class Receiver:
    """A running receiver process: ``url(path)``, ``records()``, ``count()``, ``stop()``."""

    def __init__(self, proc: subprocess.Popen[str], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def records(self) -> list[Record]:
        if not self.log.exists():
            return []
        data = self.log.read_bytes()
        lines = data[: data.rfind(b"\n") + 1].splitlines()  # complete lines only
        return [Record(*json.loads(line)) for line in lines if line]

    def count(self) -> int:
        if not self.log.exists():
            return 0
        with self.log.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    def cpu_seconds(self) -> float:
        """user+sys CPU of the receiver process so far (from /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_receiver(log: Path, *, port: int = 0, delay: float = 0.0, slow: dict[str, float] | None = None,
                   timeout: float = 15.0, python: str = sys.executable) -> Receiver:
    """Start ``python tests/receiver.py`` and wait until it answers ``GET /health``.

    ``slow`` maps path prefixes to a per-POST delay that replaces ``delay`` for them.
    """
    extra = [f"--slow={prefix}={seconds}" for prefix, seconds in (slow or {}).items()]
    proc = subprocess.Popen(
        [python, str(Path(__file__).resolve()), "--log", str(log), "--port", str(port), "--delay", str(delay), *extra],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        line = proc.stdout.readline() if proc.stdout else ""  # bounded: the process prints it first or dies
        if not line.startswith("PORT "):
            raise RuntimeError(f"receiver did not start (exit code {proc.poll()}): {line!r}")
        port = int(line.split()[1])
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("receiver did not answer /health in time")
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        proc.wait(timeout=5)
        raise
    return Receiver(proc, port, log)


if __name__ == "__main__":
    main()
