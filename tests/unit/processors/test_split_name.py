"""`split_name` peels leading places with two regexes: the same parts as the loop over every place it replaced."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from leadbus.identifiers import clean_text
from leadbus.processors.core.normalize import (
    _CITIES,
    _CITY,
    _PAREN_PLACE,
    _PROVINCE_NAMES,
    LEGAL_FORMS,
    NameParts,
    split_name,
)
from leadbus.producers.simulator import TrafficGenerator


def _reference(name: str) -> NameParts:
    """The loop as it was before the regexes (issue #16): every province, then every city, by startswith."""
    text = clean_text(name).replace(" ", "")
    legal = next((form for form in LEGAL_FORMS if text.endswith(form) and len(text) > len(form)), None)
    if legal:
        text = text[: -len(legal)]
    prefixes: list[str] = []
    paren = _PAREN_PLACE.search(text)
    if paren:
        prefixes.append(paren.group(1))
        text = (text[: paren.start()] + text[paren.end() :]).strip()
    changed = True
    while changed and len(text) > 2:
        changed = False
        for place in _PROVINCE_NAMES:
            if text.startswith(place) and len(text) - len(place) >= 2:
                prefixes.append(place)
                text = text[len(place) :]
                changed = True
                break
        else:
            for place in _CITIES:
                if text.startswith(place) and len(text) - len(place) >= 2 and not text.startswith(place + "市"):
                    prefixes.append(place)
                    text = text[len(place) :]
                    changed = True
                    break
            if changed:
                continue
            city = _CITY.match(text)
            if city and len(text) - len(city.group(0)) >= 2:
                prefixes.append(city.group(0))
                text = text[len(city.group(0)) :]
                changed = True
    return NameParts(core=text, prefix="".join(prefixes) or None, legal_form=legal)


EDGES = [
    "浙江杭州美丽日化有限公司", "杭州市美丽", "杭州市", "杭州", "杭州ab", "杭州a", "北京北京市", "上海上海上海",
    "（杭州）美丽日化", "(义乌)小商品商行", "广东省深圳市南山区某某商行", "内蒙古呼和浩特某某", "新疆乌鲁木齐市天山区",
    "江苏省苏州市", "  浙江 杭州 美丽 有限公司 ", "ｓｈｏｐ杭州有限公司", "西安市长安区长安", "香港特别行政区某公司",
    "广西壮族自治区南宁市", "黑龙江省哈尔滨市道里区", "广州市市场", "市市场", "杭州\n市某", "杭州\n\n", "长沙县某某",
    "宁夏回族自治区银川市", "有限公司", "浙江有限公司", "浙江省有限公司", "", " ", "a", "温州市区", "温州市区县",
]


def _hostile(rng: random.Random) -> str:
    """Place names, place-like fragments, suffixes and junk run together."""
    parts = [*_PROVINCE_NAMES, *_CITIES, "市", "县", "区", "省", "（", "）", "(", ")", "美丽", "日化", "a", " ", "\n",
             "１２", "某", *LEGAL_FORMS]
    return "".join(rng.choice(parts) for _ in range(rng.randint(0, 7)))


def test_split_name_equals_the_loop_it_replaced() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    names = {lead.subject.name for lead in TrafficGenerator(seed=11).leads(3000, now - timedelta(hours=1),
                                                                         timedelta(milliseconds=1))}
    rng = random.Random(16)
    names |= {_hostile(rng) for _ in range(20000)}
    names |= set(EDGES)
    differ = [name for name in names if split_name.__wrapped__(name) != _reference(name)]
    assert not differ, f"{len(differ)} names split differently, e.g. {differ[:3]!r}"
    assert split_name("浙江杭州美丽日化有限公司") == NameParts("美丽日化", "浙江杭州", "有限公司")
