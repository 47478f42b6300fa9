"""Labelled lead traffic for measuring link quality: the simulator's leads, varied as real leads vary.

``labelled_leads(n, seed)`` returns ``(lead, true suspect)`` pairs. Each lead is a transformation of a
:class:`TrafficGenerator` lead (same suspects, same ground truth) and still validates as a `CaseLead`:

* surface forms: company names with or without the legal form (有限公司/有限责任公司) and a place prefix
  (浙江/杭州市/（杭州）), one-character typos in names, full-width characters (website names, USCC, ID
  numbers, phones, cards, shop ids), lower-case USCC and ID ``x``, 15-digit legacy ID numbers, phone
  formats (+86, 0086, 86, spaces, dashes), cards in groups of four, payment logins in other cases, URL
  variants (http, no scheme, www./m., ``spm``/``utm_*`` query, trailing slash);
* missing identifiers: a random subset dropped, always keeping one strong identifier already seen on an
  earlier lead of the same suspect (re-adding one if needed), so each suspect's leads stay connected and
  perfect recall is possible;
* hard negatives between different suspects (see `hard_negative_signals`): a shared CDN IP, a shared
  waybill number or courier batch prefix, shops on the same marketplace domain, the same company name
  (字号 + legal form) in another province with other identifiers.

A site domain that the simulator happened to give two suspects is renamed for the later one, so strong
identifiers never span suspects and perfect precision is possible too. Deterministic for a seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from leadbus.geography import PROVINCES
from leadbus.identifiers import IdentifierError, check_uscc, normalize_mobile, normalize_resident_id, to_halfwidth
from leadbus.models import CaseLead
from leadbus.processors.core.normalize import canonical_account, registrable_domain, split_name
from leadbus.producers.simulator import (
    GIVEN_CHARS,
    MARKETPLACES,
    MOBILE_PREFIXES,
    TRADE_NAMES,
    WORDS,
    WORKS,
    Suspect,
    TrafficGenerator,
)

START = datetime(2024, 6, 3, 1, 0, tzinfo=UTC)
STEP = timedelta(seconds=41)
MARKETPLACE_DOMAINS = frozenset(str(registrable_domain(m[2].format(id=1))) for m in MARKETPLACES)
CDN_IPS = ("47.246.23.180", "47.246.24.91", "116.153.83.66", "203.119.169.1", "2408:4009:500::3")
DROP_SHARE = 0.55  # leads that omit some of their suspect's strong identifiers
TYPO_CHARS = "鑫盛胜华化达大通同鼎顶丰峰福富远园泰太品晶锐瑞宏弘伟为芳方娜那敏明" + "".join(GIVEN_CHARS)
Data = dict[str, Any]
Key = tuple[str, str]


def labelled_leads(
    n: int, seed: int = 0, same_suspect_share: float = 0.45, rotate_share: float = 0.0, market_share: float = 0.0
) -> list[tuple[CaseLead, int]]:
    """``n`` varied leads from ``TrafficGenerator(seed, same_suspect_share)`` with their true suspect ids.

    ``rotate_share`` (the harder data, `weak_labelled_leads`): that share of the leads about a suspect already
    reported concern the suspect's *other guise* instead — new shop, SIM cards, payment accounts, a company
    registered under a relative — sharing no strong identifier with the first guise, only weak signals: the
    address (or another room of the building), the 字号, the relative's surname, the hosting /24, the goods.
    ``market_share`` of the suspects trade from a wholesale market or shared office building: innocent
    look-alikes sharing a building with many others. The harder data also carries CaseLead v3 fields
    (`_RingTraits`): the ring's warehouse, waybill senders, operator contact and products, which its guises keep
    more often than not — and which innocent parties share by chance (a 代发 warehouse or logistics park serving
    many shops, masked senders of common surnames, phone tails, popular models).
    """
    generator = TrafficGenerator(seed=seed, same_suspect_share=same_suspect_share, market_share=market_share)
    varier = _Varier(random.Random(f"labelled:{seed}"))
    rotator = _Rotator(generator, random.Random(f"rotate:{seed}"))
    traits = _RingTraits(random.Random(f"traits:{seed}"))
    seen: set[int] = set()
    brands: dict[int, dict[str, str] | None] = {}
    out: list[tuple[CaseLead, int]] = []
    for lead in generator.leads(n, START, STEP):
        suspect = truth = generator.last_suspect
        about = generator.last_suspect_obj
        assert about is not None
        if rotate_share and suspect in seen and rotator.rng.random() < rotate_share:
            about = rotator.alias(about, lead.reported_at)
            lead = generator.lead_about(about, lead.reported_at, lead.lead_id, repeat=bool(about.published))
            suspect = about.key  # the varier keeps the guises apart: their identifiers never mix
        seen.add(truth)
        data = lead.model_dump(mode="python")
        if rotate_share:
            _disclosures(data, about, truth, brands, rotator.rng)
            traits.disclose(data, about, truth)
        data = varier.vary(data, suspect)
        out.append((CaseLead.model_validate(data, context={"now": lead.reported_at}), truth))
    return out


def weak_labelled_leads(n: int, seed: int = 0) -> list[tuple[CaseLead, int]]:
    """The harder labelled data of bench/link_quality.py --weak: rotating suspects and market look-alikes."""
    return labelled_leads(n, seed=seed, rotate_share=0.25, market_share=0.2)


def _disclosures(data: Data, about: Suspect, truth: int, brands: dict[int, dict[str, str] | None],
                 rng: random.Random) -> None:
    """What real reports carry beyond the simulator's: the operator's address that a marketplace shop or a
    site's ICP filing discloses (E-Commerce Law art. 15), and the same rights holder complaining about a
    ring's goods again (a ring counterfeits a few brands; its guises too)."""
    subject = data["subject"]
    if subject.get("address") is None and subject["kind"] != "INDIVIDUAL" and rng.random() < 0.6:
        subject["address"] = {"province": about.province, "city": about.city, "detail": about.detail}
    if data.get("rights_holder") is not None:
        brand = brands.setdefault(truth, data["rights_holder"])
        if brand is not None and rng.random() < 0.6:
            data["rights_holder"] = dict(brand)


