"""Settings: defaults, validation with one-line fixes, and no import-time side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedblog.settings import SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert s.base_url == "http://127.0.0.1:8000"
    assert s.domain == "127.0.0.1"
    assert s.handle == "blog"
    assert s.data_dir == Path("fedblog-data")
    assert s.database_url == "sqlite:///fedblog-data/fedblog.db"
    assert s.allow_private_hosts == frozenset()
    assert s.moderation == "first-contact"


def test_environment_and_overrides() -> None:
    env = {
        "FEDBLOG_BASE_URL": "https://Blog.Example/",
        "FEDBLOG_DATA_DIR": "/srv/blog",
        "FEDBLOG_ALLOW_PRIVATE_HOSTS": "a.test, B.test.",
        "FEDBLOG_DATABASE_URL": "postgres://u@db/blog",
    }
    s = load_settings(env, base_url="https://other.example")
    assert s.base_url == "https://other.example" and s.domain == "other.example"
    assert s.database_url == "postgresql+psycopg://u@db/blog"
    assert s.allow_private_hosts == frozenset({"a.test", "b.test"})
    assert load_settings(env).base_url == "https://blog.example"
    assert load_settings({"FEDBLOG_DATA_DIR": "/srv/blog"}).database_url == "sqlite:////srv/blog/fedblog.db"


def test_handle_domain_may_differ_from_the_blog_host() -> None:
    s = load_settings({"FEDBLOG_BASE_URL": "https://blog.example.net", "FEDBLOG_DOMAIN": " Example.NET. "})
    assert s.domain == "example.net" and s.base_url == "https://blog.example.net"
    assert load_settings({"FEDBLOG_BASE_URL": "https://blog.example.net"}).domain == "blog.example.net"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"FEDBLOG_BASE_URL": "blog.example"}, "is not an http(s) URL"),
        ({"FEDBLOG_BASE_URL": "https://blog.example/sub"}, "has a path"),
        ({"FEDBLOG_HANDLE": "no spaces"}, "not a valid username"),
        ({"FEDBLOG_POSTS_PER_PAGE": "ten"}, "is not a whole number"),
        ({"FEDBLOG_POSTS_PER_PAGE": "0"}, "out of range"),
        ({"FEDBLOG_MODERATION": "none"}, "use one of first-contact, approve-all, hold-all"),
        ({"FEDBLOG_DATABASE_URL": "mysql://x"}, "is not supported"),
        ({"SSL_CERT_FILE": "/no/such/ca.pem"}, "does not exist"),
        ({"FEDBLOG_LANGUAGE": "english!"}, "not a language tag"),
        ({"FEDBLOG_DOMAIN": "https://example.net"}, "is not a domain name"),
        ({"FEDBLOG_DOMAIN": "blog@example.net"}, "is not a domain name"),
        ({"FEDBLOG_DOMAIN": "example.net/blog"}, "is not a domain name"),
    ],
)
def test_wrong_settings_give_one_line_fixes(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(env)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_importing_fedblog_has_no_side_effects(tmp_path: Path) -> None:
    """Import every module with a broken environment in an empty directory: nothing happens."""
    code = (
        "import pkgutil, importlib, fedblog\n"
        "for m in pkgutil.walk_packages(fedblog.__path__, 'fedblog.'):\n"
        "    if '.migrations' not in m.name and m.name != 'fedblog.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "FEDBLOG_BASE_URL": "not a url", "FEDBLOG_DATABASE_URL": "bogus://"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert list(tmp_path.iterdir()) == []  # no data dir, no database file


def test_nothing_but_settings_reads_os_environ() -> None:
    root = Path(__file__).resolve().parents[2] / "fedblog"
    offenders = [
        str(p.relative_to(root)) for p in root.rglob("*.py")
        if ("os.environ" in p.read_text() or "getenv(" in p.read_text()) and p.name not in ("settings.py", "cli.py")
    ]
    assert offenders == []
