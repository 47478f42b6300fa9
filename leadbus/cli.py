"""The `leadbus` command line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console

from leadbus.clients import CLIENT_CONFIG_ENV, ClientConfigError, KafkaSettings, resolve_settings
from leadbus.kafka.runtime import KAFKA_VERSION, cache_dir, ensure_kafka_libs

app = typer.Typer(help="leadbus: the cross-agency event bus for case leads (国办发〔2015〕77号).", no_args_is_help=True)
broker_app = typer.Typer(help="Run local Kafka brokers from Maven Central jars.", no_args_is_help=True)
topics_app = typer.Typer(help="Topics as declared in deploy/topics.yaml.", no_args_is_help=True)
schemas_app = typer.Typer(help="The Avro schema catalog.", no_args_is_help=True)
acl_app = typer.Typer(help="Principals, SCRAM users and ACLs as declared in deploy/acl-policy.yaml.",
                      no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(acl_app, name="acl")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
console = Console()

BOOTSTRAP = typer.Option(None, "--bootstrap", "-b", envvar="LEADBUS_BOOTSTRAP",
                         help="Kafka bootstrap servers (default: the broker started by `leadbus broker up`).")
CLIENT_CONFIG = typer.Option(
    None, "--client-config", envvar=CLIENT_CONFIG_ENV,
    help="Security settings of the bus: a principal's client file (JSON of confluent-kafka settings, e.g. "
         "var/secure/clients/intake.json) or a folder of them, where each component takes <principal>.json. "
         "Default: the folder `leadbus broker up --secure` wrote; none on an open broker.")


def _state_file() -> Path:
    return cache_dir() / "run" / "broker.json"


def _bootstrap(value: str | None) -> str:
    if value:
        return value
    state = _state_file()
    if state.exists():
        return str(json.loads(state.read_text())["bootstrap"])
    raise typer.BadParameter("no --bootstrap given and no local broker running (try `leadbus broker up`)")


def _recorded_clients() -> str | None:
    state = _state_file()
    if state.exists():
        value = json.loads(state.read_text()).get("client_config")
        return str(value) if value else None
    return None


def _settings(bootstrap: str | None, client_config: str | None, principal: str) -> KafkaSettings:
    """The one way a command finds its connection: --client-config / $LEADBUS_CLIENT_CONFIG, else the local broker."""
    # the folder `broker up --secure` recorded belongs to the recorded broker: not to one named by --bootstrap
    source = client_config or (None if bootstrap else _recorded_clients())
    try:
        if source:
            return resolve_settings(source, principal, bootstrap)
        return KafkaSettings(_bootstrap(bootstrap))
    except ClientConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


# -- broker -----------------------------------------------------------------------------


@broker_app.command("fetch")
def broker_fetch(version: str = typer.Option(KAFKA_VERSION, help="Apache Kafka version")) -> None:
    """Collect the Kafka broker jars from Maven Central into the cache (once)."""
    libs = ensure_kafka_libs(version)
    console.print(f"Kafka {version}: {len(list(libs.glob('*.jar')))} jars in {libs}")


@broker_app.command("up")
def broker_up(
    nodes: int = typer.Option(1, help="1 or 3 KRaft nodes"),
    secure: bool = typer.Option(False, "--secure", help="TLS, SASL/SCRAM-SHA-512, mutual TLS between nodes, "
                                                        "ACLs from deploy/acl-policy.yaml (deny by default)."),
    secure_dir: Path = typer.Option(Path("var/secure"), help="With --secure: the local CA (tls/) and every "
                                                             "principal's client settings (clients/)."),
) -> None:
    """Start local brokers in the background and apply the declared topics (and, secured, the ACL policy)."""
    from leadbus.kafka import KafkaCluster
    from leadbus.kafka.admin import apply_topics
    from leadbus.topics import load_declarations

    if _state_file().exists():
        console.print("a local broker is already recorded; run `leadbus broker down` first")
        raise typer.Exit(1)
    directory = cache_dir() / "run" / "kafka"
    shutil.rmtree(directory, ignore_errors=True)
    if not secure:
        cluster = KafkaCluster(nodes, directory, tie_to_parent=False)
        cluster.start()
        apply_topics(cluster.bootstrap_servers, load_declarations())
        state = cluster.detach()
        _state_file().write_text(json.dumps(state))
        console.print(f"[green]up[/green]: {nodes} node(s) at {state['bootstrap']}")
        return
    from leadbus.acl import load_policy
    from leadbus.kafka.acls import apply_policy
    from leadbus.kafka.secure import secure_cluster

    secure_dir = secure_dir.resolve()
    cluster = secure_cluster(nodes, directory, secure_dir, tie_to_parent=False)
    cluster.start()
    apply_topics(cluster.admin_settings, load_declarations())
    report = apply_policy(cluster.admin_settings, load_policy(), secure_dir / "clients")
    state = {**cluster.detach(), "client_config": str(secure_dir / "clients")}
    _state_file().write_text(json.dumps(state))
    console.print(f"[green]up, secured[/green]: {nodes} node(s) at {state['bootstrap']} (SASL_SSL, SCRAM-SHA-512); "
                  f"{len(report.files)} principals' client settings in {secure_dir / 'clients'}")


@broker_app.command("down")
def broker_down() -> None:
    """Stop the brokers started by `leadbus broker up` and delete their data."""
    state_path = _state_file()
    if not state_path.exists():
        console.print("no local broker recorded")
        return
    state = json.loads(state_path.read_text())
    for pid in state["pids"]:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 30
    for pid in state["pids"]:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(state["directory"], ignore_errors=True)
    state_path.unlink()
    console.print("[green]down[/green]")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@broker_app.command("status")
def broker_status() -> None:
    """Say whether the local brokers answer."""

    state_path = _state_file()
    if not state_path.exists():
        console.print("no local broker recorded")
        raise typer.Exit(1)
    state = json.loads(state_path.read_text())
    alive = [pid for pid in state["pids"] if _alive(pid)]
    try:
        admin = _settings(None, None, "admin").admin(log_level=0)
        meta = admin.list_topics(timeout=5)
        console.print(f"{state['bootstrap']}: {len(meta.brokers)} broker(s) serving, {len(meta.topics)} topics; "
                      f"{len(alive)}/{len(state['pids'])} processes alive")
    except Exception as exc:  # noqa: BLE001 - report, never crash
        console.print(f"{state['bootstrap']}: not answering ({exc}); {len(alive)} processes alive")
        raise typer.Exit(1) from None


# -- topics -----------------------------------------------------------------------------


@topics_app.command("apply")
def topics_apply(
    bootstrap: str | None = BOOTSTRAP,
    check: bool = typer.Option(False, "--check", help="Only report drift; change nothing."),
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Create missing topics, add partitions, correct config drift; report what differed."""
    from leadbus.kafka.admin import admin_client, apply_topics, describe_existing
    from leadbus.topics import load_declarations, plan

    target = _settings(bootstrap, client_config, "admin")
    specs = load_declarations()
    if check:
        admin = admin_client(target)
        brokers = len(admin.list_topics(timeout=15).brokers)
        specs = [s.for_cluster(brokers) for s in specs]
        found = plan(specs, describe_existing(admin, [s.name for s in specs]))
    else:
        found = apply_topics(target, specs)
    verb = "missing" if check else "created"
    console.print(f"{len(specs)} declared; {len(found.create)} {verb}; {len(found.add_partitions)} need partitions; "
                  f"{len(found.config_drift)} config drift; {len(found.replication_drift)} replication drift")
    for name, key, have, want in found.config_drift:
        console.print(f"  drift {name}: {key} = {have!r}, declared {want!r}")
    for name, have_rf, want_rf in found.replication_drift:
        console.print(f"  drift {name}: replication {have_rf}, declared {want_rf} (reassign by hand)")
    for name in found.undeclared:
        console.print(f"  undeclared topic {name}")
    if check and not found.in_sync:
        raise typer.Exit(1)


