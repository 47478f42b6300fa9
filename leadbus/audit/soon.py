"""An answer asked for now, on a thread of its own, and waited for later (the replay's clock, its peek at first
headers): the replay prepares meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def soon(ask: Callable[[], T], failed: Callable[[], T] | None, name: str) -> Callable[[], T]:
    """Start `ask` on a daemon thread named `name`; the function returned waits for its answer, or gives `failed()`'s
    where `ask` raised (`failed` None: raises what `ask` raised, as if it had been called there). A daemon thread: a
    replay that stops with an error before it needs the answer does not wait out the broker's timeouts on its way
    out."""
    answer: list[T] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            answer.append(ask())
        except BaseException as exc:  # noqa: BLE001 - answered by `failed`, or raised where it is waited for
            if failed is None:
                raised.append(exc)
            else:
                answer.append(failed())

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        if raised:
            raise raised[0]
        return answer[0]

    return result
