"""The dashboard's SSE hub: frames from the reader thread reach every client in order, one loop wake-up a batch."""

from __future__ import annotations

import asyncio
import threading

from leadbus.sinks.dashboard import Hub, Metrics


def test_frames_published_from_a_thread_arrive_in_order_with_one_wake_up_per_batch() -> None:
    loop = asyncio.new_event_loop()
    try:
        hub = Hub(Metrics("yrd"))
        hub.loop = loop
        wake_ups = []
        schedule = loop.call_soon_threadsafe

        def counted(callback, *args):  # type: ignore[no-untyped-def]
            wake_ups.append(callback)
            return schedule(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        fresh: asyncio.Queue[str | None] = asyncio.Queue()
        late: asyncio.Queue[str | None] = asyncio.Queue()
        hub.add(fresh, 0)
        hub.add(late, 40)  # its snapshot holds frames 1-40 already
        publisher = threading.Thread(target=lambda: [hub.publish(seq, f"frame {seq}") for seq in range(1, 101)])
        publisher.start()
        publisher.join()
        assert len(wake_ups) == 1  # the loop was not running: all 100 frames wait for one drain
        loop.run_until_complete(asyncio.sleep(0))
        assert [fresh.get_nowait() for _ in range(fresh.qsize())] == [f"frame {s}" for s in range(1, 101)]
        assert [late.get_nowait() for _ in range(late.qsize())] == [f"frame {s}" for s in range(41, 101)]
        hub.publish(101, "frame 101")  # drained: the next frame schedules a new drain
        loop.run_until_complete(asyncio.sleep(0))
        assert len(wake_ups) == 2 and fresh.get_nowait() == "frame 101"
    finally:
        loop.close()


def test_frames_after_the_loop_closed_are_dropped_quietly() -> None:
    loop = asyncio.new_event_loop()
    hub = Hub(Metrics("jjj"))
    hub.loop = loop
    loop.close()
    hub.publish(1, "frame 1")  # no error, nothing kept
    assert hub.pending == []
