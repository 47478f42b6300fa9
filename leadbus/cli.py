"""The `leadbus` command line."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from leadbus.batches import REGISTRY_GAP
from leadbus.clients import CLIENT_CONFIG_ENV, ClientConfigError, KafkaSettings, resolve_settings
from leadbus.localbroker.runtime import KAFKA_VERSION, cache_dir, ensure_kafka_libs
from leadbus.processors.stages import PIPELINE, STAGES

if TYPE_CHECKING:
    from leadbus.signing import KeyRegistry

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
deploy_app = typer.Typer(help="Deployment files generated from the declarations.", no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")
console = Console()
err_console = Console(stderr=True)

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
    """Collect the Kafka broker jars from Maven Central into the cache (once), and the JVM's class-data archive of
    them that starts every local broker sooner."""
    from leadbus.localbroker.cluster import train_class_archive

    libs = ensure_kafka_libs(version)
    console.print(f"Kafka {version}: {len(list(libs.glob('*.jar')))} jars in {libs}")
    if version == KAFKA_VERSION:  # the brokers started here run this version's jars
        archive = train_class_archive()
        console.print(f"class-data archive: {archive}" if archive.exists() else "no class-data archive (not written)")


@broker_app.command("up")
def broker_up(
    nodes: int = typer.Option(1, help="1 or 3 KRaft nodes"),
    secure: bool = typer.Option(False, "--secure", help="TLS, SASL/SCRAM-SHA-512, mutual TLS between nodes, "
                                                        "ACLs from deploy/acl-policy.yaml (deny by default)."),
    secure_dir: Path = typer.Option(Path("var/secure"), help="With --secure: the local CA (tls/) and every "
                                                             "principal's client settings (clients/)."),
) -> None:
    """Start local brokers in the background and apply the declared topics (and, secured, the ACL policy)."""
    from leadbus.localbroker import KafkaCluster
    from leadbus.provisioning.topics import apply_topics
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
    from leadbus.localbroker.secure import secure_cluster
    from leadbus.provisioning.acls import apply_policy

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
    from leadbus.provisioning.topics import admin_client, apply_topics, describe_existing
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
    from leadbus.provisioning.acls import apply_policy

    admin = _settings(bootstrap, client_config, "admin")
    if admin.principal is None:
        raise typer.BadParameter("acl apply needs the admin's client settings (--client-config var/secure/clients)")
    policy = load_policy()
    from leadbus.provisioning.acls import NotAdmin

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


@app.command("process")
def process(
    bootstrap: str | None = BOOTSTRAP,
    stage: str = typer.Option("all", help="A stage of processors/stages.py (intake, linking, handover, routing, "
                                          "blacklist, disclosure), or all: one supervised process per pipeline "
                                          "stage (all but disclosure); a stage that dies is restarted with backoff."),
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
    batch_fill: float | None = typer.Option(None, help="Once a record is there, seconds to wait for more before the "
                                                        "batch's transaction (default: the stage's)."),
    batch_gap: float | None = typer.Option(None, help="End the batch fill as soon as this many seconds pass without "
                                                       "a new record (default: wait out the fill)."),
    seal_keys: Path | None = typer.Option(None, envvar="LEADBUS_STAGE_KEYS",
                                          help="Folder of the stages' seal keys (LEADBUS-<stage>.key): each stage "
                                               "seals its outputs. Without it they go unsealed (logged)."),
) -> None:
    """Run the stream processors: intake (verify, validate, normalise, dedupe) and linking (cases).

    Several workers of a stage share its input partitions (linking keeps one active owner). Each stage
    connects as its own principal (`<stage>.json` of a --client-config folder).
    """
    if client_config:  # the stages of `--stage all` are child processes: they read it from the environment
        os.environ[CLIENT_CONFIG_ENV] = client_config
    if seal_keys is not None:  # so do they the seal keys' folder
        os.environ["LEADBUS_STAGE_KEYS"] = str(seal_keys)
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
    from leadbus.processors.stage import ExactlyOnceStage
    from leadbus.processors.stages import StageOptions

    configure_json_logging()
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    definition = STAGES[stage]
    kafka = _settings(bootstrap, client_config, stage)
    from leadbus.stage_keys import MissingStageKey

    try:
        config = definition.config(kafka, state_dir, worker_id, seal_keys)
    except (MissingStageKey, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if batch_fill is not None:
        config.batch_fill = batch_fill
    if batch_gap is not None:
        config.batch_gap = batch_gap
    handler = definition.build_handler(kafka, StageOptions(working_days=working_days, day_seconds=day_seconds))
    clock = _scaled_clock(time_scale if definition.clock_may_run_fast else 1.0)
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
    """One OS process per stage, supervised: a stage that dies is logged and restarted with backoff.

    SIGTERM or Ctrl-C stops every stage (each commits and closes); a second one kills them.
    """
    import socket
    import sys

    from leadbus.logs import configure_json_logging
    from leadbus.supervise import ChildSpec, Supervisor

    configure_json_logging()
    # Stable across restarts: a restarted stage's transactional id fences its dead predecessor at once.
    base_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    specs = []
    for i, (name, definition) in enumerate(PIPELINE.items()):
        cmd = [sys.executable, "-m", "leadbus.cli", "process", "--stage", name, "-b", bootstrap,
               "--state-dir", str(state_dir), "--max-seconds", str(max_seconds), "--worker-id", f"{base_id}-{name}"]
        if definition.clock_may_run_fast:
            cmd += ["--time-scale", str(time_scale), "--day-seconds", str(day_seconds)]
        if metrics_port:
            cmd += ["--metrics-port", str(metrics_port + i)]
        specs.append(ChildSpec(name, cmd, group="stages"))
    supervisor = Supervisor(specs)
    signals = 0

    def on_signal(*_: object) -> None:
        nonlocal signals
        signals += 1
        if signals >= 2:
            supervisor.kill()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor.start()
    supervisor.run(until=lambda: signals > 0)
    killed = supervisor.stop(timeout=30.0, force=lambda: signals >= 2)
    if killed or signals >= 2:
        raise typer.Exit(1)


@app.command("registry")
def registry(
    bootstrap: str | None = BOOTSTRAP,
    url: str = typer.Option("sqlite:///var/registry.db", envvar="LEADBUS_REGISTRY_URL",
                            help="SQLAlchemy URL: sqlite:///file.db or postgresql+psycopg://user@host:port/db."),
    max_seconds: float = typer.Option(0.0, help="Stop after this many seconds (0 = run until SIGTERM)."),
    client_config: str | None = CLIENT_CONFIG,
    batch_fill: float = typer.Option(0.1, help="Once a record is there, seconds to wait for more before the SQL "
                                               "transaction (bench/latency.py)."),
    batch: int = typer.Option(500, min=1, help="At most this many records per SQL transaction (smaller: shorter "
                                               "locks and less redone after a crash; larger: fewer commits)."),
    batch_gap: float | None = typer.Option(REGISTRY_GAP, help="End the batch fill as soon as this many seconds pass "
                                                              "without a new record (0: write what the consumer "
                                                              "holds at once; a commit upstream arrives as one "
                                                              "burst)."),
) -> None:
    """Fill the case registry (leads, cases, members, handover steps) from the bus, exactly once."""
    from leadbus.logs import configure_json_logging
    from leadbus.sinks.registry_sink import run_registry

    configure_json_logging()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # SIGTERM or Ctrl-C: the sink ends after the batch in hand (its rows and offsets commit together) and leaves
    # through its `finally` (consumer closed, database released). A flag, not KeyboardInterrupt: the database
    # driver can turn an interrupt into its own error, which the sink retries as an outage (see run_registry).
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_registry(_settings(bootstrap, client_config, "registry"), url, max_seconds=max_seconds or None,
                 batch=batch, fill=batch_fill, stop=stop, gap=batch_gap)


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
    seal_keys: Path | None = typer.Option(None, "--seal-keys", envvar="LEADBUS_STAGE_KEYS",
                                          help="Folder holding LEADBUS-archive.key: the heads published on "
                                               "leadbus.archive.heads are signed with it (unsigned without)."),
    head_every: float = typer.Option(60.0, "--head-every", help="Publish the latest head again after this many "
                                                                "seconds without a seal (0 = at seals only): the "
                                                                "broker time auditors' replays judge \"now\" by."),
) -> None:
    """Archive topics into Avro container files per topic, partition and hour, with a chained manifest; each new
    head of the manifest is published on leadbus.archive.heads, where auditors check an archive copy against it."""
    import threading

    from leadbus.logs import configure_json_logging
    from leadbus.sinks.archive_sink import run_archive

    configure_json_logging()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stats = run_archive(_settings(bootstrap, client_config, "archive"), list(topic), directory,
                        max_seconds=max_seconds or None, seal_after_seconds=seal_after_seconds, stop=stop,
                        seal_keys=seal_keys, head_every_seconds=head_every)
    console.print(str(stats))


@app.command("dashboard")
def dashboard(
    region: str = typer.Option(..., help="jjj (京津冀), yrd (长三角) or pprd (泛珠三角)."),
    bootstrap: str | None = BOOTSTRAP,
    host: str = typer.Option("127.0.0.1", help="Address to serve on."),
    port: int = typer.Option(8080, help="Port to serve on."),
    client_config: str | None = CLIENT_CONFIG,
    users: Path = typer.Option(..., envvar="LEADBUS_DASHBOARD_USERS",
                               help="Users file (argon2 hashes, region, agencies, role): `leadbus dashboard-user`."),
    access_log: Path | None = typer.Option(None, help="Access log of views and searches (default "
                                                      "var/dashboard/<region>/access.jsonl)."),
    tls_cert: Path | None = typer.Option(None, help="Serve HTTPS with this certificate (needed beyond localhost: "
                                                    "session cookies are Secure)."),
    tls_key: Path | None = typer.Option(None, help="The certificate's private key."),
    link_key: Path | None = typer.Option(None, help="Issue #19: the Ed25519 key of the agency office whose name "
                                                    "supervisors' link decisions are signed in (registered with "
                                                    "`leadbus keys register`); without it nobody decides here."),
    link_publisher: str | None = typer.Option(None, help="That office's publisher id, AGENCY.PROVINCE (e.g. SAMR.31)."),
    link_client_config: str | None = typer.Option(None, envvar="LEADBUS_LINK_CLIENT_CONFIG",
                                                  help="The link desk's client settings (principal "
                                                       "link-desk-<region>: a file, or a folder holding "
                                                       "link-desk-<region>.json); default --client-config."),
) -> None:
    """Serve a regional dashboard (sign-in required): live masked cases, counts, the handover board, search; with
    --link-key, the region's supervisors confirm, reject and split case links (signed LinkDecision events)."""
    from leadbus.geography import REGIONS
    from leadbus.logs import configure_json_logging
    from leadbus.sinks.dashboard import run
    from leadbus.sinks.dashboard_auth import SignIn

    configure_json_logging()
    if region not in REGIONS:
        raise typer.BadParameter(f"--region is one of {', '.join(sorted(REGIONS))}")
    try:
        sign_in = SignIn(users, region, access_log or Path("var/dashboard") / region / "access.jsonl")
    except (OSError, ValueError, KeyError) as exc:
        raise typer.BadParameter(f"{users}: {exc}") from None
    tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)} if tls_cert and tls_key else {}
    desk = None
    if link_key is not None or link_publisher is not None:
        from leadbus.sinks.link_desk import LinkDesk

        agency, _, province = (link_publisher or "").partition(".")
        if link_key is None or not agency or not province:
            raise typer.BadParameter("give both --link-key and --link-publisher AGENCY.PROVINCE")
        state_dir = (access_log.parent if access_log else Path("var/dashboard") / region)
        try:  # the decisions go out as the desk's own principal (deploy/acl-policy.yaml: link-desk-<region>)
            settings = _settings(bootstrap, link_client_config or client_config, f"link-desk-{region}")
            desk = LinkDesk.open(agency, province, settings, key=link_key, state_dir=state_dir)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"--link-key {link_key}: {exc}") from None
    run(_settings(bootstrap, client_config, f"dashboard-{region}"), region, host=host, port=port, sign_in=sign_in,
        desk=desk, **tls)


