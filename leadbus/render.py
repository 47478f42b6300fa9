"""`leadbus deploy render`: Kubernetes (Strimzi) manifests and systemd units from the declarations.

Everything is derived from `deploy/topics.yaml` (and `deploy/acl-policy.yaml` when it exists): a Strimzi `Kafka`
in KRaft mode with two `KafkaNodePool`s (3 controllers, 3 brokers), TLS and SCRAM-SHA-512 listeners and the
simple authorizer; a `KafkaTopic` per declared topic; a `KafkaUser` with its ACLs per principal of the policy;
a Deployment per stage with as many replicas as are useful (never more than the partitions of the input that
carries its state; linking: one active owner of its single partition and stand-bys), the sinks, the gateway, the
regional dashboards, their Services and PodDisruptionBudgets, and Secret references (never secret values).
The same plan renders systemd units for provincial data centres that run plain VMs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from leadbus.agencies import AGENCIES
from leadbus.geography import REGIONS
from leadbus.topics import CASES, INTAKE_BY_LEAD, LEADS_ACCEPTED, TopicSpec, load_declarations

STRIMZI_API = "kafka.strimzi.io/v1beta2"
CLUSTER = "leadbus"
NAMESPACE = "leadbus"
KAFKA_VERSION = "4.1.1"
METRICS_PORT = 9400
IMAGE = "registry.example.invalid/leadbus:0.1.0"
BOOTSTRAP_SCRAM = f"{CLUSTER}-kafka-bootstrap:9094"


class GrantLike(Protocol):
    """One ALLOW rule, shaped like `leadbus.acl.Grant` (the ACL policy's model): one operation on one resource."""

    @property
    def principal(self) -> str: ...  # "User:intake"
    @property
    def kind(self) -> str: ...  # topic | group | transactional_id | cluster
    @property
    def name(self) -> str: ...
    @property
    def pattern(self) -> str: ...  # literal | prefixed
    @property
    def operation(self) -> str: ...  # read, write, describe, idempotent_write, …


@dataclass(frozen=True)
class Grant:
    principal: str
    kind: str
    name: str
    pattern: str
    operation: str


@dataclass(frozen=True)
class Principals:
    """What the renderer needs of the ACL policy: the admin (a super user), the users and their grants."""

    admin: str
    users: tuple[str, ...]
    grants: tuple[GrantLike, ...]


_GRANT_KEYS = {
    "topic": ("topic", "literal"),
    "topic_prefix": ("topic", "prefixed"),
    "group": ("group", "literal"),
    "group_prefix": ("group", "prefixed"),
    "transactional_id": ("transactional_id", "literal"),
    "transactional_id_prefix": ("transactional_id", "prefixed"),
    "cluster": ("cluster", "literal"),
}


def load_principals(path: Path) -> Principals:
    """The principals and grants of `deploy/acl-policy.yaml` (`admin`, `principals: [{name, for_each, allow}]`).

    A reader of its own, for the format the ACL work declares (`principals[].allow[]` items such as
    `{topic_prefix: "leadbus.intake.", ops: [read, describe]}`); once `leadbus.acl.load_policy` is on the
    same branch, `Principals(policy.admin, tuple(policy.users()), tuple(policy.grants()))` replaces it.
    """
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    expansions = {"agency": sorted(AGENCIES), "region": sorted(REGIONS)}
    users: list[str] = []
    grants: list[GrantLike] = []
    for item in doc.get("principals", []):
        values = expansions[item["for_each"]] if "for_each" in item else [None]
        for value in values:
            fill = {item["for_each"]: value} if value is not None else {}
            user = str(item["name"]).format(**fill)
            users.append(user)
            for rule in item.get("allow", []):
                (key,) = [k for k in rule if k != "ops"]
                kind, pattern = _GRANT_KEYS[key]
                name = "kafka-cluster" if kind == "cluster" else str(rule[key]).format(**fill)
                grants += [Grant(f"User:{user}", kind, name, pattern, str(op)) for op in rule["ops"]]
    return Principals(str(doc.get("admin", "admin")), tuple(users), tuple(grants))


@dataclass(frozen=True)
class Workload:
    """A process of the bus: one Deployment (Kubernetes) or one systemd template unit (VMs)."""

    name: str
    args: tuple[str, ...]
    replicas: int
    max_replicas: int
    scaling: str
    principal: str
    port: int | None = None  # an HTTP port served to others (gateway, dashboards)
    metrics: bool = True
    volume: str | None = None  # a persistent volume mounted at /var/lib/leadbus (sinks with files)
    min_available: int = 1
    link_desk: tuple[str, str] | None = None  # (region, publisher id AGENCY.PROVINCE) of a dashboard's link desk


# Issue #19: each region's supervisors decide links on a dashboard holding an agency office's signing key. Rendered
# for SAMR's office in the region's first province (as the gateway is rendered for SAMR), one replica per region:
# the key's signing sequence must have one writer, kept on a volume (a second writer, or a sequence lost with a
# pod, would make intake refuse its numbers as replayed). Viewers use the scaled dashboards beside it.
LINK_DESK_AGENCY = "SAMR"


def link_desk_args(region: str, publisher: str, *, key_dir: str, client_config: str) -> tuple[str, ...]:
    """The options of a dashboard with a link desk: the office's key, its id, the desk principal's client settings
    (`link-desk-<region>` in deploy/acl-policy.yaml) and its state (access log, signing sequence) on the volume."""
    return ("--link-key", f"{key_dir}/{publisher}.key", "--link-publisher", publisher,
            "--link-client-config", client_config,
            "--access-log", f"/var/lib/leadbus/dashboard/{region}/access.jsonl")


@dataclass
class Plan:
    topics: list[TopicSpec]
    principals: Principals | None
    workloads: list[Workload] = field(default_factory=list)


def _partitions(topics: list[TopicSpec], name: str) -> int:
    return next(t.partitions for t in topics if t.name == name)


def plan(topics: list[TopicSpec] | None = None, principals: Principals | None = None) -> Plan:
    topics = topics if topics is not None else load_declarations()
    result = Plan(topics, principals)
    by_lead = _partitions(topics, INTAKE_BY_LEAD)
    cases = _partitions(topics, CASES)
    accepted = _partitions(topics, LEADS_ACCEPTED)
    stage_args = ("process", "--state-dir", "/var/lib/leadbus/state", "--metrics-port", str(METRICS_PORT))
    result.workloads += [
        Workload(
            "intake",
            (*stage_args, "--stage", "intake"),
            3,
            by_lead,
            f"consumer group leadbus-intake; state lives with the {by_lead} partitions of {INTAKE_BY_LEAD}: "
            f"up to {by_lead} useful replicas",
            "intake",
        ),
        Workload(
            "linking",
            (*stage_args, "--stage", "linking"),
            2,
            2,
            f"consumer group leadbus-linking; {LEADS_ACCEPTED} has {accepted} partition and the linker's state "
            "is global: one active owner, the other replica stands by and takes over on failure",
            "linking",
            min_available=1,
        ),
        Workload(
            "handover",
            (*stage_args, "--stage", "handover"),
            2,
            cases,
            f"consumer group leadbus-handover; state co-partitioned with the {cases} partitions of {CASES}",
            "handover",
        ),
        Workload(
            "routing",
            (*stage_args, "--stage", "routing"),
            2,
            cases,
            f"consumer group leadbus-routing; state co-partitioned with the {cases} partitions of {CASES}",
            "routing",
        ),
        Workload(
            "blacklist",
            (*stage_args, "--stage", "blacklist"),
            1,
            1,
            "consumer group leadbus-blacklist; the blacklist is global state (an entity's cases may sit on any "
            f"partition): one worker only — a second in the group would be given some of the {cases} partitions "
            f"of {CASES} and hold the global state too; it is restarted on failure",
            "blacklist",
            min_available=0,
        ),
        Workload(
            "suggesting",
            (*stage_args, "--stage", "suggesting"),
            1,
            1,
            "consumer group leadbus-suggesting; the suggestion index is global state (any case may pair with any, "
            f"from the {cases} partitions of {CASES}): one worker only — a second in the group would be given "
            f"some of the {cases} partitions and hold the global state too (the stage engine does not yet keep a "
            "global state to one member when an input has several partitions)",
            "suggesting",
            min_available=0,
        ),
        Workload(
            "disclosure",
            (*stage_args, "--stage", "disclosure"),
            1,
            2,
            "consumer group leadbus-disclosure; global state (closed cases and public listings): one active owner",
            "disclosure",
            min_available=0,
        ),
        Workload(
            "registry",
            ("registry",),
            1,
            1,
            "one writer per database: rows and offsets in one SQL transaction",
            "registry",
            metrics=False,
            min_available=0,
        ),
        Workload(
            "archive",
            ("archive", "run", "/var/lib/leadbus/archive"),
            1,
            1,
            "one writer per archive directory (hourly files and a chained manifest)",
            "archive",
            metrics=False,
            volume="archive",
            min_available=0,
        ),
        Workload(
            "takedown",
            ("takedown",),
            1,
            1,
            "webhook deliveries with idempotency keys; one is enough",
            "takedown",
            metrics=False,
            min_available=0,
        ),
        Workload(
            "gateway",
            # one gateway per agency at its own edge; rendered here for SAMR (national), the others alike
            ("gateway", "--agency", "SAMR", "--province", "00", "--host", "0.0.0.0", "--port", "8443"),
            2,
            10,
            "stateless HTTPS/JSON edge of the agencies: scale on request rate",
            "gateway",
            port=8443,
            metrics=False,
        ),
    ]
    for region in sorted(REGIONS):
        result.workloads.append(
            Workload(
                f"dashboard-{region}",
                ("dashboard", "--region", region, "--host", "0.0.0.0", "--port", "8080",
                 "--users", "/etc/leadbus/dashboard/users.yaml"),
                2,
                4,
                f"each replica reads leadbus.region.{region} in full (no group): scale for viewers",
                f"dashboard-{region}",
                port=8080,
                metrics=False,
            )
        )
    for region in sorted(REGIONS):  # issue #19: the link desks
        publisher = f"{LINK_DESK_AGENCY}.{min(REGIONS[region].members)}"
        result.workloads.append(
            Workload(
                f"dashboard-{region}-desk",
                ("dashboard", "--region", region, "--host", "0.0.0.0", "--port", "8080",
                 "--users", "/etc/leadbus/dashboard/users.yaml"),
                1,
                1,
                f"the dashboard of leadbus.region.{region} whose supervisors decide links, signed as {publisher}: "
                "one replica, the key's signing sequence has one writer (on its volume)",
                f"dashboard-{region}",
                port=8080,
                metrics=False,
                volume=f"dashboard-{region}-desk",
                min_available=0,
                link_desk=(region, publisher),
            )
        )
    return result


# -- Kubernetes ---------------------------------------------------------------------------------------------------


def k8s_name(topic: str) -> str:
    """A DNS-1123 name for a topic (Kubernetes names are lower case; the topic name itself goes in spec)."""
    return re.sub(r"[^a-z0-9.-]", "-", topic.lower()).strip(".-")


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "leadbus", "app.kubernetes.io/component": name}


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, **extra}


