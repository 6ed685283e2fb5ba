"""The style guide's static checks: ruff (E, F, I, B, UP at 120 columns) and mypy --strict for fedblog/.

Both read their configuration from pyproject.toml, so they run from the repository root.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240


def _command(tool: str) -> list[str]:
    """The tool next to this interpreter (the virtualenv's bin/), else ``python -m tool``; skip if neither."""
    exe = Path(sys.executable).parent / (tool + (".exe" if os.name == "nt" else ""))
    if exe.is_file():
        return [str(exe)]
    if importlib.util.find_spec(tool) is not None:
        return [sys.executable, "-m", tool]
    if found := shutil.which(tool):
        return [found]
    pytest.skip(f"{tool} is not installed (pip install -e '.[test]' installs it)")


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} exited with {proc.returncode}:\n{output}"


def test_ruff_check_is_clean() -> None:
    _run([*_command("ruff"), "check", "fedblog", "tests", "bench"])


def test_mypy_strict_is_clean() -> None:
    _run([*_command("mypy")])
