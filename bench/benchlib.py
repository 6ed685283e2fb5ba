"""Helpers every benchmark script shares: ports, server processes, process CPU, shutdown, medians.

Scripts run as ``python bench/<script>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_ticks(pid: int) -> int:
    """user + sys of a process (all its threads), in clock ticks (/proc/PID/stat fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def native_modules(pid: int) -> dict[str, bool]:
    """Whether a uvicorn process really loaded uvloop and httptools."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {"uvloop": "/uvloop/loop." in maps, "httptools": "/httptools/parser/" in maps}


def stop_group(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group, then SIGKILL it if it does not exit in time."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt(xs: list[float], digits: int = 0) -> str:
    """``median [min-max]`` with thousands separators."""
    f = f"{{:,.{digits}f}}"
    return f"{f.format(med(xs))} [{f.format(min(xs))}-{f.format(max(xs))}]"


@dataclass
class Server:
    """A server process started in its own process group (``start_new_session=True``)."""

    name: str
    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    pid: int = 0  # the Python server process: proc.pid, unless it runs under a wrapper (strace)

    def __post_init__(self) -> None:
        self.pid = self.pid or self.proc.pid

    def cpu_ticks(self) -> int:
        """user + sys of the server process (all its threads), in clock ticks."""
        return cpu_ticks(self.pid)

    def native_modules(self) -> dict[str, bool]:
        return native_modules(self.pid)

    def wait_ready(self, path: str, timeout: float = START_TIMEOUT_S) -> bytes:
        """Poll ``path`` until it answers 200; its body. Exits the bench if the server dies or never answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited with {self.proc.returncode} at start:\n"
                    f"{self.log.read_text(errors='replace')[-3000:]}"
                )
            try:
                with urllib.request.urlopen(self.base + path, timeout=5) as r:
                    if r.status == 200:
                        return bytes(r.read())
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{self.name} did not answer {path} within {timeout:.0f} s; see {self.log}")

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Wait until the server stops burning CPU: requests wrk left queued at the end of the
        warm-up are still being served after wrk disconnects, and must not count in the window."""
        deadline = time.monotonic() + timeout
        last = self.cpu_ticks()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.cpu_ticks()
            if now - last <= 1:  # at most one tick (10 ms) of CPU in 250 ms
                return
            last = now
        raise SystemExit(f"{self.name} did not go idle within {timeout:.0f} s after the warm-up")

    def stop(self) -> None:
        stop_group(self.proc, STOP_TIMEOUT_S)


def finish_workdir(workdir: Path, keep: bool) -> None:
    """Remove a bench's temporary directory, or say where it was kept (--keep)."""
    if keep:
        print(f"kept {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def package_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def git(*args: str) -> str:
    """``git -C REPO ARGS`` output, stripped ("" if git is unavailable)."""
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def wrk_version() -> str:
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    out = wrk.stdout + wrk.stderr
    return out.splitlines()[0] if out else ""


def print_checks(checks: list[tuple[str, str, str, bool]]) -> list[str]:
    """Print the verdict table (check, figure as ``median [min-max]``, target, pass/MISSED); the missed checks."""
    print("\n| check | figure: median [min-max] over rounds | target | verdict |")
    print("|---|---|---|---|")
    for name, figure, target, ok in checks:
        print(f"| {name} | {figure} | {target} | {'pass' if ok else 'MISSED'} |")
    return [name for name, _, _, ok in checks if not ok]


def exit_code(missed: list[str], check: bool) -> int:
    """1 with ``--check`` when a target was missed (named on stderr), else 0."""
    if missed:
        print("MISSED: " + ", ".join(missed), file=sys.stderr)
    return 1 if check and missed else 0