# A ring's goods: a product word of its category and a model; popular models are sold by many rings (Zipf).
_MODELS = tuple(f"{letter}{number}" for letter in "ABDGKLMPSTXZ" for number in (1, 2, 3, 5, 7, 8, 9, 10, 11, 12,
                                                                              20, 21, 30, 50, 90, 99, 100, 520))
_MODEL_WEIGHTS = tuple(1 / (rank + 1) ** 1.1 for rank in range(len(_MODELS)))
_TITLES = tuple(f"{a}{b}" for a in ("长夜", "星河", "山海", "风起", "明月", "繁花", "烈火", "归途", "云端", "江湖")
                for b in ("传", "录", "记", "之歌", "往事", "少年", "奇缘", "密码", "迷城", "行动"))
_TITLE_WEIGHTS = tuple(1 / (rank + 1) for rank in range(len(_TITLES)))
_LOGISTICS = ("电商物流园", "快递分拨中心", "云仓", "供应链产业园")
_STAFF = ("仓库", "客服", "发货部", "售后")


@dataclass
class _Traits:
    warehouse: dict[str, str] | None  # the premises parcels leave from (own, or a 代发 warehouse shared by many)
    sender: str  # the name on its waybills, as printed
    ship_phone: str  # the phone on its waybills (masked there)
    operator_phone: str  # the contact its shops disclose
    products: list[dict[str, str]]


