"""Every file the package reads at run time ships in a wheel: `pip install .` (the Dockerfile) gets
only what pyproject.toml's package-data names, unlike the editable install the tests run on."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "fedblog"
DATA_DIRS = ("templates", "static", "demo", "store/migrations")


def test_package_data_covers_every_template_static_file_and_migration() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["fedblog"]
    missing = []
    for folder in DATA_DIRS:
        for path in (PACKAGE / folder).rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts or path.name.startswith("."):
                continue
            rel = path.relative_to(PACKAGE).as_posix()
            if path.suffix == ".py" and (path.parent / "__init__.py").exists():
                continue  # a module of a package: packages.find ships it
            # setuptools matches each pattern against paths in its own folder (no recursion into subfolders)
            if not any(fnmatch.fnmatchcase(rel, pat) and rel.count("/") == pat.count("/") for pat in patterns):
                missing.append(rel)
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
