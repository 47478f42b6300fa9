"""What the project's web apps share (the gateway, the operation view, the platform check, the warnings page)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any


def running(start: Callable[[], None], stop: Callable[[], None]) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """An app's lifespan: `start` its background readers before it serves, `stop` them (in a thread) after."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        start()
        try:
            yield
        finally:
            await asyncio.to_thread(stop)

    return lifespan
