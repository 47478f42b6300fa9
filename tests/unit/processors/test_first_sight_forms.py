"""The first-sight forms of the normalising core (issue #16: values intake has never seen) equal the forms they
replace, kept here as they were, over simulated leads of several seeds and hostile values."""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache

from leadbus import identifiers
from leadbus.identifiers import clean_text, to_halfwidth
from leadbus.models import Address, CaseLead
from leadbus.processors.core import link_memo, normalize
from leadbus.processors.core.linking import _SHOP_URLS, url_shop_key
from leadbus.processors.core.suggest import address_signals, ip_signals
from leadbus.producers.simulator import TrafficGenerator
from tests.unit.processors.url_reference import old_canonical_url

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
SEEDS = (1, 7, 23, 101)


@cache
def _leads() -> tuple[CaseLead, ...]:
    """Simulated leads of several seeds (made once for every test here)."""
    start, step = NOW - timedelta(hours=2), timedelta(milliseconds=900)
    return tuple(lead for seed in SEEDS for lead in TrafficGenerator(seed=seed).leads(1500, start, step))


def _outcome(function: Callable[[str], object], value: str) -> object:
    """What a form gives, or the type and text of what it raises."""
    try:
        return function(value)
    except Exception as exc:  # noqa: BLE001 - the error is part of the form
        return type(exc), str(exc)


HOSTILE_URLS = [
    "", " ", "\u3000", "https://", "https:///", "http://", "://", "a://b", "x", "taobao.com", "TAOBAO.COM/", "//a.cn",
    "https://Shop123.TaoBao.com/", "http://www.a.b.cn:80/x/", "https://m.a.cn:443", "https://wap.x.y.cn:8443/p?q=1",
    "https://a.cn:0080/", "https://a.cn:65535", "https://a.cn:65536", "https://a.cn:99999999999", "https://a.cn:",
    "https://a.cn:x", "https://a.cn:80:90/", "https://user:pw@a.cn/x", "https://@a.cn", "https://[::1]:8080/x",
    "https://[fe80::1%eth0]/", "https://[::1/", "https://a.cn]/", "https://a.cn./", "https://a.cn.../x", "https://.../",
    "https://./x", "https://-.-/", "https://a_b.cn/", "https://www.cn", "https://m.cn/", "https://www.www.a.cn",
    "https://a.cn/x?id=1", "https://a.cn/x?id=1&utm_source=wx&spm=a.b", "https://a.cn/x?b=2&a=1&a=0",
    "https://a.cn/x?id=", "https://a.cn/x?id", "https://a.cn/x?=1", "https://a.cn/x?id=a+b", "https://a.cn/x?id=%E4%B8%AD",
    "https://a.cn/x?id=中", "https://a.cn/x?a=1;b=2", "https://a.cn/x?a=1&&b=2", "https://a.cn/x?&", "https://a.cn/x?",
    "https://a.cn/x?id=1#frag", "https://a.cn/x#f?id=1", "https://a.cn#x", "https://a.cn?x=1", "https://a.cn/?",
    "https://a.cn//", "https://a.cn/a//b//", "https://a.cn/%20/", "https://a.cn/a b/", "HTTPS://A.CN/X",
    "ftp://a.cn/x", "h-t.t+p://a.cn/", "1http://a.cn/", "ht tp://a.cn/", "shop.taobao.com/x://y", "a.cn/?u=http://b.cn",
    "ｈｔｔｐｓ：／／ｗｗｗ．ａ．ｃｎ／Ｘ？ｉｄ＝１", "https://中文.com/路径", "https://xn--fiq228c.com/x", "https://XN--FIQ228C.COM",
    "https://bücher.de/", "https://a.cn/\u00e9", "\thttps://a.cn/\n", "https://a.cn/a\u3000b", "https://a.cn/\x01",
    "\x01https://a.cn/", "https://a.cn/" + "x" * 3000, "https://" + "a." * 200 + "cn/?k=" + "v" * 500,
    "https://a.cn/x?utm_a=1", "https://a.cn/x?UTM_A=1&Z=2", "https://a.cn/x?_t=1&k=v", "https://a.cn/x?share_id=1",
    "https://a.cn/x?k=v~1.2-3_4", "https://a.cn/x?k~=v", "https://a.cn/x?k=v=w", "https://a.cn/x?k=%41",
]


def _urls() -> list[str]:
    return [u for lead in _leads() for u in lead.online.urls] + HOSTILE_URLS


def test_canonical_url_is_the_urllib_form() -> None:
    normalize.canonical_url.cache_clear()
    for url in _urls():
        assert _outcome(normalize.canonical_url, url) == _outcome(old_canonical_url, url), url


