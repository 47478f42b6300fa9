"""Notice-and-takedown (通知—删除) over HTTP: `leadbus.takedown.notices` → platforms → replies or dead letters.

Each routed case becomes one notice per platform shop or site; the notice id is derived from
its content, so a redelivered case sends the same idempotency key and the platform applies it
once. The platform's answer is recorded on `leadbus.takedown.replies` (with `overdue` when it
came after `reply_due_at`); a notice that exhausts its retry budget goes to
`leadbus.webhooks.dead` with the last error. Offsets are committed after the outputs are
confirmed: at-least-once towards Kafka, exactly one effect at the platform.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from leadbus.avro import DecodeError, decode, encode, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.processors.core.routing import takedown_targets
from leadbus.processors.core.takedown import takedown_notice
from leadbus.sinks.webhooks import RetryPolicy, WebhookDelivery, dead_letter, takedown_reply
from leadbus.topics import TAKEDOWN_NOTICES, TAKEDOWN_REPLIES, WEBHOOKS_DEAD

log = logging.getLogger("leadbus.sinks.takedown")
NOTICES, REPLIES, DEAD = TAKEDOWN_NOTICES, TAKEDOWN_REPLIES, WEBHOOKS_DEAD
WITHDRAWN = "cn.leadbus.CaseWithdrawn"


def notices_for(case: Mapping[str, Any], now: datetime, reply_within: timedelta) -> list[dict[str, Any]]:
    """One notice per takedown target of the case (the routing core decides what those are)."""
    return [takedown_notice({"case_id": case["case_id"], "categories": case["categories"], **target},
                            now, reply_within) for target in takedown_targets(case)]


def run_takedown(bootstrap: str | KafkaSettings, endpoints: Mapping[str, str], secret: bytes, *,
                 default_endpoint: str | None = None, policy: RetryPolicy | None = None,
                 reply_within: timedelta = timedelta(days=1),
                 max_seconds: float | None = None, client: httpx.Client | None = None) -> None:
    catalog = packaged_catalog()
    case_schema = catalog.latest("cn.leadbus.CaseUpdated")
    reply_schema = catalog.latest("cn.leadbus.TakedownReply")
    dead_schema = catalog.latest("cn.leadbus.WebhookDeadLetter")
    kafka = settings_for(bootstrap)
    consumer = kafka.consumer("leadbus-takedown")
    producer = kafka.producer(**{"enable.idempotence": True, "acks": "all"})
    http = client or httpx.Client(timeout=10.0)
    delivery = WebhookDelivery(http, secret, policy or RetryPolicy())
    consumer.subscribe([NOTICES])
    started = time.monotonic()
    try:
        while max_seconds is None or time.monotonic() - started < max_seconds:
            messages = [m for m in consumer.consume(50, 0.5) if not m.error()]
            for msg in messages:
                try:
                    writer, _ = decode(catalog, msg.value() or b"")
                    if writer.name == WITHDRAWN:  # the case left this channel: no further notices go out for it
                        log.info("case %s withdrawn from notice-and-takedown", (msg.key() or b"").decode())
                        continue
                    _, case = decode(catalog, msg.value() or b"", case_schema)
                except DecodeError as exc:
                    log.error("undecodable notice at offset %s: %s", msg.offset(), exc)
                    continue
                for notice in notices_for(case, datetime.now(UTC), reply_within):
                    url = endpoints.get(notice["platform"], default_endpoint)
                    if url is None:
                        log.warning("no endpoint for platform %s; notice %s not sent", notice["platform"],
                                    notice["notice_id"])
                        continue
                    result = delivery.deliver(url, notice, notice["notice_id"])
                    now = datetime.now(UTC)
                    key = notice["notice_id"].encode()
                    if result.ok:
                        reply = takedown_reply(notice, result, now)
                        producer.produce(REPLIES, key=key, value=encode(reply_schema, reply))
                    else:
                        record = dead_letter(NOTICES, notice["notice_id"], notice, result, now)
                        producer.produce(DEAD, key=key, value=encode(dead_schema, record))
            if messages:
                if producer.flush(60):
                    raise RuntimeError("takedown outputs not confirmed; offsets not committed")
                consumer.commit(asynchronous=False)
    finally:
        consumer.close()
        producer.flush(30)
        if client is None:
            http.close()
