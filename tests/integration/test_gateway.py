"""The agency gateway over real HTTPS against a real broker (issue 13, "What it must show", first bullet).

The gateway runs under uvicorn with TLS from a local CA made by `producers/gateway/tls.py`; callers are
httpx clients that trust only that CA. The broker is plaintext here: the secured broker (TLS + SCRAM, ACLs)
is another branch's work; the gateway takes its Kafka settings from `KafkaSettings` (`--client-config`), so
its security settings reach the gateway's producer and receipt reader unchanged.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from leadbus.access_log import read_access_log
from leadbus.avro import decode, packaged_catalog
from leadbus.cli import app as cli
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.processors.core.intake import seal_of_accepted
from leadbus.producers import Publisher
from leadbus.producers.gateway import Gateway, GatewayConfig, create_app
from leadbus.producers.gateway.auth import add_token
from leadbus.producers.gateway.tls import TlsPaths, local_tls
from leadbus.producers.signing import MemorySequences, SigningSealer, load_private_key
from leadbus.provisioning.topics import apply_topics
from leadbus.publisher_keys import read_registry
from leadbus.signing import reverify
from leadbus.topics import LEADS_ACCEPTED, intake_topic, load_declarations
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
runner = CliRunner()
AGENCY, PROVINCE = "SAMR", "33"


class GatewayServer:
    """A real uvicorn server with TLS on a free loopback port, in a thread."""

    def __init__(self, gateway: Gateway, tls: TlsPaths) -> None:
        self.gateway = gateway
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(gateway), log_level="warning", timeout_graceful_shutdown=1,
                                ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> GatewayServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 30, f"{self.url} to start", interval=0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
        assert not self.thread.is_alive(), f"{self.url} did not stop"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path_factory.mktemp("gateway-kafka")) as kc:
        apply_topics(kc.bootstrap_servers, load_declarations())
        yield kc


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def tls(work: Path) -> TlsPaths:
    return local_tls(work / "tls", ["localhost", "127.0.0.1"])


@pytest.fixture(scope="module")
def signing_key(cluster: KafkaCluster, work: Path) -> Path:
    """The agency's key, generated and registered (signatures required) with the `leadbus keys` commands."""
    key = work / "SAMR.33.key"
    for args in (["keys", "generate", "--out", str(key)],
                 ["keys", "register", "SAMR.33", "--public-key", f"{key}.pub", "-b", cluster.bootstrap_servers]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    return key


def _gateway(cluster: KafkaCluster, work: Path, key: Path, name: str, **options: Any) -> tuple[Gateway, str]:
    state = work / name
    config = GatewayConfig(AGENCY, PROVINCE, tokens=state / "tokens.json", state_dir=state, **options)
    token = add_token(config.tokens, "hz-case-system", AGENCY)
    sealer = SigningSealer.from_file(config.signer, key, state / f"{config.signer}.seq")
    return Gateway(config, KafkaSettings(cluster.bootstrap_servers), sealer), token


@pytest.fixture(scope="module")
def gw(cluster: KafkaCluster, work: Path, signing_key: Path, tls: TlsPaths) -> Iterator[dict[str, Any]]:
    gateway, token = _gateway(cluster, work, signing_key, "main", publish_timeout=6.0)
    with GatewayServer(gateway, tls) as server, httpx.Client(
            base_url=server.url, verify=_trust(tls), headers={"Authorization": f"Bearer {token}"},
            timeout=60) as client:
        yield {"server": server, "client": client, "gateway": gateway, "token": token}


def _trust(tls: TlsPaths) -> ssl.SSLContext:
    """Trust the local CA, and only it."""
    return ssl.create_default_context(cafile=str(tls.ca))


def _intake_ids(bootstrap: str) -> list[str]:
    out = []
    for msg in read_all(bootstrap, intake_topic(AGENCY)):
        _, record = decode(CATALOG, msg.value())
        out.append(str(record["lead_id"]))
    return out


# -- answers of POST /v1/leads -------------------------------------------------------------------------

def test_tls_only_and_tokens_required(gw: dict[str, Any], tls: TlsPaths, make_lead) -> None:
    url = gw["server"].url
    with pytest.raises(httpx.ConnectError):  # the local CA is the only trust: no other certificate passes
        httpx.get(f"{url}/healthz", verify=True, timeout=10)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https://", "http://") + "/healthz", timeout=10)
    for headers in ({}, {"Authorization": "Bearer lbt_not-a-token"}, {"Authorization": "Basic eDp5"}):
        resp = httpx.post(f"{url}/v1/leads", json=make_lead(), headers=headers, verify=_trust(tls), timeout=30)
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
    try:
        sdk.validate(bad)
    except Exception as exc:  # noqa: BLE001 - InvalidLead
        assert {(e.field, e.code) for e in exc.errors} == codes  # type: ignore[attr-defined]
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


def test_oversized_leads_get_413(gw: dict[str, Any], cluster: KafkaCluster, make_lead) -> None:
    client = gw["client"]
    lead = make_lead(evidence=[{"kind": "page", "uri": "https://e.example/" + "z" * (300 * 1024), "sha256": "b" * 64}])
    resp = client.post("/v1/leads", json=lead)
    assert resp.status_code == 413
    assert resp.json()["errors"][0]["code"] == "OVERSIZED"
    assert resp.json()["errors"][0]["field"] == "evidence.0.uri"
    resp = client.post("/v1/leads", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["error"] == "BODY_TOO_LARGE"
    assert lead["lead_id"] not in _intake_ids(cluster.bootstrap_servers)


def test_a_valid_lead_is_201_after_confirmation_and_a_repost_publishes_once(
        gw: dict[str, Any], cluster: KafkaCluster, make_lead) -> None:
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
    found = [m for m in read_all(cluster.bootstrap_servers, intake_topic(AGENCY))
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


def test_batch_answers_per_line(gw: dict[str, Any], cluster: KafkaCluster, make_lead) -> None:
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
    ids = _intake_ids(cluster.bootstrap_servers)
    assert ids.count(twice["lead_id"]) == 1 and ids.count(good["lead_id"]) == 1 and ids.count(known["lead_id"]) == 1


def test_a_callers_rate_is_limited_with_429(cluster: KafkaCluster, work: Path, signing_key: Path, tls: TlsPaths,
                                             make_lead) -> None:
    gateway, token = _gateway(cluster, work, signing_key, "slow", rate=0.2, burst=2)  # publishes nothing
    with GatewayServer(gateway, tls) as server, httpx.Client(
            base_url=server.url, verify=_trust(tls), headers={"Authorization": f"Bearer {token}"}) as client:
        statuses = [client.post("/v1/leads", json=make_lead(lead_id="bad")).status_code for _ in range(3)]
        assert statuses[:2] == [422, 422] and statuses[2] == 429
        resp = client.post("/v1/leads", json=make_lead())
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
        assert resp.json()["error"] == "RATE_LIMITED"


def test_every_call_is_logged(gw: dict[str, Any], tls: TlsPaths, make_lead) -> None:
    lead = make_lead()
    gw["client"].post("/v1/leads", json=lead)
    httpx.post(f"{gw['server'].url}/v1/leads", json=lead, verify=_trust(tls), timeout=30)
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


def test_schemathesis_finds_no_server_error(gw: dict[str, Any], tls: TlsPaths, tmp_path: Path) -> None:
    url = gw["server"].url
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json",
           "--checks", "not_a_server_error", "--tls-verify", str(tls.ca),
           "-H", f"Authorization: Bearer {gw['token']}", "--max-examples", "40", "--workers", "1",
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


# -- receipts, end to end with intake and linking --------------------------------------------------------

def test_receipts_accepted_with_case_and_rejected_with_reason(
        gw: dict[str, Any], cluster: KafkaCluster, work: Path, signing_key: Path, tls: TlsPaths, make_lead) -> None:
    client, bootstrap = gw["client"], cluster.bootstrap_servers
    good = make_lead()
    # A gateway whose key was never registered (SAMR.33-gw2): intake refuses its leads as UNKNOWN_KEY.
    rogue_key = work / "gw2.key"
    assert runner.invoke(cli, ["keys", "generate", "--out", str(rogue_key)]).exit_code == 0
    rogue, rogue_token = _gateway(cluster, work, rogue_key, "rogue", publisher_id="SAMR.33-gw2")
    refused = make_lead()
    # A lead sent through the SDK only (another signing process of SAMR.33), known to the gateway from the bus.
    sdk_key = work / "sdk.key"
    assert runner.invoke(cli, ["keys", "generate", "--out", str(sdk_key)]).exit_code == 0
    assert runner.invoke(cli, ["keys", "register", "SAMR.33-sdk", "--public-key", f"{sdk_key}.pub",
                               "-b", bootstrap]).exit_code == 0
    sdk_lead = make_lead(**{"publisher.unit": "宁波市市场监督管理局"})
    sealer = SigningSealer("SAMR.33-sdk", load_private_key(sdk_key.read_bytes()), MemorySequences())
    with Publisher(AGENCY, PROVINCE, bootstrap_servers=bootstrap, sealer=sealer) as sdk:
        (sdk_delivery,) = sdk.wait([sdk.publish(sdk_lead)])

    with GatewayServer(rogue, tls) as server, httpx.Client(
            base_url=server.url, verify=_trust(tls), headers={"Authorization": f"Bearer {rogue_token}"},
            timeout=60) as rogue_client:
        assert client.post("/v1/leads", json=good).status_code == 201
        assert rogue_client.post("/v1/leads", json=refused).status_code == 201
        for c, lead in ((client, good), (rogue_client, refused)):
            receipt = c.get(f"/v1/leads/{lead['lead_id']}")
            assert receipt.status_code == 200 and receipt.json()["status"] == "pending", receipt.text
        assert client.get(f"/v1/leads/{uuid.uuid4()}").status_code == 404
        assert client.get(f"/v1/leads/{refused['lead_id']}").status_code == 404  # not this gateway's

        workers = [start_worker(bootstrap, work / "state" / stage, f"gw-{stage}", work / "logs", stage=stage)
                   for stage in ("intake", "linking")]
        try:
            wait_until(lambda: rogue_client.get(f"/v1/leads/{refused['lead_id']}").json()["status"] != "pending",
                       120, "the refused lead's receipt")
            wait_until(lambda: client.get(f"/v1/leads/{good['lead_id']}").json()["case_id"] is not None, 120,
                       "the accepted lead's receipt with its case")
            wait_until(lambda: client.get(f"/v1/leads/{sdk_lead['lead_id']}").status_code == 200, 60,
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
    assert _intake_ids(bootstrap).count(sdk_lead["lead_id"]) == 1

    # The accepted event carries the gateway's seal: verifiable by anyone from the event and the key registry.
    registry = read_registry(bootstrap)
    (event,) = [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, LEADS_ACCEPTED)
                if decode(CATALOG, m.value())[1]["lead"]["lead_id"] == good["lead_id"]]
    seal = seal_of_accepted(event)
    assert seal is not None and seal.publisher == "SAMR.33"
    key = registry.get(seal.publisher, seal.key_id)
    assert key is not None and reverify(key, seal, event["source"]["topic"], bytes(event["original"]))


def test_the_leadbus_gateway_command_serves_https(cluster: KafkaCluster, work: Path, signing_key: Path,
                                                  make_lead) -> None:
    """`leadbus gateway` as an OS process: a local CA, a token from `leadbus gateway-token`, a signed 201."""
    state = work / "cli"
    made = runner.invoke(cli, ["gateway-token", "--agency", AGENCY, "--system", "cli-test", "--tokens",
                               str(state / "tokens.json")])
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (work / "cli-gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "leadbus.cli", "gateway", "--agency", AGENCY, "--province",
                             PROVINCE, "--port", str(port), "-b", cluster.bootstrap_servers, "--signing-key",
                             str(signing_key), "--publisher-id", "SAMR.33-cli", "--state-dir", str(state)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        ca = state / "tls" / "ca.pem"
        url = f"https://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return ca.exists() and httpx.get(f"{url}/healthz", verify=ssl.create_default_context(
                    cafile=str(ca)), timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 60, "the gateway process", interval=0.3)
        trust = ssl.create_default_context(cafile=str(ca))
        lead = make_lead()
        resp = httpx.post(f"{url}/v1/leads", json=lead, headers={"Authorization": f"Bearer {token}"}, verify=trust,
                          timeout=60)
        assert resp.status_code == 201, resp.text
        assert httpx.get(f"{url}/v1/leads/{lead['lead_id']}", headers={"Authorization": f"Bearer {token}"},
                         verify=trust, timeout=30).json()["status"] == "pending"  # no intake runs here
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    # uvicorn re-raises SIGTERM once it has shut down gracefully; the clean stop wrote down exactly the numbers used
    assert proc.returncode in (0, -15), (work / "cli-gateway.log").read_text()[-3000:]
    assert sorted(json.loads((state / "SAMR.33-cli.seq").read_text()).values()) == [1]


# -- the bus down (last: it stops the module's broker) -----------------------------------------------------

def test_broker_down_is_503_and_nothing_is_published_later(gw: dict[str, Any], cluster: KafkaCluster,
                                                           make_lead) -> None:
    client, bootstrap = gw["client"], cluster.bootstrap_servers
    assert client.post("/v1/leads", json=make_lead()).status_code == 201  # metadata known, producer connected
    cluster.stop_node(1)
    lost = make_lead()
    started = time.monotonic()
    resp = client.post("/v1/leads", json=lost)
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "BUS_UNAVAILABLE" and resp.headers["retry-after"]
    assert time.monotonic() - started < 6.0 + 20
    batch = client.post("/v1/leads:batch", content=json.dumps(make_lead()).encode())
    assert [json.loads(x)["status"] for x in batch.text.splitlines()] == [503]
    cluster.start_node(1)
    time.sleep(10)  # time for anything still queued anywhere to be delivered: nothing is
    assert lost["lead_id"] not in _intake_ids(bootstrap)
    assert client.get(f"/v1/leads/{lost['lead_id']}").status_code == 404
    wait_until(lambda: client.post("/v1/leads", json=lost).status_code == 201, 60, "the gateway to recover",
               interval=1.0)
    assert _intake_ids(bootstrap).count(lost["lead_id"]) == 1