@app.command("dashboard-user")
def dashboard_user(
    users: Path = typer.Option(..., envvar="LEADBUS_DASHBOARD_USERS", help="The users file to write (0600)."),
    username: str = typer.Option(..., help="User name."),
    region: str = typer.Option(..., help="The one region the user may see: jjj, yrd or pprd."),
    role: str = typer.Option("viewer", help="viewer, or supervisor (also reads the access log)."),
    agencies: str = typer.Option("*", help="Comma-separated agency codes the user works for (* = all)."),
    password_stdin: bool = typer.Option(False, help="Read the password from stdin instead of prompting."),
) -> None:
    """Add or replace a dashboard user; only the argon2 hash of the password is stored."""
    import sys

    from leadbus.sinks.dashboard_auth import add_user

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise typer.BadParameter("a password has at least 8 characters")
    try:
        user = add_user(users, username, password, region, role, [a.strip() for a in agencies.split(",") if a.strip()])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"{user.username}: region {user.region}, role {user.role}, agencies {', '.join(user.agencies)}")


@app.command("gateway")
def gateway(
    agency: str = typer.Option(..., help="The agency this gateway speaks for (SAMR, MPS, …)."),
    province: str = typer.Option(..., help="Its province (GB/T 2260 two digits, 00 = national)."),
    port: int = typer.Option(8443, help="HTTPS port."),
    host: str = typer.Option("127.0.0.1", help="Address to serve on."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = typer.Option(
        None, "--client-config", envvar="LEADBUS_CLIENT_CONFIG",
        help="confluent-kafka settings of the publisher principal: a JSON file, or a folder of <principal>.json."),
    receipts_client_config: str | None = typer.Option(
        None, help="Settings of the receipt reader (principal gateway-receipts); default: gateway-receipts.json of "
                   "the --client-config folder, or the --client-config file itself."),
    signing_key: Path | None = typer.Option(None, help="The agency's Ed25519 private key (or $LEADBUS_SIGNING_KEY)."),
    publisher_id: str | None = typer.Option(None, help="Signing publisher id (default AGENCY.PROVINCE)."),
    unsigned: bool = typer.Option(False, help="Publish unsigned (only where the agency registered no key)."),
    tokens: Path | None = typer.Option(None, help="API tokens file (default <state-dir>/tokens.json)."),
    state_dir: Path | None = typer.Option(None, help="Ledger, sequences, access log (default var/gateway/AGENCY.PP)."),
    tls_cert: Path | None = typer.Option(None, help="Server certificate (PEM, chain); without it a local CA is made."),
    tls_key: Path | None = typer.Option(None, help="Server private key (PEM)."),
    client_ca: Path | None = typer.Option(None, help="CA certificates (PEM) issuing callers' client certificates: "
                                                     "mutual TLS as well as tokens (see gateway-cert)."),
    certificates: Path | None = typer.Option(None, help="Client certificates file (default: certificates.json "
                                                        "beside the tokens file)."),
    rate: float = typer.Option(50.0, help="Leads per second per calling system (0 = unlimited)."),
    burst: float = typer.Option(200.0, help="Burst allowance per calling system."),
    publish_timeout: float = typer.Option(15.0, help="Seconds the broker has to confirm before a 503."),
) -> None:
    """Serve the agency's HTTPS/JSON gateway: validate, sign, publish, answer after confirmation, receipts."""
    from leadbus.agencies import is_agency_code
    from leadbus.geography import is_publisher_province
    from leadbus.logs import configure_json_logging
    from leadbus.producers.gateway import GatewayConfig
    from leadbus.producers.gateway.server import kafka_settings, serve, signing_sealer, tls_files

    configure_json_logging()
    if not is_agency_code(agency) or not is_publisher_province(province):
        raise typer.BadParameter(f"{agency}/{province}: not a current agency code and province")
    state = state_dir or Path("var/gateway") / f"{agency}.{province}"
    state.mkdir(parents=True, exist_ok=True)
    config = GatewayConfig(agency, province, tokens=tokens or state / "tokens.json", state_dir=state,
                           publisher_id=publisher_id, rate=rate, burst=burst, publish_timeout=publish_timeout,
                           certificates=certificates)
    try:
        sealer = None if unsigned else signing_sealer(config.signer, signing_key, state)
        kafka = kafka_settings(bootstrap or (None if client_config else _bootstrap(None)), client_config,
                               f"publisher-{agency}")
        receipts_kafka = kafka_settings(kafka.bootstrap, receipts_client_config or client_config, "gateway-receipts")
        tls = tls_files(tls_cert, tls_key, state, [host, "localhost", "127.0.0.1"])
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from None
    trust = f"certificate {tls.cert}" if tls_cert else f"local CA {tls.ca}"
    callers = f"tokens {config.tokens}" + (f", client certificates of {client_ca} mapped in "
                                           f"{config.certificates_file}" if client_ca else "")
    console.print(f"gateway {config.signer}: https://{host}:{port}/v1/leads  ({trust}; {callers})")
    serve(config, kafka, sealer, tls, host, port, receipts_kafka, client_ca)


@app.command("gateway-token")
def gateway_token(
    agency: str = typer.Option(..., help="The gateway's agency."),
    system: str = typer.Option(..., help="The calling system's name (one word), e.g. hz-case-system."),
    tokens: Path = typer.Option(..., help="The gateway's tokens file."),
    revoke: bool = typer.Option(False, help="Revoke every token of this system instead."),
) -> None:
    """Create an API token for a calling system (printed once; only its SHA-256 is stored), or revoke its tokens."""
    from leadbus.producers.gateway.auth import add_token, revoke_tokens

    if revoke:
        console.print(f"revoked {revoke_tokens(tokens, system)} token(s) of {system}")
        return
    try:
        token = add_token(tokens, system, agency)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    print(token)


# -- issue #18: the platform check API, the public disclosure export --------------------------------
@app.command("platform-check")
def platform_check(
    signing_key: Path = typer.Option(..., help="The bus's Ed25519 private key that signs the answers "
                                               "(`leadbus keys generate`)."),
    tokens: Path = typer.Option(Path("var/platform-check/tokens.json"), help="Platform tokens file."),
    audit_log: Path = typer.Option(Path("var/platform-check/audit.jsonl"), help="Audit log of every query."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
    host: str = typer.Option("127.0.0.1", help="Address to serve on."),
    port: int = typer.Option(8090, help="Port to serve on."),
    rate: float = typer.Option(5.0, help="Queries per second per platform (token bucket)."),
    burst: float = typer.Option(20.0, help="Burst allowance per platform."),
    tls_cert: Path | None = typer.Option(None, help="Serve HTTPS with this certificate."),
    tls_key: Path | None = typer.Option(None, help="The certificate's private key."),
) -> None:
    """Serve the platform check API: is this seller blacklisted or under an open case? Signed, minimal answers."""
    from leadbus.logs import configure_json_logging
    from leadbus.producers.signing import load_private_key
    from leadbus.sinks.platform_check import run

    configure_json_logging()
    try:
        key = load_private_key(signing_key.read_bytes())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{signing_key}: {exc}") from None
    tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)} if tls_cert and tls_key else {}
    console.print(f"platform check: http{'s' if tls else ''}://{host}:{port}/v1/check (tokens {tokens})")
    run(_settings(bootstrap, client_config, "platform-check"), key, tokens, audit_log, host, port, rate, burst,
        **tls)


