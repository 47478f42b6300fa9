"""The registry sink run in a test until it has taken in all its topics hold, and no longer."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import OperationalError

from leadbus.clients import KafkaSettings
from leadbus.sinks.registry import registry_engine, stored_offsets
from leadbus.sinks.registry_sink import KINDS, run_registry
from tests.kafka_helpers import read_all
from tests.processes import wait_until


def registry_caught_up(bus: str | KafkaSettings, url: str, *, reader: str | KafkaSettings | None = None,
                       timeout: float = 120) -> None:
    """Run the registry sink on `bus` into `url` until the database's positions are past the last record of every
    partition of its topics (read by `reader`, the bus's own settings by default), then stop it as SIGTERM does.

    Its traffic is over when this is called. A run of a fixed length (15-25 s) waited well past that in CI, and on a
    loaded machine might end before it: this ends when, and only when, the sink has every record."""
    last: dict[tuple[str, int], int] = {}
    for topic in KINDS:
        for msg in read_all(reader or bus, topic):
            key = (topic, msg.partition() or 0)
            last[key] = max(msg.offset() or 0, last.get(key, -1))
    engine = registry_engine(url)  # migrated here, before the sink starts: the two never migrate at once
    done, failed = threading.Event(), []

    def run() -> None:
        try:
            run_registry(bus, url, stop=done)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failed.append(exc)

    def taken_in() -> bool:
        try:
            at = stored_offsets(engine)
        except OperationalError:  # SQLite locked by the sink's transaction: read again next time
            return False
        return bool(failed) or all(at.get(tp, 0) > offset for tp, offset in last.items())

    thread = threading.Thread(target=run, name="registry", daemon=True)
    began = time.monotonic()
    thread.start()
    try:
        wait_until(taken_in, timeout, "the registry to take in every record of its topics", interval=0.5)
        logging.getLogger("tests.registry").info("registry caught up in %.1f s", time.monotonic() - began)
    finally:
        done.set()
        thread.join(60)
        engine.dispose()
    assert not failed, failed
    assert not thread.is_alive(), "the registry sink did not stop"
