"""The fedblog command line, run in-process with a real database, then checked over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, func, select

from fedblog.app import create_app
from fedblog.cli import main
from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.tables import Post, PostTag, Tag


def _counts(env: dict[str, str]) -> tuple[int, int, int]:
    svc = build_services(load_settings(env))
    with Session(svc.engine) as s:
        out = (
            s.exec(select(func.count()).select_from(Post)).one(),
            s.exec(select(func.count()).select_from(Tag)).one(),
            s.exec(select(func.count()).select_from(PostTag)).one(),
        )
    svc.engine.dispose()
    return out


@pytest.mark.anyio
async def test_publish_list_delete_through_cli_and_http(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "hello.md"
    src.write_text(
        "---\ntitle: Hello, fediverse\ntags: [intro, meta]\nsummary: The first post.\ndate: 2026-01-02\n---\n"
        "# Hi\n\nSome **bold** text.\n"
    )
    assert main(["post", "publish", str(src)]) == 0
    assert "published: https://blog.test/posts/hello-fediverse" in capsys.readouterr().out
    assert main(["post", "list"]) == 0
    assert "hello-fediverse" in capsys.readouterr().out
    svc = build_services(load_settings(cli_env))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(svc)), base_url="https://blog.test") as c:
        r = await c.get("/posts/hello-fediverse")
        assert (
            r.status_code == 200
            and "<strong>bold</strong>" in r.text
            and '#<span class="p-category">intro</span>' in r.text
        )
        # publishing the same slug again updates in place
        src.write_text(src.read_text().replace("Some **bold** text.", "Edited text."))
        assert main(["post", "publish", str(src)]) == 0
        assert "updated:" in capsys.readouterr().out
        assert "Edited text." in (await c.get("/posts/hello-fediverse")).text
        assert main(["post", "delete", "hello-fediverse"]) == 0
        assert (await c.get("/posts/hello-fediverse")).status_code == 410
    svc.engine.dispose()
    assert main(["post", "delete", "hello-fediverse"]) == 2
    assert "no post with slug 'hello-fediverse'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("---\ntitle: [unclosed\n---\nbody\n", "not valid YAML"),
        ("---\nslug: x\n---\nbody\n", "needs a title"),
        ("---\ntitle: T\nslug: Bad Slug!\n---\nbody\n", "slug 'Bad Slug!' is not valid"),
        ("---\ntitle: T\ndate: someday\n---\nbody\n", "is not a date"),
        ("---\ntitle: T\ndraft: maybe\n---\nbody\n", "draft must be true or false"),
        ("---\ntitle: T\ncolour: red\n---\nbody\n", "unknown front matter key(s) colour"),
        ("---\ntitle: T\ntags: {a: 1}\n---\nbody\n", "tags must be a list"),
        ("---\ntitle: T\n---\n\n", "has no body"),
    ],
)
def test_bad_front_matter_is_refused_and_changes_nothing(
    cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, message: str
) -> None:
    good = tmp_path / "good.md"
    good.write_text("---\ntitle: Keep me\ntags: [a]\n---\nbody\n")
    assert main(["post", "publish", str(good)]) == 0
    before = _counts(cli_env)
    bad = tmp_path / "bad.md"
    bad.write_text(source)
    assert main(["post", "publish", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert _counts(cli_env) == before


def test_missing_file_and_bad_settings_are_one_line_errors(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["post", "publish", "/nonexistent/file.md"]) == 2
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setenv("FEDBLOG_BASE_URL", "ftp://nope")
    assert main(["post", "list"]) == 2
    err = capsys.readouterr().err
    assert "FEDBLOG_BASE_URL='ftp://nope' is not an http(s) URL" in err and err.count("\n") == 1


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("serve", "init", "post"):
        assert word in out
