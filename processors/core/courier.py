"""The courier channel (寄递渠道), pure: which courier carried a parcel, and what the postal administration sees.

    identify_courier(waybill) -> Courier    the courier company, from the waybill number's format (or UNKNOWN)
    trace_request(case) -> dict             the CourierTraceRequest routing sends to `leadbus.channel.postal`

国办发〔2015〕77号 asks for enforcement through the postal and courier channel (寄递实名制): the State Post
Bureau (国家邮政局, SPB) can ask a courier company to trace parcels and stop shipments. A case whose leads
carry waybill numbers is routed to SPB's feed with each waybill and the courier named, so that SPB knows
whom to ask. SPB needs the waybills, the goods and who reported the case — not the suspect's identity
documents, phones or accounts: none of those are in the request.

A reporter may name the courier itself, writing a waybill as `CODE:number` (`SF:SF1234567890123`); otherwise
the courier is read from the number's format. Formats recognised (conservative: a number that fits none
is UNKNOWN, and SPB asks around):

    UPU S10 (two letters, 8 digits, a MOD 11 check digit, origin country): E* from CN is EMS, other services
        from CN China Post; from another country that country's postal operator (`UPU-<CC>`)
    SF + 12 or 13 digits: SF Express (顺丰速运)      YT + 13 digits: YTO Express (圆通速递)
    75/78 + 10-12 digits: ZTO (中通快递)        JT + 13 digits: J&T Express (极兔速递)
    JD + two letters + 11 to 13 digits: JD Logistics (京东物流)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

POSTAL_ADMINISTRATION = "SPB"
POSTAL_TOPIC = "leadbus.channel.postal"
UNKNOWN = "UNKNOWN"

#: courier code → (Chinese name, English name)
COURIERS: Mapping[str, tuple[str, str]] = {
    "EMS": ("中国邮政速递物流", "China Post EMS"),
    "CHINAPOST": ("中国邮政", "China Post"),
    "SF": ("顺丰速运", "SF Express"),
    "YTO": ("圆通速递", "YTO Express"),
    "ZTO": ("中通快递", "ZTO Express"),
    "JT": ("极兔速递", "J&T Express"),
    "JD": ("京东物流", "JD Logistics"),
    "STO": ("申通快递", "STO Express"),
    "YUNDA": ("韵达快递", "Yunda Express"),
}

_S10 = re.compile(r"^([A-Z])([A-Z])(\d{8})(\d)([A-Z]{2})$")
_FORMATS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^SF\d{12,13}$"), "SF"),
    (re.compile(r"^YT\d{13}$"), "YTO"),
    (re.compile(r"^7[58]\d{10,12}$"), "ZTO"),
    (re.compile(r"^JT\d{13}$"), "JT"),
    (re.compile(r"^JD[A-Z]{2}\d{11,13}$"), "JD"),
)
_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
MAX_WAYBILL = 64


@dataclass(frozen=True)
class Courier:
    code: str  # a key of COURIERS, UPU-<CC>, or UNKNOWN
    waybill: str  # the number as the courier knows it (a reporter's CODE: prefix removed)
    named_by: str  # "reporter" | "format" | "none"

    @property
    def name_zh(self) -> str:
        if self.code.startswith("UPU-"):
            return f"{self.code[4:]} 邮政"
        return COURIERS.get(self.code, ("未识别", "unidentified"))[0]


def s10_check_digit(serial: str) -> int:
    """The UPU S10 check digit of an 8-digit serial number."""
    remainder = 11 - sum(int(d) * w for d, w in zip(serial, _S10_WEIGHTS, strict=True)) % 11
    return {10: 0, 11: 5}.get(remainder, remainder)


def clean_waybill(value: str) -> str:
    return "".join(str(value).split()).upper()[:MAX_WAYBILL]


def identify_courier(waybill: str) -> Courier:
    """The courier of a waybill: named by the reporter (`CODE:number`), else from the number's format."""
    text = clean_waybill(waybill)
    code, sep, number = text.partition(":")
    if sep and code in COURIERS and number:
        return Courier(code, number, "reporter")
    match = _S10.match(text)
    if match and s10_check_digit(match.group(3)) == int(match.group(4)):
        service, country = match.group(1), match.group(5)
        if country == "CN":
            return Courier("EMS" if service == "E" else "CHINAPOST", text, "format")
        return Courier(f"UPU-{country}", text, "format")
    for pattern, found in _FORMATS:
        if pattern.match(text):
            return Courier(found, text, "format")
    return Courier(UNKNOWN, text, "none")


def parcels(case: Mapping[str, Any]) -> list[Courier]:
    """Each distinct waybill of a case with its courier, in the case's order."""
    seen: dict[str, Courier] = {}
    for raw in case.get("waybills") or ():
        courier = identify_courier(str(raw))
        if courier.waybill and courier.waybill not in seen:
            seen[courier.waybill] = courier
    return list(seen.values())


def has_waybills(case: Mapping[str, Any]) -> bool:
    return bool(parcels(case))


def trace_request(case: Mapping[str, Any]) -> dict[str, Any]:
    """The CourierTraceRequest (the edge adds `published_at`): waybills and couriers, goods, reporters.

    No suspect name, identifier or amount: SPB asks couriers about parcels, and a parcel is named by its
    waybill. The reporters are there so that the courier's answer reaches the agencies that asked.
    """
    return {
        "case_id": case["case_id"],
        "version": int(case["version"]),
        "parcels": [{"waybill": c.waybill, "courier": c.code, "courier_name": c.name_zh, "named_by": c.named_by}
                    for c in parcels(case)],
        "categories": list(case["categories"]),
        "reporters": [{"agency": r["agency"], "province": r["province"]} for r in case["reporters"]],
        "cross_border": bool(case.get("cross_border")),
        "suspect_province": case.get("suspect_province"),
        "handling": case["handling"],
    }
