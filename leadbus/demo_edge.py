"""The agency edge in `make demo`: SAMR Zhejiang's HTTPS gateway (signed, with a demo token and a demo client
certificate for mutual TLS) and a demo sign-in per regional dashboard. Kept apart from leadbus/demo.py, which
calls `prepare_edge` and prints `edge_lines`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.clients import settings_from_env
from leadbus.geography import REGIONS
from leadbus.producers.gateway.auth import add_certificate, add_token
from leadbus.producers.gateway.tls import TlsPaths, client_certificate, local_tls
from leadbus.producers.signing import private_pem, write_secret
from leadbus.publisher_keys import write_keys
from leadbus.signing import PublisherKey, key_id_of, public_bytes
from leadbus.sinks.dashboard_auth import SECRET_ENV, add_user

GATEWAY_AGENCY, GATEWAY_PROVINCE = "SAMR", "33"
GATEWAY_SIGNER = "SAMR.33-gw"  # one signing process of SAMR Zhejiang; the simulator's SAMR leads stay unsigned


@dataclass
class Edge:
    gateway_argv: list[str]
    dashboard_args: dict[str, list[str]]
    dashboard_env: dict[str, str]
    gateway_url: str
    token: str
    ca: Path
    sign_ins: dict[str, tuple[str, str]] = field(default_factory=dict)  # region → (user, password)
    client: TlsPaths | None = None  # a demo caller's certificate and key (mutual TLS instead of the token)


def prepare_edge(bootstrap: str, demo_dir: Path, gateway_port: int, cli: list[str]) -> Edge:
    """Make the gateway's key (registered, signatures optional: the simulator's SAMR leads are unsigned), TLS,
    a demo token, and one demo user per region (random passwords, printed once by the demo)."""
    edge_dir = demo_dir / "edge"
    key = Ed25519PrivateKey.generate()
    key_path = edge_dir / f"{GATEWAY_SIGNER}.key"
    write_secret(key_path, private_pem(key))
    raw = public_bytes(key.public_key())
    now = datetime.now(UTC)
    write_keys(settings_from_env("admin", bootstrap), [PublisherKey(GATEWAY_SIGNER, key_id_of(raw), raw, now, now,
                                                       require_signed=False)])
    tls = local_tls(edge_dir / "tls", ["127.0.0.1", "localhost"])
    tokens = edge_dir / "gateway-tokens.json"
    token = add_token(tokens, "demo-case-system", GATEWAY_AGENCY)
    client = client_certificate(edge_dir / "callers", "demo-mtls-system")
    add_certificate(tokens.with_name("gateway-certificates.json"), "demo-mtls-system", GATEWAY_AGENCY,
                    client.cert.read_bytes())
    argv = [*cli, "gateway", "--agency", GATEWAY_AGENCY, "--province", GATEWAY_PROVINCE, "--port", str(gateway_port),
            "-b", bootstrap, "--signing-key", str(key_path), "--publisher-id", GATEWAY_SIGNER, "--tokens", str(tokens),
            "--state-dir", str(edge_dir / "gateway"), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key),
            "--client-ca", str(client.ca), "--certificates", str(tokens.with_name("gateway-certificates.json"))]
    users = edge_dir / "dashboard-users.yaml"
    sign_ins = {}
    for region in REGIONS:
        password = secrets.token_urlsafe(9)
        add_user(users, f"demo-{region}", password, region, "supervisor")
        sign_ins[region] = (f"demo-{region}", password)
    args = {region: ["--users", str(users), "--access-log", str(edge_dir / f"dashboard-{region}-access.jsonl")]
            for region in REGIONS}
    return Edge(argv, args, {SECRET_ENV: secrets.token_urlsafe(32)}, f"https://127.0.0.1:{gateway_port}/v1/leads",
                token, tls.ca, sign_ins, client)


def edge_lines(edge: Edge, dashboards: dict[str, int]) -> list[str]:
    """What a person needs to try the edge, one item a line and never shortened (a table would cut the token)."""
    lines = [f"gateway SAMR Zhejiang: {edge.gateway_url}",
             f"  CA: {edge.ca}",
             f"  demo token: {edge.token}",
             f"  curl --cacert {edge.ca} -H 'Authorization: Bearer {edge.token}' "
             f"-H 'Content-Type: application/json' --data-binary @lead.json {edge.gateway_url}"]
    if edge.client is not None:
        lines.append(f"  or by client certificate: curl --cacert {edge.ca} --cert {edge.client.cert} "
                     f"--key {edge.client.key} …")
    for region, (user, password) in edge.sign_ins.items():
        port = dashboards.get(region)
        where = f" at http://127.0.0.1:{port}/signin" if port else ""
        lines.append(f"dashboard {region} sign-in{where}: {user} / {password}")
    return lines
