"""TLS for the gateway: production certificates from files, or a local CA made here for tests and the demo.

    paths = local_tls(Path("var/gateway/tls"), hosts=["localhost", "127.0.0.1"])
    # paths.ca (give it to callers: curl --cacert, Java truststore), paths.cert, paths.key (the server's)

    caller = client_certificate(Path("var/gateway/callers"), "nb-case-system")
    # a caller's certificate for mutual TLS, issued by the local CA of that folder (--client-ca its ca.pem)

The local CA is made once per folder and reused, so callers keep trusting it across restarts. Keys
are written 0600. Nothing here is meant for production: there the agency's own PKI issues the
server certificate (`--tls-cert`, `--tls-key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from leadbus.pki import alt_names, key_pem, self_signed_ca, write_secret


@dataclass(frozen=True)
class TlsPaths:
    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "leadbus local"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert, key = self_signed_ca(_name("leadbus local gateway CA"), timedelta(days=3650))
    write_secret(directory / "ca.key", key_pem(key))
    (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / 'ca.key'} is not the local CA's EC key")
    return cert, key


def _issue(directory: Path, name: str, subject: str, usage: x509.ObjectIdentifier,
           san: x509.SubjectAlternativeName | None = None) -> TlsPaths:
    """A leaf certificate for `subject`, issued by the local CA of `directory` (made there once), as `name`.pem/.key."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _load_ca(directory) if (directory / "ca.pem").exists() else _make_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=397))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    write_secret(directory / f"{name}.key", key_pem(key))
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TlsPaths(directory / "ca.pem", directory / f"{name}.pem", directory / f"{name}.key")


def local_tls(directory: Path, hosts: list[str] | None = None, name: str = "gateway") -> TlsPaths:
    """A local CA (made once in `directory`) and a fresh server certificate for `hosts` signed by it."""
    hosts = hosts or ["localhost", "127.0.0.1"]
    return _issue(directory, name, hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, alt_names(hosts))


def client_certificate(directory: Path, name: str) -> TlsPaths:
    """A client certificate (TLS client authentication only) for `name`, issued by the local CA of `directory`."""
    return _issue(directory, name, name, ExtendedKeyUsageOID.CLIENT_AUTH)
