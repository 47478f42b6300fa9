"""The agency gateway over real HTTPS on a secured broker (issue 13, "What it must show", first bullet).

The broker is this module's own, secured as in production (TLS, SCRAM-SHA-512, deploy/acl-policy.yaml applied,
deny by default): the gateway publishes as `publisher-SAMR` and reads receipts as `gateway-receipts`, each with
the client file `leadbus acl apply` wrote; intake and linking run as their own principals; the test reads
topics back as `auditor` and registers keys as the admin. The gateway runs under uvicorn with TLS from a local
CA made by `producers/gateway/tls.py`; callers are httpx clients that trust only that CA and present an API
token or a client certificate (mutual TLS) issued by the callers' CA.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaError
from typer.testing import CliRunner

from leadbus.access_log import read_access_log
from leadbus.avro import decode, packaged_catalog
from leadbus.cli import app as cli
from leadbus.processors.core.intake import seal_of_accepted
from leadbus.producers import Publisher
from leadbus.producers.errors import InvalidLead
from leadbus.producers.gateway import Gateway, GatewayConfig
from leadbus.producers.gateway.auth import add_certificate, add_token
from leadbus.producers.gateway.receipts import ReceiptIndex
from leadbus.producers.gateway.tls import TlsPaths, client_certificate, local_tls
from leadbus.producers.signing import MemorySequences, SigningSealer, load_private_key
from leadbus.publisher_keys import read_registry
from leadbus.signing import reverify
from leadbus.topics import LEADS_ACCEPTED, intake_topic
from tests.gateway_helpers import GatewayServer, intake_ids, trust
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until
from tests.secure import Errors, SecureBus, secured

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
runner = CliRunner()
AGENCY, PROVINCE = "SAMR", "33"
HANDSHAKE_REFUSED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBus]:
    with secured(1, tmp_path_factory.mktemp("gateway-secure")) as secure:
        yield secure


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def tls(work: Path) -> TlsPaths:
    return local_tls(work / "tls", ["localhost", "127.0.0.1"])


@pytest.fixture(scope="module")
def callers(work: Path) -> dict[str, TlsPaths]:
    """Client certificates: two of the callers' CA (one mapped to a system, one not), one of a stranger's CA."""
    return {"mapped": client_certificate(work / "callers", "nb-case-system"),
            "unmapped": client_certificate(work / "callers", "unknown-system"),
            "untrusted": client_certificate(work / "elsewhere", "nb-case-system")}


def _cli(*args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def signing_key(bus: SecureBus, work: Path) -> Path:
    """The agency's key, generated and registered (signatures required) with the `leadbus keys` commands, as admin."""
    key = work / "SAMR.33.key"
    _cli("keys", "generate", "--out", str(key))
    _cli("keys", "register", "SAMR.33", "--public-key", f"{key}.pub", "--client-config", str(bus.clients))
    return key


def _gateway(bus: SecureBus, work: Path, key: Path, name: str, **options: Any) -> tuple[Gateway, str]:
    state = work / name
    config = GatewayConfig(AGENCY, PROVINCE, tokens=state / "tokens.json", state_dir=state, **options)
    token = add_token(config.tokens, "hz-case-system", AGENCY)
    sealer = SigningSealer.from_file(config.signer, key, state / f"{config.signer}.seq")
    return Gateway(config, bus.as_(f"publisher-{AGENCY}"), sealer, bus.as_("gateway-receipts")), token


@pytest.fixture(scope="module")
def gw(bus: SecureBus, work: Path, signing_key: Path, tls: TlsPaths,
       callers: dict[str, TlsPaths]) -> Iterator[dict[str, Any]]:
    gateway, token = _gateway(bus, work, signing_key, "main", publish_timeout=6.0)
    add_certificate(gateway.config.certificates_file, "nb-case-system", AGENCY, callers["mapped"].cert.read_bytes())
    with GatewayServer(gateway, tls, client_ca=callers["mapped"].ca) as server, httpx.Client(
            base_url=server.url, verify=trust(tls), headers={"Authorization": f"Bearer {token}"},
            timeout=60) as client:
        yield {"server": server, "client": client, "gateway": gateway, "token": token}


