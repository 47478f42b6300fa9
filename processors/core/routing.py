"""Routing, pure: where a case goes (属地查处 and regional joint enforcement), and what each recipient sees.

    routes(case) -> [Route]        jurisdiction of the suspect's province, every regional group that contains
                                   a reporting or the suspect's province, customs for cross-border cases, the
                                   PBC for payment accounts, notice-and-takedown for platform shops and sites,
                                   a liaison channel for Hong Kong, Macao and Taiwan (never a jurisdiction),
                                   the postal administration (SPB) for cases with waybills (core/courier.py)
    route_change(before, case)     where a new version of a case goes, and a `Withdrawal` (with its reason)
                                   for every place an earlier version reached and this one no longer does
    bulletin(case, region) -> dict the masked projection a regional dashboard may see

Need-to-know holds over time: a place that received a case and may no longer see it (a revision
to CONFIDENTIAL, a RESTRICTED lead joining, a corrected province, a merge, a split) is told so by
a withdrawal carrying the case id, the version and a reason, and no case data. A place the case
comes back to later gets it again whole: every routed version is complete.

Hong Kong (81), Macao (82) and Taiwan (71) have GB/T 2260 codes but lie outside mainland
enforcement jurisdiction (reference facts: `mainland_enforcement: false`, "model them as routing
targets for liaison/cooperation, not as mainland provinces"): a suspect there goes to the liaison
channel `leadbus.liaison.<code>`, and jurisdiction falls to the mainland provinces that reported
it. 81 and 82 remain members of 泛珠三角 (9+2 cooperation), so the regional bulletin still goes there.

`handling` is enforced here and nowhere else: OPEN goes everywhere; RESTRICTED only to the
regions and agencies its publisher listed in `share_with` (never a province-wide feed, which
every agency of the province reads, nor a platform); CONFIDENTIAL only to the agencies listed —
never to a regional dashboard, a province-wide feed or a platform. All masking rules live in
`mask_*` below.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from leadbus.geography import NATIONAL, PROVINCES, regions_of
from leadbus.processors.core.courier import POSTAL_ADMINISTRATION, POSTAL_TOPIC, has_waybills
from leadbus.topics import TAKEDOWN_NOTICES, channel_topic, jurisdiction_topic, liaison_topic, region_topic

#: What kind of recipient a route reaches (not `models.Channel`, the way a lead reached its agency).
RouteKind = Literal["jurisdiction", "region", "liaison", "customs", "payments", "takedown", "courier"]
CUSTOMS, PBC = "GACC", "PBC"


@dataclass(frozen=True)
class Route:
    channel: RouteKind
    topic: str
    recipient: str  # province code, region code or agency code


def _provinces(case: Mapping[str, Any]) -> list[str]:
    found = [r["province"] for r in case["reporters"]]
    if case.get("suspect_province"):
        found.append(case["suspect_province"])
    return [p for p in dict.fromkeys(found) if p != NATIONAL and p in PROVINCES]


def _mainland(province: str) -> bool:
    return PROVINCES[province].mainland


def _kinds(case: Mapping[str, Any]) -> set[str]:
    return {i["kind"] for i in case["identifiers"]}


def routes(case: Mapping[str, Any]) -> list[Route]:
    handling = case["handling"]
    allowed = set(case.get("share_with", []))
    out: list[Route] = []

    def permitted(recipient: str, channel: RouteKind) -> bool:
        if handling == "OPEN":
            return True
        if handling == "RESTRICTED":
            # A province-wide feed reaches every agency there, and a liaison channel the authorities of
            # another jurisdiction, so neither is ever a listed recipient.
            return channel not in ("jurisdiction", "liaison") and recipient in allowed
        return channel in ("customs", "payments", "courier") and recipient in allowed  # CONFIDENTIAL

    suspect = case.get("suspect_province")
    if suspect and suspect in PROVINCES and _mainland(suspect):
        targets = [suspect]
    else:  # unknown, or outside mainland enforcement: the mainland provinces that reported it
        targets = [p for p in _provinces(case) if _mainland(p)]
    for province in targets:
        if permitted(province, "jurisdiction"):
            out.append(Route("jurisdiction", jurisdiction_topic(province), province))
    for province in _provinces(case):
        if not _mainland(province) and permitted(province, "liaison"):
            out.append(Route("liaison", liaison_topic(province), province))
    for region in sorted(regions_of(*_provinces(case))):
        if permitted(region, "region"):
            out.append(Route("region", region_topic(region), region))
    if case.get("cross_border") and permitted(CUSTOMS, "customs"):
        out.append(Route("customs", channel_topic("customs"), CUSTOMS))
    if "acct" in _kinds(case) and permitted(PBC, "payments"):
        out.append(Route("payments", channel_topic("payments"), PBC))
    if _kinds(case) & {"shop", "domain"} and handling == "OPEN":
        out.append(Route("takedown", TAKEDOWN_NOTICES, "platforms"))
    if has_waybills(case) and permitted(POSTAL_ADMINISTRATION, "courier"):  # 寄递渠道: SPB asks the couriers
        out.append(Route("courier", POSTAL_TOPIC, POSTAL_ADMINISTRATION))
    return out


# -- withdrawals: need-to-know over time --------------------------------------------------------

MERGED = "MERGED"  # absorbed into another case (`merged_into`), which is routed on its own
HANDLING_CHANGED = "HANDLING_CHANGED"  # RESTRICTED or CONFIDENTIAL now: this recipient may not see it
PROVINCES_CHANGED = "PROVINCES_CHANGED"  # a corrected province or a split: the place is no longer concerned
CHANNEL_NO_LONGER_APPLIES = "CHANNEL_NO_LONGER_APPLIES"  # no longer cross-border, no account, shop, site, waybill
WITHDRAWAL_REASONS = (MERGED, HANDLING_CHANGED, PROVINCES_CHANGED, CHANNEL_NO_LONGER_APPLIES)


@dataclass(frozen=True)
class Withdrawal:
    route: Route
    reason: str


@dataclass(frozen=True)
class RouteChange:
    """What routing does with one version of a case: send it to `send`, withdraw it from `withdraw`."""

    send: list[Route]
    withdraw: list[Withdrawal]
    stale: bool = False  # an older version than one already routed: nothing is sent


@dataclass(frozen=True)
class Reached:
    """What the routing stage remembers of a case: the last version routed and where it went."""

    version: int
    routes: tuple[Route, ...]

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "routes": [[r.channel, r.topic, r.recipient] for r in self.routes]},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Reached:
        doc = json.loads(text)
        return cls(int(doc["version"]), tuple(Route(c, t, r) for c, t, r in doc["routes"]))


def _reason(route: Route, case: Mapping[str, Any]) -> str:
    if case.get("merged_into"):
        return MERGED
    if route in routes({**case, "handling": "OPEN"}):
        return HANDLING_CHANGED
    if route.channel in ("jurisdiction", "region", "liaison"):
        return PROVINCES_CHANGED
    return CHANNEL_NO_LONGER_APPLIES


def route_change(before: Reached | None, case: Mapping[str, Any]) -> RouteChange:
    """Route one version of a case, knowing where its earlier versions went.

    A case merged into another goes nowhere any more (its survivor is routed under its own id): every
    place it reached gets a withdrawal naming the survivor. A version older than the last one routed
    is stale and changes nothing (a replay of `leadbus.cases`); the same version again (an absorbed
    case's closing event keeps its last version) is routed as usual. Of a case nothing is remembered
    about, only a merge is withdrawn — from every place its last version would have reached.
    """
    version = int(case["version"])
    if before is not None and version < before.version:
        return RouteChange([], [], stale=True)
    merged = bool(case.get("merged_into"))
    send = [] if merged else routes(case)
    if before is not None:
        previous: tuple[Route, ...] | list[Route] = before.routes
    else:  # nothing remembered (routed before routing kept state): a merged case leaves wherever it would have gone
        previous = routes({**case, "merged_into": None}) if merged else ()
    withdraw = [Withdrawal(route, _reason(route, case)) for route in previous if route not in send]
    return RouteChange(send, withdraw)


# -- handover steps: each region's dashboard gets them through its own topic ----------------------------

#: Steps remembered per case, so that a region a case reaches late still gets its whole handover so far.
STEPS_KEPT = 64


def step_regions(reached: Reached | None) -> list[Route]:
    """Where a case's handover steps go: the regional topics its last version reached, nothing else."""
    return [r for r in reached.routes if r.channel == "region"] if reached is not None else []


def newly_reached_regions(before: Reached | None, change: RouteChange) -> list[Route]:
    """Regions this version reaches that the last one did not: they get the case's earlier steps too."""
    had = set(step_regions(before))
    return [r for r in change.send if r.channel == "region" and r not in had]


def regional_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """A HandoverStep as a region may receive it: phases, deadlines, actors; no free text.

    `reasons` and `assessment` are written by agencies and may name people or quote identifiers, and no
    dashboard shows them, so they never leave the national topic.
    """
    return {**step, "reasons": "", "assessment": ""}


def withdrawal_record(case: Mapping[str, Any], withdrawal: Withdrawal) -> dict[str, Any]:
    """The CaseWithdrawn event (the edge adds `withdrawn_at`): ids, version and reason, no case data."""
    return {
        "case_id": case["case_id"],
        "version": int(case["version"]),
        "reason": withdrawal.reason,
        "channel": withdrawal.route.channel,
        "recipient": withdrawal.route.recipient,
        "topic": withdrawal.route.topic,
        "merged_into": case.get("merged_into"),
    }


# -- masking: what a regional dashboard may see ------------------------------------------------

_CJK_NAME = re.compile(r"^[\u4e00-\u9fff·]{2,5}$")


def mask_resident_id(value: str) -> str:
    """11010519491231002X → 110105********002X: the region stays, the birth date and sequence do not."""
    return value[:6] + "*" * (len(value) - 10) + value[-4:] if len(value) > 10 else "*" * len(value)


def mask_phone(value: str) -> str:
    """+8613812345678 → +86138****5678."""
    digits = value[3:] if value.startswith("+86") else value
    masked = digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else "*" * len(digits)
    return ("+86" if value.startswith("+86") else "") + masked


def mask_account(value: str) -> str:
    """6222021234567890128 → 6222***********0128; logins keep only their first and last characters."""
    if len(value) <= 4:
        return "*" * len(value)
    keep = 4 if value.isdigit() else 1
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def mask_person_name(value: str) -> str:
    """张三丰 → 张**: an individual's given name is personal data; a company's name is public."""
    return value[0] + "*" * (len(value) - 1) if _CJK_NAME.match(value) else value


_MASKS = {"rid": mask_resident_id, "phone": mask_phone, "acct": mask_account}
# Personal data is masked; an enterprise's 统一社会信用代码 and a site's ICP filing number (ICP备案号)
# are public registrations and shown whole, like shop ids and domains.
PERSONAL_KINDS = frozenset(_MASKS)
PUBLIC_KINDS = frozenset({"uscc", "icp", "shop", "domain"})


def mask_identifier(kind: str, value: str) -> str:
    return _MASKS.get(kind, str)(value)


def bulletin(case: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The RegionalBulletin: what the dashboard of `region` shows of a case, personal data masked."""
    # Without a 统一社会信用代码 the suspect may be a natural person (an ID number is not always known):
    # a name that looks like a person's is masked; a company's name is public.
    individual = "uscc" not in _kinds(case)
    facts = case["facts"]
    return {
        "case_id": case["case_id"],
        "region": region,
        "version": case["version"],
        "suspect_name": mask_person_name(case["suspect_name"]) if individual else case["suspect_name"],
        "suspect_province": case.get("suspect_province"),
        "reporters": [dict(r) for r in case["reporters"]],
        "identifiers": [{"kind": i["kind"], "value": mask_identifier(i["kind"], i["value"])}
                        for i in case["identifiers"]],
        "categories": list(case["categories"]),
        "violations": list(case["violations"]),
        "sales_amount_fen": case["facts"].get("sales_amount_fen"),
        "illegal_business_amount_fen": case["facts"].get("illegal_business_amount_fen"),
        "members": len(case["members"]),
        "cross_border": bool(case.get("cross_border")),
        "handling": case["handling"],
        "first_reported_at": case["first_reported_at"],
        "last_reported_at": case["last_reported_at"],
        "merged_into": case.get("merged_into"),
        # v2 (issue #15): what the law turns on, shown to the regions; a v1 case has none of it
        "conduct_from": case.get("conduct_from"),
        "conduct_to": case.get("conduct_to"),
        "prior_penalties": [{"kind": str(p["kind"]), "decided_on": p["decided_on"], "decided_by": str(p["decided_by"]),
                             "violation": str(p["violation"])} for p in case.get("prior_penalties") or []],
        "labels_sold": facts.get("labels_sold"),
        "labels_held": facts.get("labels_held"),
        "labels_made_by": _known(facts.get("labels_made_by")),
        "mark_use": _known(facts.get("mark_use")),
        # v3 (issue #19): which leads the case holds, for a supervisor's split on the dashboard (ids, no data)
        "lead_ids": sorted(case["members"]),
    }


def _known(value: Any) -> str | None:
    """An enum symbol of the contract, UNKNOWN (its default) as null."""
    return None if value in (None, "", "UNKNOWN") else str(value)


def takedown_targets(case: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What notice-and-takedown addresses: each marketplace shop (platform:shop id) and independent site."""
    targets: list[dict[str, Any]] = []
    for identifier in case["identifiers"]:
        if identifier["kind"] == "shop":
            platform, shop_id = identifier["value"].split(":", 1)
            targets.append({"platform": platform, "shop_id": shop_id, "urls": []})
        elif identifier["kind"] == "domain":
            domain = identifier["value"]
            targets.append({"platform": domain, "shop_id": None, "urls": [f"https://{domain}/"]})
    return targets