class _RingTraits:
    """CaseLead v3 disclosures: what a ring's leads show beyond identifiers, kept (mostly) by its guises."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rings: dict[int, _Traits] = {}
        self.guises: dict[int, _Traits] = {}  # a guise's own traits (what it kept of the ring's, what is new)

    def _new(self, about: Suspect) -> _Traits:
        rng = self.rng
        warehouse = None
        if about.category not in WORKS and rng.random() < 0.75:
            city = about.city.removesuffix("市")
            if rng.random() < 0.35:  # a 代发 warehouse or logistics park: a few per city, many shops each
                detail = f"{city}{rng.choice(_LOGISTICS)}{rng.choice('ABC')}栋"
            else:
                road = rng.choice(("工业", "物流", "仓储", "开发", "创业", "兴业", "滨河", "环城"))
                detail = f"{road}路{rng.randint(1, 400)}号{rng.randint(1, 12)}号仓库"
            warehouse = {"province": about.province, "city": about.city, "detail": detail}
        surname = "欧阳" if about.person.startswith("欧阳") else about.person[0]
        sender = rng.choices((about.person, surname + "**", surname + rng.choice(("先生", "女士", "总")),
                              rng.choice(_STAFF)), (35, 30, 25, 10))[0]
        ship_phone = rng.choice(MOBILE_PREFIXES) + "".join(rng.choices("0123456789", k=8))
        operator_phone = rng.choice((ship_phone, about.mobiles[0] if about.mobiles else ship_phone))
        word = rng.choice(WORDS[about.category][1].split())
        if about.category in WORKS:  # the titles a pirate site or shop carries: popular ones on many
            titles = dict.fromkeys(rng.choices(_TITLES, _TITLE_WEIGHTS, k=rng.randint(1, 4)))
            products = [{"name": f"{word}《{title}》"} for title in titles]
        else:
            models = dict.fromkeys(rng.choices(_MODELS, _MODEL_WEIGHTS, k=rng.randint(1, 3)))
            products = [{"name": f"{word}{model}"} for model in models]
        return _Traits(warehouse, sender, ship_phone, operator_phone, products)

    def _of(self, about: Suspect, truth: int) -> _Traits:
        ring = self.rings.get(truth)
        if ring is None:
            ring = self.rings[truth] = self._new(about)
        if about.key == truth:
            return ring
        guise = self.guises.get(about.key)
        if guise is None:  # a guise keeps each trait of the ring's more often than not
            rng, own = self.rng, self._new(about)
            guise = self.guises[about.key] = _Traits(
                ring.warehouse if rng.random() < 0.7 else own.warehouse,
                ring.sender if rng.random() < 0.6 else own.sender,
                ring.ship_phone if rng.random() < 0.6 else own.ship_phone,
                ring.ship_phone if rng.random() < 0.4 else own.operator_phone,
                ring.products if rng.random() < 0.7 else own.products)
        return guise

    def disclose(self, data: Data, about: Suspect, truth: int) -> None:
        rng, traits = self.rng, self._of(about, truth)
        goods = data["category"] not in WORKS
        if goods and rng.random() < (0.85 if data["waybills"] else 0.35):
            data["senders"] = [{"name": _messy_name(rng, traits.sender), "phone": _masked(rng, traits.ship_phone)}]
        if traits.warehouse and rng.random() < (0.55 if data["subject"]["kind"] == "ONLINE_SHOP" else 0.25):
            data["return_addresses"] = [dict(traits.warehouse)]
        if data["subject"]["kind"] in ("ONLINE_SHOP", "WEBSITE", "APP") and rng.random() < 0.4:
            name = about.person if rng.random() < 0.5 else None
            data["operator"] = {"name": name, "phone": _masked(rng, traits.operator_phone)}
        if rng.random() < (0.6 if goods else 0.5):
            brand = (data.get("rights_holder") or {}).get("name")
            core = split_name(brand).core[:2] if brand else None
            data["products"] = [{"name": p["name"], "brand": core} for p in
                                rng.sample(traits.products, rng.randint(1, len(traits.products)))]


def _masked(rng: random.Random, mobile: str) -> str:
    """A phone as a privacy waybill or a shop page shows it, in the forms agencies copy it in."""
    return rng.choices((f"{mobile[:3]}****{mobile[7:]}", f"{mobile[:3]} **** {mobile[7:]}", f"尾号{mobile[7:]}",
                        f"{mobile[:3]}xxxx{mobile[7:]}", f"*******{mobile[7:]}", mobile), (40, 10, 15, 10, 10, 15))[0]


def _messy_name(rng: random.Random, name: str) -> str:
    return rng.choices((name, f" {name} ", _fullwidth(name)), (85, 10, 5))[0]


class _Rotator:
    """A suspect's other guise: fresh strong identifiers, the same weak traits (one per original suspect)."""

    def __init__(self, generator: TrafficGenerator, rng: random.Random) -> None:
        self.generator = generator
        self.rng = rng
        self.aliases: dict[int, Suspect] = {}

    def alias(self, original: Suspect, now: datetime) -> Suspect:
        if original.key in self.aliases:
            return self.aliases[original.key]
        rng = self.rng
        alias = self.generator._new_suspect(now)  # fresh identifiers of every kind
        alias.category, alias.province, alias.city = original.category, original.province, original.city
        roll = rng.random()
        if roll < 0.45:  # the same premises
            alias.detail = original.detail
        elif roll < 0.7:  # another room or stall of the same building or market
            building = re.match(r"^(.*?(?:号|市场|广场|大厦|商城|中心|城|园))", original.detail)
            room = f"{rng.randint(1, 30)}层{rng.randint(1, 99)}室"
            alias.detail = (building.group(1) if building else original.detail) + room
        # A relative: same surname, another given name (and their own resident ID, drawn by _new_suspect).
        surname = "欧阳" if original.person.startswith("欧阳") else original.person[0]
        alias.person = surname + alias.person[(2 if alias.person.startswith("欧阳") else 1) :]
        trade = _trade_of(original)
        if trade and rng.random() < 0.8:
            if alias.company:
                body = alias.company[0].removeprefix(alias.city.removesuffix("市"))
                alias.company = (alias.city.removesuffix("市") + _retrade(body, trade, rng), alias.company[1])
            if alias.shop:
                platform, shop_id, shop_name, urls = alias.shop
                alias.shop = (platform, shop_id, _retrade(shop_name, trade, rng), urls)
        if original.site and alias.site and rng.random() < 0.8:  # the same hosting
            host, _ips, app = alias.site
            same = [ip.rsplit(".", 1)[0] + f".{rng.randrange(1, 255)}" if "." in ip else ip for ip in original.site[1]]
            alias.site = (host, list(original.site[1]) if rng.random() < 0.4 else same, app)
        self.aliases[original.key] = alias
        return alias


