"""Real ``fedblog serve`` processes for the tests that need one (browser, several processes)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    """The environment without any FEDBLOG_* setting from the shell, plus ``settings``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("FEDBLOG_")}, **settings}


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"fedblog serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(
        f"fedblog serve did not answer {url} within {STARTUP_TIMEOUT_S:.0f} s:\n"
        f"{log.read_text(errors='replace')[-3000:]}"
    )


@contextlib.contextmanager
def fedblog_serve(env: dict[str, str], port: int, log: Path, ready_path: str, *args: str) -> Iterator[str]:
    """``python -m fedblog serve ARGS`` on 127.0.0.1:``port``; yields its base URL once ``ready_path``
    answers 200; always stopped (terminate, then kill)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedblog", "serve", *args, "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base + ready_path, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
