"""Topic declarations (`deploy/topics.yaml`) and the pure plan that reconciles them with a cluster."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from leadbus.agencies import AGENCIES
from leadbus.geography import PROVINCES, REGIONS

INTAKE_PREFIX = "leadbus.intake."
#: Every agency's intake topic, as a librdkafka subscription pattern.
INTAKE_PATTERN = "^" + INTAKE_PREFIX.replace(".", "\\.") + ".*"
LEADS_ACCEPTED = "leadbus.leads.accepted"
LEADS_REJECTED = "leadbus.leads.rejected"
CASES = "leadbus.cases"
HANDOVER = "leadbus.handover"
HANDOVER_DECISIONS = "leadbus.handover.decisions"
SCHEMAS = "leadbus.schemas"
#: Compacted: every publisher key (`PublisherKey`), keyed by `<publisher>/<key id>`; written only by the admin.
PUBLISHERS = "leadbus.publishers"
#: Each new head of the archive's manifest chain, signed by the archive sink: the head an audit of the archive checks
#: its manifest against (`leadbus.sinks.archive_heads`, `leadbus.audit.archive_heads`).
ARCHIVE_HEADS = "leadbus.archive.heads"
#: Intake's repartition topic: examined leads keyed by normalised lead id (written and read by intake only).
INTAKE_BY_LEAD = "leadbus.internal.intake-by-lead"
#: Changelog of intake's dedupe memory, co-partitioned with INTAKE_BY_LEAD.
INTAKE_CHANGELOG = "leadbus.state.intake-dedupe"
WITHDRAWALS = "leadbus.withdrawals"
#: The handover stage's own topic: an absorbed case's open handover (and decisions still naming it) carried to
#: the partition of the case that absorbed it; keyed by the surviving case, co-partitioned with CASES.
HANDOVER_CARRYOVER = "leadbus.internal.handover-carryover"
ROUTING_CHANGELOG = "leadbus.state.routing"
#: Changelog of the linker's global state (every case's strong identifiers), partition 0 of the stage.
LINKING_CHANGELOG = "leadbus.state.linking"
#: Changelog of each case's handover state, co-partitioned with CASES.
HANDOVER_CHANGELOG = "leadbus.state.handover"


def stage_group(stage: str) -> str:
    """The consumer group a stage's workers share (and the prefix its ACL grants are written for)."""
    return f"leadbus-{stage}"


#: Notice-and-takedown: notices to platforms, their replies, and webhooks that could not be delivered.
TAKEDOWN_NOTICES = "leadbus.takedown.notices"
TAKEDOWN_REPLIES = "leadbus.takedown.replies"
WEBHOOKS_DEAD = "leadbus.webhooks.dead"

# -- issue #18: the blacklist, platform checks, public disclosure --------------------------------
#: Compacted: one `BlacklistEntry` per entity (失信企业黑名单), keyed by entry id; written by the blacklist stage.
BLACKLIST = "leadbus.blacklist"
#: Valid `BlacklistDecision` events from intake, keyed by entry id.
BLACKLIST_DECISIONS = "leadbus.blacklist.decisions"
BLACKLIST_CHANGELOG = "leadbus.state.blacklist"
#: Anonymised records of closed cases (信息公开), keyed by case id; public.
DISCLOSURE = "leadbus.disclosure"
DISCLOSURE_CHANGELOG = "leadbus.state.disclosure"

# -- analysts in the linking loop (issue #19) --
#: Valid `LinkDecision` events from intake, one partition (linking's state is global, one order).
LINK_DECISIONS = "leadbus.links.decisions"
#: Every `LinkSuggested` the suggesting stage emits (the record); each is also copied to the review topic of
#: every region involved, which that region's dashboard (supervisors only) reads.
LINKS_SUGGESTED = "leadbus.links.suggested"

# -- the suggesting stage (issue #16: the suggestion index off linking's hot path) --
#: Changelog of the suggesting stage's global state (the weak-signal suggestion index), partition 0.
SUGGESTING_CHANGELOG = "leadbus.state.suggesting"


def intake_topic(agency: str) -> str:
    return f"{INTAKE_PREFIX}{agency}"


def jurisdiction_topic(province: str) -> str:
    return f"leadbus.jurisdiction.{province}"


