"""One way to build confluent-kafka clients: librdkafka's log lines go through Python logging.

librdkafka writes its logs (``%4|…|GETPID|…| Coordinator load in progress``) straight to stderr
unless the client is given a ``logger``; with one, confluent-kafka hands each line to
``logger.log(level, …)`` at the Python level matching its syslog level (ERR → ERROR, WARNING →
WARNING, NOTICE/INFO → INFO, DEBUG → DEBUG), from the client's ``poll``/``consume``/``flush``
calls. Where the records then go is the process's logging configuration (`leadbus.logs`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

KAFKA_LOGGER = logging.getLogger("leadbus.kafka.client")


def client_config(bootstrap: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings every client starts from: the bootstrap servers and the logger; `config` adds to them."""
    return {"bootstrap.servers": bootstrap, "logger": KAFKA_LOGGER, **(config or {})}


def producer(bootstrap: str, config: Mapping[str, Any] | None = None) -> Producer:
    return Producer(client_config(bootstrap, config))


def consumer(bootstrap: str, config: Mapping[str, Any] | None = None) -> Consumer:
    return Consumer(client_config(bootstrap, config))


def admin(bootstrap: str, config: Mapping[str, Any] | None = None) -> AdminClient:
    """An AdminClient: its log lines are served by `AdminClient.poll`, which `leadbus.kafka.admin` calls."""
    return AdminClient(client_config(bootstrap, config))
