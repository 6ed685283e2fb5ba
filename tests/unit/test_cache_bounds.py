"""The per-process remote cache stays bounded, evicting the least recently used entry first."""

from __future__ import annotations

from fedblog.federation.cache import MAX_ENTRIES, RemoteCache, ResolvedKey


def test_every_map_is_bounded_and_a_flood_keeps_the_keys_in_use() -> None:
    cache = RemoteCache(max_entries=100)
    cache.put_key(ResolvedKey("https://good.example/u#k", "https://good.example/u", "PEM"))
    for i in range(5_000):  # made-up keyIds: each leaves a refetch mark and a failure
        url = f"https://h{i}.example/actor"
        cache.note_refetch(url + "#key")
        cache.note_failure(url, "no such host")
        cache.put_key(ResolvedKey(f"{url}#key", url, "PEM"))
        cache.host_cleared(f"h{i}.example")
        assert cache.key("https://good.example/u#k") is not None  # used all along: never evicted
    assert all(n <= 100 for n in cache.sizes().values()), cache.sizes()
    assert cache.failure("https://h4999.example/actor") == ("no such host", False, None)  # the newest are kept
    assert cache.failure("https://h0.example/actor") is None  # the oldest went first
    assert 1_000 <= MAX_ENTRIES <= 20_000
