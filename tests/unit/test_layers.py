"""The package's layer rules (docs/architecture.md), enforced with import-linter (one layers contract)."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import fedblog

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a test dependency: pip install -e '.[test]'"
    out = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_every_module_is_in_a_layer() -> None:
    """import-linter leaves a module outside every layer unchecked: a new module must be placed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = config["contracts"]
    layers = [name.strip() for layer in contract["layers"] for part in layer.split("|") for name in part.split(":")]
    modules = [m.name for m in pkgutil.walk_packages(fedblog.__path__, "fedblog.")]
    packages = {m.name for m in pkgutil.walk_packages(fedblog.__path__, "fedblog.") if m.ispkg}
    outside = [m for m in modules
               if not any(m == layer or m.startswith(layer + ".") for layer in layers)
               and not (m in packages and any(layer.startswith(m + ".") for layer in layers))]
    assert outside == [], f"place these modules in the layers contract of pyproject.toml: {outside}"
