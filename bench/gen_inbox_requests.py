#!/usr/bin/env python3
"""Pre-signed inbox POSTs for the inbox benchmark: ``Create(Note)`` replies from 100 remote actors.

Each request is a complete raw HTTP/1.1 request (``POST /inbox``), signed draft-cavage
``rsa-sha256`` over ``(request-target) host date digest`` with the signer in
``tests/fediverse/signing.py`` (independent of fedblog's own httpsig code). Every request carries
a distinct activity id and a distinct Note id, so every accepted request is a real INSERT.
The actors live on ``*.bench.invalid`` hosts (RFC 6761: never resolvable), so a key or actor
fetch by the server under test could only fail.

Output (in ``--out`` DIR):

* ``requests.bin``: records ``<decimal length>\\n<raw request bytes>``, read by ``bench/inbox.lua``;
* ``actors.json``: the 100 actors (ap_id, key_id, public PEM, handle, name, inbox), used to seed
  fedblog's ``actor`` table (the key cache) and the ceiling app's parsed-key cache;
* ``meta.json``: count, host, target post, generation time (Dates are valid for 65 minutes).

    python bench/gen_inbox_requests.py --out /tmp/x --count 40000 --host 127.0.0.1:8123 \\
        --in-reply-to http://127.0.0.1:8123/posts/bench-inbox-target
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fediverse import signing  # noqa: E402  (the independent draft-cavage signer)

AS = "https://www.w3.org/ns/activitystreams"
PUBLIC = AS + "#Public"
ACTORS = 100
INBOX_PATH = "/inbox"
BLOG_HANDLE = "blog"

_WORDS = (
    "fediverse reply thread post comment server federation timeline follow boost people write "
    "read because although however maybe really often never always reason point argument question "
    "answer agree disagree source link article history winter river language friend story"
).split()


def actor_host(i: int) -> str:
    return f"r{i:03d}.bench.invalid"


def actor_record(i: int, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    host = actor_host(i)
    ap_id = f"https://{host}/users/u{i:03d}"
    return {
        "ap_id": ap_id,
        "host": host,
        "username": f"u{i:03d}",
        "handle": f"u{i:03d}@{host}",
        "name": f"Bench Reader {i:03d}",
        "key_id": ap_id + "#main-key",
        "inbox": ap_id + "/inbox",
        "shared_inbox": f"https://{host}/inbox",
        "url": f"https://{host}/@u{i:03d}",
        "icon_url": f"https://{host}/avatars/u{i:03d}.png",
        "public_key_pem": signing.public_pem(key),
        "private_key_pem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }


def _html(seq: int) -> str:
    words = [_WORDS[(seq * 7 + k * 13) % len(_WORDS)] for k in range(36)]
    a, b = " ".join(words[:18]), " ".join(words[18:])
    return (
        f'<p><span class="h-card"><a href="http://blog/@blog" class="u-url mention">@<span>blog</span></a></span> '
        f"{a.capitalize()}.</p><p>{b.capitalize()} (reply {seq}).</p>"
    )


def create_reply(
    actor: dict[str, Any], seq: int, nonce: str, in_reply_to: str, blog_actor: str, published: str
) -> dict[str, Any]:
    """A Mastodon-shaped ``Create(Note)`` replying to ``in_reply_to`` (as tests/fediverse/builders.py)."""
    status = f"{nonce}{seq:08d}"
    nid = f"{actor['ap_id']}/statuses/{status}"
    html = _html(seq)
    note = {
        "id": nid,
        "type": "Note",
        "summary": None,
        "inReplyTo": in_reply_to,
        "published": published,
        "url": f"{actor['url']}/{status}",
        "attributedTo": actor["ap_id"],
        "to": [PUBLIC],
        "cc": [actor["ap_id"] + "/followers", blog_actor],
        "sensitive": False,
        "atomUri": nid,
        "inReplyToAtomUri": in_reply_to,
        "conversation": f"tag:{actor['host']},2026:objectId={seq}",
        "content": html,
        "contentMap": {"en": html},
        "attachment": [],
        "tag": [{"type": "Mention", "href": blog_actor, "name": "@blog@127.0.0.1"}],
    }
    return {
        "@context": [
            AS,
            {
                "ostatus": "http://ostatus.org#",
                "atomUri": "ostatus:atomUri",
                "inReplyToAtomUri": "ostatus:inReplyToAtomUri",
                "conversation": "ostatus:conversation",
                "sensitive": "as:sensitive",
            },
        ],
        "id": nid + "/activity",
        "type": "Create",
        "actor": actor["ap_id"],
        "published": published,
        "to": note["to"],
        "cc": note["cc"],
        "object": note,
    }


# -- signing in worker processes --------------------------------------------------------------
_KEYS: list[rsa.RSAPrivateKey] = []
_ACTORS: list[dict[str, Any]] = []
_JOB: dict[str, Any] = {}


def _init_worker(actors: list[dict[str, Any]], job: dict[str, Any]) -> None:
    global _KEYS, _ACTORS, _JOB
    _ACTORS, _JOB = actors, job
    _KEYS = [
        serialization.load_pem_private_key(a["private_key_pem"].encode(), password=None)  # type: ignore[misc]
        for a in actors
    ]


def _build_chunk(bounds: tuple[int, int]) -> bytes:
    start, end = bounds
    job = _JOB
    now = datetime.fromtimestamp(job["now"], UTC)
    url = f"http://{job['host']}{INBOX_PATH}"
    out = bytearray()
    for seq in range(start, end):
        a = seq % len(_ACTORS)
        actor = _ACTORS[a]
        doc = create_reply(
            actor, seq, job["nonce"], job["in_reply_to"], job["blog_actor"], job["published"]
        )
        body = json.dumps(doc, separators=(",", ":")).encode()
        h = signing.sign("POST", url, body, _KEYS[a], actor["key_id"], now=now)
        head = (
            f"POST {INBOX_PATH} HTTP/1.1\r\nHost: {h['Host']}\r\nUser-Agent: fedblog-bench-inbox/1\r\n"
            f"Accept: */*\r\nDate: {h['Date']}\r\nDigest: {h['Digest']}\r\n"
            f"Content-Type: application/activity+json\r\nContent-Length: {len(body)}\r\n"
            f"Signature: {h['Signature']}\r\n\r\n"
        ).encode("latin-1")
        raw = head + body
        out += b"%d\n" % len(raw)
        out += raw
    return bytes(out)


def make_actors(n: int = ACTORS, workers: int | None = None) -> list[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        keys = list(pool.map(_new_key_pem, range(n)))
    return [
        actor_record(i, serialization.load_pem_private_key(pem, password=None))
        for i, pem in enumerate(keys)
    ]  # type: ignore[arg-type]


def _new_key_pem(_: int) -> bytes:
    return signing.new_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate(
    out_dir: Path,
    *,
    count: int,
    host: str,
    in_reply_to: str,
    actors: list[dict[str, Any]] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write requests.bin, actors.json and meta.json into ``out_dir``; return the meta."""
    if not 1 <= count <= 2_000_000:
        raise ValueError("count must be 1-2,000,000")
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    actors = actors or make_actors(workers=workers)
    t_keys = time.monotonic() - t0
    now = time.time()
    job = {
        "now": now,
        "host": host,
        "in_reply_to": in_reply_to,
        "nonce": uuid.uuid4().hex[:8],
        "blog_actor": f"http://{host}/users/{BLOG_HANDLE}",
        "published": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    step = 2000
    chunks = [(s, min(s + step, count)) for s in range(0, count, step)]
    size = 0
    with (
        (out_dir / "requests.bin").open("wb") as f,
        ProcessPoolExecutor(
            max_workers=workers or os.cpu_count() or 1,
            initializer=_init_worker,
            initargs=(actors, job),
        ) as pool,
    ):
        for blob in pool.map(_build_chunk, chunks):
            f.write(blob)
            size += len(blob)
    (out_dir / "actors.json").write_text(json.dumps(actors), encoding="utf-8")
    sample = _build_sample(actors, job)
    meta = {
        "count": count,
        "host": host,
        "path": INBOX_PATH,
        "in_reply_to": in_reply_to,
        "nonce": job["nonce"],
        "generated_at": now,
        "bytes": size,
        "body_bytes": len(sample),
        "actors": len(actors),
        "seconds_keys": round(t_keys, 2),
        "seconds_total": round(time.monotonic() - t0, 2),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def _build_sample(actors: list[dict[str, Any]], job: dict[str, Any]) -> bytes:
    doc = create_reply(
        actors[0], 0, job["nonce"], job["in_reply_to"], job["blog_actor"], job["published"]
    )
    return json.dumps(doc, separators=(",", ":")).encode()


def read_requests(path: Path, start: int = 0, stop: int | None = None) -> list[bytes]:
    """Records [start, stop) of a requests.bin (for in-process checks)."""
    data = path.read_bytes()
    out, pos, i = [], 0, 0
    while pos < len(data) and (stop is None or i < stop):
        nl = data.index(b"\n", pos)
        n = int(data[pos:nl])
        if i >= start:
            out.append(data[nl + 1 : nl + 1 + n])
        pos, i = nl + 1 + n, i + 1
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--count", type=int, default=40_000)
    ap.add_argument(
        "--host", required=True, help="the Host header to sign, host:port of fedblog's base URL"
    )
    ap.add_argument("--in-reply-to", required=True, help="URL of the blog post the replies answer")
    args = ap.parse_args(argv)
    meta = generate(args.out, count=args.count, host=args.host, in_reply_to=args.in_reply_to)
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
