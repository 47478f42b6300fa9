"""A 1- or 3-node KRaft cluster of real brokers on loopback, for tests, the demo and the CLI.

Each node is a combined broker+controller JVM (`kafka.Kafka`) started from the jars that
`ensure_kafka_libs` collected. Nodes can be stopped, killed -9, paused (SIGSTOP) and
restarted one at a time, which is what the fault tests need.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

from leadbus.clients import KafkaSettings
from leadbus.localbroker.runtime import (
    KafkaRuntimeError,
    class_archive,
    deploy_file,
    ensure_kafka_libs,
    java_executable,
)
from leadbus.localbroker.tls import BrokerTls

_LIVE: weakref.WeakSet[KafkaCluster] = weakref.WeakSet()


def kafka_uuid() -> str:
    """A Kafka `Uuid` string: url-safe base64 of 16 random bytes, never starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a broker must not outlive a test run that was itself killed -9.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)


@dataclass(frozen=True)
class ClusterSecurity:
    """A secured cluster: TLS everywhere, SCRAM-SHA-512 for clients, mutual TLS between nodes, ACLs.

    Client listener `CLIENT` (SASL_SSL, SCRAM-SHA-512); inter-broker listener `INTERNAL` and controller
    listener `CONTROLLER` (SSL with client certificates required: the nodes' own principal, a super
    user). StandardAuthorizer, deny by default. The admin's SCRAM credential is written into the
    metadata log at storage format time; every other credential is created through the Admin API.
    """

    tls: BrokerTls
    admin_user: str
    admin_password: str
    mechanism: str = "SCRAM-SHA-512"

    def client(self, bootstrap: str, user: str, password: str) -> KafkaSettings:
        return KafkaSettings(bootstrap, security={
            "security.protocol": "SASL_SSL", "sasl.mechanism": self.mechanism, "sasl.username": user,
            "sasl.password": password, "ssl.ca.location": str(self.tls.ca_path)})


@dataclass
class KafkaNode:
    node_id: int
    broker_port: int
    controller_port: int
    directory: Path
    internal_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.directory / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _end_new_children(before: set[int], marker: str) -> None:
    """Kill and reap this process's children started since `before` that are JVMs running `marker`, or forks of
    this process that had not yet become one (a Ctrl-C between fork and exec): nobody else holds them.

    Reaped here, not left to the parent's exit: a killed JVM that nobody waits for stays in the process table
    (and a process that exits right after may be seen to leave it behind).
    """
    me = psutil.Process()
    own = me.cmdline()
    strays = []
    for child in me.children():
        if child.pid in before:
            continue
        try:
            argv = child.cmdline()
        except psutil.ZombieProcess:
            strays.append(child)  # already ended (the JVM took the Ctrl-C too): only to be reaped
            continue
        except psutil.Error:
            continue
        if marker in argv or argv == own:
            with contextlib.suppress(psutil.Error):
                child.kill()
            strays.append(child)
    psutil.wait_procs(strays, timeout=10)


