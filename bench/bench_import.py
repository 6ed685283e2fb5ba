#!/usr/bin/env python3
"""``fedblog import wordpress`` on a synthetic export, against a same-run ceiling.

The script writes a WXR 1.2 file of POSTS posts and COMMENTS comments (about 40 % of them replies
to an earlier comment, 2 % pingbacks, 3 % spam, 2 % held) into a temp dir, then runs, each in a
fresh process on a freshly migrated SQLite database:

- ``fedblog``: ``python -m fedblog import wordpress FILE --quiet`` (both passes: the checking
  read and the import; wpautop, sanitising, batches of 500 rows, old URLs, import_item rows);
- ``ceiling``: bench/ceiling_import.py: one plain ``xml.etree.ElementTree.iterparse`` pass
  (no defusedxml), the same rows (posts, tags, comments, pingbacks, old URLs, import_item rows)
  with ids assigned in Python, inserted with ``executemany`` in one transaction, no HTML work;
- ``ceiling_html``: the same plus fedblog's own HTML work (wpautop, links, sanitising), so the
  report shows how much of the gap is that work and how much is the rest (two passes, batches,
  checks, SQLAlchemy).

Reported: wall time, comments per second and peak RSS (``wait4`` of each child), and the ratios
fedblog / ceiling. Bounded: at most 20,000 posts and 500,000 comments, each child killed after
``--timeout`` seconds. Local files only.

    python bench/bench_import.py                      # 2,000 posts, 50,000 comments, 1 round
    python bench/bench_import.py --rounds 3 --posts 500 --comments 10000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib import finish_workdir, git, med, package_versions  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
SITE = "https://old.example"
WORDS = ("korea china defectors law rights border news families government report people world "
         "international pressure economy trade policy history story question answer").split()

HEAD = f"""<?xml version="1.0" encoding="UTF-8" ?>
<rss version="2.0" xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/"
 xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:wfw="http://wellformedweb.org/CommentAPI/"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">
<channel>
<title>Bench</title><link>{SITE}</link><description>synthetic</description>
<wp:wxr_version>1.2</wp:wxr_version><wp:base_site_url>{SITE}</wp:base_site_url><wp:base_blog_url>{SITE}</wp:base_blog_url>
<wp:author><wp:author_id>1</wp:author_id><wp:author_login><![CDATA[admin]]></wp:author_login><wp:author_display_name><![CDATA[Admin]]></wp:author_display_name></wp:author>
"""


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def write_wxr(path: Path, posts: int, comments: int, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    per_post = [comments // posts + (1 if i < comments % posts else 0) for i in range(posts)]
    start = datetime(2010, 1, 1, tzinfo=UTC)
    cid = 0
    kinds = {"approved": 0, "spam": 0, "held": 0, "pingback": 0}
    with path.open("w", encoding="utf-8") as f:
        f.write(HEAD)
        for i in range(posts):
            pid = 1000 + i
            when = start + timedelta(hours=7 * i)
            slug = f"post-{i}-{rng.choice(WORDS)}"
            body = "\n\n".join(_text(rng, 60) + f" http://{rng.choice(WORDS)}.example/{i}" for _ in range(4))
            f.write(f"""<item><title><![CDATA[Post {i} about {rng.choice(WORDS)}]]></title>
<link>{SITE}/{when:%Y/%m/%d}/{slug}/</link><dc:creator><![CDATA[admin]]></dc:creator>
<guid isPermaLink="false">{SITE}/?p={pid}</guid><description></description>
<content:encoded><![CDATA[{body}]]></content:encoded><excerpt:encoded><![CDATA[]]></excerpt:encoded>
<wp:post_id>{pid}</wp:post_id><wp:post_date><![CDATA[{when:%Y-%m-%d %H:%M:%S}]]></wp:post_date>
<wp:post_date_gmt><![CDATA[{when:%Y-%m-%d %H:%M:%S}]]></wp:post_date_gmt>
<wp:post_name><![CDATA[{slug}]]></wp:post_name><wp:status><![CDATA[publish]]></wp:status>
<wp:post_type><![CDATA[post]]></wp:post_type><wp:post_password><![CDATA[]]></wp:post_password>
<category domain="category" nicename="c{i % 12}"><![CDATA[Category {i % 12}]]></category>
<category domain="post_tag" nicename="t{i % 40}"><![CDATA[Tag {i % 40}]]></category>
""")
            earlier: list[int] = []
            for j in range(per_post[i]):
                cid += 1
                r = rng.random()
                kind, approved = "comment", "1"
                if r < 0.03:
                    approved = "spam"
                    kinds["spam"] += 1
                elif r < 0.05:
                    approved = "0"
                    kinds["held"] += 1
                elif r < 0.07:
                    kind = "pingback"
                    kinds["pingback"] += 1
                else:
                    kinds["approved"] += 1
                parent = rng.choice(earlier) if earlier and kind == "comment" and rng.random() < 0.4 else 0
                if approved == "1" and kind == "comment":
                    earlier.append(cid)
                cwhen = when + timedelta(minutes=5 * (j + 1))
                author = f"Linking page {cid} · Site {cid % 50}" if kind == "pingback" else f"reader{cid % 3000}"
                url = f"https://site{cid % 50}.example/p/{cid}" if kind == "pingback" else ""
                f.write(f"""<wp:comment><wp:comment_id>{cid}</wp:comment_id>
