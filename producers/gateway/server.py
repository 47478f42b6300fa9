"""Running the gateway: Kafka settings, the signing key, TLS, uvicorn."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import uvicorn

from leadbus import clients
from leadbus.clients import KafkaSettings
from leadbus.producers.gateway.app import Gateway, GatewayConfig, create_app
from leadbus.producers.gateway.tls import TlsPaths, local_tls
from leadbus.producers.signing import KEY_ENV, SigningSealer


def kafka_settings(bootstrap: str | None, client_config: str | Path | None, principal: str) -> KafkaSettings:
    """The gateway's connection: a principal's client settings file (or a folder of `<principal>.json`, as
    `leadbus acl apply` writes them), else plain `bootstrap`. An explicit `bootstrap` overrides the file's."""
    resolve = getattr(clients, "resolve_settings", None)
    if resolve is not None:  # the project's own resolver, where the secured-broker work has landed
        settings: KafkaSettings = resolve(client_config, principal, bootstrap)
        return settings
    if not client_config:
        if not bootstrap:
            raise ValueError("no bootstrap servers and no client settings")
        return KafkaSettings(bootstrap)
    path = Path(client_config)
    if path.is_dir():
        path = path / f"{principal}.json"
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    servers = doc.pop("bootstrap.servers", None)
    return KafkaSettings(bootstrap or str(servers), security=doc)


def signing_sealer(publisher_id: str, key: Path | None, state_dir: Path) -> SigningSealer:
    """The agency's signing key from a file or $LEADBUS_SIGNING_KEY; the sequence file in the state folder."""
    sequences = state_dir / f"{publisher_id}.seq"
    if key is not None:
        return SigningSealer.from_file(publisher_id, key, sequences)
    if os.environ.get(KEY_ENV):
        return SigningSealer.from_env(publisher_id, sequences)
    raise ValueError(f"give the agency's signing key (--signing-key or ${KEY_ENV}), or --unsigned")


def tls_files(cert: Path | None, key: Path | None, state_dir: Path, hosts: list[str]) -> TlsPaths:
    if cert is not None and key is not None:
        return TlsPaths(cert, cert, key)
    if cert is not None or key is not None:
        raise ValueError("give both --tls-cert and --tls-key, or neither (a local CA is made for testing)")
    return local_tls(state_dir / "tls", hosts)


def serve(config: GatewayConfig, kafka: KafkaSettings, sealer: SigningSealer | None, tls: TlsPaths,
          host: str, port: int, receipts_kafka: KafkaSettings | None = None) -> None:
    gateway = Gateway(config, kafka, sealer, receipts_kafka)
    uvicorn.run(create_app(gateway), host=host, port=port, ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key),
                timeout_graceful_shutdown=5, log_level="warning")