# -- acl --------------------------------------------------------------------------------


@acl_app.command("apply")
def acl_apply(
    bootstrap: str | None = BOOTSTRAP,
    check: bool = typer.Option(False, "--check", help="Only report drift; change nothing (exit 1 on drift)."),
    client_config: str | None = CLIENT_CONFIG,
    clients_dir: Path = typer.Option(Path("var/secure/clients"), help="Where each principal's client settings "
                                                                     "(<principal>.json, mode 0600) are written."),
    rotate: list[str] = typer.Option([], help="A principal whose SCRAM password to replace (repeatable)."),
) -> None:
    """Create the policy's SCRAM users and ACLs, report drift (missing, extra, changed) and correct it."""
    from leadbus.acl import load_policy
    from leadbus.kafka.acls import apply_policy

    admin = _settings(bootstrap, client_config, "admin")
    if admin.principal is None:
        raise typer.BadParameter("acl apply needs the admin's client settings (--client-config var/secure/clients)")
    policy = load_policy()
    from leadbus.kafka.acls import NotAdmin

    try:
        report = apply_policy(admin, policy, clients_dir, check=check, rotate=rotate)
    except NotAdmin as exc:
        console.print(f"[red]refused[/red]: {exc}")
        raise typer.Exit(2) from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    verb = "missing" if check else "created"
    console.print(f"{len(policy.principals)} principals, {len(policy.grants())} grants declared; "
                  f"{len(report.users.missing)} users {verb}, {len(report.users.extra)} undeclared users; "
                  f"{len(report.acls.missing)} grants {verb}, {len(report.acls.extra)} extra")
    changed = {resource for resource, _, _ in report.acls.changed}
    for resource, missing, extra in report.acls.changed:
        console.print(f"  changed {resource[0]} on {resource[1]} {resource[2]} ({resource[3]}): "
                      f"declared {sorted(g.operation for g in missing)}, found {sorted(g.operation for g in extra)}")
    for grant in report.acls.missing:
        if grant.resource not in changed:
            console.print(f"  missing {grant.describe()}")
    for grant in report.acls.extra:
        if grant.resource not in changed:
            console.print(f"  extra   {grant.describe()}" + ("" if check else " (deleted)"))
    for user in report.users.missing:
        console.print(f"  missing user {user}")
    for user in report.users.extra:
        console.print(f"  undeclared user {user}" + ("" if check else " (credential deleted)"))
    for user in report.rotated:
        console.print(f"  password of {user} " + ("would be replaced" if check else "replaced"))
    for user in report.rewritten:
        console.print(f"  no usable client file for {user}" + ("" if check else ": new password set"))
    if not check:
        console.print(f"client settings of {len(report.files)} principals in {clients_dir}")
    if check and not report.in_sync:
        raise typer.Exit(1)


