"""``fedblog admin set-password`` and ``fedblog init --admin-password-file``, then a login over HTTP."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from fedblog.app import create_app
from fedblog.cli import main
from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.tables import BlogState

PASSWORD = "a long and quiet admin passphrase"


@asynccontextmanager
async def blog(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    svc = build_services(load_settings(env))
    transport = httpx.ASGITransport(app=create_app(svc))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://blog.test") as c:
            yield c
    finally:
        svc.engine.dispose()


async def _login(c: httpx.AsyncClient, password: str) -> int:
    page = await c.get("/admin/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text
    r = await c.post("/admin/login", data={"csrf": token.group(1), "password": password, "next": "/admin"})
    return r.status_code


def _stored(env: dict[str, str]) -> str | None:
    svc = build_services(load_settings(env))
    with Session(svc.engine) as s:
        row = s.exec(select(BlogState).where(BlogState.key == "admin_password")).first()
    svc.engine.dispose()
    return row.value if row else None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.anyio
async def test_set_password_from_a_file_then_log_in(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    assert main(["admin", "set-password", "--password-file", str(pw)]) == 0
    assert "Admin password set. Log in at https://blog.test/admin" in capsys.readouterr().out
    stored = _stored(cli_env)
    assert stored is not None and stored.startswith("scrypt$32768$8$3$") and PASSWORD not in stored
    async with blog(cli_env) as c:
        assert await _login(c, PASSWORD + "\n") == 401  # the file's newline is not part of the password
        assert await _login(c, PASSWORD) == 303
        assert (await c.get("/admin")).status_code == 200
        # a new password logs every browser out
        pw.write_text("another long admin passphrase")
        assert main(["admin", "set-password", "--password-file", str(pw)]) == 0
        assert "1 browser session(s) logged out" in capsys.readouterr().out
        assert (await c.get("/admin")).status_code == 303
        assert await _login(c, PASSWORD) == 401
        assert await _login(c, "another long admin passphrase") == 303


def test_set_password_refuses_short_missing_and_mismatched(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    short = tmp_path / "short"
    short.write_text("hunter2\n")
    assert main(["admin", "set-password", "--password-file", str(short)]) == 2
    err = capsys.readouterr().err
    assert "at least 15 characters" in err and err.count("\n") == 1
    assert main(["admin", "set-password", "--password-file", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # a script: no terminal, no file, no variable
    assert main(["admin", "set-password"]) == 2
    assert "no password given" in capsys.readouterr().err
    # in a terminal: asked twice; different answers change nothing
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr(sys, "stdin", _Tty(""))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["admin", "set-password"]) == 2
    assert "the two passwords differ" in capsys.readouterr().err
    assert _stored(cli_env) is None
    answers = iter([PASSWORD, PASSWORD])
    assert main(["admin", "set-password"]) == 0
    assert _stored(cli_env) is not None


def test_set_password_from_stdin_and_environment(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["admin", "set-password", "--password-file", "-"]) == 0
    first = _stored(cli_env)
    monkeypatch.setenv("FEDBLOG_ADMIN_PASSWORD", "a password from the environment")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["admin", "set-password"]) == 0
    assert _stored(cli_env) not in (None, first)


@pytest.mark.anyio
async def test_init_with_admin_password_file(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["init"]) == 0  # no terminal, no file: init works and says how to set it later
    assert "fedblog admin set-password" in capsys.readouterr().out
    assert _stored(cli_env) is None
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    assert main(["init", "--admin-password-file", str(pw)]) == 0
    assert "Admin password set" in capsys.readouterr().out
    async with blog(cli_env) as c:
        assert await _login(c, PASSWORD) == 303
    # init again (an upgrade) without the flag keeps the password and asks nothing, even in a terminal
    monkeypatch.setattr(sys, "stdin", _Tty(""))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": pytest.fail("init asked for a password again"))
    before = _stored(cli_env)
    assert main(["init"]) == 0
    assert _stored(cli_env) == before


def test_init_in_a_terminal_asks_once_and_may_be_skipped(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", _Tty(""))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "")  # Enter: skip
    assert main(["init"]) == 0
    assert "set one later with 'fedblog admin set-password'" in capsys.readouterr().out
    assert _stored(cli_env) is None
    prompts: list[str] = []

    def answer(prompt: str = "") -> str:
        prompts.append(prompt)
        return PASSWORD

    monkeypatch.setattr("getpass.getpass", answer)
    assert main(["init"]) == 0
    assert prompts == ["Admin password for /admin (Enter to skip): ", "Same password again: "]
    assert _stored(cli_env) is not None
