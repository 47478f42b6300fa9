"""One factory for every Kafka client of the project, built from one settings object.

Security settings (TLS, SASL) and client extras live in `KafkaSettings`; producers, consumers,
admin clients and state-restore consumers all come from here, so a setting given once reaches
every connection. Construction is lazy in the callers: nothing here touches the network until a
client is built.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from leadbus.limits import MAX_RECORD_BYTES

CLIENT_LOG = logging.getLogger("leadbus.kafka.client")


@dataclass(frozen=True)
class KafkaSettings:
    """Where the bus is and how to reach it: bootstrap servers, security, other client settings."""

    bootstrap: str
    security: Mapping[str, Any] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)

    def common(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, "logger": CLIENT_LOG, **self.security, **self.extras}

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        return {**self.common(), "message.max.bytes": MAX_RECORD_BYTES, **overrides}

    def producer(self, **overrides: Any) -> Producer:
        return Producer(self.producer_config(**overrides))

    def transactional_producer(self, transactional_id: str, **overrides: Any) -> Producer:
        return self.producer(**{
            "transactional.id": transactional_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "transaction.timeout.ms": 10000,
            **overrides,
        })

    def consumer(self, group_id: str, **overrides: Any) -> Consumer:
        return Consumer({
            **self.common(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            **overrides,
        })

    def admin(self, **overrides: Any) -> AdminClient:
        return AdminClient({**self.common(), **overrides})


def settings_for(bootstrap: str | KafkaSettings, **extras: Any) -> KafkaSettings:
    """Accept a bare bootstrap string where callers have not moved to settings yet."""
    if isinstance(bootstrap, KafkaSettings):
        return bootstrap
    return KafkaSettings(bootstrap, extras=extras)
