"""InboxTurnstile (web/inbox.py): a burst of inbox POSTs starts at most ``per_turn`` per turn of the
event loop, in arrival order; other requests pass at once; a POST whose client left frees its place."""

from __future__ import annotations

import asyncio
from typing import Any

from fedblog.web.inbox import InboxTurnstile


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": []}


async def _nothing() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _drop(message: Any) -> None:
    return None


def test_a_burst_starts_a_few_per_turn_in_order_and_others_pass_at_once() -> None:
    async def main() -> tuple[list[tuple[str, int]], int]:
        loop = asyncio.get_running_loop()
        turn = 0
        ticking = True

        def tick() -> None:  # counts the loop's turns: a call_soon callback runs once per turn
            nonlocal turn
            turn += 1
            if ticking:
                loop.call_soon(tick)

        entered: list[tuple[str, int]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            entered.append((scope["path"] if scope["method"] == "GET" else scope["x"], turn))

        gate = InboxTurnstile(app, per_turn=3)
        loop.call_soon(tick)
        posts = [{**_scope("POST", "/inbox" if i % 2 else "/users/blog/inbox"), "x": f"p{i}"} for i in range(10)]
        tasks = [asyncio.create_task(gate(s, _nothing, _drop)) for s in posts]
        await asyncio.sleep(0)  # the POSTs have arrived; now a page GET
        await gate(_scope("GET", "/posts/hello"), _nothing, _drop)
        get_turn = turn
        await asyncio.gather(*tasks)
        ticking = False
        return entered, get_turn

    entered, get_turn = asyncio.run(main())
    posts = [(name, t) for name, t in entered if name.startswith("p")]
    assert [name for name, _ in posts] == [f"p{i}" for i in range(10)]  # arrival order
    per_turn: dict[int, int] = {}
    for _, t in posts:
        per_turn[t] = per_turn.get(t, 0) + 1
    assert max(per_turn.values()) == 3 and len(per_turn) >= 4  # spread over turns, never more than 3
    get = next(t for name, t in entered if name == "/posts/hello")
    assert get == get_turn and get < max(t for _, t in posts)  # the GET did not wait for the burst


def test_a_post_whose_client_left_frees_its_place() -> None:
    async def main() -> list[str]:
        entered: list[str] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            entered.append(scope["x"])

        gate = InboxTurnstile(app, per_turn=1)
        tasks = [asyncio.create_task(gate({**_scope("POST", "/inbox"), "x": f"p{i}"}, _nothing, _drop))
                 for i in range(4)]
        await asyncio.sleep(0)
        tasks[1].cancel()  # waiting for its turn when its client went away
        await asyncio.gather(*tasks, return_exceptions=True)
        return entered

    assert asyncio.run(main()) == ["p0", "p2", "p3"]