def strong_keys(data: Data) -> dict[Key, Any]:
    """Canonical strong identifiers of a lead (JSON-form dict) → the raw value that carries each one."""
    subject, online = data["subject"], data["online"]
    found: dict[Key, Any] = {}
    if subject.get("uscc"):
        found[("uscc", check_uscc(subject["uscc"]).value)] = subject["uscc"]
    if subject.get("id_number"):
        found[("id", normalize_resident_id(subject["id_number"]))] = subject["id_number"]
    for phone in subject.get("phones") or ():
        if mobile := _mobile(phone):
            found[("phone", mobile)] = phone
    for account in data.get("payment_accounts") or ():
        found[("account", canonical_account(account))] = account
    if online.get("platform") and online.get("shop_id"):
        shop = (online["platform"], online["shop_id"])
        found[("shop", f"{shop[0]}:{to_halfwidth(shop[1])}")] = shop
    for url in online.get("urls") or ():
        domain = registrable_domain(url)
        if domain and domain not in MARKETPLACE_DOMAINS:
            found[("domain", domain)] = url
    return found


def hard_negative_signals(lead: CaseLead) -> dict[str, set[str]]:
    """Weak signals that different suspects share, by hard-negative kind; none of them may link."""
    signals: dict[str, set[str]] = {"cdn_ip": set(), "waybill": set(), "marketplace": set(), "company_name": set()}
    signals["cdn_ip"] = {ip for ip in lead.online.ips if ip in CDN_IPS}
    for waybill in lead.waybills:
        signals["waybill"] |= {waybill, "batch:" + waybill[:6]}
    signals["marketplace"] = {d for d in map(registrable_domain, lead.online.urls) if d in MARKETPLACE_DOMAINS}
    if lead.subject.kind == "ENTERPRISE":
        parts = split_name(lead.subject.name)
        signals["company_name"] = {f"{parts.core}|{parts.legal_form or ''}"}
    return signals


