"""Helpers every benchmark script shares: ports, process CPU, shutdown, median formatting.

Scripts run as ``python bench/<script>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
from pathlib import Path

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