<wp:comment_author><![CDATA[{author}]]></wp:comment_author>
<wp:comment_author_email><![CDATA[r{cid % 3000}@mail.example]]></wp:comment_author_email>
<wp:comment_author_url>{url}</wp:comment_author_url><wp:comment_author_IP><![CDATA[192.0.2.1]]></wp:comment_author_IP>
<wp:comment_date><![CDATA[{cwhen:%Y-%m-%d %H:%M:%S}]]></wp:comment_date>
<wp:comment_date_gmt><![CDATA[{cwhen:%Y-%m-%d %H:%M:%S}]]></wp:comment_date_gmt>
<wp:comment_content><![CDATA[{_text(rng, 25)}

{_text(rng, 15)} https://ref.example/{cid}]]></wp:comment_content>
<wp:comment_approved><![CDATA[{approved}]]></wp:comment_approved><wp:comment_type><![CDATA[{kind}]]></wp:comment_type>
<wp:comment_parent>{parent}</wp:comment_parent><wp:comment_user_id>0</wp:comment_user_id></wp:comment>
""")
            f.write("</item>\n")
        f.write("</channel>\n</rss>\n")
    return kinds


def run_child(cmd: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Wall time and peak RSS (KiB, from wait4) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise SystemExit(f"{cmd[1:4]} ran longer than {timeout} s: killed")
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {err.strip()[-500:]}")
    return {"wall_s": wall, "peak_rss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime,
            "stdout": out}


def fresh_db(workdir: Path, name: str) -> dict[str, str]:
    data = workdir / name
    env = {**os.environ, "FEDBLOG_BASE_URL": "https://blog.example", "FEDBLOG_DATA_DIR": str(data),
           "FEDBLOG_DATABASE_URL": f"sqlite:///{data / 'fedblog.db'}", "FEDBLOG_SECRET_KEY": "bench",
           "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "fedblog", "init"], env=env, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=2000)
    ap.add_argument("--comments", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if not (1 <= args.posts <= 20000 and 0 <= args.comments <= 500000 and 1 <= args.rounds <= 10):
        raise SystemExit("bounds: 1..20000 posts, 0..500000 comments, 1..10 rounds")
    workdir = Path(tempfile.mkdtemp(prefix="fedblog-bench-import-"))
    export = workdir / "export.xml"
    kinds = write_wxr(export, args.posts, args.comments)
    rounds: list[dict[str, Any]] = []
    for n in range(args.rounds):
        row: dict[str, Any] = {}
        for who in ("fedblog", "ceiling", "ceiling_html"):  # fresh DB each; migrated before timing
            env = fresh_db(workdir, f"{who}-{n}")
            cmd = ([sys.executable, "-m", "fedblog", "import", "wordpress", str(export), "--quiet"] if who == "fedblog"
                   else [sys.executable, str(BENCH_DIR / "ceiling_import.py"), str(export)]
                   + (["--html"] if who == "ceiling_html" else []))
            res = run_child(cmd, env, args.timeout)
            imported = kinds["approved"] + kinds["pingback"]
            res["comments_per_s"] = imported / res["wall_s"]
            row[who] = res
        row["wall_ratio"] = row["fedblog"]["wall_s"] / row["ceiling"]["wall_s"]
        row["rss_ratio"] = row["fedblog"]["peak_rss_kib"] / row["ceiling"]["peak_rss_kib"]
        row["wall_ratio_vs_ceiling_html"] = row["fedblog"]["wall_s"] / row["ceiling_html"]["wall_s"]
        rounds.append(row)
        print(f"round {n + 1}: fedblog {row['fedblog']['wall_s']:.1f} s, {row['fedblog']['comments_per_s']:.0f} "
              f"comments/s, {row['fedblog']['peak_rss_kib'] / 1024:.0f} MiB; ceiling {row['ceiling']['wall_s']:.1f} s, "
              f"{row['ceiling']['comments_per_s']:.0f} comments/s, {row['ceiling']['peak_rss_kib'] / 1024:.0f} MiB; "
              f"ceiling+HTML {row['ceiling_html']['wall_s']:.1f} s; "
              f"wall ratio {row['wall_ratio']:.2f} (vs ceiling+HTML {row['wall_ratio_vs_ceiling_html']:.2f}), "
              f"RSS ratio {row['rss_ratio']:.2f}", flush=True)
    summary = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "git": git("rev-parse", "--short", "HEAD"),
        "file_mb": round(export.stat().st_size / 1e6, 1), "posts": args.posts, "comments": args.comments,
        "kinds": kinds, "rounds": [{k: ({kk: vv for kk, vv in v.items() if kk != "stdout"} if isinstance(v, dict)
                                       else v) for k, v in r.items()} for r in rounds],
        "median_wall_ratio": med([r["wall_ratio"] for r in rounds]),
        "median_rss_ratio": med([r["rss_ratio"] for r in rounds]),
        "median_wall_ratio_vs_ceiling_html": med([r["wall_ratio_vs_ceiling_html"] for r in rounds]),
        "fedblog_report": rounds[-1]["fedblog"]["stdout"].splitlines()[:12],
        "versions": package_versions(("sqlalchemy", "nh3", "defusedxml")),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"import-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(summary, indent=1))
    finish_workdir(workdir, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