class _Varier:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: dict[int, dict[Key, Any]] = {}  # suspect → strong identifiers on its emitted leads
        self.owner: dict[str, int] = {}  # site domain → suspect
        self.renamed: dict[tuple[int, str], str] = {}
        self.shared_waybills = [f"SF{rng.randrange(10**12, 10**13)}" for _ in range(6)]  # one 代发 warehouse
        self.batches = (("SF1402", 15), ("YT7503", 15), ("758830", 14), ("JDVA00", 15))

    def vary(self, data: Data, suspect: int) -> Data:
        self._own_domains(data, suspect)
        self._drop_identifiers(data, suspect)
        self._hard_negatives(data)
        self._surface_forms(data)
        return data

    def _own_domains(self, data: Data, suspect: int) -> None:
        """Rename a site domain the simulator also gave another suspect (random host names collide)."""
        for kind, domain in list(strong_keys(data)):
            if kind != "domain":
                continue
            if (suspect, domain) not in self.renamed:
                label, _, suffix = domain.partition(".")
                taken = self.owner.setdefault(domain, suspect) != suspect
                self.renamed[(suspect, domain)] = f"{label}-{suspect}.{suffix}" if taken else domain
                self.owner[self.renamed[(suspect, domain)]] = suspect
            new = self.renamed[(suspect, domain)]
            if new != domain:
                pattern = re.compile(rf"(?<![\w-]){re.escape(domain)}(?![\w-])")
                data["online"]["urls"] = [pattern.sub(new, url) for url in data["online"]["urls"]]
                data["subject"]["name"] = pattern.sub(new, data["subject"]["name"])
                data["description"] = pattern.sub(new, data["description"])

    def _drop_identifiers(self, data: Data, suspect: int) -> None:
        rng, items = self.rng, strong_keys(data)
        seen = self.seen.setdefault(suspect, {})
        anchors = [key for key in items if key in seen] if seen else list(items)
        if not anchors and seen:  # what it shared was dropped from the earlier leads: a follow-up names it again
            key = rng.choice(list(seen))
            _add(data, key, seen[key])
            anchors, items = [key], strong_keys(data)
        if anchors and rng.random() < DROP_SHARE:
            keep = rng.choice(anchors)
            for key in items:
                if key != keep and rng.random() < 0.5:
                    _drop(data, key, rng.random() < 0.5)
        seen.update(strong_keys(data))

    def _hard_negatives(self, data: Data) -> None:
        rng, online = self.rng, data["online"]
        if (online["urls"] or online.get("shop_id")) and rng.random() < 0.15:  # behind a shared CDN
            online["ips"] = [rng.choice(CDN_IPS)] + (online["ips"] if rng.random() < 0.3 else [])
        if data["waybills"] and rng.random() < 0.3:  # the same courier batch
            prefix, length = rng.choice(self.batches)
            data["waybills"] = [prefix + _digits(rng, length - len(prefix)) for _ in data["waybills"]]
        if data["category"] not in WORKS and rng.random() < 0.06:  # shipped by a 代发 warehouse serving many shops
            data["waybills"] = [*data["waybills"], rng.choice(self.shared_waybills)]
        # Marketplace shops and common company names need no help: the simulator puts thousands of shops on
        # taobao.com and the like, and `_name` drops or changes the place prefix of company names.

    def _surface_forms(self, data: Data) -> None:
        rng, subject, online = self.rng, data["subject"], data["online"]
        subject["name"] = self._name(subject)
        if subject.get("uscc"):
            subject["uscc"] = _pick(rng, subject["uscc"], (str.lower, 0.12), (_fullwidth, 0.05))
        if subject.get("id_number"):
            rid = subject["id_number"]
            legacy = (lambda v: v[:6] + v[8:17]) if rid[6:8] == "19" else (lambda v: v)
            subject["id_number"] = _pick(rng, rid, (str.lower, 0.4 if rid.endswith("X") else 0), (_fullwidth, 0.05),
                                         (legacy, 0.04))  # fmt: skip
        subject["phones"] = [self._phone(phone) for phone in subject["phones"]]
        data["payment_accounts"] = [self._account(account) for account in data["payment_accounts"]]
        if online.get("shop_id"):
            online["shop_id"] = _pick(rng, online["shop_id"], (_fullwidth, 0.05))
        online["urls"] = [self._url(url) for url in online["urls"]]

    def _name(self, subject: Data) -> str:
        rng, address = self.rng, subject.get("address") or {}
        name: str = subject["name"]
        if subject["kind"] == "ENTERPRISE" and address.get("city") and name.startswith(address["city"][:2]):
            city = address["city"].removesuffix("市")
            province = PROVINCES[address["province"]].name_zh
            short = province.removesuffix("省").removesuffix("市")
            body = name.removeprefix(city)
            legal = next((form for form in ("有限责任公司", "有限公司") if body.endswith(form)), None)
            if legal:
                other = "有限公司" if legal == "有限责任公司" else "有限责任公司"
                body = rng.choices((body, body.removesuffix(legal) + other, body.removesuffix(legal)), (70, 15, 15))[0]
            places = (city, "", short + city if short != city else city, city + "市", province)
            name = rng.choices(places, (45, 25, 12, 10, 8))[0] + body
            if legal and body.endswith(legal) and rng.random() < 0.05:
                name = body.removesuffix(legal) + f"（{city}）" + legal
        if rng.random() < 0.05:  # one-character typo, outside the legal form
            end = len(name) - 4 if subject["kind"] == "ENTERPRISE" else len(name)
            cjk = [i for i, char in enumerate(name[:end]) if "\u4e00" <= char <= "\u9fff"]
            if cjk:
                i = rng.choice(cjk)
                name = name[:i] + rng.choice([c for c in TYPO_CHARS if c != name[i]]) + name[i + 1 :]
        if name.isascii() and rng.random() < 0.1:  # a website named by its host, typed with a Chinese IME
            name = _fullwidth(name)
        return name

    def _phone(self, phone: str) -> str:
        mobile = _mobile(phone)
        if not mobile:
            return phone  # landline: left as published
        m = mobile[3:]
        formats = (m, m, "+86" + m, f"+86 {m[:3]} {m[3:7]} {m[7:]}", "0086" + m, f"0086-{m}", "86" + m,
                   f"{m[:3]}-{m[3:7]}-{m[7:]}", f"{m[:3]} {m[3:7]} {m[7:]}", _fullwidth(m))  # fmt: skip
        return self.rng.choice(formats)

    def _account(self, account: str) -> str:
        digits = account.replace(" ", "")
        if digits.isdigit():
            grouped = " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
            return _pick(self.rng, digits, (lambda _: grouped, 0.25), (lambda _: grouped.replace(" ", "-"), 0.05),
                         (_fullwidth, 0.05))  # fmt: skip
        return _pick(self.rng, account, (str.upper, 0.05), (lambda v: v.replace(":", "："), 0.05),
                     (lambda v: v[:1].upper() + v[1:], 0.1))  # fmt: skip

    def _url(self, url: str) -> str:
        rng = self.rng
        match = re.match(r"^(?:(https?)://)?([^/?#]+)(.*)$", url)
        if not match:
            return url
        scheme, host, tail = match.groups()
        scheme = rng.choices(("https://", "http://", ""), (75, 20, 5))[0]
        bare = host.removeprefix("www.")
        if host.startswith("www.") or host.count(".") == 1:
            host = rng.choices((host, bare, "www." + bare, "m." + bare), (55, 15, 15, 15))[0]
        roll = rng.random()
        if roll < 0.12:
            tail += ("&" if "?" in tail else "?") + f"spm=a21{rng.randrange(10**4)}.{rng.randrange(10**8)}.0.0"
        elif roll < 0.2:
            tail += ("&" if "?" in tail else "?") + "utm_source=wechat&utm_medium=share&utm_campaign=618"
        elif roll < 0.35 and "?" not in tail:
            tail = tail.removesuffix("/") if tail.endswith("/") else tail + "/"
        return scheme + host + tail


