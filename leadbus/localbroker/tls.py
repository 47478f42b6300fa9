"""A local certificate authority and broker certificates, for secured brokers on this machine.

`leadbus broker up --secure` and the tests need TLS without anything installed: this module makes
an ECDSA P-256 CA (kept in `var/secure/tls/` by the CLI, reused while it is valid) and signs one
certificate per broker node for `127.0.0.1` / `localhost`. Files are PEM, which Kafka reads
directly (`ssl.keystore.type=PEM`, `ssl.truststore.type=PEM`) and librdkafka too
(`ssl.ca.location`), so no keytool and no JKS.

Brokers authenticate each other and the controllers with these certificates (mutual TLS on the
inter-broker and controller listeners): every node's certificate names the same subject
`CN=leadbus-broker`, which is the broker principal the cluster lists among its super users.
In production the CA and the node certificates come from the organisation's PKI instead (see the
README); `BrokerTls.from_files` takes them as they are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from leadbus.pki import alt_names, key_pem, self_signed_ca, write_secret

BROKER_CN = "leadbus-broker"
#: The principal Kafka derives from a node certificate (default SSL principal builder: the subject DN).
BROKER_PRINCIPAL = f"User:CN={BROKER_CN}"
_VALID = dt.timedelta(days=825)


@dataclass(frozen=True)
class LocalCa:
    cert_path: Path
    key_path: Path

    @classmethod
    def ensure(cls, directory: Path, name: str = "leadbus local CA") -> LocalCa:
        """The CA in `directory` (ca.pem, ca.key), made once; a CA near its end is replaced."""
        cert_path, key_path = directory / "ca.pem", directory / "ca.key"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=30):
                return cls(cert_path, key_path)
        cert, key = self_signed_ca(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), _VALID)
        write_secret(key_path, key_pem(key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert_path, key_path)

    def issue(self, path: Path, common_name: str = BROKER_CN, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
              ) -> Path:
        """Write `path`: a private key and its certificate (server and client use) signed by this CA."""
        ca_cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError("the local CA key must be an EC key")
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + _VALID, ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(alt_names(hosts), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = key_pem(key) + cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
            serialization.Encoding.PEM)
        write_secret(path, pem)
        return path


@dataclass(frozen=True)
class BrokerTls:
    """What a secured node needs: the CA bundle clients and peers are checked against, and per-node key stores."""

    ca_path: Path
    keystores: dict[int, Path]
    broker_principal: str = BROKER_PRINCIPAL

    @classmethod
    def local(cls, ca: LocalCa, directory: Path, node_ids: list[int]) -> BrokerTls:
        return cls(ca.cert_path, {n: ca.issue(directory / f"node{n}.pem") for n in node_ids})

    @classmethod
    def from_files(cls, ca_path: Path, keystores: dict[int, Path], broker_principal: str) -> BrokerTls:
        """Production: a CA bundle and PEM key stores (key + chain) issued by the organisation's PKI."""
        return cls(ca_path, dict(keystores), broker_principal)
