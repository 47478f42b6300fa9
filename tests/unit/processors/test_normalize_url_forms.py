"""Canonical URLs and registrable domains after the intake speed-ups of issue #16 (no query parsing when there is
no query; the host read off the canonical URL without parsing it again): equal to the formulation they replace,
on simulated, messy and hostile URLs."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from leadbus.processors.core import normalize
from leadbus.producers.simulator import TrafficGenerator
from tests.unit.processors.url_reference import old_canonical_url

HOSTILE = [
    "https://WWW.Example.COM:443/a/b/?utm_source=x&b=2&a=1#frag", "http://m.shop.taobao.com:8080", "shop.jd.com/x?",
    "https://user:pw@evil.com@shop.example.cn/p", "https://[2001:db8::1]:8443/x", "https://[::ffff:1.2.3.4]/",
    "https://中文.中国/路径?q=值", "https://xn--fiqs8s.xn--fiqz9s/a", "https://host%eth0.example.com/",
    "https://a.b.co.uk.:0/", "https://localhost:65535", "ｈｔｔｐｓ：／／ＷＷＷ．ＴＡＯＢＡＯ．ＣＯＭ／ｘ", "https://a..b.com//x//",
    "https://x.com/?", "https://x.com/#", "https://x.com?a=1&a=2&utm_x=3&_t=4", "https://wap.m.www.example.com.cn",
    "https://a.com:/p", "https://EXAMPLE.com:80", "https://ex-ample_1.com/%2F%3F?%20=%20", "https://1.2.3.4:8080/a",
    "www.example.com", "https://a.com/p;params?x=1", "https://ÄBC.com/", "https://a.com\\@b.com/",
]


def _urls() -> list[str]:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    leads = TrafficGenerator(seed=9).leads(600, now - timedelta(hours=1), timedelta(seconds=1))
    urls = [u for lead in leads for u in lead.online.urls] + HOSTILE
    rng = random.Random(3)
    for url in list(urls):
        cut = rng.randrange(len(url) + 1)  # spliced with awkward characters
        urls.append(url[:cut] + rng.choice(["@", ":", "[", "]", "%", ":99", "Ü", "/", "?", "#", "."]) + url[cut:])
    return urls


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    """The memos emptied before, and after (they hold the test's stand-in answers then)."""
    normalize.canonical_url.cache_clear()
    normalize.registrable_domain.cache_clear()
    yield
    normalize.registrable_domain.cache_clear()


def test_canonical_url_and_registrable_domain_as_before(monkeypatch, fresh_caches) -> None:
    monkeypatch.setattr(normalize, "_domain_of_host", lambda host: f"host={host}")  # the host it is asked about
    compared = 0
    for url in _urls():
        try:
            old = old_canonical_url(url)
        except ValueError:  # an invalid port or bracket: refused alike
            try:
                normalize.canonical_url(url)
            except ValueError:
                continue
            raise AssertionError(f"{url!r} was refused before") from None
        assert normalize.canonical_url(url) == old, url
        assert normalize.registrable_domain(url) == f"host={urlsplit(old).hostname or ''}", url
        compared += 1
    assert compared > 600
