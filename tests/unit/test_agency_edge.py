"""Pure parts of the agency edge: API tokens, rate limits, dashboard users and session cookies, local TLS."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from leadbus.producers.gateway.auth import (
    CertificateStore,
    TokenStore,
    add_certificate,
    add_token,
    revoke_certificates,
    revoke_tokens,
)
from leadbus.producers.gateway.ratelimit import RateLimiter
from leadbus.producers.gateway.tls import client_certificate, local_tls
from leadbus.sinks.dashboard_auth import SignIn, add_user


def test_tokens_are_stored_hashed_and_revocable(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = add_token(path, "hz-case-system", "SAMR")
    other = add_token(path, "nb-case-system", "SAMR")
    assert token.startswith("lbt_") and len(token) > 40 and token not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    store = TokenStore(path, "SAMR")
    caller = store.caller(token)
    assert caller is not None and caller.system == "hz-case-system" and caller.principal == "publisher-SAMR"
    assert store.caller("lbt_" + "x" * 43) is None and store.caller(None) is None and store.caller("") is None
    assert revoke_tokens(path, "hz-case-system") == 1
    time.sleep(0.01)
    path.touch()
    assert store.caller(token) is None  # re-read on change: no restart needed
    assert store.caller(other) is not None
    with pytest.raises(ValueError):
        add_token(path, "x", "MPS")  # one agency per gateway
    with pytest.raises(ValueError):
        TokenStore(path, "MPS")


def test_client_certificates_map_by_fingerprint_to_systems(tmp_path: Path) -> None:
    path = tmp_path / "certificates.json"
    mine = client_certificate(tmp_path / "callers", "nb-case-system")
    namesake = client_certificate(tmp_path / "callers", "nb-case-system-2")
    fingerprint = add_certificate(path, "nb-case-system", "SAMR", mine.cert.read_bytes())
    assert path.stat().st_mode & 0o777 == 0o600
    der = x509.load_pem_x509_certificate(mine.cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    store = CertificateStore(path, "SAMR")
    caller = store.caller(der)
    assert caller is not None and (caller.system, caller.principal, caller.via, caller.certificate) == (
        "nb-case-system", "publisher-SAMR", "certificate", fingerprint)
    other = x509.load_pem_x509_certificate(namesake.cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert store.caller(other) is None and store.caller(None) is None and store.caller(b"") is None
    assert b"PRIVATE" not in path.read_bytes() and "nb-case-system" in path.read_text()
    for bad in (b"not a certificate", mine.key.read_bytes()):
        with pytest.raises(ValueError):
            add_certificate(path, "x", "SAMR", bad)
    with pytest.raises(ValueError):
        add_certificate(path, "again", "SAMR", mine.cert.read_bytes())  # one certificate, one system
    with pytest.raises(ValueError):
        add_certificate(path, "nb", "MPS", namesake.cert.read_bytes())  # one agency per gateway
    with pytest.raises(ValueError):
        add_certificate(path, "two words", "SAMR", namesake.cert.read_bytes())
    assert revoke_certificates(path, "nb-case-system") == 1
    time.sleep(0.01)
    path.touch()
    assert store.caller(der) is None  # re-read on change: no restart needed
    issued = x509.load_pem_x509_certificate(mine.cert.read_bytes())
    usage = issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]


def test_rate_limits_are_per_caller_with_bursts() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3.0, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # another system has its own bucket
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a", cost=10) >= 1.0  # more than a burst is never allowed at once
    assert RateLimiter(0, 1).take("a", 1000) == 0.0  # 0: unlimited


def test_local_tls_reuses_its_ca_and_names_the_hosts(tmp_path: Path) -> None:
    first = local_tls(tmp_path, ["127.0.0.1", "gw.local"])
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    ca_pem = first.ca.read_bytes()
    second = local_tls(tmp_path, ["127.0.0.1"])  # a new server certificate, the same CA: callers keep trusting it
    assert second.ca.read_bytes() == ca_pem and (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "gw.local" in names.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate(first.ca.read_bytes())
    cert.verify_directly_issued_by(ca)


def test_dashboard_users_and_sessions(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    add_user(users, "li.na", "correct horse", "yrd", "viewer", ["SAMR"])
    add_user(users, "wang.fang", "battery staple", "jjj", "supervisor")
    assert "correct horse" not in users.read_text() and "$argon2id$" in users.read_text()
    with pytest.raises(ValueError):
        add_user(users, "x", "password1", "mars", "viewer")
    with pytest.raises(ValueError):
        add_user(users, "x", "password1", "yrd", "admin")
    sign_in = SignIn(users, "yrd", tmp_path / "access.jsonl", secret=b"k" * 32)
    assert sign_in.verify("li.na", "wrong") is None and sign_in.verify("nobody", "correct horse") is None
    user = sign_in.verify("li.na", "correct horse")
    assert user is not None and user.agencies == ("SAMR",)
    cookie = sign_in.issue(user)
    found = sign_in.session(cookie)
    assert found is not None and found[0].username == "li.na"
    body, signature = cookie.rsplit(".", 1)
    forged = json.dumps({"u": "wang.fang", "r": "jjj", "iat": 0, "exp": 2**40, "sid": "x"}).encode()
    import base64

    assert sign_in.session(base64.urlsafe_b64encode(forged).decode().rstrip("=") + "." + signature) is None
    assert sign_in.session(body + "." + signature[:-2] + "AA") is None
    assert SignIn(users, "yrd", None, secret=b"other" * 8).session(cookie) is None  # another secret
    expired = SignIn(users, "yrd", None, secret=b"k" * 32, session_seconds=-1)
    assert expired.session(expired.issue(user)) is None
    add_user(users, "li.na", "correct horse", "pprd")  # moved to another region: the session follows the file
    moved = sign_in.session(cookie)
    assert moved is not None and moved[0].region == "pprd"