class KafkaCluster:
    """Real KRaft brokers on free loopback ports; a context manager that always cleans up.

    `tie_to_parent` kills the JVMs when this Python process dies (tests); the CLI's
    `leadbus broker up` turns it off so the brokers outlive the command.
    """

    def __init__(
        self,
        nodes: int = 1,
        directory: Path | None = None,
        *,
        heap: str | None = None,
        fast_start: bool = True,
        tie_to_parent: bool = True,
        broker_properties: dict[str, str] | None = None,
        security: ClusterSecurity | None = None,
    ) -> None:
        if nodes not in (1, 3):
            raise ValueError("a local cluster has 1 or 3 nodes")
        self._owns_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="leadbus-kafka-"))
        self.heap = heap or ("512m" if nodes == 1 else "320m")
        self.fast_start = fast_start
        self.tie_to_parent = tie_to_parent
        self.extra = dict(broker_properties or {})
        self.security = security
        self.nodes = [
            KafkaNode(i, free_port(), free_port(), self.directory / f"node{i}", free_port() if security else 0)
            for i in range(1, nodes + 1)
        ]
        self.cluster_id = kafka_uuid()
        self._formatted = False
        self._dump_classes: Path | None = None

    # -- lifecycle -----------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def admin_settings(self) -> KafkaSettings:
        """How to reach the cluster with every right: plain on an open cluster, the admin on a secured one."""
        if self.security is None:
            return KafkaSettings(self.bootstrap_servers)
        return self.security.client(self.bootstrap_servers, self.security.admin_user, self.security.admin_password)

    def client_settings(self, user: str, password: str) -> KafkaSettings:
        if self.security is None:
            raise ValueError("an open cluster has no users")
        return self.security.client(self.bootstrap_servers, user, password)

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self, timeout: float = 90.0) -> None:
        if not self._formatted:
            self._format()
        _LIVE.add(self)
        for node in self.nodes:
            if not node.running:
                self._launch(node)
        self.wait_ready(timeout=timeout)

    def owns_directory(self, owned: bool = True) -> None:
        """Delete the cluster's folder when it closes (a folder made for it by its caller)."""
        self._owns_dir = owned

    def detach(self) -> dict[str, object]:
        """Leave the brokers running after this process exits; return what `leadbus broker down` needs."""
        _LIVE.discard(self)
        self._owns_dir = False
        return {
            "bootstrap": self.bootstrap_servers,
            "directory": str(self.directory),
            "pids": [n.process.pid for n in self.nodes if n.process is not None],
            "secure": self.security is not None,
        }

    def close(self) -> None:
        # Every node told at once: stopped one after another, the last ones of three lose the controller quorum
        # and their controlled shutdown waits for it until killed (30 s more on every close of a 3-node cluster).
        running = [n for n in self.nodes if n.process is not None and n.process.poll() is None]
        for node in running:
            self._ask_to_stop(node)
        deadline = time.monotonic() + 30
        for node in running:
            self._await_stop(node, deadline)
        for node in self.nodes:
            node.process = None
        _LIVE.discard(self)
        if self._owns_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- faults ----------------------------------------------------------------------

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    def kill_node(self, node_id: int) -> None:
        """SIGKILL: the broker gets no chance to shut down cleanly."""
        self._terminate(self.node(node_id), graceful=False)

    def stop_node(self, node_id: int) -> None:
        """SIGTERM: a controlled shutdown."""
        self._terminate(self.node(node_id), graceful=True)

    def pause_node(self, node_id: int) -> None:
        self._signal(self.node(node_id), signal.SIGSTOP)

    def resume_node(self, node_id: int) -> None:
        self._signal(self.node(node_id), signal.SIGCONT)

    def start_node(self, node_id: int, timeout: float = 90.0) -> None:
        node = self.node(node_id)
        if not node.running:
            self._launch(node)
        self.wait_ready(timeout=timeout)

    def restart_node(self, node_id: int, *, kill: bool = True, timeout: float = 90.0) -> None:
        if kill:
            self.kill_node(node_id)
        else:
            self.stop_node(node_id)
        self.start_node(node_id, timeout=timeout)

    # -- readiness -------------------------------------------------------------------

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until every running node serves metadata requests and sees all live brokers."""
        expected = {n.node_id for n in self.nodes if n.running}
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        admin = self.admin_settings.admin(**{"socket.timeout.ms": 3000, "log_level": 0})
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None and node.node_id in expected:
                    raise KafkaRuntimeError(
                        f"broker node {node.node_id} exited with {node.process.returncode}:\n{node.log_tail()}"
                    )
            try:
                meta = admin.list_topics(timeout=3)
                seen = set(meta.brokers)
                if expected <= seen:
                    return
                last_error = f"brokers seen {sorted(seen)}, expected {sorted(expected)}"
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                last_error = str(exc)
            time.sleep(0.3)
        tails = "\n".join(f"--- node {n.node_id}\n{n.log_tail()}" for n in self.nodes)
        raise KafkaRuntimeError(f"cluster not ready after {timeout}s: {last_error}\n{tails}")

    # -- internals -------------------------------------------------------------------

    def _jvm(self) -> list[str]:
        opts = [java_executable(), "-Xms64m", f"-Xmx{self.heap}", "-XX:+UseSerialGC",
                "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
                f"-Dlog4j2.configurationFile={deploy_file('log4j2.properties')}"]
        if self.fast_start:
            opts.append("-XX:TieredStopAtLevel=1")
        libs = ensure_kafka_libs()
        archive = class_archive(libs)
        if self._dump_classes is not None:
            opts.append(f"-XX:ArchiveClassesAtExit={self._dump_classes}")
        elif archive.exists():
            # The broker's classes mapped from the archive rather than loaded and verified from the jars: a JVM
            # (broker or format tool) starts ~1 s sooner, which every cluster a test run starts pays twice.
            opts.append(f"-XX:SharedArchiveFile={archive}")
        return opts + ["-cp", f"{libs}/*"]

    def _properties(self, node: KafkaNode) -> dict[str, str]:
        n = len(self.nodes)
        rf = "1" if n == 1 else "3"
        isr = "1" if n == 1 else "2"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.bootstrap.servers": ",".join(f"127.0.0.1:{x.controller_port}" for x in self.nodes),
            "listeners": f"PLAINTEXT://127.0.0.1:{node.broker_port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.broker_port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.directory / "data"),
            "num.partitions": "1",
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "unclean.leader.election.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
        }
        if self.security is not None:
            props.update(self._secure_properties(node))
        props.update(self.extra)
        return props

    def _secure_properties(self, node: KafkaNode) -> dict[str, str]:
        sec = self.security
        assert sec is not None
        mech = sec.mechanism.lower()
        listeners = (f"CLIENT://127.0.0.1:{node.broker_port},INTERNAL://127.0.0.1:{node.internal_port},"
                     f"CONTROLLER://127.0.0.1:{node.controller_port}")
        return {
            "listeners": listeners,
            "advertised.listeners": listeners,
            "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "sasl.enabled.mechanisms": sec.mechanism,
            "listener.name.client.sasl.enabled.mechanisms": sec.mechanism,
            f"listener.name.client.{mech}.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(sec.tls.keystores[node.node_id]),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(sec.tls.ca_path),
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
            "listener.name.internal.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{sec.admin_user};{sec.tls.broker_principal}",
        }

    def _format(self) -> None:
        before = {c.pid for c in psutil.Process().children()}
        base = self._jvm()
        dir_ids = {n.node_id: kafka_uuid() for n in self.nodes}
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text("".join(f"{k}={v}\n" for k, v in self._properties(node).items()))
        procs: list[tuple[KafkaNode, subprocess.Popen[bytes]]] = []
        try:
            self._run_format(base, dir_ids, procs)
        except BaseException:
            # Ctrl-C (or a failure) while formatting: no formatting JVM may outlive the call.
            for _, proc in procs:
                if proc.poll() is None:
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            _end_new_children(before, "kafka.tools.StorageTool")  # one started as Ctrl-C came, not yet listed
            raise
        self._formatted = True

    def _run_format(self, base: list[str], dir_ids: dict[int, str],
                    procs: list[tuple[KafkaNode, subprocess.Popen[bytes]]]) -> None:
        for node in self.nodes:
            cmd = base + ["kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(node.config_path)]
            if len(self.nodes) == 1:
                cmd.append("--standalone")
            else:
                voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}:{dir_ids[n.node_id]}" for n in self.nodes)
                cmd += ["--initial-controllers", voters]
            if self.security is not None:
                sec = self.security
                cmd += ["--add-scram", f'{sec.mechanism}=[name="{sec.admin_user}",password="{sec.admin_password}"]']
            procs.append((node, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
        for node, proc in procs:
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise KafkaRuntimeError(f"formatting node {node.node_id} failed:\n{out.decode(errors='replace')}")

    def _launch(self, node: KafkaNode) -> None:
        log = open(node.log_path, "ab")  # noqa: SIM115 - handed to the child process
        before = {c.pid for c in psutil.Process().children()}
        try:
            node.process = subprocess.Popen(
                self._jvm() + ["kafka.Kafka", str(node.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if self.tie_to_parent else None,
                # Its own session always: a terminal's Ctrl-C reaches whoever owns the cluster, which stops
                # the broker last, after the clients that use it.
                start_new_session=True,
            )
        except BaseException:
            # Ctrl-C between the fork and Popen's return leaves a started JVM that nobody holds: end it.
            _end_new_children(before, "kafka.Kafka")
            raise
        finally:
            log.close()

    def _signal(self, node: KafkaNode, sig: signal.Signals) -> None:
        if node.process is None or node.process.poll() is not None:
            raise KafkaRuntimeError(f"node {node.node_id} is not running")
        node.process.send_signal(sig)

    def _ask_to_stop(self, node: KafkaNode) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGCONT)  # a paused JVM cannot handle SIGTERM
        node.process.terminate()

    def _await_stop(self, node: KafkaNode, deadline: float) -> None:
        """Wait for a node asked to stop until `deadline`, then kill it."""
        proc = node.process
        assert proc is not None
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        node.process = None

    def _terminate(self, node: KafkaNode, *, graceful: bool) -> None:
        proc = node.process
        if proc is None or proc.poll() is not None:
            node.process = None
            return
        if graceful:
            self._ask_to_stop(node)
            self._await_stop(node, time.monotonic() + 30)
            return
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=10)
        node.process = None


@atexit.register
def _close_all() -> None:
    for cluster in list(_LIVE):
        for node in cluster.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()


def train_class_archive() -> Path:
    """Dump the class-data archive `_jvm` maps (once, after the jars are fetched): a broker started, asked for
    its metadata and stopped, its JVM writing the classes it loaded as it exits. Written aside and renamed, so a
    concurrent start maps a whole archive or none; a stop that had to kill the broker leaves none."""
    archive = class_archive(ensure_kafka_libs())
    if archive.exists():
        return archive
    partial = archive.with_name(f"{archive.name}.{uuid.uuid4().hex}.partial")
    cluster = KafkaCluster(1)
    cluster._dump_classes = partial
    try:
        with cluster:
            proc = cluster.nodes[0].process
        if proc is not None and proc.returncode == 143 and partial.exists():
            partial.replace(archive)
    except KafkaRuntimeError:
        pass  # no archive: the brokers start as they did without one (only slower), and say why when they fail
    finally:
        partial.unlink(missing_ok=True)
    return archive