def test_the_remembered_url_shop_key_is_linkings() -> None:
    link_memo.url_shop_key_of.cache_clear()
    urls = _urls()
    shop_pages = ["https://shop123.taobao.com", "https://SHOP9.TAOBAO.COM/", "https://mall.jd.com/index-77.html",
                  "https://mobile.yangkeduo.com/mall_page.html?mall_id=5", "https://weidian.com/?userid=8",
                  "https://www.goofish.com/personal?userId=3", "https://a.cn/x?u=shop1.taobao.com",
                  "https://[::1]/weidian.com", "https://ｗｅｉｄｉａｎ.com/?userid=1", "https://weidian.com\t?userid=2",
                  "https://shop1.taobao.c\tom", "https://shop2.taobao.com\n", "https://mall.jd.com/index-1.ht\r\nml",
                  "https://Mall.JD.com/index-9.html", "https://mall.jd.com:8080/index-9.html#x", "https://weidian.com?userid=",
                  "https://weidian.com/?userid=1&userid=2", "https://h5.weidian.com/?userid=7", "http://shop3.taobao.com./",
                  "https://x.kwaixiaodian.com/merchant/shop/detail?id=TB5", "https://shop4.taobao.com/?a=%41#f",
                  "https://www.goofish.com/personal?userId=", "https://mall.jd.com/index-1.html?x=1#y", "weidian.com"]
    canonical = [c for c in (_outcome(normalize.canonical_url, u) for u in urls) if isinstance(c, str)]
    for url in urls + canonical + shop_pages:
        assert _outcome(link_memo.url_shop_key_of, url) == _outcome(url_shop_key, url), url


def test_every_shop_page_pattern_needs_one_of_the_literals() -> None:
    for _, pattern, _ in _SHOP_URLS:
        assert any(re.escape(literal) in pattern.pattern for literal in link_memo.SHOP_URL_LITERALS), pattern
        assert all("/" not in literal for literal in link_memo.SHOP_URL_LITERALS)