# --- helpers ------------------------------------------------------------------------------------


def _trade_of(suspect: Suspect) -> str | None:
    """The 字号 + trade word a suspect's company or shop name carries (e.g. 鑫盛服饰)."""
    if suspect.company:
        core = split_name(suspect.company[0]).core
        return core.removesuffix("商贸行") or None
    if suspect.shop:
        return suspect.shop[2][:4]
    return None


def _retrade(name: str, trade: str, rng: random.Random) -> str:
    """``name`` with its leading 字号 (+ trade word) replaced by the original's, as a relative's firm would be."""
    if not any(name.startswith(t) for t in TRADE_NAMES) or len(trade) < 2:
        return name
    if rng.random() < 0.7:  # the 字号 and the trade word
        return trade[:4] + name[4:]
    return trade[:2] + name[2:]  # the 字号 only


def _mobile(phone: str) -> str | None:
    try:
        return normalize_mobile(phone)
    except IdentifierError:
        return None


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choices("0123456789", k=count))


def _pick(rng: random.Random, value: str, *variants: tuple[Callable[[str], str], float]) -> str:
    """``value`` through at most one of ``variants`` (function, probability)."""
    roll = rng.random()
    for variant, share in variants:
        if roll < share:
            return variant(value)
        roll -= share
    return value