def _intake_ids(bus: SecureBus) -> list[str]:
    return intake_ids(bus.as_("auditor"), AGENCY)


# -- answers of POST /v1/leads -------------------------------------------------------------------------

def test_tls_only_and_a_token_or_certificate_required(gw: dict[str, Any], tls: TlsPaths, make_lead) -> None:
    url = gw["server"].url
    with pytest.raises(httpx.ConnectError):  # the local CA is the only trust: no other certificate passes
        httpx.get(f"{url}/healthz", verify=True, timeout=10)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https://", "http://") + "/healthz", timeout=10)
    for headers in ({}, {"Authorization": "Bearer lbt_not-a-token"}, {"Authorization": "Basic eDp5"}):
        resp = httpx.post(f"{url}/v1/leads", json=make_lead(), headers=headers, verify=trust(tls), timeout=30)
        assert resp.status_code == 401 and resp.json()["error"] == "UNAUTHENTICATED"
        assert resp.headers["www-authenticate"] == "Bearer"


def test_invalid_leads_get_422_with_the_sdks_codes(gw: dict[str, Any], make_lead) -> None:
    client = gw["client"]
    bad = make_lead(**{"subject.id_number": "110105194912310021", "payment_accounts": ["6222021234567890129"]})
    resp = client.post("/v1/leads", json=bad)
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "INVALID_LEAD"
    codes = {(e["field"], e["code"]) for e in body["errors"]}
    assert ("subject.id_number", "RESIDENT_ID_CHECKSUM") in codes
    assert any(code == "BANK_CARD_LUHN" for _, code in codes)
    assert all(set(e) == {"field", "code", "message"} and e["message"] for e in body["errors"])

    sdk = Publisher(AGENCY, PROVINCE, bootstrap_servers="127.0.0.1:9")  # the same codes as the SDK, field by field
    with pytest.raises(InvalidLead) as refused:
        sdk.validate(bad)
    assert {(e.field, e.code) for e in refused.value.errors} == codes
    for lead, field, code in (
        (make_lead(**{"publisher.agency": "MPS"}), "publisher.agency", "WRONG_PUBLISHER"),
        (make_lead(**{"publisher.province": "11"}), "publisher.province", "WRONG_PUBLISHER"),
        (make_lead(lead_id="not-a-uuid"), "lead_id", "LEAD_ID_FORMAT"),
        (make_lead(reported_at="2099-01-01T00:00:00Z"), "reported_at", "TIME_IN_FUTURE"),
        (make_lead(channel="CARRIER_PIGEON"), "channel", "UNKNOWN_ENUM"),
    ):
        resp = client.post("/v1/leads", json=lead)
        assert resp.status_code == 422, resp.text
        assert (field, code) in {(e["field"], e["code"]) for e in resp.json()["errors"]}, resp.text
    for raw in (b"{not json", b"[1, 2]", b'"a string"'):
        resp = client.post("/v1/leads", content=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 422 and resp.json()["errors"], resp.text


def test_oversized_leads_get_413(gw: dict[str, Any], bus: SecureBus, make_lead) -> None:
    client = gw["client"]
    lead = make_lead(evidence=[{"kind": "page", "uri": "https://e.example/" + "z" * (300 * 1024), "sha256": "b" * 64}])
    resp = client.post("/v1/leads", json=lead)
    assert resp.status_code == 413
    assert resp.json()["errors"][0]["code"] == "OVERSIZED"
    assert resp.json()["errors"][0]["field"] == "evidence.0.uri"
    resp = client.post("/v1/leads", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["error"] == "BODY_TOO_LARGE"
    assert lead["lead_id"] not in _intake_ids(bus)


def test_a_valid_lead_is_201_after_confirmation_and_a_repost_publishes_once(
        gw: dict[str, Any], bus: SecureBus, make_lead) -> None:
    client = gw["client"]
    lead = make_lead()
    first = client.post("/v1/leads", json=lead)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body == {"lead_id": lead["lead_id"], "revision": 0, "topic": "leadbus.intake.SAMR",
                    "partition": body["partition"], "offset": body["offset"]}
    again = client.post("/v1/leads", json=lead)
    assert again.status_code == 201 and again.json() == body
    assert again.headers["idempotent-replayed"] == "true"
    reordered = json.dumps(dict(reversed(list(lead.items()))), ensure_ascii=False)  # the same lead, other bytes
    assert client.post("/v1/leads", content=reordered.encode(),
                       headers={"Content-Type": "application/json"}).json() == body
    # On the bus exactly once, where the 201 said, signed by SAMR.33.
    found = [m for m in read_all(bus.as_("auditor"), intake_topic(AGENCY))
             if decode(CATALOG, m.value())[1]["lead_id"] == lead["lead_id"]]
    assert len(found) == 1
    assert (found[0].partition(), found[0].offset()) == (body["partition"], body["offset"])
    assert dict(found[0].headers())["leadbus-publisher"] == b"SAMR.33"


def test_conflicting_and_stale_revisions_it_knows_of_get_409(gw: dict[str, Any], make_lead) -> None:
    client = gw["client"]
    lead = make_lead()
    assert client.post("/v1/leads", json=lead).status_code == 201
    other = {**lead, "description": "另一个说法"}
    resp = client.post("/v1/leads", json=other)
    assert resp.status_code == 409 and resp.json()["error"] == "REVISION_CONFLICT"
    assert client.post("/v1/leads", json={**other, "revision": 2}).status_code == 201
    resp = client.post("/v1/leads", json={**other, "revision": 1})
    assert resp.status_code == 409 and resp.json()["error"] == "STALE_REVISION"


def test_batch_answers_per_line(gw: dict[str, Any], bus: SecureBus, make_lead) -> None:
    client = gw["client"]
    good, twice, known = make_lead(), make_lead(), make_lead()
    assert client.post("/v1/leads", json=known).status_code == 201
    lines = [json.dumps(good), json.dumps(make_lead(**{"subject.id_number": "110105194912310021"})), "{oops",
             json.dumps(twice), json.dumps(twice), json.dumps({**twice, "description": "别的"}), json.dumps(known)]
    resp = client.post("/v1/leads:batch", content="\n".join(lines).encode(),
                       headers={"Content-Type": "application/x-ndjson"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/x-ndjson")
    answers = [json.loads(line) for line in resp.text.splitlines()]
    assert [a["line"] for a in answers] == list(range(1, 8))
    assert [a["status"] for a in answers] == [201, 422, 422, 201, 201, 409, 201]
    assert answers[1]["body"]["errors"][0]["code"] == "RESIDENT_ID_CHECKSUM"
    assert answers[3]["body"] == answers[4]["body"]  # one lead twice in a batch: published once
    ids = _intake_ids(bus)
    assert ids.count(twice["lead_id"]) == 1 and ids.count(good["lead_id"]) == 1 and ids.count(known["lead_id"]) == 1


def test_a_callers_rate_is_limited_with_429(bus: SecureBus, work: Path, signing_key: Path, tls: TlsPaths,
                                             make_lead) -> None:
    gateway, token = _gateway(bus, work, signing_key, "slow", rate=0.2, burst=2)  # publishes nothing
    with GatewayServer(gateway, tls) as server, httpx.Client(
            base_url=server.url, verify=trust(tls), headers={"Authorization": f"Bearer {token}"}) as client:
        statuses = [client.post("/v1/leads", json=make_lead(lead_id="bad")).status_code for _ in range(3)]
        assert statuses[:2] == [422, 422] and statuses[2] == 429
        resp = client.post("/v1/leads", json=make_lead())
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
        assert resp.json()["error"] == "RATE_LIMITED"


def test_every_call_is_logged(gw: dict[str, Any], tls: TlsPaths, make_lead) -> None:
    lead = make_lead()
    gw["client"].post("/v1/leads", json=lead)
    httpx.post(f"{gw['server'].url}/v1/leads", json=lead, verify=trust(tls), timeout=30)
    entries = read_access_log(gw["gateway"].config.state_dir / "access.jsonl")
    mine = [e for e in entries if (e.get("lead") or {}).get("lead_id") == lead["lead_id"]]
    assert mine[-1]["system"] == "hz-case-system" and mine[-1]["principal"] == "publisher-SAMR"
    assert mine[-1]["status"] == 201 and mine[-1]["method"] == "POST" and mine[-1]["path"] == "/v1/leads"
    assert entries[-1]["status"] == 401 and entries[-1]["system"] is None
    assert all({"ts", "request_id", "remote", "ms"} <= set(e) for e in entries)
    assert gw["token"] not in (gw["gateway"].config.state_dir / "access.jsonl").read_text()
    assert gw["token"] not in (gw["gateway"].config.tokens).read_text()  # stored hashed only


# -- the OpenAPI document ------------------------------------------------------------------------------

def test_openapi_is_served_and_committed(gw: dict[str, Any]) -> None:
    served = gw["client"].get("/openapi.json").json()
    assert {"/v1/leads", "/v1/leads:batch", "/v1/leads/{lead_id}"} <= set(served["paths"])
    committed = json.loads((Path(__file__).resolve().parents[2] / "docs" / "gateway-openapi.json").read_text())
    from leadbus.producers.gateway import openapi_document

    generated = json.loads(json.dumps(openapi_document()))
    assert committed == generated, "python -m leadbus.producers.gateway.openapi > docs/gateway-openapi.json"
    assert served["components"]["schemas"]["CaseLead"]["properties"].keys() == \
        committed["components"]["schemas"]["CaseLead"]["properties"].keys()


# 10 examples an operation in `make test` (997 cases: the coverage phase's are the bulk), 40 in `make test-faults`.
@pytest.mark.parametrize("examples", [pytest.param(10, id="10-examples"),
                                      pytest.param(40, id="40-examples", marks=pytest.mark.faults)])
def test_schemathesis_finds_no_server_error(gw: dict[str, Any], tls: TlsPaths, tmp_path: Path, examples: int) -> None:
    url = gw["server"].url
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json",
           "--checks", "not_a_server_error", "--tls-verify", str(tls.ca),
           "-H", f"Authorization: Bearer {gw['token']}", "--max-examples", str(examples), "--workers", "1",
           "--phases", "examples,coverage,fuzzing", "--request-timeout", "30", "--seed", "1313"]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
           "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    counted = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counted and int(counted.group(1)) > 100 and counted.group(1) == counted.group(2), result.stdout[-3000:]
    statuses = [e["status"] for e in read_access_log(gw["gateway"].config.state_dir / "access.jsonl")]
    assert not [s for s in statuses if s >= 500 and s != 503]


def test_the_readmes_java_example_publishes_a_lead(gw: dict[str, Any], bus: SecureBus, tls: TlsPaths,
                                                    tmp_path: Path, make_lead) -> None:
    """The README's Java snippet, compiled and run as it is against the live gateway (only its URL replaced).
    The JDK is the one the brokers and Maven need already."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```java\n(.*?)```", readme, re.S)
    assert found, "README.md has a Java example"
    code = found.group(1).replace("https://gw.samr-zj.example:8443", gw["server"].url)
    (tmp_path / "Post.java").write_text("import java.net.URI;\nimport java.net.http.*;\nimport java.nio.file.Path;\n"
                                        "public class Post {\n    public static void main(String[] args) throws "
                                        f"Exception {{\n{code}\n    }}\n}}\n", encoding="utf-8")
    lead = make_lead()
    (tmp_path / "lead.json").write_text(json.dumps(lead, ensure_ascii=False), encoding="utf-8")
    for cmd in (["keytool", "-importcert", "-file", str(tls.ca), "-alias", "leadbus-gw", "-keystore", "gw-trust.p12",
                 "-storepass", "changeit", "-noprompt"], ["javac", "Post.java"]):
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    ran = subprocess.run(["java", "-cp", ".", "Post"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "LEADBUS_TOKEN": gw["token"]})
    assert ran.returncode == 0 and ran.stdout.startswith("on the bus: "), ran.stdout + ran.stderr
    assert json.loads(ran.stdout.removeprefix("on the bus: "))["lead_id"] == lead["lead_id"]
    assert _intake_ids(bus).count(lead["lead_id"]) == 1


# -- callers by client certificate (mutual TLS) ------------------------------------------------------------

def test_a_mapped_client_certificate_gets_in_as_its_system(gw: dict[str, Any], bus: SecureBus, tls: TlsPaths,
                                                           callers: dict[str, TlsPaths], make_lead) -> None:
    url, log = gw["server"].url, gw["gateway"].config.state_dir / "access.jsonl"
    lead = make_lead()
    with httpx.Client(base_url=url, verify=trust(tls, callers["mapped"]), timeout=60) as client:  # no token
        resp = client.post("/v1/leads", json=lead)
        assert resp.status_code == 201, resp.text
        assert client.get(f"/v1/leads/{lead['lead_id']}").json()["status"] in ("pending", "accepted")
        # A token given is the one judged, even beside a good certificate: no falling back to it.
        wrong = client.post("/v1/leads", json=make_lead(), headers={"Authorization": "Bearer lbt_wrong"})
        assert wrong.status_code == 401
    assert _intake_ids(bus).count(lead["lead_id"]) == 1
    fingerprint = json.loads(gw["gateway"].config.certificates_file.read_text())["certificates"][0]["sha256"]
    mine = [e for e in read_access_log(log) if (e.get("lead") or {}).get("lead_id") == lead["lead_id"]]
    assert [(e["system"], e["via"], e["certificate"], e["principal"], e["status"]) for e in mine] == [
        ("nb-case-system", "certificate", fingerprint, "publisher-SAMR", 201),
        ("nb-case-system", "certificate", fingerprint, "publisher-SAMR", 200)]
    assert read_access_log(log)[-1]["status"] == 401 and read_access_log(log)[-1]["system"] is None


def test_an_unknown_or_untrusted_certificate_and_no_credential_are_refused(
        gw: dict[str, Any], bus: SecureBus, tls: TlsPaths, callers: dict[str, TlsPaths], work: Path,
        make_lead) -> None:
    url, log = gw["server"].url, gw["gateway"].config.state_dir / "access.jsonl"
    lead = make_lead()
    # Issued by the callers' CA but mapped to no system: through the handshake, then 401, logged with its print.
    resp = httpx.post(f"{url}/v1/leads", json=lead, verify=trust(tls, callers["unmapped"]), timeout=30)
    assert resp.status_code == 401 and resp.json()["error"] == "UNAUTHENTICATED"
    refused = read_access_log(log)[-1]
    assert refused["status"] == 401 and refused["system"] is None and refused["certificate"]
    mapped = json.loads(gw["gateway"].config.certificates_file.read_text())["certificates"]
    assert refused["certificate"] not in {c["sha256"] for c in mapped}
    # Issued by another CA, even under a mapped system's name: the server aborts the TLS handshake (with TLS 1.3
    # the client hears of it at its first read, so as a dropped connection), and no request is served.
    before = len(read_access_log(log))
    with pytest.raises(HANDSHAKE_REFUSED):
        httpx.post(f"{url}/v1/leads", json=lead, verify=trust(tls, callers["untrusted"]), timeout=30)
    assert len(read_access_log(log)) == before
    # Neither token nor certificate.
    resp = httpx.post(f"{url}/v1/leads", json=lead, verify=trust(tls), timeout=30)
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert lead["lead_id"] not in _intake_ids(bus)

    # Unmapped with `leadbus gateway-cert --revoke`: the next call is refused, without a restart.
    certs = gw["gateway"].config.certificates_file
    extra = client_certificate(work / "callers", "short-lived-system")
    _cli("gateway-cert", "--agency", AGENCY, "--system", "short-lived-system", "--certificates", str(certs),
         "--cert", str(extra.cert))
    ok = httpx.post(f"{url}/v1/leads", json=make_lead(lead_id="bad"), verify=trust(tls, extra), timeout=30)
    assert ok.status_code == 422  # authenticated: judged on its content
    _cli("gateway-cert", "--agency", AGENCY, "--system", "short-lived-system", "--certificates", str(certs),
         "--revoke")
    gone = httpx.post(f"{url}/v1/leads", json=make_lead(lead_id="bad"), verify=trust(tls, extra), timeout=30)
    assert gone.status_code == 401


# -- receipts, end to end with intake and linking --------------------------------------------------------

def test_receipts_read_as_gateway_receipts_and_nobody_without_the_grant(gw: dict[str, Any], bus: SecureBus) -> None:
    """The receipt reader's principal: granted exactly the outcome topics; the publisher's own is refused them."""
    wait_until(lambda: gw["client"].get("/healthz").json()["receipts_caught_up"], 60, "receipts to catch up")
    assert gw["client"].get("/healthz").json()["receipts_error"] is None

    as_publisher = ReceiptIndex(bus.as_(f"publisher-{AGENCY}"), AGENCY)
    as_publisher.start()
    try:
        wait_until(lambda: as_publisher.last_error is not None, 60, "the broker to refuse the publisher's read")
        assert "TOPIC_AUTHORIZATION_FAILED" in as_publisher.last_error or "authoriz" in as_publisher.last_error.lower()
        assert not as_publisher.caught_up.is_set() and as_publisher.leads == {}
    finally:
        as_publisher.stop()

    errors = Errors()  # and the reader writes nothing, not even its agency's intake topic
    producer = bus.as_("gateway-receipts").producer(**{"message.timeout.ms": 15000, "error_cb": errors})
    results: list[KafkaError | None] = []
    producer.produce(intake_topic(AGENCY), b"receipts-probe", on_delivery=lambda err, _m: results.append(err))
    producer.flush(30)
    assert results and results[0] is not None and results[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_receipts_accepted_with_case_and_rejected_with_reason(
        gw: dict[str, Any], bus: SecureBus, work: Path, signing_key: Path, tls: TlsPaths, make_lead) -> None:
    client, bootstrap = gw["client"], bus.cluster.bootstrap_servers
    good = make_lead()
    # A gateway whose key was never registered (SAMR.33-gw2): intake refuses its leads as UNKNOWN_KEY.
    rogue_key = work / "gw2.key"
    _cli("keys", "generate", "--out", str(rogue_key))
    rogue, rogue_token = _gateway(bus, work, rogue_key, "rogue", publisher_id="SAMR.33-gw2")
    refused = make_lead()
    # A lead sent through the SDK only (another signing process of SAMR.33), known to the gateway from the bus.
    sdk_key = work / "sdk.key"
    _cli("keys", "generate", "--out", str(sdk_key))
    _cli("keys", "register", "SAMR.33-sdk", "--public-key", f"{sdk_key}.pub", "--client-config", str(bus.clients))
    sdk_lead = make_lead(**{"publisher.unit": "宁波市市场监督管理局"})
    sealer = SigningSealer("SAMR.33-sdk", load_private_key(sdk_key.read_bytes()), MemorySequences())
    with Publisher(AGENCY, PROVINCE, bootstrap_servers=bus.as_(f"publisher-{AGENCY}"), sealer=sealer) as sdk:
        (sdk_delivery,) = sdk.wait([sdk.publish(sdk_lead)], timeout=60)

    with GatewayServer(rogue, tls) as server, httpx.Client(
            base_url=server.url, verify=trust(tls), headers={"Authorization": f"Bearer {rogue_token}"},
            timeout=60) as rogue_client:
        assert client.post("/v1/leads", json=good).status_code == 201
        assert rogue_client.post("/v1/leads", json=refused).status_code == 201
        for c, lead in ((client, good), (rogue_client, refused)):
            receipt = c.get(f"/v1/leads/{lead['lead_id']}")
            assert receipt.status_code == 200 and receipt.json()["status"] == "pending", receipt.text
        assert client.get(f"/v1/leads/{uuid.uuid4()}").status_code == 404
        assert client.get(f"/v1/leads/{refused['lead_id']}").status_code == 404  # not this gateway's

        workers = [start_worker(bootstrap, work / "state" / stage, f"gw-{stage}", work / "logs", stage=stage,
                                extra=["--client-config", str(bus.clients)])  # each stage as its own principal
                   for stage in ("intake", "linking")]
        try:
            wait_until(lambda: rogue_client.get(f"/v1/leads/{refused['lead_id']}").json()["status"] != "pending",
                       180, "the refused lead's receipt")
            wait_until(lambda: client.get(f"/v1/leads/{good['lead_id']}").json()["case_id"] is not None, 180,
                       "the accepted lead's receipt with its case")
            wait_until(lambda: client.get(f"/v1/leads/{sdk_lead['lead_id']}").status_code == 200, 120,
                       "the SDK's lead to be known from the bus")
        finally:
            for proc in workers:
                stop(proc)
        rejected = rogue_client.get(f"/v1/leads/{refused['lead_id']}").json()
    assert rejected["status"] == "rejected" and rejected["reason"] == "UNKNOWN_KEY", rejected
    assert rejected["field"] == "headers" and rejected["message"]
    assert rejected["history"][-1]["offset"] == rejected["published"]["offset"]
    accepted = client.get(f"/v1/leads/{good['lead_id']}").json()
    assert accepted["status"] == "accepted" and accepted["revision"] == 0
    assert accepted["case_id"].startswith("CASE-")
    assert accepted["published"]["offset"] == accepted["history"][-1]["offset"]

    # What the bus accepted from elsewhere is known: other content under its revision is a 409 at once, the same
    # content answers with where it already is, and nothing more is published.
    clash = client.post("/v1/leads", json={**sdk_lead, "description": "另一个说法"})
    assert clash.status_code == 409 and clash.json()["error"] == "REVISION_CONFLICT"
    same = client.post("/v1/leads", json=sdk_lead)
    assert same.status_code == 201 and same.headers["idempotent-replayed"] == "true"
    assert (same.json()["partition"], same.json()["offset"]) == (sdk_delivery.partition, sdk_delivery.offset)
    assert _intake_ids(bus).count(sdk_lead["lead_id"]) == 1

    # The accepted event carries the gateway's seal: verifiable by anyone from the event and the key registry.
    auditor = bus.as_("auditor")
    registry = read_registry(bus.admin)
    (event,) = [decode(CATALOG, m.value())[1] for m in read_all(auditor, LEADS_ACCEPTED)
                if decode(CATALOG, m.value())[1]["lead"]["lead_id"] == good["lead_id"]]
    seal = seal_of_accepted(event)
    assert seal is not None and seal.publisher == "SAMR.33"
    key = registry.get(seal.publisher, seal.key_id)
    assert key is not None and reverify(key, seal, event["source"]["topic"], bytes(event["original"]))


def test_the_leadbus_gateway_command_serves_https_with_client_certificates(
        bus: SecureBus, work: Path, signing_key: Path, callers: dict[str, TlsPaths], make_lead) -> None:
    """`leadbus gateway` as an OS process on the secured bus (its principals from the clients folder): a local CA,
    a caller's certificate mapped with `leadbus gateway-cert`, a token from `leadbus gateway-token`, a signed 201."""
    state = work / "cli"
    made = _cli("gateway-token", "--agency", AGENCY, "--system", "cli-test", "--tokens", str(state / "tokens.json"))
    token = made.strip().splitlines()[-1]
    _cli("gateway-cert", "--agency", AGENCY, "--system", "nb-case-system", "--certificates",
         str(state / "certificates.json"), "--cert", str(callers["mapped"].cert))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (work / "cli-gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "leadbus.cli", "gateway", "--agency", AGENCY, "--province",
                             PROVINCE, "--port", str(port), "--client-config", str(bus.clients), "--signing-key",
                             str(signing_key), "--publisher-id", "SAMR.33-cli", "--state-dir", str(state),
                             "--client-ca", str(callers["mapped"].ca)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        ca = state / "tls" / "ca.pem"
        url = f"https://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return ca.exists() and httpx.get(f"{url}/healthz", verify=ssl.create_default_context(
                    cafile=str(ca)), timeout=2).json()["receipts_caught_up"] is True
            except (httpx.HTTPError, ValueError):
                return False

        wait_until(up, 90, "the gateway process and its receipts", interval=0.3)
        server_tls = TlsPaths(ca, ca, ca)
        lead = make_lead()
        resp = httpx.post(f"{url}/v1/leads", json=lead, verify=trust(server_tls, callers["mapped"]), timeout=60)
        assert resp.status_code == 201, resp.text
        receipt = httpx.get(f"{url}/v1/leads/{lead['lead_id']}", headers={"Authorization": f"Bearer {token}"},
                            verify=trust(server_tls), timeout=30)
        assert receipt.json()["status"] == "pending"  # no intake runs here
        with pytest.raises(HANDSHAKE_REFUSED):
            httpx.get(f"{url}/healthz", verify=trust(server_tls, callers["untrusted"]), timeout=30)
        assert httpx.get(f"{url}/healthz", verify=trust(server_tls), timeout=30).json()["receipts_error"] is None
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    # uvicorn re-raises SIGTERM once it has shut down gracefully; the clean stop wrote down exactly the numbers used
    assert proc.returncode in (0, -15), (work / "cli-gateway.log").read_text()[-3000:]
    assert sorted(json.loads((state / "SAMR.33-cli.seq").read_text()).values()) == [1]
    entries = read_access_log(state / "access.jsonl")
    assert [(e["system"], e["via"]) for e in entries if e["path"] == "/v1/leads"] == [("nb-case-system",
                                                                                       "certificate")]


# -- the bus down (last: it stops the module's broker) -----------------------------------------------------

def test_broker_down_is_503_and_nothing_is_published_later(gw: dict[str, Any], bus: SecureBus,
                                                           make_lead) -> None:
    client, gateway = gw["client"], gw["gateway"]
    assert client.post("/v1/leads", json=make_lead()).status_code == 201  # metadata known, producer connected
    partitions = gateway.publisher._partitions[0] if gateway.publisher._partitions else None
    assert partitions
    bus.cluster.stop_node(1)
    lost = make_lead()
    resp = client.post("/v1/leads", json=lost)
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "BUS_UNAVAILABLE" and resp.headers["retry-after"]
    assert len(gateway.publisher.producer) == 0  # the final delivery report came: the lead is queued nowhere
    batch = client.post("/v1/leads:batch", content=json.dumps(make_lead()).encode())
    assert [json.loads(x)["status"] for x in batch.text.splitlines()] == [503]
    assert len(gateway.publisher.producer) == 0
    bus.cluster.start_node(1)
    # A marker on the lost lead's partition, through the same producer, once the bus is back: had anything of the
    # lost lead still been on its way, it would sit before the marker.
    partition = zlib.crc32(lost["lead_id"].encode()) % partitions
    marker = make_lead()
    while zlib.crc32(marker["lead_id"].encode()) % partitions != partition:
        marker = make_lead()
    wait_until(lambda: client.post("/v1/leads", json=marker).status_code == 201, 120, "the gateway to recover",
               interval=1.0)
    ids = _intake_ids(bus)
    assert marker["lead_id"] in ids and lost["lead_id"] not in ids
    assert client.get(f"/v1/leads/{lost['lead_id']}").status_code == 404
    assert client.post("/v1/leads", json=lost).status_code == 201
    assert _intake_ids(bus).count(lost["lead_id"]) == 1
