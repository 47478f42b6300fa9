"""One factory for every Kafka client of the project, built from one settings object.

Security settings (TLS, SASL) and client extras live in `KafkaSettings`; producers, consumers,
admin clients and state-restore consumers all come from here, so a setting given once reaches
every connection. Construction is lazy in the callers: nothing here touches the network until a
client is built.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from leadbus.limits import MAX_RECORD_BYTES

CLIENT_LOG = logging.getLogger("leadbus.client")

#: librdkafka retries these by itself and they pass within seconds of a broker's start or a leader's move: the
#: coordinator still loading `__transaction_state` when a transactional producer asks for its PID (GETPID), a
#: partition or group leader not elected yet. Worth a line at debug level, not a warning on every bench.
TRANSIENT = re.compile(
    r"Coordinator load in progress|Coordinator not available|Not coordinator|Leader not available"
    r"|Not leader for partition|Concurrent transactions|Rebalance in progress|: retrying\b", re.IGNORECASE)


class LibrdkafkaLog:
    """librdkafka's log lines through Python logging: transient retries at debug, repeated errors summarised.

    confluent-kafka calls `log(level, "%s [%s] %s", facility, client, message)` from the thread that polls the
    client (the logs are queued to it), for every client built with `"logger"` (all of `KafkaSettings`'s).
    Without it, librdkafka writes raw `%3|1764…|FAIL|rdkafka#producer-3| …` lines to stderr. A warning or an error
    is logged the first time; the same one again (from that client, numbers aside) within `window` seconds is only
    counted, and the count goes with the next one logged after the window.
    """

    def __init__(self, logger: logging.Logger = CLIENT_LOG, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.window, self.clock = logger, window, clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}  # (client, facility, shape) → (logged, since)

    def log(self, level: int, fmt: str, *args: object) -> None:
        if fmt != "%s [%s] %s" or len(args) != 3:  # not the shape confluent-kafka uses: pass it on untouched
            self.logger.log(level, fmt, *args)
            return
        facility, client, message = (str(a) for a in args)
        message = re.sub(r"^\[thrd:[^\]]*\]: ", "", message)
        if level >= logging.WARNING and TRANSIENT.search(message):
            level = logging.DEBUG
        if level < logging.WARNING:
            if self.logger.isEnabledFor(level):
                self.logger.log(level, "%s %s: %s", client, facility, message,
                                extra={"rdkafka_facility": facility, "rdkafka_client": client})
            return
        shape = (client, facility, re.sub(r"\d+", "#", message))
        now = self.clock()
        with self._lock:
            first, repeats = self._seen.get(shape, (None, 0))
            if first is not None and now - first < self.window:
                self._seen[shape] = (first, repeats + 1)
                return
            self._seen[shape] = (now, 0)
            if len(self._seen) > 1000:  # a long-lived process meeting ever new messages keeps a bounded memory
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
        more = f" ({repeats} more like it in the last {self.window:.0f} s)" if repeats else ""
        self.logger.log(level, "%s %s: %s%s", client, facility, message, more,
                        extra={"rdkafka_facility": facility, "rdkafka_client": client, "rdkafka_repeats": repeats})


#: The one log every client of the project writes librdkafka's lines to.
RDKAFKA_LOG = LibrdkafkaLog()

#: A stage begins its next transaction right after the last commit, while the coordinator may still be writing that
#: commit's markers (one per partition it touched: ~45 for routing): the broker answers the new transaction's
#: AddPartitionsToTxn / AddOffsetsToTxn with CONCURRENT_TRANSACTIONS and librdkafka retries after `retry.backoff.ms`
#: (100 ms), doubling up to `retry.backoff.max.ms` (1 s). Back-to-back transactions to 45 partitions on one broker
#: (load 16): transaction p99 215-223 ms with the defaults, 76-94 ms with 10/100 ms; in the pipeline it was routing's
#: ~1 s tail, and the dashboards' (README, "End-to-end latency"). The Java client retries this error after 20 ms.
TRANSACTION_RETRY_BACKOFF: Mapping[str, int] = {"retry.backoff.ms": 10, "retry.backoff.max.ms": 100}

#: The one way every command finds its security settings: a principal's client file, or a folder of them.
CLIENT_CONFIG_ENV = "LEADBUS_CLIENT_CONFIG"


class ClientConfigError(ValueError):
    """A client settings file is missing, unreadable or not a JSON object of client settings."""


@dataclass(frozen=True)
class KafkaSettings:
    """Where the bus is and how to reach it: bootstrap servers, security, other client settings."""

    bootstrap: str
    security: Mapping[str, Any] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)

    def common(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, "logger": RDKAFKA_LOG, **self.security, **self.extras}

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        return {**self.common(), "message.max.bytes": MAX_RECORD_BYTES, **overrides}

    def producer(self, **overrides: Any) -> Producer:
        return Producer(self.producer_config(**overrides))

    def transactional_producer(self, transactional_id: str, **overrides: Any) -> Producer:
        return Producer(self.transactional_config(transactional_id, **overrides))

    def transactional_config(self, transactional_id: str, **overrides: Any) -> dict[str, Any]:
        # A client settings file may choose its own retry backoff; the stages' default is short (see below).
        chosen = self.common()
        backoff = {k: v for k, v in TRANSACTION_RETRY_BACKOFF.items() if k not in chosen}
        return self.producer_config(**{
            "transactional.id": transactional_id,
            "enable.idempotence": True,
            "acks": "all",
            # Nothing is visible before the commit, which sends whatever lingers: waiting longer for fuller
            # produce requests costs no latency. librdkafka sends one produce request per partition
            # (confluentinc/librdkafka#1700): with 50 ms, a transaction whose records took longer than that to
            # process (a backlog's batches of 500-2,000) sent each partition it wrote every 50 ms and again at the
            # commit. Longer than a transaction lasts (below the 2 s commit interval), each partition goes once, at
            # the commit: 44 % fewer produce requests per transaction (README, "End-to-end latency"). A short
            # transaction at a steady rate is processed within a few ms and sent at its commit either way.
            "linger.ms": 1000,
            "compression.type": "lz4",
            "transaction.timeout.ms": 10000,
            **backoff,
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

    def write_confirmed(self, topic: str, records: Iterable[tuple[bytes, bytes]], timeout: float = 30.0,
                        what: str = "records") -> int:
        """Write keyed records (registries: schemas, publisher keys) and wait until the broker confirmed them all."""
        producer = self.producer(**{"enable.idempotence": True, "acks": "all"})
        count = 0
        for key, value in records:
            producer.produce(topic, key=key, value=value)
            count += 1
        if producer.flush(timeout):
            raise RuntimeError(f"{topic}: {what} not confirmed by the broker within {timeout}s")
        return count

    def admin(self, **overrides: Any) -> AdminClient:
        return AdminClient({**self.common(), **overrides})

    @property
    def principal(self) -> str | None:
        user = self.security.get("sasl.username")
        return str(user) if user else None

    def with_bootstrap(self, bootstrap: str | None) -> KafkaSettings:
        return self if not bootstrap else KafkaSettings(bootstrap, self.security, self.extras)

    def to_client_config(self) -> dict[str, Any]:
        """The JSON form of `var/secure/clients/<principal>.json`: plain confluent-kafka settings."""
        return {"bootstrap.servers": self.bootstrap, **self.security}

    @classmethod
    def from_client_config(cls, doc: Mapping[str, Any]) -> KafkaSettings:
        settings = dict(doc)
        bootstrap = settings.pop("bootstrap.servers", None)
        if not isinstance(bootstrap, str) or not bootstrap:
            raise ClientConfigError("a client settings file names its bootstrap.servers")
        return cls(bootstrap, security=settings)

    @classmethod
    def from_file(cls, path: Path) -> KafkaSettings:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ClientConfigError(f"{path}: {exc}") from None
        if not isinstance(doc, dict):
            raise ClientConfigError(f"{path}: not a JSON object of client settings")
        return cls.from_client_config(doc)


def write_client_config(path: Path, settings: KafkaSettings) -> Path:
    """Write a principal's settings, secrets included, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(settings.to_client_config(), handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(path, 0o600)
    return path


def settings_from_env(principal: str, bootstrap: str) -> KafkaSettings:
    """`resolve_settings` from `$LEADBUS_CLIENT_CONFIG`: in-process components of a secured run (the demo)."""
    return resolve_settings(os.environ.get(CLIENT_CONFIG_ENV), principal, bootstrap)


def resolve_settings(source: str | Path | None, principal: str, bootstrap: str | None = None) -> KafkaSettings:
    """The settings a component acting as `principal` uses.

    `source` (the `--client-config` option, or `$LEADBUS_CLIENT_CONFIG`) is a client settings file, used
    as it is, or a folder of them (`var/secure/clients/`), where `<principal>.json` is taken. Without a
    source the bus is open: plain `bootstrap`. An explicit `bootstrap` overrides the file's servers.
    """
    if source is None or str(source) == "":
        if not bootstrap:
            raise ClientConfigError("no bootstrap servers and no client settings")
        return KafkaSettings(bootstrap)
    path = Path(source)
    if path.is_dir():
        path = path / f"{principal}.json"
    if not path.exists():
        raise ClientConfigError(f"no client settings for {principal}: {path} does not exist")
    return KafkaSettings.from_file(path).with_bootstrap(bootstrap)


def settings_for(bootstrap: str | KafkaSettings, **extras: Any) -> KafkaSettings:
    """Accept a bare bootstrap string where callers have not moved to settings yet."""
    if isinstance(bootstrap, KafkaSettings):
        return bootstrap
    return KafkaSettings(bootstrap, extras=extras)
