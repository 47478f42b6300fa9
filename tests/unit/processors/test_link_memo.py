"""Intake's linking view with the derivations of single values remembered (`link_memo`) is byte for byte linking's
own (`linking.link_view`, computing each time): on simulated traffic, cold and warm, in any order, and on odd and
hostile leads (no identifiers, many, private and IPv6 addresses, marketplace pages and look-alikes, full-width and
emoji names, compound surnames, every subject kind, revisions, v3 parts)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from leadbus.models import CaseLead
from leadbus.processors.core import link_memo
from leadbus.processors.core.intake import Acceptance, accepted_record
from leadbus.processors.core.linking import derive, dumps, link_view
from leadbus.processors.core.normalize import Normalised, normalise
from leadbus.processors.core.records import Source
from leadbus.producers.simulator import TrafficGenerator

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)

URLS = [
    "https://shop525465088.taobao.com/", "https://SHOP525465088.TAOBAO.COM", "https://mall.jd.com/index-1000123.html",
    "https://mobile.yangkeduo.com/mall_page.html?mall_id=778899&utm_source=x",
    "https://haohuo.jinritemai.com/views/shop/index?id=TB42", "https://app.kwaixiaodian.com/merchant/shop/detail?id=9",
    "https://www.goofish.com/personal?userId=55", "https://weidian.com/?userid=WD0012",
    "https://weidian.com/?userid=", "https://evil.example/x/yangkeduo.com/mall_page.html?mall_id=1",
    "https://yangkeduo.com.evil.cn/mall_page.html?mall_id=2", "https://item.taobao.com/item.htm?id=123",
    "https://shop1.taobao.com:8443/", "https://xn--fiq228c.cn/商品/1", "http://192.168.1.10/x", "meili-shop.cn/goods/1",
    "https://a.b.co.uk/path/", "https://tianyi-mall.com.cn/item/7#frag", "https://m.weibo.com/u/1",
]
IPS = ["120.148.235.7", "10.0.0.1", "127.0.0.1", "100.64.1.1", "8.8.8.8", "2001:db8::1", "2400:cb00::1",
       "::ffff:1.2.3.4", "fe80::1", "255.255.255.255", "0.0.0.0", "192.0.2.1"]
NAMES = ["浙江杭州美丽日化有限公司", "王小明", "王 小明", "王\u3000小明", "欧阳娜娜", "司马", "Ｚｈａｎｇ　Ｗｅｉ",
         "李**", "株洲恒通电器旗舰店", "义乌好货专营店", "店", "😀😀商行", "e\u0301clair", "x" * 190,
         "（广东）深圳华强电子经营部", "haohuo-bzh76320.xyz", "某某APP"]
ADDRESSES: list[dict[str, Any] | None] = [
    None, {"province": "33"}, {"province": "33", "city": "杭州市", "detail": "浙江省杭州市西湖区文三路100号"},
    {"province": "33", "city": "义乌", "detail": "国际商贸城五区 3 楼"},
    {"province": "11", "city": "北京市", "detail": "朝阳"},
    {"province": "44", "city": "株洲", "detail": "Ｂ座１２０１室"},
    {"province": "31", "city": None, "detail": "中心大厦"},
]
PLATFORMS = [(None, None), ("淘宝", "TB525465088"), ("taobao", "shop-525465088"), (" 京东 ", "jd#77"),
             ("闲鱼", "XY 12"), ("拼多多", "abc"), ("Amazon", "A1B2"), ("天猫", "")]
PHONES = ["+8613800138000", "13912345678", "0571-88881234", "057188881234", "+8615881367880", "１３９１２３４５６７８"]
FILINGS = ["京ICP备05070286号-1", "京ICP备05070286号-2", "浙ICP证030001号", "粤icp备１２３４５６号"]
V3 = {"products": [{"name": '款式 "AJ1"', "brand": "耐克"}], "senders": [{"name": "王**", "phone": "138****5678"}],
      "return_addresses": [{"province": "33", "detail": "义乌国际商贸城"}], "operator": {"name": "王小明"}}


def _simulated(seed: int, n: int) -> list[dict[str, Any]]:
    return [lead.to_avro() for lead in TrafficGenerator(seed=seed).leads(n, NOW - timedelta(hours=3),
                                                                       timedelta(seconds=1))]


def _odd(rng: random.Random, record: dict[str, Any]) -> dict[str, Any]:
    """The record with parts replaced at random by odd ones: none of an identifier, many, hostile text."""
    subject, online = dict(record["subject"]), dict(record["online"])
    subject["kind"] = rng.choice(["ENTERPRISE", "INDIVIDUAL", "ONLINE_SHOP", "WEBSITE", "APP"])
    subject["name"] = rng.choice(NAMES)
    subject["address"] = rng.choice(ADDRESSES)
    subject["phones"] = rng.sample(PHONES, rng.randint(0, len(PHONES)))
    online["urls"] = rng.sample(URLS, rng.choice([0, 1, 2, len(URLS)]))
    online["ips"] = rng.sample(IPS, rng.choice([0, 1, len(IPS)]))
    online["platform"], online["shop_id"] = rng.choice(PLATFORMS)
    online["icp_filings"] = rng.sample(FILINGS, rng.randint(0, len(FILINGS)))
    odd = {**record, "subject": subject, "online": online, "revision": rng.choice([0, 1, 7, 2**31 - 1])}
    odd["payment_accounts"] = rng.choice([[], ["6217008545413800624", "alipay:ABC@x.cn", "13800138000"]])
    odd["rights_holder"] = rng.choice([None, {"name": "  "}, {"name": "耐克（中国）有限公司"}])
    if rng.random() < 0.2:
        odd.update(rng.sample(sorted(V3.items()), rng.randint(1, len(V3))))
    if rng.random() < 0.1:  # nothing that links
        subject.update(uscc=None, id_number=None, phones=[])
        online.update(platform=None, shop_id=None, urls=[], icp_filings=[])
        odd["payment_accounts"] = []
    return odd


def _leads() -> Iterator[Normalised]:
    rng = random.Random(16)
    refused = 0
    for seed in (4, 11):
        for record in _simulated(seed, 600):
            yield normalise(CaseLead.model_validate(record, context={"now": NOW}))
            try:
                yield normalise(CaseLead.model_validate(_odd(rng, record), context={"now": NOW}))
            except ValidationError:
                refused += 1  # an odd combination the contract refuses: no view is made of it
    assert refused < 300


def _reference(normalised: Normalised) -> dict[str, Any]:
    lead, domains = normalised.lead, normalised.domains
    view = link_view(lead, domains)
    keys, member = derive(lead, domains)  # what the Linker derives of a lead that comes without a view
    assert view["keys"] == keys and view["member"] == dumps(member)
    return view


def test_the_remembered_view_is_linking_s_own_cold_warm_and_in_any_order() -> None:
    leads = list(_leads())
    assert len(leads) > 1500
    expected = [_reference(n) for n in leads]
    assert sum(bool(v["keys"]) for v in expected) > 1000 and sum(not v["keys"] for v in expected) > 10
    for module_cache in vars(link_memo).values():
        if callable(getattr(module_cache, "cache_clear", None)):
            module_cache.cache_clear()
    assert [link_memo.intake_link_view(n) for n in leads] == expected  # cold, then each value seen again
    order = list(range(len(leads)))
    random.Random(3).shuffle(order)
    assert [link_memo.intake_link_view(leads[i]) for i in order] == [expected[i] for i in order]  # warm


def test_the_accepted_record_carries_the_remembered_view() -> None:
    source = Source("leadbus.intake.SAMR", 0, 0)
    for normalised in list(_leads())[:300]:
        acceptance = Acceptance(normalised.lead, normalised, "0" * 64, source, b"")
        assert accepted_record(acceptance, NOW)["linking"] == link_view(normalised.lead, normalised.domains)


FACTS: list[dict[str, Any]] = [
    {}, {"copies": 0}, {"rights_holder_bankrupt": False}, {"rights_holder_bankrupt": True, "mark_use": "SERVICES"},
    {"labels_made_by": "OTHERS", "labels_sold": 2**63 - 1, "illegal_gains_fen": 1, "patents": 3},
    {"illegal_business_amount_fen": 5_000_000, "sales_amount_fen": 0, "goods_value_fen": 12, "works": 1,
     "clicks": 7, "members": 9, "trademark_kinds": 2, "labels": 4, "loss_fen": 8, "labels_held": 5,
     "copies_held": 6, "mark_use": "UNKNOWN"},
]


def test_intake_s_member_record_is_linking_s_own_whatever_the_facts() -> None:
    """Intake's member (`intake_member_json`: `linking.member_values`) reads the facts' attributes where `_member`
    dumps them: the same record written, with no fact, zeros, false flags, literals and the largest number, on
    simulated and odd leads."""
    rng = random.Random(9)
    checked = 0
    for normalised in list(_leads())[:400]:
        for facts in (normalised.lead.facts.model_dump(), rng.choice(FACTS)):
            lead = CaseLead.model_validate({**normalised.lead.to_avro(), "facts": facts}, context={"now": NOW})
            keys, member = derive(lead, normalised.domains)
            assert link_memo.intake_member_json(lead, keys, member["weak"]) == dumps(member)
            assert member["facts"] == lead.facts.model_dump(exclude_none=True)
            checked += 1
    assert checked == 800