def old_canonical_ip(value: str) -> str:
    ip = ipaddress.ip_address(to_halfwidth(value).strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.compressed


def _addresses() -> list[str]:
    """Simulated addresses, the edges of every network `is_global` knows, a sweep, and text that is not an IPv4 one."""
    simulated = [ip for lead in _leads() for ip in lead.online.ips]
    edges = []
    for net in (ipaddress.IPv4Network("100.64.0.0/10"), *(ipaddress.IPv4Network(n) for n in (
            "0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
            "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
            "240.0.0.0/4", "255.255.255.0/24"))):
        first, last = int(net.network_address), int(net.broadcast_address)
        edges += [str(ipaddress.IPv4Address(v)) for v in (first, first + 1, last - 1, last) if 0 <= v < 2**32]
        edges += [str(ipaddress.IPv4Address(v)) for v in (first - 1, last + 1) if 0 <= v < 2**32]
    edges += [str(ipaddress.IPv4Address(v)) for v in range(int(ipaddress.IPv4Address("192.0.0.0")), 3221225728)]
    sweep = [str(ipaddress.IPv4Address(v)) for v in range(0, 2**32, 2**32 // 20000 + 7)]
    odd = ["", " ", "1.2.3.4 ", " 1.2.3.4", "１.２.３.４", "1.2.3.04", "01.2.3.4", "1.2.3.256", "1.2.3", "1.2.3.4.5",
           "1..2.3", "٣.2.3.4", "1.2.3.4\u3000", "::1", "::ffff:1.2.3.4", "::FFFF:8.8.8.8", "2001:db8::1",
           "2400:cb00::1", "2408:8000:0:0:0:0:0:1", "fe80::1%eth0", "0.0.0.0", "255.255.255.255", "8.8.8.8",
           "1.2.3.4/24", "1.2.3.-4", "+1.2.3.4", "1.2.3.4" * 50]
    return simulated + edges + sweep + odd


def test_canonical_ip_and_its_signals_are_ipaddress_forms() -> None:
    normalize.canonical_ip.cache_clear()
    link_memo.ip_signals_of.cache_clear()
    for value in _addresses():
        assert _outcome(normalize.canonical_ip, value) == _outcome(old_canonical_ip, value), value
        assert link_memo.ip_signals_of(value) == ip_signals(value), value


_OLD_HALFWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
HOSTILE_TEXT = [
    "", " ", "\u3000", "abc", "ＡＢＣ１２３＋－", "Ａ\u3000Ｂ", "\uff00\uff5f\uff60\uff01\uff5e",
    "浙江杭州美丽日化有限公司", "（杭州）美丽日化有限公司", "(杭州)美丽", "杭州市西湖区美丽",
    "浙江省杭州市美丽日化股份有限公司", "有限公司", "美有限公司", "株洲恒通电器", "王 小明", "王\u3000小明",
    " \t王\n小明 ", "Ｔａｏｂａｏ 店", "😀 店", "a\u00a0b\u2003c\u200bd", "é中ＡΩ", "广西壮族自治区南宁市好物商行",
    "内蒙古呼和浩特乳业有限责任公司", "义乌市小商品经营部", "上海", "上海市", "北京北京", "x" * 5000,
    "中" * 3000 + "有限公司", "Ｘ" * 2000, "\x00\x1f\x7f", "ǅ", "ＡＢＣ\u3000ｄｅｆ\u3000\u3000", "🏪（深圳）店",
]


def old_to_halfwidth(text: str) -> str:
    return text if text.isascii() else text.translate(_OLD_HALFWIDTH)


def old_split_name(name: str) -> normalize.NameParts:
    text = " ".join(old_to_halfwidth(name).split()).replace(" ", "")
    legal = next((form for form in normalize.LEGAL_FORMS if text.endswith(form) and len(text) > len(form)), None)
    if legal:
        text = text[: -len(legal)]
    prefixes: list[str] = []
    paren = normalize._PAREN_PLACE.search(text)
    if paren:
        prefixes.append(paren.group(1))
        text = (text[: paren.start()] + text[paren.end() :]).strip()
    while len(text) > 2:
        place = normalize._LEADING_PROVINCE.match(text) or normalize._LEADING_CITY.match(text)
        if place is None:
            place = normalize._CITY.match(text)
            if place is None or len(text) - place.end() < 2:
                break
        prefixes.append(place.group(0))
        text = text[place.end() :]
    return normalize.NameParts(core=text, prefix="".join(prefixes) or None, legal_form=legal)


def _texts() -> list[str]:
    texts = []
    for lead in _leads():
        address = lead.subject.address
        texts += [lead.subject.name, *(lead.subject.phones), *lead.payment_accounts, *lead.online.urls]
        if address is not None:
            texts += [address.city or "", address.detail or ""]
        if lead.rights_holder is not None:
            texts.append(lead.rights_holder.name)
    full = [old_to_halfwidth(t).translate({cp - 0xFEE0: cp for cp in range(0xFF01, 0xFF5F)}) for t in texts[:2000]]
    edges = [chr(cp) for cp in (*range(0x2FF0, 0x3010), *range(0xFEF0, 0xFF70))]
    return texts + full + HOSTILE_TEXT + edges


def test_halfwidth_and_name_parts_are_the_old_forms() -> None:
    normalize.split_name.cache_clear()
    for text in _texts():
        assert to_halfwidth(text) == old_to_halfwidth(text), text
        assert clean_text(text) == " ".join(old_to_halfwidth(text).split()), text
        assert normalize.split_name(text) == old_split_name(text), text


def old_luhn_sum(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total


def old_uscc_check_char(first17: str) -> str:
    values = {char: index for index, char in enumerate(identifiers.USCC_CHARSET)}
    if len(first17) != 17 or any(char not in values for char in first17):
        raise identifiers.IdentifierError("USCC_FORMAT", f"need 17 characters of {identifiers.USCC_CHARSET}, "
                                                         f"got {first17!r}")
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(values[char] * weight for char, weight in zip(first17, weights, strict=True))
    return identifiers.USCC_CHARSET[(31 - total % 31) % 31]


def old_resident_id_check_char(first17: str) -> str:
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise identifiers.IdentifierError("RESIDENT_ID_FORMAT", "need 17 ASCII digits before the check character")
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(digit) * weight for digit, weight in zip(first17, weights, strict=True)) % 11]


def test_check_characters_and_luhn_sums_are_the_old_ones() -> None:
    rng = random.Random(16)
    digits = ["".join(rng.choices("0123456789", k=rng.randrange(0, 26))) for _ in range(20000)]
    for value in digits + ["0" * 19, "9" * 19, "4111111111111111", "6222021234567890123"]:
        assert identifiers._luhn_sum(value) == old_luhn_sum(value), value
    codes = ["".join(rng.choices(identifiers.USCC_CHARSET + "IOZSVa ０Ａ", k=rng.choice((16, 17, 17, 17, 18))))
             for _ in range(20000)]
    for code in codes + [lead.subject.uscc[:17] for lead in _leads() if lead.subject.uscc] + ["", "Ａ" * 17]:
        assert _outcome(identifiers.uscc_check_char, code) == _outcome(old_uscc_check_char, code), code
    numbers = ["".join(rng.choices("0123456789", k=17)) for _ in range(20000)]
    odd = ["1234567890123456", "1234567890123456X", "１２３４５６７８９０１２３４５６７", "٣" * 17, ""]
    for number in numbers + odd:
        assert _outcome(identifiers.resident_id_check_char, number) == _outcome(old_resident_id_check_char, number)


def test_the_remembered_address_signals_are_those_of_the_address() -> None:
    link_memo._address_signals.cache_clear()
    addresses = [a for lead in _leads() for a in (lead.subject.address, *lead.return_addresses) if a is not None]
    places = (("33", None, None), ("33", "", ""), ("99", "杭州", "杭州市西湖区文三路1号"),
              ("11", "北京市", "北京市朝阳区某某大厦"), ("44", "深圳市", "广东省深圳市南山区科技园　A栋"),
              ("00", "Ｘ市", "ＡＢＣ１２３号"), ("31", "上海", "上海市" * 300))
    odd = [Address.model_construct(province=p, city=c, detail=d) for p, c, d in places]
    for address in addresses + odd:
        ours = link_memo._address_signals(address.province, address.city, address.detail)
        assert ours == address_signals(address), address
        assert ours == address_signals(Address.model_construct(province=address.province, city=address.city,
                                                               detail=address.detail)), address