@app.command("disclosure-export")
def disclosure_export(
    out: Path = typer.Option(..., help="Folder for disclosure.json / .csv and statistics.json / .csv."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Export the public disclosure feed (anonymised closed cases) and its statistics as static JSON and CSV."""
    from leadbus.sinks.disclosure_export import export

    counts = export(_settings(bootstrap, client_config, "disclosure"), out)
    console.print(f"{counts[0]} closed cases, {counts[1]} statistics rows → {out}")


@app.command("platform-check-token")
def platform_check_token(
    platform: str = typer.Option(..., help="The platform's name (one word), e.g. taobao."),
    tokens: Path = typer.Option(Path("var/platform-check/tokens.json"), help="Platform tokens file."),
    revoke: bool = typer.Option(False, help="Revoke every token of this platform instead."),
) -> None:
    """Create an API token for a platform (printed once; only its SHA-256 is stored), or revoke its tokens."""
    from leadbus.producers.gateway.auth import add_token, revoke_tokens
    from leadbus.sinks.platform_check import TOKENS_OWNER

    try:
        if revoke:
            console.print(f"revoked {revoke_tokens(tokens, platform)} token(s) of {platform}")
            return
        print(add_token(tokens, platform, TOKENS_OWNER))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("gateway-cert")
def gateway_cert(
    agency: str = typer.Option(..., help="The gateway's agency."),
    system: str = typer.Option(..., help="The calling system's name (one word), e.g. nb-case-system."),
    certificates: Path = typer.Option(..., help="The gateway's client certificates file (certificates.json)."),
    cert: Path | None = typer.Option(None, help="The caller's client certificate (PEM) to map to the system."),
    revoke: bool = typer.Option(False, help="Remove every certificate of this system instead."),
) -> None:
    """Map a caller's client certificate (by its SHA-256 fingerprint) to a system of the agency, or unmap them."""
    from leadbus.producers.gateway.auth import add_certificate, revoke_certificates

    if revoke:
        console.print(f"removed {revoke_certificates(certificates, system)} certificate(s) of {system}")
        return
    if cert is None:
        raise typer.BadParameter("give --cert (PEM), or --revoke")
    try:
        fingerprint = add_certificate(certificates, system, agency, cert.read_bytes())
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"{system}: certificate sha256 {fingerprint}")


@app.command("link")
def link(
    input_path: Path = typer.Option(..., "--input", "-i", help="CaseLead JSON lines (DESIGN §3 names)."),
    output_path: Path = typer.Option(..., "--output", "-o", help="CSV with a header lead_id,case_id."),
    suggestions_path: Path | None = typer.Option(None, "--suggestions", "-s", help="Also write suggested links "
                                                 "from weak signals: CSV case_a,case_b,score,evidence, best first."),
    min_score: float = typer.Option(0.05, "--min-score", help="Lowest score of a suggestion written."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first line that is not a valid CaseLead "
                                                        "(exit 2, nothing written) instead of leaving it out."),
) -> None:
    """Link leads offline with the same code as the stream; write one lead_id,case_id row per lead.

    A line that is not a valid CaseLead is left out, as intake dead-letters it, and named on stderr with its
    line number and reason (the first 20; then a count); --strict stops at it instead.
    With --suggestions, also score pairs of the resulting cases on weak signals (Fellegi–Sunter weights,
    processors/core/suggest.py) and write one row per suggested pair of distinct case ids.
    """
    import csv

    from leadbus.processors.core.linking import link_and_suggest

    if not input_path.is_file():
        err_console.print(f"[red]no such input file: {input_path}[/red]")
        raise typer.Exit(2)
    leads, refused = _leads_of(input_path, strict)
    if refused:
        err_console.print(f"{refused} line(s) refused: not valid CaseLeads (left out of {output_path})")
    cases, suggestions = link_and_suggest(leads, min_score=min_score)
    with output_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["lead_id", "case_id"])
        for lead in leads:
            writer.writerow([lead.lead_id, cases[lead.lead_id]])
    console.print(f"{len(leads)} leads → {len(set(cases.values()))} cases → {output_path}")
    if suggestions_path is not None:
        with suggestions_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["case_a", "case_b", "score", "evidence"])
            for item in suggestions:
                writer.writerow([item.case_a, item.case_b, f"{item.score:.6f}", item.explain()])
        console.print(f"{len(suggestions)} suggested links → {suggestions_path}")