def liaison_topic(province: str) -> str:
    """Hong Kong, Macao, Taiwan: outside mainland enforcement, reached through liaison, never a jurisdiction."""
    return f"leadbus.liaison.{province}"


def region_topic(region: str) -> str:
    return f"leadbus.region.{region}"


def channel_topic(channel: str) -> str:
    """A national channel to one authority (customs, payments), outside the provincial feeds."""
    return f"leadbus.channel.{channel}"


def review_topic(region: str) -> str:
    """Suggested links for the supervisors of one region to confirm or reject."""
    return f"leadbus.review.{region}"


_EXPANSIONS: Mapping[str, Iterable[str]] = {
    "agency": sorted(AGENCIES),
    "province": sorted(PROVINCES),
    "mainland_province": sorted(p for p, info in PROVINCES.items() if info.mainland),
    "liaison_province": sorted(p for p, info in PROVINCES.items() if not info.mainland),
    "region": sorted(REGIONS),
}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int
    config: Mapping[str, str] = field(default_factory=dict)
    doc: str = ""

    def for_cluster(self, brokers: int) -> TopicSpec:
        """Clamp replication to what a cluster of `brokers` nodes can hold."""
        rf = min(self.replication_factor, brokers)
        isr = self.min_insync_replicas
        if rf < self.replication_factor:
            isr = min(isr, max(1, rf - 1))
        return TopicSpec(self.name, self.partitions, rf, min(isr, rf), self.config, self.doc)

    def effective_config(self) -> dict[str, str]:
        return {**self.config, "min.insync.replicas": str(self.min_insync_replicas)}


#: libyaml's scanner and parser under PyYAML's safe constructor (the same documents, ~8x faster: topics.yaml in 1 ms,
#: not 9; a verified replay read it three times), or the pure-Python loader where PyYAML was built without libyaml
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_declarations(text: str | None = None) -> list[TopicSpec]:
    if text is None:
        text = resources.files("leadbus.deploy").joinpath("topics.yaml").read_text(encoding="utf-8")
    doc: dict[str, Any] = yaml.load(text, Loader=_SAFE_LOADER)
    defaults = doc.get("defaults", {})
    specs: list[TopicSpec] = []
    for item in doc["topics"]:
        config = {**defaults.get("config", {}), **item.get("config", {})}
        config = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in config.items()}
        values = _EXPANSIONS[item["for_each"]] if "for_each" in item else [None]
        for value in values:
            name = item["name"].format(**{item["for_each"]: value}) if value is not None else item["name"]
            specs.append(
                TopicSpec(
                    name=name,
                    partitions=int(item.get("partitions", defaults.get("partitions", 1))),
                    replication_factor=int(item.get("replication_factor", defaults.get("replication_factor", 1))),
                    min_insync_replicas=int(item.get("min_insync_replicas", defaults.get("min_insync_replicas", 1))),
                    config=config,
                    doc=str(item.get("doc", "")),
                )
            )
    return specs


@functools.cache
def declarations() -> tuple[TopicSpec, ...]:
    """The packaged declarations, read once per process (for readers that only look: a spec's `config` is not to be
    changed in place)."""
    return tuple(load_declarations())


@dataclass(frozen=True)
class ExistingTopic:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass
class TopicPlan:
    create: list[TopicSpec] = field(default_factory=list)
    add_partitions: list[tuple[TopicSpec, int]] = field(default_factory=list)
    config_drift: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    replication_drift: list[tuple[str, int, int]] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not (self.create or self.add_partitions or self.config_drift or self.replication_drift)


def plan(declared: Iterable[TopicSpec], existing: Mapping[str, ExistingTopic]) -> TopicPlan:
    result = TopicPlan()
    names = set()
    for spec in declared:
        names.add(spec.name)
        have = existing.get(spec.name)
        if have is None:
            result.create.append(spec)
            continue
        if have.partitions < spec.partitions:
            result.add_partitions.append((spec, have.partitions))
        if have.replication_factor != spec.replication_factor:
            result.replication_drift.append((spec.name, have.replication_factor, spec.replication_factor))
        for key, want in spec.effective_config().items():
            if have.config.get(key) != want:
                result.config_drift.append((spec.name, key, have.config.get(key), want))
    result.undeclared = sorted(n for n in existing if n.startswith("leadbus.") and n not in names)
    return result