def _drop(data: Data, key: Key, with_urls: bool) -> None:
    kind, value = key
    subject, online = data["subject"], data["online"]
    if kind in ("uscc", "id"):
        subject["uscc" if kind == "uscc" else "id_number"] = None
    elif kind == "phone":
        subject["phones"] = [p for p in subject["phones"] if _mobile(p) != value]
    elif kind == "account":
        data["payment_accounts"] = [a for a in data["payment_accounts"] if canonical_account(a) != value]
    elif kind == "shop":
        online["platform"] = online["shop_id"] = None
        if with_urls:  # a marketplace shop URL names the shop id too
            online["urls"] = [u for u in online["urls"] if registrable_domain(u) not in MARKETPLACE_DOMAINS]
    else:
        online["urls"] = [u for u in online["urls"] if registrable_domain(u) != value]


def _add(data: Data, key: Key, raw: Any) -> None:
    kind = key[0]
    subject, online = data["subject"], data["online"]
    if kind in ("uscc", "id"):
        subject["uscc" if kind == "uscc" else "id_number"] = raw
    elif kind == "phone":
        subject["phones"].append(raw)
    elif kind == "account":
        data["payment_accounts"].append(raw)
    elif kind == "shop":
        online["platform"], online["shop_id"] = raw
    else:
        online["urls"].append(raw)