def _leads_of(input_path: Path, strict: bool) -> tuple[list[Any], int]:
    """The valid CaseLeads of a JSON-lines file, in order, and how many lines were refused.

    Each line is judged by intake's own check (`validate_lead`: the contract, identifiers with their check
    characters, no time in the future), so offline linking never links on what intake would dead-letter.
    """
    import json
    from datetime import UTC, datetime

    from leadbus.processors.core.intake import LeadRefusal, validate_lead

    now = datetime.now(UTC)
    leads: list[Any] = []
    refused = 0
    with input_path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                checked = validate_lead(json.loads(line), now)
            except (ValueError, RecursionError) as exc:  # not JSON (JSONDecodeError is a ValueError), or too deep
                checked = LeadRefusal("DECODE_NOT_JSON", None, f"not a JSON object: {exc}", None)
            if isinstance(checked, LeadRefusal):
                refused += 1
                if refused <= 20:
                    err_console.print(f"line {number}: {checked.reason} {checked.field or 'line'}: "
                                      f"{checked.message}"[:500], markup=False)
                if strict:
                    raise typer.Exit(2) from None
                continue
            leads.append(checked)
    return leads, refused


@app.command("demo")
def demo(
    rate: float = typer.Option(20.0, "--rate", "-r", help="Simulated leads per second."),
    duration: float = typer.Option(0.0, "--duration", "-d", help="Seconds; 0 runs until Ctrl-C."),
    seed: int = typer.Option(0, "--seed"),
    day_seconds: float = typer.Option(15.0, help="Demo calendar: a statutory day of handover deadlines lasts "
                                                 "this many seconds."),
    port_base: int = typer.Option(8470, help="Dashboards on this port and the next two (jjj, yrd, pprd); "
                                             "stage metrics on base+10 to base+13."),
    workdir: Path = typer.Option(Path("var/demo"), help="Registry, archive, state and logs (emptied at start)."),
    secure: bool = typer.Option(False, "--secure", help="Run it all secured: TLS, SCRAM, ACLs, one principal each."),
) -> None:
    """Start a broker, apply topics, run the processors, sinks, dashboards and simulated agencies, show it live.

    Ctrl-C (or SIGTERM) stops the simulator, the processors, the sinks, the dashboards and the broker in
    that order and prints a summary; a second Ctrl-C kills what is left.
    """
    from leadbus.demo import run_demo

    code = run_demo(rate=rate, duration=duration, seed=seed, console=console, day_seconds=day_seconds,
                    port_base=port_base, workdir=workdir, secure=secure)
    if code:
        raise typer.Exit(code)


