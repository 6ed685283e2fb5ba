"""HTTP clients for the delivery worker, shared by deliveries in small groups.

httpx's connection pool costs O(connections²) per request, so one big shared pool is slow
(bench/bench_fanout.py: groups of a few connections per client measured fastest). Each group is one
guarded client with ``PER_CLIENT`` connections; a delivery takes a place in the first group with
one free and gives it back when done. Clients are built on first use in a thread (building one
costs CPU, mostly without the GIL) and kept until ``aclose``: an idle worker builds nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

PER_CLIENT = 2  # deliveries sharing one HTTP client (and its connection pool)


class ClientGroups:
    def __init__(self, new_client: Callable[[int], httpx.AsyncClient]) -> None:
        self._new_client = new_client
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._building: dict[int, asyncio.Future[httpx.AsyncClient]] = {}
        self._use: list[int] = []  # deliveries using each group
        self._builder: ThreadPoolExecutor | None = None

    def take(self) -> int:
        """A place in a group with room (a new group if none has)."""
        for group, used in enumerate(self._use):
            if used < PER_CLIENT:
                self._use[group] += 1
                return group
        self._use.append(1)
        return len(self._use) - 1

    def give_back(self, group: int) -> None:
        self._use[group] -= 1

    async def client(self, group: int) -> httpx.AsyncClient:
        client = self._clients.get(group)
        if client is not None:
            return client
        building = self._building.get(group)
        if building is None:
            if self._builder is None:  # one thread: the first groups get their clients first
                self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedblog-http-clients")
            building = self._building[group] = asyncio.get_running_loop().run_in_executor(
                self._builder, self._new_client, PER_CLIENT)
        try:
            client = await asyncio.shield(building)
        except Exception:
            self._building.pop(group, None)  # the next delivery tries again
            raise
        self._building.pop(group, None)
        self._clients[group] = client
        return client

    async def aclose(self) -> None:
        """Close every client (a later run builds new ones)."""
        building, self._building = list(self._building.values()), {}
        built = await asyncio.gather(*building, return_exceptions=True)
        if self._builder is not None:
            self._builder.shutdown(wait=False)  # idle: every build was awaited above
            self._builder = None
        clients, self._clients = list(self._clients.values()), {}
        self._use = []
        for c in {id(c): c for c in [*clients, *built] if isinstance(c, httpx.AsyncClient)}.values():
            await c.aclose()
