"""Running the gateway: Kafka settings, the signing key, TLS (and callers' client certificates), uvicorn."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from leadbus.clients import KafkaSettings, resolve_settings
from leadbus.producers.gateway.app import PEER_CERTIFICATE, Gateway, GatewayConfig, create_app
from leadbus.producers.gateway.tls import TlsPaths, local_tls
from leadbus.producers.signing import KEY_ENV, SigningSealer


def kafka_settings(bootstrap: str | None, client_config: str | Path | None, principal: str) -> KafkaSettings:
    """A connection of the gateway: a principal's client settings file (or a folder of `<principal>.json`, as
    `leadbus acl apply` writes them), else plain `bootstrap`. An explicit `bootstrap` overrides the file's.
    The gateway publishes as `publisher-<AGENCY>` and reads receipts as `gateway-receipts`."""
    return resolve_settings(client_config, principal, bootstrap)


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


class PeerCertificateProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, handing each request the connection's verified client certificate.

    uvicorn gives an app no view of the TLS peer; asyncio calls `connection_made` once the handshake is
    done, and every request's ASGI `state` is a copy of `app_state`, so a per-connection copy carries it."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app_state = {**self.app_state, PEER_CERTIFICATE: der}


def uvicorn_config(gateway: Gateway, tls: TlsPaths, client_ca: Path | None = None, **options: Any) -> uvicorn.Config:
    """TLS always; with `client_ca`, callers may also present a client certificate issued by it (verified by the
    handshake: any other certificate fails it), which the certificates file maps to a system."""
    return uvicorn.Config(create_app(gateway), ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key),
                          ssl_ca_certs=str(client_ca) if client_ca else None,
                          ssl_cert_reqs=ssl.CERT_OPTIONAL if client_ca else ssl.CERT_NONE,
                          http=PeerCertificateProtocol, **options)


def serve(config: GatewayConfig, kafka: KafkaSettings, sealer: SigningSealer | None, tls: TlsPaths,
          host: str, port: int, receipts_kafka: KafkaSettings | None = None, client_ca: Path | None = None) -> None:
    gateway = Gateway(config, kafka, sealer, receipts_kafka)
    uvicorn.Server(uvicorn_config(gateway, tls, client_ca, host=host, port=port, timeout_graceful_shutdown=5,
                                  log_level="warning")).run()
