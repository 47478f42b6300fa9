"""An answer asked for now, on a thread of its own, and waited for later (the replay's clock, its peek at first
headers): the replay prepares meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def soon(ask: Callable[[], T], failed: Callable[[], T], name: str) -> Callable[[], T]:
    """Start `ask` on a daemon thread named `name`; the function returned waits for its answer, or gives `failed()`'s
    where `ask` raised. A daemon thread: a replay that stops with an error before it needs the answer does not wait
    out the broker's timeouts on its way out."""
    answer: list[T] = []

    def run() -> None:
        try:
            answer.append(ask())
        except BaseException:  # noqa: BLE001 - the caller named what a failed question answers
            answer.append(failed())

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        return answer[0]

    return result
