"""The production path as shipped: docker-compose.yml parses, and the real Caddy with
deploy/Caddyfile in front of a real ``fedblog serve`` serves the blog and passes the client's
address (X-Forwarded-For) that fedblog's rate limit counts by.

The Caddyfile is used as is; only its environment changes: FEDBLOG_DOMAIN is a plain-HTTP site
address on a free loopback port (no certificate to get), FEDBLOG_UPSTREAM the fedblog port.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import clean_env, fedblog_serve, free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CADDYFILE = REPO / "deploy" / "Caddyfile"
COMPOSE = REPO / "docker-compose.yml"


def test_docker_compose_config_is_valid(tmp_path: Path) -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed: apt-get install docker-compose")
    env = {**os.environ, "FEDBLOG_DOMAIN": "blog.example", "FEDBLOG_SECRET_KEY": "ci"}
    done = subprocess.run([exe, "-f", str(COMPOSE), "config"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "image: caddy:2" in out and "FEDBLOG_BASE_URL: https://blog.example" in out
    # fedblog believes X-Forwarded-For only from the proxy's fixed address
    assert "ipv4_address: 172.31.240.10" in out and "FEDBLOG_TRUSTED_PROXIES: 172.31.240.10" in out
    # the blog is not published past the proxy
    assert "8000:8000" not in out
    missing = subprocess.run([exe, "-f", str(COMPOSE), "config", "-q"], cwd=tmp_path, capture_output=True, text=True,
                             env={k: v for k, v in env.items() if k != "FEDBLOG_DOMAIN"}, timeout=60)
    assert missing.returncode != 0 and "FEDBLOG_DOMAIN" in missing.stderr


def caddy_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "caddy-home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"), **extra}


def test_caddyfile_sets_the_timeouts() -> None:
    exe = shutil.which("caddy")
    if exe is None:
        pytest.skip("caddy is not installed: apt-get install caddy")
    env = {**os.environ, "FEDBLOG_DOMAIN": "blog.example"}
    done = subprocess.run([exe, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    server = json.loads(done.stdout)["apps"]["http"]["servers"]["srv0"]
    assert server["read_header_timeout"] == 10 * 10**9 and server["read_timeout"] == 15 * 10**9
    assert server["listen"] == [":443"]  # a bare domain: automatic HTTPS
    assert server["routes"][0]["match"] == [{"host": ["blog.example"]}]


@pytest.fixture
def behind_caddy(tmp_path: Path, database_url: str) -> Iterator[str]:
    exe = shutil.which("caddy")
    if exe is None:
        pytest.skip("caddy is not installed: apt-get install caddy")
    port, caddy_port = free_port(), free_port()
    public = f"http://127.0.0.1:{caddy_port}"
    env = clean_env(FEDBLOG_BASE_URL=public, FEDBLOG_DATA_DIR=str(tmp_path / "data"),
                    FEDBLOG_DATABASE_URL=database_url, FEDBLOG_WORKER="off",
                    FEDBLOG_RATE_LIMIT="3", FEDBLOG_TRUSTED_PROXIES="127.0.0.1")
    with fedblog_serve(env, port, tmp_path / "server.log", "/about", "--demo"):
        log = (tmp_path / "caddy.log").open("wb")
        caddy = subprocess.Popen(
            [exe, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=caddy_env(tmp_path, FEDBLOG_DOMAIN=public, FEDBLOG_UPSTREAM=f"127.0.0.1:{port}"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if caddy.poll() is not None:
                    pytest.fail(f"caddy exited: {(tmp_path / 'caddy.log').read_text()[-3000:]}")
                try:
                    if httpx.get(public + "/about", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"caddy did not serve the blog: {(tmp_path / 'caddy.log').read_text()[-3000:]}")
                time.sleep(0.2)
            yield public
        finally:
            caddy.terminate()
            try:
                caddy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                caddy.kill()
                caddy.wait(timeout=10)
            log.close()


def from_address(ip: str) -> httpx.Client:
    """A client whose connections leave from ``ip`` (any 127.0.0.0/8 address is loopback on Linux)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=ip), timeout=10)


def test_caddy_serves_the_blog_and_passes_the_client_address(behind_caddy: str) -> None:
    with from_address("127.0.0.2") as c:
        page = c.get(behind_caddy + "/posts/china-sent-back-north-korean-defectors")
        assert page.status_code == 200 and "China sent back" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        # fedblog counts inbox POSTs per client address, which only Caddy's X-Forwarded-For tells it
        for _ in range(3):
            assert c.post(behind_caddy + "/inbox", content=b"{}").status_code == 400
        r = c.post(behind_caddy + "/inbox", content=b"{}")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    with from_address("127.0.0.3") as c:  # another client behind the same proxy: its own budget
        assert c.post(behind_caddy + "/inbox", content=b"{}").status_code == 400
        # a client cannot pick its own address: Caddy drops the X-Forwarded-For it sends
        for _ in range(2):
            assert c.post(behind_caddy + "/inbox", content=b"{}",
                          headers={"X-Forwarded-For": "127.0.0.9"}).status_code == 400
        assert c.post(behind_caddy + "/inbox", content=b"{}",
                      headers={"X-Forwarded-For": "127.0.0.10"}).status_code == 429