def kafka_resources(topics: list[TopicSpec], admin: str = "admin") -> list[dict[str, Any]]:
    pools = []
    for role, size in (("controller", "20Gi"), ("broker", "500Gi")):
        pools.append(
            {
                "apiVersion": STRIMZI_API,
                "kind": "KafkaNodePool",
                "metadata": _meta(f"{role}s", labels={"strimzi.io/cluster": CLUSTER}),
                "spec": {
                    "replicas": 3,
                    "roles": [role],
                    "storage": {
                        "type": "jbod",
                        "volumes": [
                            {
                                "id": 0,
                                "type": "persistent-claim",
                                "size": size,
                                "deleteClaim": False,
                                "kraftMetadata": "shared",
                            }
                        ],
                    },
                },
            }
        )
    kafka = {
        "apiVersion": STRIMZI_API,
        "kind": "Kafka",
        "metadata": _meta(CLUSTER, annotations={"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}),
        "spec": {
            "kafka": {
                "version": KAFKA_VERSION,
                "listeners": [
                    {"name": "tls", "port": 9093, "type": "internal", "tls": True, "authentication": {"type": "tls"}},
                    {
                        "name": "scram",
                        "port": 9094,
                        "type": "internal",
                        "tls": True,
                        "authentication": {"type": "scram-sha-512"},
                    },
                ],
                "authorization": {"type": "simple", "superUsers": [admin]},
                "config": {
                    "default.replication.factor": 3,
                    "min.insync.replicas": 2,
                    "offsets.topic.replication.factor": 3,
                    "transaction.state.log.replication.factor": 3,
                    "transaction.state.log.min.isr": 2,
                    "unclean.leader.election.enable": False,
                    "auto.create.topics.enable": False,
                    "allow.everyone.if.no.acl.found": False,
                    "message.max.bytes": int(topics[0].config.get("max.message.bytes", "1048576"))
                    if topics
                    else 1048576,
                },
            },
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
        },
    }
    return [*pools, kafka]


def topic_resources(topics: list[TopicSpec]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": STRIMZI_API,
            "kind": "KafkaTopic",
            "metadata": _meta(k8s_name(t.name), labels={"strimzi.io/cluster": CLUSTER}),
            "spec": {
                "topicName": t.name,
                "partitions": t.partitions,
                "replicas": t.replication_factor,
                "config": dict(t.effective_config()),
            },
        }
        for t in topics
    ]


_OPERATIONS = {
    "read": "Read",
    "write": "Write",
    "describe": "Describe",
    "describe_configs": "DescribeConfigs",
    "idempotent_write": "IdempotentWrite",
    "create": "Create",
    "alter": "Alter",
    "alter_configs": "AlterConfigs",
    "delete": "Delete",
    "cluster_action": "ClusterAction",
    "all": "All",
}
_RESOURCES = {"topic": "topic", "group": "group", "transactional_id": "transactionalId", "cluster": "cluster"}
_PATTERN_TYPES = {"literal": "literal", "prefixed": "prefix"}


def user_resources(principals: Principals) -> list[dict[str, Any]]:
    """A KafkaUser (SCRAM-SHA-512, simple authorization) per user, its grants merged by resource."""
    users = []
    for user in principals.users:
        by_resource: dict[tuple[str, str, str], list[str]] = {}
        for g in principals.grants:
            if g.principal == f"User:{user}":
                ops = by_resource.setdefault((g.kind, g.name, g.pattern), [])
                op = _OPERATIONS[g.operation]
                if op not in ops:
                    ops.append(op)
        acls = []
        for (kind, name, pattern), ops in by_resource.items():
            resource: dict[str, Any] = {"type": _RESOURCES[kind]}
            if kind != "cluster":
                resource |= {"name": name, "patternType": _PATTERN_TYPES[pattern]}
            acls.append({"resource": resource, "operations": ops, "host": "*"})
        users.append(
            {
                "apiVersion": STRIMZI_API,
                "kind": "KafkaUser",
                # Kubernetes names are lower case, and Strimzi's SCRAM user is the resource's name.
                "metadata": _meta(
                    k8s_name(user),
                    labels={"strimzi.io/cluster": CLUSTER},
                    annotations={"leadbus.cn/policy-principal": user},
                ),
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": acls},
                },
            }
        )
    return users


