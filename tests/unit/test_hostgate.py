"""HostGate (net/hostgate.py): at most ``per_host`` requests to one host at a time, the others
wait in arrival order; other hosts pass at once; a waiter that gives up frees nothing it did not hold."""

from __future__ import annotations

import asyncio

import pytest

from fedblog.net.hostgate import HostGate


def test_at_most_per_host_run_at_once_and_the_rest_start_in_arrival_order() -> None:
    async def main() -> tuple[int, list[str], list[tuple[int, int]]]:
        gate = HostGate(per_host=2)
        running = peak = 0
        started: list[str] = []
        release = asyncio.Event()

        async def request(name: str, host: str) -> None:
            nonlocal running, peak
            async with gate.slot(host):
                started.append(name)
                if host == "a.example":
                    running += 1
                    peak = max(peak, running)
                    await release.wait()
                    running -= 1

        tasks = [asyncio.create_task(request(f"a{i}", "a.example")) for i in range(5)]
        await asyncio.sleep(0)
        other = asyncio.create_task(request("b0", "b.example"))
        await asyncio.wait_for(other, 1)  # another host is not held up by a's queue
        busy = [gate.busy("a.example")]
        release.set()
        await asyncio.gather(*tasks)
        busy.append(gate.busy("a.example"))
        return peak, started, busy

    peak, started, busy = asyncio.run(main())
    assert peak == 2
    assert [s for s in started if s.startswith("a")] == [f"a{i}" for i in range(5)]
    assert "b0" in started[:3]
    assert busy == [(2, 3), (0, 0)]  # two running, three waiting; nothing left afterwards


def test_a_waiter_that_is_cancelled_leaves_the_queue_and_the_slot_count_right() -> None:
    async def main() -> tuple[tuple[int, int], tuple[int, int], bool]:
        gate = HostGate(per_host=1)
        hold = asyncio.Event()

        async def holder() -> None:
            async with gate.slot("h"):
                await hold.wait()

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(holder())
        await asyncio.sleep(0)
        during = gate.busy("h")
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        hold.set()
        await first
        after = gate.busy("h")
        async with gate.slot("h"):  # free again
            again = gate.busy("h") == (1, 0)
        return during, after, again

    during, after, again = asyncio.run(main())
    assert during == (1, 1)
    assert after == (0, 0)
    assert again


def test_per_host_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HostGate(per_host=0)
