"""`broker_stamped_topics` and the replay's "now": the later of the auditor's clock and the broker's newest stamp."""

from __future__ import annotations

import pytest

from leadbus.audit import broker_time
from leadbus.audit import replay as replay_module
from leadbus.clients import settings_for
from leadbus.topics import ARCHIVE_HEADS, PUBLISHERS, SCHEMAS


def test_the_declared_broker_stamped_topics() -> None:
    assert broker_time.broker_stamped_topics() == sorted([ARCHIVE_HEADS, PUBLISHERS, SCHEMAS])


@pytest.mark.parametrize(("stamped", "expected"), [(None, 1_000_000), (900_000, 1_000_000), (1_200_000, 1_200_000)])
def test_now_is_the_later_of_the_clock_and_the_broker(monkeypatch: pytest.MonkeyPatch, stamped: int | None,
                                                      expected: int) -> None:
    monkeypatch.setattr(broker_time, "latest_broker_time", lambda *_a, **_k: stamped)
    options = replay_module.ReplayOptions(["leadbus.cases"], clock=lambda: 1_000.0)
    assert replay_module._now_ms(options, settings_for("127.0.0.1:1")) == expected
    assert replay_module._now_ms(options, None) == 1_000_000


def test_an_unreachable_bus_leaves_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_a: object, **_k: object) -> int:
        raise RuntimeError("refused")

    monkeypatch.setattr(broker_time, "latest_broker_time", refused)
    options = replay_module.ReplayOptions(["leadbus.cases"], clock=lambda: 5.0)
    assert replay_module._now_ms(options, settings_for("127.0.0.1:1")) == 5_000