# -- publisher keys ---------------------------------------------------------------------

keys_app = typer.Typer(help="Publisher signing keys (Ed25519) on the compacted leadbus.publishers topic.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _instant(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if not text or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise typer.BadParameter(f"{text!r}: a duration like 30s, 15m, 24h or 7d")
    return timedelta(seconds=float(text[:-1]) * units[text[-1]])


def _publisher(publisher: str) -> str:
    from leadbus.agencies import is_agency_code
    from leadbus.geography import is_publisher_province
    from leadbus.signing import parse_publisher_id

    try:
        agency, province = parse_publisher_id(publisher)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not is_agency_code(agency):
        raise typer.BadParameter(f"{agency} is not a current agency code")
    if province is not None and not is_publisher_province(province):
        raise typer.BadParameter(f"{province} is not a province code")
    return publisher


def _show_key(key: object) -> None:
    from leadbus.signing import PublisherKey

    assert isinstance(key, PublisherKey)
    now = datetime.now(UTC)
    until = f" until {key.valid_until:%Y-%m-%dT%H:%M:%SZ}" if key.valid_until else ""
    revoked = f" revoked {key.revoked_at:%Y-%m-%dT%H:%M:%SZ} ({key.revocation_reason})" if key.revoked_at else ""
    console.print(f"{key.publisher}\t{key.key_id}\t{key.status(now)}\tfrom {key.valid_from:%Y-%m-%dT%H:%M:%SZ}"
                  f"{until}{revoked}{' replaces ' + key.replaces if key.replaces else ''}"
                  f"{'' if key.require_signed else ' (signing optional)'}")


@keys_app.command("generate")
def keys_generate(
    out: Path = typer.Option(..., "--out", "-o", help="Private key file to write (PEM, mode 0600); the public key "
                                                      "goes next to it as <out>.pub."),
    force: bool = typer.Option(False, help="Overwrite an existing key file."),
) -> None:
    """Generate an Ed25519 key pair for a publisher (the private key never leaves this file or its environment)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from leadbus.producers.signing import private_pem, public_pem, write_secret
    from leadbus.signing import key_id_of, public_bytes

    if out.exists() and not force:
        raise typer.BadParameter(f"{out} exists (use --force to replace it)")
    key = Ed25519PrivateKey.generate()
    write_secret(out, private_pem(key))
    public = out.with_suffix(out.suffix + ".pub")
    public.write_bytes(public_pem(key))
    console.print(f"key id {key_id_of(public_bytes(key.public_key()))}: private {out} (0600), public {public}")


def _read_public(path: Path) -> bytes:
    from leadbus.producers.signing import load_public_key

    try:
        return load_public_key(path.read_bytes())
    except ValueError as exc:
        raise typer.BadParameter(f"{path}: {exc}") from None


def _key_change(publisher: str, public_key: Path, bootstrap: str | None,
                client_config: str | None) -> tuple[str, bytes, KafkaSettings, KeyRegistry]:
    """A new key's publisher id and bytes, the admin's settings (the key registry is theirs to write), the registry."""
    from leadbus.publisher_keys import read_registry

    publisher, raw = _publisher(publisher), _read_public(public_key)
    settings = _settings(bootstrap, client_config, "admin")
    return publisher, raw, settings, read_registry(settings)


@keys_app.command("register")
def keys_register(
    publisher: str = typer.Argument(..., help="Publisher id: AGENCY, AGENCY.PP (e.g. SAMR.33), or either -instance."),
    public_key: Path = typer.Option(..., "--public-key", "-k", help="The publisher's public key (PEM or base64)."),
    valid_from: str | None = typer.Option(None, help="ISO time from which it is honoured (default now)."),
    valid_until: str | None = typer.Option(None, help="ISO time from which it is no longer honoured."),
    require: bool = typer.Option(True, "--require/--optional",
                                 help="Refuse unsigned events of this publisher (default) or accept them still."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Register a publisher's public key on leadbus.publishers (the admin principal)."""
    from leadbus.publisher_keys import write_keys
    from leadbus.signing import PublisherKey, key_id_of

    publisher, raw, settings, registry = _key_change(publisher, public_key, bootstrap, client_config)
    key_id = key_id_of(raw)
    if any(publisher != p and registry.get(p, key_id) for p in registry.publishers()):
        raise typer.BadParameter(f"key {key_id} is registered for another publisher: each publisher has its own keys")
    if registry.get(publisher, key_id) is not None:
        raise typer.BadParameter(f"key {key_id} of {publisher} is registered already (rotate or revoke it)")
    key = PublisherKey(publisher, key_id, raw, _instant(valid_from), datetime.now(UTC),
                       valid_until=_instant(valid_until) if valid_until else None, require_signed=require)
    write_keys(settings, [key])
    _show_key(key)


@keys_app.command("rotate")
def keys_rotate(
    publisher: str = typer.Argument(..., help="Publisher id."),
    public_key: Path = typer.Option(..., "--public-key", "-k", help="The new public key (PEM or base64)."),
    at: str | None = typer.Option(None, help="ISO time of the rotation: the new key is honoured from then (default "
                                             "now)."),
    overlap: str = typer.Option("24h", help="How long after the rotation the old keys are still honoured (events "
                                            "signed before it may still be on their way), e.g. 0s, 15m, 24h."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Register a new key for a publisher and end its current keys' validity at the rotation plus the overlap."""
    from leadbus.publisher_keys import write_keys
    from leadbus.signing import PublisherKey, key_id_of

    publisher, raw, settings, registry = _key_change(publisher, public_key, bootstrap, client_config)
    when = _instant(at)
    old = registry.current(publisher, when)
    if registry.get(publisher, key_id_of(raw)) is not None:
        raise typer.BadParameter("that key is registered already: rotate to a new key")
    require = any(k.require_signed for k in registry.keys_of(publisher)) or not registry.keys_of(publisher)
    new = PublisherKey(publisher, key_id_of(raw), raw, when, datetime.now(UTC), require_signed=require,
                       replaces=old[-1].key_id if old else None)
    ended = [k.expiring(when + _duration(overlap)) for k in old]
    write_keys(settings, [new, *ended])  # the new key first: there is never a moment without a valid key
    for key in (new, *ended):
        _show_key(key)


@keys_app.command("revoke")
def keys_revoke(
    publisher: str = typer.Argument(..., help="Publisher id."),
    key_id: str = typer.Argument(..., help="The key id to revoke."),
    reason: str = typer.Option(..., help="Why (kept in the registry): compromised, staff left, …"),
    at: str | None = typer.Option(None, help="ISO time from which events under the key are refused (default now)."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Revoke a key: every event under it is refused from the given time on (the key stays, so audits can read it)."""
    from leadbus.publisher_keys import read_registry, write_keys

    settings = _settings(bootstrap, client_config, "admin")  # the key registry is the admin's to write
    key = read_registry(settings).get(_publisher(publisher), key_id)
    if key is None:
        raise typer.BadParameter(f"no key {key_id} registered for {publisher}")
    revoked = key.revoked(_instant(at), reason)
    write_keys(settings, [revoked])
    _show_key(revoked)


# -- the stages' seal keys (issue #14, stage output seals) --------------------------------------------------


@keys_app.command("provision-stages")
def keys_provision_stages(
    directory: Path = typer.Option(..., "--dir", help="Folder of the stages' private keys (LEADBUS-<stage>.key)."),
    stage: list[str] = typer.Option([], help="Only these stages (default: every stage of the registry; `archive`: "
                                             "the archive sink's key, which signs its published heads)."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Make each stage's seal key in DIR if missing and register its public half as LEADBUS-<stage> (the admin)."""
    from leadbus.processors.stages import STAGES
    from leadbus.sinks.archive_heads import SIGNER_STAGE
    from leadbus.stage_keys import provision

    names = stage or list(STAGES)
    unknown = [n for n in names if n not in STAGES and n != SIGNER_STAGE]  # the archive signs its published heads
    if unknown:
        raise typer.BadParameter(f"unknown stage(s): {', '.join(unknown)}")
    for key in provision(_settings(bootstrap, client_config, "admin"), directory, names):
        _show_key(key)
    typer.echo(f"seal keys of {', '.join(names)} in {directory}; run the stages with --seal-keys {directory}")


@keys_app.command("list")
def keys_list(
    publisher: str | None = typer.Argument(None, help="Only this publisher."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Show every registered key with its status now."""
    from leadbus.publisher_keys import read_registry

    registry = read_registry(_settings(bootstrap, client_config, "admin"))
    for name in registry.publishers():
        if publisher is None or name == publisher:
            for key in registry.keys_of(name):
                _show_key(key)


@deploy_app.command("render")
def deploy_render(
    out: Path = typer.Option(Path("deploy"), help="Writes OUT/k8s/*.yaml and OUT/systemd/*.service."),
    topics: Path = typer.Option(Path("deploy/topics.yaml"), help="The topic declarations."),
    policy: Path = typer.Option(Path("deploy/acl-policy.yaml"), help="The ACL policy (KafkaUsers; skipped if absent)."),
    image: str | None = typer.Option(None, help="Container image of leadbus."),
) -> None:
    """Render Strimzi Kafka, node pools, topics, users, Deployments, Services, PDBs and systemd units."""
    from leadbus import render
    from leadbus.topics import load_declarations

    specs = load_declarations(topics.read_text(encoding="utf-8")) if topics.exists() else None
    written = render.render(out, specs, policy, image or render.IMAGE)
    for path in sorted(written):
        console.print(str(path))
    if not policy.exists():
        console.print(f"[yellow]{policy} not found: no KafkaUser rendered[/yellow]")

# -- auditors --------------------------------------------------------------------------------------------

audit_app = typer.Typer(help="Auditors: verified replay and re-derivation of what the bus recorded.",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _iso_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        console.print(f"[red]{option}[/red]: {escape(repr(value))} is not an ISO 8601 time (e.g. 2026-11-01T08:00:00Z)")
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _audit_settings(bootstrap: str | None, client_config: Path | None) -> object:
    """The auditor principal's client settings: `--client-config` (as `leadbus acl apply` writes them) or plain."""
    from leadbus.clients import KafkaSettings

    if client_config is not None:
        try:
            config = json.loads(client_config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            console.print(f"[red]--client-config[/red]: {escape(str(exc))}")
            raise typer.Exit(2) from None
        target = bootstrap or config.pop("bootstrap.servers", None)
        config.pop("bootstrap.servers", None)
        if not target:
            console.print("[red]no --bootstrap and no bootstrap.servers in the client config[/red]")
            raise typer.Exit(2)
        return KafkaSettings(target, security=config)
    try:
        return KafkaSettings(_bootstrap(bootstrap))
    except typer.BadParameter as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


CLIENT_CONFIG = typer.Option(None, "--client-config", envvar="LEADBUS_CLIENT_CONFIG",
                             help="JSON confluent-kafka settings of the auditor principal "
                                  "(e.g. var/secure/clients/auditor.json).")


@app.command("replay")
def replay_command(
    topic: list[str] = typer.Option(..., "--topic", "-t", help="Topic to replay (repeat, or ^regex)."),
    from_: str | None = typer.Option(None, "--from", help="ISO 8601 time: from the first record at or after it."),
    to: str | None = typer.Option(None, "--to", help="ISO 8601 time: up to the first record at or after it."),
    key: str | None = typer.Option(None, "--key", help="Export and count only records with this key."),
    publisher: str | None = typer.Option(None, "--publisher", help="Only this publisher (SAMR, SAMR.33, …)."),
    source: str = typer.Option("kafka", "--source", help="kafka, or archive:DIR (the archive folder)."),
    fmt: str | None = typer.Option(None, "--format", help="Export as jsonl or avro (with --out; jsonl may go to "
                                                          "stdout)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Export file."),
    verify: bool = typer.Option(False, "--verify", help="Verify: order, replays, digests, the archive chain, "
                                                        "seals when a verifier is installed. Exit 1 on a failure."),
    head: str | None = typer.Option(None, "--head", help="With an archive: the chain head you kept elsewhere."),
    archive_name: str | None = typer.Option(None, "--archive-name",
                                            help="With an archive: which archive it is a copy of (its sink's group, "
                                                 "leadbus-archive by default), to check it against that one's heads."),
    skew: float = typer.Option(15.0, "--clock-skew", help="Seconds a timestamp may go back within a partition."),
    report_path: Path | None = typer.Option(None, "--report", help="Write the summary and findings as JSON."),
    rederive: bool = typer.Option(False, "--rederive", help="Normalise every accepted lead's `original` again, also "
                                                            "those intake sealed (its stage seal vouches for them)."),
    processes: int | None = typer.Option(None, "--processes", min=1, help="Processes reading a verified Kafka replay "
                                         "(default: two when the load average leaves a core free, else one)."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: Path | None = CLIENT_CONFIG,
) -> None:
    """Replay a topic (or the archive) by time range: verify, export, summarise. Exit 0 verified, 1 failed, 2 error."""
    import sys

    from leadbus.audit.replay import ReplayError, ReplayOptions, replay, report_json, seal_verifier_factory
    from leadbus.clients import KafkaSettings

    if fmt is not None and fmt not in ("jsonl", "avro"):
        console.print("[red]--format[/red] is jsonl or avro")
        raise typer.Exit(2)
    if fmt == "avro" and out is None:
        console.print("[red]--format avro needs --out FILE[/red]")
        raise typer.Exit(2)
    if fmt is None and out is not None:
        fmt = "avro" if out.suffix == ".avro" else "jsonl"
    settings = _audit_settings(bootstrap, client_config) if source == "kafka" else None
    assert settings is None or isinstance(settings, KafkaSettings)
    # The publisher keys come from the bus (leadbus.publishers is compacted and kept): for an archive replay
    # too when a bus is named; without one, seals in the archive are counted as not checked.
    keys_from = settings
    if keys_from is None and verify and (bootstrap or client_config):
        named = _audit_settings(bootstrap, client_config)
        assert isinstance(named, KafkaSettings)
        keys_from = named
    err = Console(stderr=True)
    try:
        seal_verifier = seal_verifier_factory(keys_from) if verify else None
    except Exception as exc:  # noqa: BLE001 - an unreachable bus or a refused read is an access error
        err.print(f"[red]replay:[/red] cannot read the publisher keys on leadbus.publishers: {escape(str(exc))}")
        raise typer.Exit(2) from None
    options = ReplayOptions(topics=list(topic), source=source, start=_iso_time(from_, "--from"),
                            end=_iso_time(to, "--to"), key=key, publisher=publisher, fmt=fmt, out=out,
                            verify=verify, head=head, skew_ms=int(skew * 1000), seal_verifier=seal_verifier,
                            rederive_sealed=rederive, archive_name=archive_name, workers=processes,
                            heads_from=keys_from if verify and settings is None else None)  # an archive's heads
    to_stdout = fmt == "jsonl" and out is None
    try:
        with _progress(err) as progress:
            report = replay(options, settings, progress=progress, stdout=sys.stdout)
    except ReplayError as exc:
        err.print(f"[red]replay:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    _print_replay_summary(err if to_stdout else console, report)
    if report_path is not None:
        report_path.write_text(json.dumps(report_json(report), ensure_ascii=False, indent=1), encoding="utf-8")
    raise typer.Exit(report.status if verify else 0)


@contextlib.contextmanager
def _progress(err: Console):  # type: ignore[no-untyped-def]
    """A Rich progress bar (rate, ETA) on a terminal; a plain line every 5 s otherwise."""
    if err.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]:>8,.0f}/s"), TimeRemainingColumn(), console=err,
                      transient=True) as bar:
            task = bar.add_task("replay", total=None, rate=0.0)
            began = time.monotonic()

            def update(done: int, total: int | None) -> None:
                elapsed = max(time.monotonic() - began, 1e-6)
                bar.update(task, completed=done, total=total, rate=done / elapsed)

            yield update
        return
    began = time.monotonic()
    last = [began]

    def plain(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < 5.0:
            return
        last[0] = now
        rate = done / max(now - began, 1e-6)
        eta = f", ETA {(total - done) / rate:.0f}s" if total and rate > 0 and total > done else ""
        err.print(f"replay: {done}/{total if total is not None else '?'} records, {rate:,.0f}/s{eta}",
                  highlight=False)

    yield plain


def _print_replay_summary(out: Console, report: object) -> None:
    from rich.table import Table

    from leadbus.audit.replay import ReplayReport, summary_lines

    assert isinstance(report, ReplayReport)
    if not out.is_terminal:
        for line in summary_lines(report):
            out.print(line, highlight=False, soft_wrap=True, markup=False)
        return
    out.print(f"replayed {report.records} records from {report.source} in {report.seconds:.1f}s "
              f"({report.rate:,.0f}/s); {report.selected} selected", markup=False)
    table = Table("type", "publisher", "events", title="events by type and publisher")
    for (kind, who), n in sorted(report.by_type_publisher.items()):
        table.add_row(escape(kind), escape(who), str(n))
    out.print(table)
    if report.sealed and not report.seals_checked:
        out.print(f"[yellow]{report.sealed} records carry seals: NOT checked (no seal verifier installed)[/yellow]")
    if report.findings:
        found = Table("", "check", "where", "what", title="verification findings")
        for f in report.findings:
            found.add_row("[red]FAIL[/red]" if f.failure else "note", escape(f.check), escape(f.where()),
                          escape(f.message))
        out.print(found)
    failures = len(report.failures)
    if report.verified:
        out.print(f"[green]verified[/green]: 0 failures, {len(report.notices)} notices")
    elif failures:
        out.print(f"[red]VERIFICATION FAILED[/red]: {failures} failures, {len(report.notices)} notices")
    else:
        out.print("not verified (no --verify)")


@audit_app.command("rebuild")
def audit_rebuild(
    from_: str | None = typer.Option(None, "--from", help="Report differences from this ISO 8601 time."),
    to: str | None = typer.Option(None, "--to", help="Report differences before this time; derive up to it."),
    source: str = typer.Option("kafka", "--source", help="kafka, or archive:DIR (holding every topic compared)."),
    working_days: bool = typer.Option(False, help="The handover stage counts working days."),
    day_seconds: float = typer.Option(0.0, help="The handover stage ran the demo calendar (--day-seconds)."),
    tick_grace: float = typer.Option(3.0, help="Seconds before the stage's last recorded step within which a "
                                               "deadline may not have been scanned yet."),
    report_path: Path | None = typer.Option(None, "--report", help="Write the differences as JSON."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: Path | None = CLIENT_CONFIG,
) -> None:
    """Re-derive cases, handover steps and routes from the intake topics with the same core; diff with the record.

    Exit 0 when identical, 1 with every difference printed with its case id, 2 on a usage or access error.
    """
    from leadbus.audit.archive_source import ArchiveSource
    from leadbus.audit.rebuild import INPUT_TOPICS, Difference, rebuild, report_json
    from leadbus.audit.sources import KafkaSource, SourceError
    from leadbus.audit.verification import ReplayRecord
    from leadbus.avro import packaged_catalog
    from leadbus.clients import KafkaSettings
    from leadbus.processors.core.deadlines import CalendarDays, CompressedDays, DayCounting, WorkingDays

    start, end = _iso_time(from_, "--from"), _iso_time(to, "--to")
    err = Console(stderr=True)
    if start is not None and end is not None and end <= start:
        err.print("[red]rebuild:[/red] --to must be after --from")
        raise typer.Exit(2)
    catalog = packaged_catalog()
    end_ms = int(end.timestamp() * 1000) if end else None
    reader: KafkaSource | ArchiveSource
    if source == "kafka":
        settings = _audit_settings(bootstrap, client_config)
        assert isinstance(settings, KafkaSettings)
        from leadbus.schema_topic import load_schemas

        try:
            load_schemas(settings, catalog)
        except Exception as exc:  # noqa: BLE001 - an unreachable bus or a refused read
            err.print(f"[red]rebuild:[/red] cannot read leadbus.schemas: {escape(str(exc))}")
            raise typer.Exit(2) from None
        reader = KafkaSource(settings, INPUT_TOPICS, catalog, None, end_ms)
    elif source.startswith("archive:") and Path(source[8:]).is_dir():
        reader = ArchiveSource(Path(source[8:]), INPUT_TOPICS, catalog, None, end_ms)
    else:
        err.print("[red]--source[/red] is kafka or archive:DIR (an existing folder)")
        raise typer.Exit(2)
    counting: DayCounting = WorkingDays() if working_days else CalendarDays()
    if day_seconds:
        counting = CompressedDays(day_seconds)
    try:
        reader.plan()
        with _progress(err) as progress:
            records = [r for r in _counted(reader.records(), progress) if isinstance(r, ReplayRecord)]
    except SourceError as exc:
        err.print(f"[red]rebuild:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    report = rebuild(records, catalog=catalog, counting=counting, start=start, end=end, tick_grace=tick_grace,
                     ends={(span.topic, span.partition): span.end for span in reader.spans})
    if isinstance(reader, ArchiveSource):
        # What the archive lost or was given is no derivation's difference, but a rebuild over it compares what is
        # left: every file problem is named (a manifest removed once made "0 leads ... identical", exit 0).
        try:
            problems = reader.verify()
        except SourceError as exc:
            err.print(f"[red]rebuild:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        named = {problem.path for problem in problems}
        report.differences[:0] = [
            *(Difference("archive", problem.kind, problem.message, problem.path) for problem in problems),
            *(Difference("archive", "unreadable", message, path) for path, message in reader.unreadable
              if path not in named)]
    for difference in report.differences:
        console.print(difference.line(), highlight=False, soft_wrap=True, markup=False)
    console.print(f"re-derived from {report.leads} accepted leads ({report.intake_records} intake records): "
                  f"{report.cases} case events, {report.steps} handover steps, {report.routed} routed records in "
                  f"{report.seconds:.1f}s; " + ("identical" if not report.differences
                                                 else f"{len(report.differences)} differences"), highlight=False)
    if report_path is not None:
        report_path.write_text(json.dumps(report_json(report), ensure_ascii=False, indent=1), encoding="utf-8")
    raise typer.Exit(report.status)


def _counted(records: Iterator[object], progress: Callable[[int, int | None], None]) -> Iterator[object]:
    count = 0
    for record in records:
        count += 1
        if count % 1000 == 0:
            progress(count, None)
        yield record
    progress(count, None)


# -- issue #18 (second half): consumer warnings page, joint operations ------------------------------------

@app.command("warnings-page")
def warnings_page(
    bootstrap: str | None = BOOTSTRAP,
    host: str = typer.Option("127.0.0.1", help="Address to serve on."),
    port: int = typer.Option(8090, help="Port to serve on."),
    public_url: str | None = typer.Option(None, help="Where the public reaches the page (links and ids in the feeds)."),
    client_config: str | None = CLIENT_CONFIG,
) -> None:
    """Serve the national public page, no sign-in: consumer warnings (网络购物消费警示) with JSON, Atom and RSS
    feeds, and live disclosure statistics (信息公开) at /statistics and /api/statistics."""
    from leadbus.logs import configure_json_logging
    from leadbus.sinks.warnings_page import run

    configure_json_logging()
    run(_settings(bootstrap, client_config, "warnings-page"), host=host, port=port, public_url=public_url)


@app.command("operations")
def operations_controller(
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
    admin_config: Path | None = typer.Option(None, help="The admin's client settings: with them each operation's "
                                                       "members get principals and grants (none: topics only)."),
    clients_dir: Path = typer.Option(Path("var/secure/clients"), help="Where member principals' client files go."),
) -> None:
    """Run the joint-operations controller (集群战役): decisions → each operation's topic, members and access."""
    from leadbus.clients import KafkaSettings
    from leadbus.logs import configure_json_logging
    from leadbus.processors.operations import OperationsController

    configure_json_logging()
    admin = KafkaSettings.from_file(admin_config) if admin_config else None
    OperationsController(_settings(bootstrap, client_config, "operations"), admin=admin,
                         clients_dir=clients_dir).run()


@app.command("operation-view")
def operation_view(
    operation: str = typer.Option(..., help="The operation id."),
    member: str = typer.Option(..., help="The member it runs for (agency or province code); reads as "
                                         "operation-<member>."),
    bootstrap: str | None = BOOTSTRAP,
    client_config: str | None = CLIENT_CONFIG,
    host: str = typer.Option("127.0.0.1", help="Address to serve on."),
    port: int = typer.Option(8095, help="Port to serve on."),
) -> None:
    """Serve one operation's view for one member; the broker refuses a non-member (the view then answers 403)."""
    from leadbus.logs import configure_json_logging
    from leadbus.sinks.operation_view import run

    configure_json_logging()
    run(_settings(bootstrap, client_config, f"operation-{member}"), operation, member, host=host, port=port)


def main() -> None:
    from leadbus.logs import configure_cli_logging

    configure_cli_logging()
    app()


if __name__ == "__main__":
    main()
