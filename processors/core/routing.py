"""Routing, pure: where a case goes (属地查处 and regional joint enforcement), and what each recipient sees.

    routes(case) -> [Route]        jurisdiction of the suspect's province, every regional group that contains
                                   a reporting or the suspect's province, customs for cross-border cases, the
                                   PBC for payment accounts, notice-and-takedown for platform shops and sites
    bulletin(case, region) -> dict the masked projection a regional dashboard may see

`handling` is enforced here and nowhere else: OPEN goes everywhere; RESTRICTED only to the
regions and agencies its publisher listed in `share_with` (never a province-wide feed, which
every agency of the province reads, nor a platform); CONFIDENTIAL only to the agencies listed —
never to a regional dashboard, a province-wide feed or a platform. All masking rules live in
`mask_*` below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from leadbus.geography import NATIONAL, PROVINCES, regions_of

Channel = Literal["jurisdiction", "region", "customs", "payments", "takedown"]
CUSTOMS, PBC = "GACC", "PBC"


@dataclass(frozen=True)
class Route:
    channel: Channel
    topic: str
    recipient: str  # province code, region code or agency code


def _provinces(case: Mapping[str, Any]) -> list[str]:
    found = [r["province"] for r in case["reporters"]]
    if case.get("suspect_province"):
        found.append(case["suspect_province"])
    return [p for p in dict.fromkeys(found) if p != NATIONAL and p in PROVINCES]


def _kinds(case: Mapping[str, Any]) -> set[str]:
    return {i["kind"] for i in case["identifiers"]}


def routes(case: Mapping[str, Any]) -> list[Route]:
    handling = case["handling"]
    allowed = set(case.get("share_with", []))
    out: list[Route] = []

    def permitted(recipient: str, channel: Channel) -> bool:
        if handling == "OPEN":
            return True
        if handling == "RESTRICTED":
            # A province-wide feed reaches every agency there, so it is never a listed recipient.
            return channel != "jurisdiction" and recipient in allowed
        return channel in ("customs", "payments") and recipient in allowed  # CONFIDENTIAL

    suspect = case.get("suspect_province")
    targets = [suspect] if suspect and suspect in PROVINCES else [p for p in _provinces(case)]
    for province in targets:
        if permitted(province, "jurisdiction"):
            out.append(Route("jurisdiction", f"leadbus.jurisdiction.{province}", province))
    for region in sorted(regions_of(*_provinces(case))):
        if permitted(region, "region"):
            out.append(Route("region", f"leadbus.region.{region}", region))
    if case.get("cross_border") and permitted(CUSTOMS, "customs"):
        out.append(Route("customs", "leadbus.channel.customs", CUSTOMS))
    if "acct" in _kinds(case) and permitted(PBC, "payments"):
        out.append(Route("payments", "leadbus.channel.payments", PBC))
    if _kinds(case) & {"shop", "domain"} and handling == "OPEN":
        out.append(Route("takedown", "leadbus.takedown.notices", "platforms"))
    return out


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


def mask_identifier(kind: str, value: str) -> str:
    return _MASKS.get(kind, str)(value)


def bulletin(case: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The RegionalBulletin: what the dashboard of `region` shows of a case, personal data masked."""
    individual = "rid" in _kinds(case) and "uscc" not in _kinds(case)
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
    }


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