#: Where a stage finds its seal key `LEADBUS-<stage>.key` (`leadbus keys provision-stages --dir` makes it).
STAGE_KEY_DIR = "/etc/leadbus/stage-keys"


def _stage_of(w: Workload) -> str:
    return w.args[w.args.index("--stage") + 1]


#: The archive sink's key (`leadbus.sinks.archive_heads.SIGNER_STAGE`): it signs the heads the sink publishes.
ARCHIVE_KEY = "archive"


def _seal_key_of(w: Workload) -> str | None:
    """Whose seal key `LEADBUS-<name>.key` the workload signs with: a stage's own, the archive sink's (its published
    heads, issue #14: run without it they went out unsigned, vouched for by the topic's ACL alone), else none."""
    if w.args[0] == "process":
        return _stage_of(w)
    if w.args[:2] == ("archive", "run"):
        return ARCHIVE_KEY
    return None


def _deployment(w: Workload, image: str) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "LEADBUS_BOOTSTRAP", "value": BOOTSTRAP_SCRAM},
        # The principal's client settings (SASL_SSL, SCRAM-SHA-512, its user and password, the cluster CA),
        # the file `leadbus acl apply` writes, kept in a Secret of its own (docs/operations.md, "Deploy").
        {"name": "LEADBUS_CLIENT_CONFIG", "value": "/etc/leadbus/client/client.json"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    if w.name == "registry":
        env.append(
            {
                "name": "LEADBUS_REGISTRY_URL",
                "valueFrom": {"secretKeyRef": {"name": "leadbus-registry-db", "key": "url"}},
            }
        )
    if w.name == "takedown":
        env.append(
            {
                "name": "LEADBUS_WEBHOOK_SECRET",
                "valueFrom": {"secretKeyRef": {"name": "leadbus-webhook", "key": "secret"}},
            }
        )
    args = list(w.args)
    if w.args[0] == "process":
        args += ["--worker-id", "$(POD_NAME)"]
    signer = _seal_key_of(w)
    if signer is not None:
        args += ["--seal-keys", STAGE_KEY_DIR]
    if w.link_desk is not None:
        args += link_desk_args(*w.link_desk, key_dir="/etc/leadbus/link-desk",
                               client_config="/etc/leadbus/link-client/client.json")
    ports = []
    if w.metrics:
        ports.append({"name": "metrics", "containerPort": METRICS_PORT})
    if w.port:
        ports.append({"name": "http", "containerPort": w.port})
    mounts = [
        {"name": "cluster-ca", "mountPath": "/etc/leadbus/ca", "readOnly": True},
        {"name": "client", "mountPath": "/etc/leadbus/client", "readOnly": True},
        {"name": "state", "mountPath": "/var/lib/leadbus"},
    ]
    if signer is not None:  # the stage's own seal key (issue #14), a Secret per stage: no stage holds another's
        mounts.append({"name": "stage-key", "mountPath": STAGE_KEY_DIR, "readOnly": True})
    if w.link_desk is not None:  # the office's key and the desk principal's client settings, each its own Secret
        mounts += [{"name": "link-desk", "mountPath": "/etc/leadbus/link-desk", "readOnly": True},
                   {"name": "link-client", "mountPath": "/etc/leadbus/link-client", "readOnly": True}]
    volumes: list[dict[str, Any]] = [
        {"name": "cluster-ca", "secret": {"secretName": f"{CLUSTER}-cluster-ca-cert"}},
        {"name": "client", "secret": {"secretName": f"leadbus-client-{k8s_name(w.principal)}"}},
        {
            "name": "state",
            **({"persistentVolumeClaim": {"claimName": f"leadbus-{w.volume}"}} if w.volume else {"emptyDir": {}}),
        },
    ]
    if signer is not None:
        volumes.append({"name": "stage-key", "secret": {"secretName": f"leadbus-stage-key-{signer}"}})
    if w.link_desk is not None:
        region = w.link_desk[0]
        volumes += [{"name": "link-desk", "secret": {"secretName": f"leadbus-link-desk-{region}"}},
                    {"name": "link-client", "secret": {"secretName": f"leadbus-client-link-desk-{region}"}}]
    container: dict[str, Any] = {
        "name": w.name,
        "image": image,
        "command": ["leadbus"],
        "args": args,
        "env": env,
        "ports": ports,
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True},
    }
    if ports:
        container["readinessProbe"] = {"tcpSocket": {"port": ports[0]["name"]}, "periodSeconds": 10}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(
            f"leadbus-{w.name}",
            labels=_labels(w.name),
            annotations={"leadbus.cn/scaling": w.scaling, "leadbus.cn/max-useful-replicas": str(w.max_replicas)},
        ),
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": _labels(w.name)},
            # State is restored from changelogs; a single-writer sink must never run twice at once.
            "strategy": {"type": "Recreate"}
            if w.max_replicas == 1
            else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": _labels(w.name),
                    "annotations": {
                        "prometheus.io/scrape": str(w.metrics).lower(),
                        "prometheus.io/port": str(METRICS_PORT),
                    },
                },
                "spec": {
                    "containers": [container],
                    "volumes": volumes,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {"runAsUser": 10001, "fsGroup": 10001},
                },
            },
        },
    }