# -- schemas ----------------------------------------------------------------------------


@schemas_app.command("list")
def schemas_list() -> None:
    """List packaged schema versions with their fingerprints."""
    from leadbus.avro import packaged_catalog

    for entry in sorted(packaged_catalog(), key=lambda e: (e.name, e.version)):
        console.print(f"{entry.name} v{entry.version}  {entry.fingerprint_hex}")


@schemas_app.command("publish")
def schemas_publish(bootstrap: str | None = BOOTSTRAP, client_config: str | None = CLIENT_CONFIG) -> None:
    """Publish every packaged schema version to the compacted `leadbus.schemas` topic (as the admin)."""
    from leadbus.avro import packaged_catalog
    from leadbus.schema_topic import publish_schemas

    count = publish_schemas(_settings(bootstrap, client_config, "admin"), list(packaged_catalog()))
    console.print(f"{count} schemas published")


# -- traffic ----------------------------------------------------------------------------


@app.command("simulate")
def simulate(
    rate: float = typer.Option(20.0, "--rate", "-r", help="Leads per second."),
    duration: float = typer.Option(10.0, "--duration", "-d", help="Seconds; 0 runs until interrupted."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed publishes the same leads."),
    same_suspect_share: float = typer.Option(0.25, help="Share of leads about an already-reported suspect."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Publish realistic simulated agency traffic through the publisher SDK (each agency as its own principal)."""
    from leadbus.producers.traffic import Traffic

    traffic = Traffic(lambda agency: _settings(bootstrap, client_config, f"publisher-{agency}"), seed=seed,
                      same_suspect_share=same_suspect_share)
    report = traffic.run(rate, duration)
    console.print(f"published {report.published}, confirmed {report.confirmed}, failed {report.failed} "
                  f"in {report.seconds:.1f}s")
    if report.failed:
        raise typer.Exit(1)


STAGES = ("intake", "linking", "handover", "routing")


@app.command("process")
def process(
    bootstrap: str | None = BOOTSTRAP,
    stage: str = typer.Option("all", help="intake, linking, handover, routing, or all (one process per stage)."),
    state_dir: Path = typer.Option(Path("var/state"), help="Local RocksDB state (rebuilt from changelogs if lost)."),
    worker_id: str | None = typer.Option(None, help="Stable id of this worker (its transactional id)."),
    metrics_port: int = typer.Option(0, help="Serve Prometheus metrics on this port (0 = off)."),
    max_seconds: float = typer.Option(0.0, help="Stop after this many seconds (0 = run until SIGTERM)."),
    engine: str = typer.Option("stage", help="'stage' (transactional, exactly-once) or 'faust' (intake only)."),
    time_scale: float = typer.Option(1.0, help="Handover clock speed: 86400 makes a statutory day pass in a second "
                                                "(demos and tests; deadlines still count from the events' times)."),
    working_days: bool = typer.Option(False, help="Count handover deadlines in working days, not calendar days."),
    day_seconds: float = typer.Option(0.0, help="Demo calendar: a statutory day lasts this many seconds (0 = off)."),
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Run the stream processors: intake (verify, validate, normalise, dedupe) and linking (cases).

    Several workers of a stage share its input partitions (linking keeps one active owner). Each stage
    connects as its own principal (`<stage>.json` of a --client-config folder).
    """
    if client_config:  # the stages of `--stage all` are child processes: they read it from the environment
        os.environ[CLIENT_CONFIG_ENV] = client_config
    target = _settings(bootstrap, client_config, stage if stage in STAGES else "intake").bootstrap
    if engine == "faust":
        import sys

        if _settings(bootstrap, client_config, "intake").security:
            raise typer.BadParameter("the faust comparison engine runs on open brokers only; use --engine stage")

        from leadbus.processors.faust_app import run_worker

        sys.argv = ["leadbus-faust", "worker"]
        run_worker(target, state_dir / "faust")
        return
    if engine != "stage":
        raise typer.BadParameter("--engine is 'stage' or 'faust'")
    if stage == "all":
        _supervise(target, state_dir, worker_id, metrics_port, max_seconds, time_scale, day_seconds)
        return
    if stage not in STAGES:
        raise typer.BadParameter(f"--stage is one of {', '.join(STAGES)} or all")
    from leadbus.logs import configure_json_logging
    from leadbus.processors.stage import ExactlyOnceStage, Handler, StageConfig

    configure_json_logging()
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    kafka = _settings(bootstrap, client_config, stage)
    if stage == "intake":
        from leadbus.processors.intake import CHANGELOG, TOPICS, IntakeHandler
        from leadbus.topics import INTAKE_BY_LEAD

        config = StageConfig(name="intake", kafka=kafka, topics=TOPICS, changelog_topic=CHANGELOG,
                             state_dir=state_dir, group_id="leadbus-intake", state_topic=INTAKE_BY_LEAD)
        handler: Handler = IntakeHandler()
    elif stage == "linking":
        from leadbus.processors import linking
        from leadbus.topics import LEADS_ACCEPTED

        config = StageConfig(name="linking", kafka=kafka, topics=[LEADS_ACCEPTED],
                             changelog_topic=linking.CHANGELOG, state_dir=state_dir, group_id="leadbus-linking",
                             global_state=True)
        handler = linking.LinkingHandler()
    elif stage == "routing":
        from leadbus.processors import routing
        from leadbus.processors.routing import RoutingHandler
        from leadbus.topics import ROUTING_CHANGELOG

        config = StageConfig(name="routing", kafka=kafka, topics=routing.TOPICS, changelog_topic=ROUTING_CHANGELOG,
                             state_dir=state_dir, group_id="leadbus-routing")
        handler = RoutingHandler()
    else:
        from leadbus.processors import handover
        from leadbus.processors.core.deadlines import CalendarDays, CompressedDays, DayCounting, WorkingDays
        from leadbus.topics import CASES, HANDOVER_DECISIONS

        config = StageConfig(name="handover", kafka=kafka, topics=[CASES, HANDOVER_DECISIONS],
                             changelog_topic=handover.CHANGELOG, state_dir=state_dir, group_id="leadbus-handover")
        counting: DayCounting = WorkingDays() if working_days else CalendarDays()
        if day_seconds:
            counting = CompressedDays(day_seconds)
        handler = handover.HandoverHandler(counting=counting)
    if worker_id:
        config.worker_id = worker_id
    # Only the handover stage's clock may run fast: the others stamp events in real time.
    clock = _scaled_clock(time_scale if stage == "handover" else 1.0)
    ExactlyOnceStage(config, handler, clock=clock).run(
        max_seconds=max_seconds or None, install_signals=True)


def _scaled_clock(scale: float) -> Callable[[], datetime]:
    """Real time, or time running `scale` times faster from now on."""
    start = datetime.now(UTC)
    began = time.monotonic()
    if scale == 1.0:
        return lambda: datetime.now(UTC)
    return lambda: start + timedelta(seconds=(time.monotonic() - began) * scale)


def _supervise(bootstrap: str, state_dir: Path, worker_id: str | None, metrics_port: int, max_seconds: float,
               time_scale: float, day_seconds: float) -> None:
    """One OS process per stage; SIGTERM stops them all."""
    import subprocess
    import sys

    children = []
    for i, name in enumerate(STAGES):
        cmd = [sys.executable, "-m", "leadbus.cli", "process", "--stage", name, "-b", bootstrap,
               "--state-dir", str(state_dir), "--max-seconds", str(max_seconds)]
        if name == "handover":
            cmd += ["--time-scale", str(time_scale), "--day-seconds", str(day_seconds)]
        if worker_id:
            cmd += ["--worker-id", f"{worker_id}-{name}"]
        if metrics_port:
            cmd += ["--metrics-port", str(metrics_port + i)]
        children.append(subprocess.Popen(cmd))
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while any(child.poll() is None for child in children):
        time.sleep(0.5)
        if not stopping and any(child.poll() not in (None, 0) for child in children):
            stop()
    if any(child.returncode not in (0, -signal.SIGTERM) for child in children):
        raise typer.Exit(1)


@app.command("registry")
def registry(
    bootstrap: str | None = BOOTSTRAP,
    url: str = typer.Option("sqlite:///var/registry.db", envvar="LEADBUS_REGISTRY_URL",
                            help="SQLAlchemy URL: sqlite:///file.db or postgresql+psycopg://user@host:port/db."),
    max_seconds: float = typer.Option(0.0, help="Stop after this many seconds (0 = run until SIGTERM)."),
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Fill the case registry (leads, cases, members, handover steps) from the bus, exactly once."""
    from leadbus.logs import configure_json_logging
    from leadbus.sinks.registry_sink import run_registry

    configure_json_logging()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    run_registry(_settings(bootstrap, client_config, "registry"), url, max_seconds=max_seconds or None)


@app.command("takedown")
def takedown(
    bootstrap: str | None = BOOTSTRAP,
    endpoint: list[str] = typer.Option([], help="platform=URL of its notice endpoint (repeatable)."),
    default_endpoint: str | None = typer.Option(None, help="URL for platforms without their own endpoint."),
    secret_env: str = typer.Option("LEADBUS_WEBHOOK_SECRET", help="Environment variable holding the HMAC secret."),
    max_seconds: float = typer.Option(0.0, help="Stop after this many seconds (0 = run until interrupted)."),
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Send notice-and-takedown (通知—删除) webhooks to platforms; record replies, dead-letter failures."""
    from leadbus.sinks.takedown_sink import run_takedown

    secret = os.environ.get(secret_env)
    if not secret:
        raise typer.BadParameter(f"set {secret_env} to the shared HMAC secret")
    endpoints = dict(item.split("=", 1) for item in endpoint)
    run_takedown(_settings(bootstrap, client_config, "takedown"), endpoints, secret.encode(),
                 default_endpoint=default_endpoint, max_seconds=max_seconds or None)


archive_app = typer.Typer(help="The tamper-evident Avro archive of the bus.", no_args_is_help=True)
app.add_typer(archive_app, name="archive")


@archive_app.command("verify")
def archive_verify(
    directory: Path = typer.Argument(..., help="The archive folder (holding MANIFEST.jsonl)."),
    head: str | None = typer.Option(None, help="The chain value of the last manifest line you kept."),
) -> None:
    """Check an archive without the bus: digests, missing, unlisted and reordered files, the hash chain."""
    from leadbus.sinks.archive import read_manifest, verify

    problems = verify(directory, head=head)
    for problem in problems:
        console.print(f"[red]{problem.kind}[/red]\t{problem.path}\t{problem.message}")
    if problems:
        raise typer.Exit(1)
    entries = read_manifest(directory)
    console.print(f"ok: {len(entries)} files; head {entries[-1].chain if entries else '(empty)'}")


@archive_app.command("run")
def archive_run(
    directory: Path = typer.Argument(..., help="Where to write the archive."),
    bootstrap: str | None = BOOTSTRAP,
    topic: list[str] = typer.Option(["^leadbus\\.intake\\..*", "leadbus.leads.accepted", "leadbus.leads.rejected",
                                     "leadbus.withdrawals"],
                                    help="Topics (or ^regex) to archive."),
    seal_after_seconds: float = typer.Option(900.0, help="Seal a quiet partition's file after this long."),
    max_seconds: float = typer.Option(0.0, help="Stop after this many seconds (0 = until SIGTERM)."),
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Archive topics into Avro container files per topic, partition and hour, with a chained manifest."""
    import threading

    from leadbus.sinks.archive_sink import run_archive

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stats = run_archive(_settings(bootstrap, client_config, "archive"), list(topic), directory,
                        max_seconds=max_seconds or None, seal_after_seconds=seal_after_seconds, stop=stop)
    console.print(str(stats))


@app.command("dashboard")
def dashboard(
    region: str = typer.Option(..., help="jjj (京津冀), yrd (长三角) or pprd (泛珠三角)."),
    bootstrap: str | None = BOOTSTRAP,
    host: str = typer.Option("127.0.0.1", help="Address to serve on."),
    port: int = typer.Option(8080, help="Port to serve on."),
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Serve a regional dashboard: live masked cases, counts, the handover board, search."""
    from leadbus.geography import REGIONS
    from leadbus.sinks.dashboard import run

    if region not in REGIONS:
        raise typer.BadParameter(f"--region is one of {', '.join(sorted(REGIONS))}")
    run(_settings(bootstrap, client_config, f"dashboard-{region}"), region, host=host, port=port)


@app.command("link")
def link(
    input_path: Path = typer.Option(..., "--input", "-i", help="CaseLead JSON lines (DESIGN §3 names)."),
    output_path: Path = typer.Option(..., "--output", "-o", help="CSV with a header lead_id,case_id."),
) -> None:
    """Link leads offline with the same code as the stream; write one lead_id,case_id row per lead."""
    import csv

    from pydantic import ValidationError

    from leadbus.models import CaseLead
    from leadbus.processors.core.linking import link_offline

    leads = []
    with input_path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                leads.append(CaseLead.model_validate_json(line))
            except ValidationError as exc:
                console.print(f"[red]line {number}[/red]: {exc.errors(include_url=False)[0]}")
                raise typer.Exit(2) from None
    cases = link_offline(leads)
    with output_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["lead_id", "case_id"])
        for lead in leads:
            writer.writerow([lead.lead_id, cases[lead.lead_id]])
    console.print(f"{len(leads)} leads → {len(set(cases.values()))} cases → {output_path}")


@app.command("demo")
def demo(
    rate: float = typer.Option(20.0, "--rate", "-r", help="Simulated leads per second."),
    duration: float = typer.Option(0.0, "--duration", "-d", help="Seconds; 0 runs until Ctrl-C."),
    seed: int = typer.Option(0, "--seed"),
    day_seconds: float = typer.Option(15.0, help="Demo calendar: a statutory day of handover deadlines lasts "
                                                 "this many seconds."),
    secure: bool = typer.Option(False, "--secure", help="Run it all secured: TLS, SCRAM, ACLs, one principal each."),
) -> None:
    """Start a broker, apply topics, run the processors and the simulated agencies, and show it all live."""
    from leadbus.demo import run_demo

    run_demo(rate=rate, duration=duration, seed=seed, console=console, day_seconds=day_seconds, secure=secure)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
