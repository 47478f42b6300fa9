"""The agency gateway in tests: a real uvicorn server with TLS (and, optionally, client certificates) in a thread,
clients that trust only the local CA, and reading an intake topic back."""

from __future__ import annotations

import ssl
from pathlib import Path

from leadbus.avro import decode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.producers.gateway import Gateway
from leadbus.producers.gateway.server import uvicorn_config
from leadbus.producers.gateway.tls import TlsPaths
from leadbus.topics import intake_topic
from tests.kafka_helpers import read_all
from tests.servers import AppServer

CATALOG = packaged_catalog()


class GatewayServer(AppServer):
    """`leadbus gateway`'s server (uvicorn, TLS, the peer-certificate protocol) on a free loopback port."""

    def __init__(self, gateway: Gateway, tls: TlsPaths, client_ca: Path | None = None) -> None:
        self.gateway = gateway
        super().__init__(uvicorn_config(gateway, tls, client_ca, log_level="warning", timeout_graceful_shutdown=1),
                         scheme="https")


def trust(tls: TlsPaths, client: TlsPaths | None = None) -> ssl.SSLContext:
    """Trust the local CA, and only it; present `client`'s certificate when given (mutual TLS)."""
    context = ssl.create_default_context(cafile=str(tls.ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def intake_ids(reader: str | KafkaSettings, agency: str) -> list[str]:
    """Lead ids on an agency's intake topic, in the order read (a repeat shows twice)."""
    return [str(decode(CATALOG, m.value())[1]["lead_id"]) for m in read_all(reader, intake_topic(agency))]
