"""The Coalescer behind the inbox's group commit, on a real event loop.

What it promises: the calls made in one loop turn reach ``flush`` together and in order; each caller
gets its own result; batches never exceed ``max_batch`` and the loop runs other tasks between
them; a failing flush fails only its own batch; a caller that goes away does not break anyone.
"""

from __future__ import annotations

import asyncio

import pytest

from fedblog.store.groupcommit import Coalescer


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_calls_made_together_are_flushed_together_in_order() -> None:
    seen: list[list[int]] = []

    def flush(items: list[int]) -> list[int]:
        seen.append(list(items))
        return [i * 10 for i in items]

    async def main() -> list[int]:
        c: Coalescer[int, int] = Coalescer(flush)
        first = await asyncio.gather(*[c.submit(i) for i in range(5)])
        alone = await c.submit(99)  # idle: a batch of one
        assert (c.batches, c.items) == (2, 6)
        return [*first, alone]

    assert run(main()) == [0, 10, 20, 30, 40, 990]
    assert seen == [[0, 1, 2, 3, 4], [99]]


def test_batches_are_capped_and_other_tasks_run_between_them() -> None:
    events: list[str] = []

    def flush(items: list[int]) -> list[int]:
        events.append(f"flush {len(items)}")
        return items

    async def other() -> None:
        await asyncio.sleep(0)
        events.append("other task")

    async def main() -> list[int]:
        c: Coalescer[int, int] = Coalescer(flush, max_batch=4)
        results = await asyncio.gather(*[c.submit(i) for i in range(10)], other())
        return list(results[:10])

    assert run(main()) == list(range(10))
    assert [e for e in events if e.startswith("flush")] == ["flush 4", "flush 4", "flush 2"]
    assert events.index("other task") < events.index("flush 2")  # the loop was not held for all three


def test_a_failing_flush_fails_its_batch_only() -> None:
    calls = 0

    def flush(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database gone")
        return items

    async def main() -> tuple[list[object], int]:
        c: Coalescer[int, int] = Coalescer(flush)
        first = await asyncio.gather(*[c.submit(i) for i in range(3)], return_exceptions=True)
        return list(first), await c.submit(7)

    first, later = run(main())
    assert [type(r) for r in first] == [RuntimeError] * 3
    assert later == 7


def test_a_flush_that_returns_the_wrong_number_of_results_is_an_error_for_each_caller() -> None:
    async def main() -> list[object]:
        c: Coalescer[int, int] = Coalescer(lambda items: items[:-1])
        return list(await asyncio.gather(*[c.submit(i) for i in range(3)], return_exceptions=True))

    results = run(main())
    assert all(isinstance(r, RuntimeError) and "2 results for 3 items" in str(r) for r in results)


def test_a_caller_that_goes_away_does_not_stop_the_work_or_the_others() -> None:
    done: list[int] = []

    def flush(items: list[int]) -> list[int]:
        done.extend(items)
        return items

    async def main() -> list[int]:
        c: Coalescer[int, int] = Coalescer(flush)
        leaver = asyncio.ensure_future(c.submit(1))
        stayers = [asyncio.ensure_future(c.submit(i)) for i in (2, 3)]
        await asyncio.sleep(0)  # all three submitted; the flush is scheduled
        leaver.cancel()
        return list(await asyncio.gather(*stayers))

    assert run(main()) == [2, 3]
    assert done == [1, 2, 3]  # the leaver's item was still applied: its work stands


def test_a_new_event_loop_starts_clean() -> None:
    c: Coalescer[int, int] = Coalescer(lambda items: items)
    assert run(c.submit(1)) == 1
    assert run(c.submit(2)) == 2  # a second asyncio.run: another loop, nothing left of the first


@pytest.mark.parametrize("max_batch", [0, -1])
def test_max_batch_must_be_positive(max_batch: int) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(lambda items: items, max_batch=max_batch)