def workload_resources(p: Plan, image: str = IMAGE) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
    for w in p.workloads:
        if w.volume:
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": _meta(f"leadbus-{w.volume}"),
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             # a link desk keeps an access log and a signing sequence; archives keep years
                             "resources": {"requests": {"storage": "1Gi" if w.link_desk else "200Gi"}}},
                }
            )
        docs.append(_deployment(w, image))
        ports = ([{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}] if w.metrics else []) + (
            [{"name": "http", "port": 443 if w.port == 8443 else 80, "targetPort": "http"}] if w.port else []
        )
        if ports:
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": _meta(f"leadbus-{w.name}", labels=_labels(w.name)),
                    "spec": {"selector": _labels(w.name), "ports": ports},
                }
            )
        if w.min_available:
            docs.append(
                {
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": _meta(f"leadbus-{w.name}"),
                    "spec": {"minAvailable": w.min_available, "selector": {"matchLabels": _labels(w.name)}},
                }
            )
    return docs


# -- systemd ------------------------------------------------------------------------------------------------------


def systemd_units(p: Plan) -> dict[str, str]:
    """One template unit per workload (`leadbus-intake@1.service` …); instances are the workers on this VM."""
    units: dict[str, str] = {}
    for w in p.workloads:
        args = list(w.args)
        if w.args[0] == "process":
            args = [a if a != str(METRICS_PORT) else "940%i" for a in args] + ["--worker-id", "%H-" + w.name + "-%i",
                                                                                "--seal-keys", STAGE_KEY_DIR]
            args = [a.replace("/var/lib/leadbus/state", "/var/lib/leadbus/state/%i") for a in args]
        elif _seal_key_of(w) is not None:
            args += ["--seal-keys", STAGE_KEY_DIR]
        elif w.port:
            args = [a if a != str(w.port) else f"{str(w.port)[:-1]}%i" for a in args]
        if w.link_desk is not None:
            args += link_desk_args(*w.link_desk, key_dir="/etc/leadbus/link-desk",
                                   client_config=f"/etc/leadbus/clients/link-desk-{w.link_desk[0]}.json")
        units[f"leadbus-{w.name}@.service"] = "\n".join(
            [
                "# Rendered by `leadbus deploy render` from deploy/topics.yaml; do not edit.",
                f"# {w.scaling}. Useful instances: at most {w.max_replicas} across all hosts.",
                "[Unit]",
                f"Description=leadbus {w.name} (instance %i)",
                "After=network-online.target",
                "Wants=network-online.target",
                "",
                "[Service]",
                "Type=exec",
                "User=leadbus",
                "Group=leadbus",
                "EnvironmentFile=/etc/leadbus/leadbus.env",
                # The principal's client settings, as `leadbus acl apply` writes them (var/secure/clients/).
                f"Environment=LEADBUS_CLIENT_CONFIG=/etc/leadbus/clients/{w.principal}.json",
                f"ExecStart=/opt/leadbus/bin/leadbus {' '.join(args)}",
                "KillSignal=SIGTERM",
                "TimeoutStopSec=60",
                "Restart=on-failure",
                "RestartSec=5",
                "StateDirectory=leadbus",
                "NoNewPrivileges=yes",
                "ProtectSystem=strict",
                "ProtectHome=yes",
                "PrivateTmp=yes",
                "",
                "[Install]",
                "WantedBy=multi-user.target",
                "",
            ]
        )
    return units


# -- writing ------------------------------------------------------------------------------------------------------


def _dump(docs: Iterable[Mapping[str, Any]]) -> str:
    header = (
        "# Rendered by `leadbus deploy render` from deploy/topics.yaml (and deploy/acl-policy.yaml); do not edit.\n"
    )
    return header + "".join("---\n" + yaml.safe_dump(dict(d), sort_keys=False, allow_unicode=True) for d in docs)


def render(
    out: Path, topics: list[TopicSpec] | None = None, policy: Path | None = None, image: str = IMAGE
) -> dict[Path, str]:
    """Write deploy/k8s/*.yaml and deploy/systemd/*.service under `out`; return what was written."""
    principals = load_principals(policy) if policy is not None and policy.exists() else None
    p = plan(topics, principals)
    files = {
        out / "k8s" / "kafka.yaml": _dump(kafka_resources(p.topics, principals.admin if principals else "admin")),
        out / "k8s" / "topics.yaml": _dump(topic_resources(p.topics)),
        out / "k8s" / "workloads.yaml": _dump(workload_resources(p, image)),
    }
    if principals:
        files[out / "k8s" / "users.yaml"] = _dump(user_resources(principals))
    for name, text in systemd_units(p).items():
        files[out / "systemd" / name] = text
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return files
