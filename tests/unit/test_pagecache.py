"""The page cache's bounds: bytes and entries, oldest out first, no single page can take it all."""

from __future__ import annotations

from datetime import UTC, datetime

from fedblog.settings import load_settings
from fedblog.web.pagecache import Cached, PageCache, PostState


def test_the_cache_is_bounded() -> None:
    box = PageCache(load_settings({}), max_bytes=10_000)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(100):
        state = PostState(i, f"p{i}", f"/posts/p{i}", 1, now, False, None)
        box.put(state, "html", Cached(b"x" * 1000, "text/html", {}))
    assert box.size_bytes <= 10_000 and len(box) == 10
    assert box.get(PostState(99, "p99", "/posts/p99", 1, now, False, None), "html") is not None
    assert box.get(PostState(0, "p0", "/posts/p0", 1, now, False, None), "html") is None  # the oldest went first
    box.put(PostState(1000, "big", "/posts/big", 1, now, False, None), "html", Cached(b"x" * 5000, "text/html", {}))
    assert len(box) == 10  # larger than a quarter of the cache: not kept
