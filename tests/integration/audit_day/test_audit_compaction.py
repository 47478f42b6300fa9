"""A sealed topic compacted by someone with administrative access (`cleanup.policy=compact`: the broker's cleaner
keeps each key's newest record and removes the rest from the middle of the log). `leadbus.cases` holds several
versions of a case under its key, so the cleaner removes records inside the stage's chains: the replay must fail and
name where (the first record read after each removed stretch), never pass the shorter log as clean.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from leadbus.topics import CASES
from tests.audit_helpers import Copy, append, records_of, recreate_topic, topic_config
from tests.integration.audit_day.conftest import Day
from tests.integration.audit_day.test_audit_red_team import by_partition, verify

pytestmark = pytest.mark.integration

#: Compacted as soon as the cleaner looks (every 15 s): a segment rolls 100 ms after its first record, and the
#: cleaner takes every segment but the active one.
COMPACTING = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0",
              "segment.ms": "100"}


def _gaps(copies: list[Copy]) -> dict[int, list[int]]:
    """Per partition, the offsets read right after offsets missing in the middle of its log."""
    out: dict[int, list[int]] = {}
    for partition, rs in by_partition(copies).items():
        out[partition] = [b.offset for a, b in itertools.pairwise(rs) if b.offset > a.offset + 1]
    return out


def test_a_compacted_cases_topic_fails_and_names_where_records_were_removed(day: Day, tmp_path: Path) -> None:
    pristine = day.pristine[CASES]
    keys = [c.key for c in pristine]
    assert len(set(keys)) < len(keys), "the day's cases have several versions under one key"
    partitions, declared = topic_config(day.bootstrap, CASES)
    try:
        _compacted(day, pristine, partitions, tmp_path)
    finally:  # as declared again (the day's own restore keeps a topic's config as it finds it)
        recreate_topic(day.bootstrap, CASES, pristine, declared, partitions)


def _compacted(day: Day, pristine: list[Copy], partitions: int, tmp_path: Path) -> None:
    # the newest fifth of each partition written apart: the rest rolls into segments the cleaner takes
    cut = {p: rs[len(rs) * 4 // 5].offset for p, rs in by_partition(pristine).items()}
    recreate_topic(day.bootstrap, CASES, [c for c in pristine if c.offset < cut[c.partition]], COMPACTING, partitions)
    time.sleep(0.5)
    append(day.bootstrap, CASES, [c for c in pristine if c.offset >= cut[c.partition]])
    deadline = time.monotonic() + 120
    compacted = records_of(day.bootstrap, CASES)
    while not any(_gaps(compacted).values()):  # the cleaner runs every 15 s (log.cleaner.backoff.ms)
        assert time.monotonic() < deadline, "the broker's cleaner compacted nothing in 120 s"
        time.sleep(2)
        compacted = records_of(day.bootstrap, CASES)
    gaps = _gaps(compacted)
    assert len(compacted) < len(pristine)
    code, failures, out = verify(day.bootstrap, CASES, tmp_path / "report.json")
    assert code == 1, out
    named = {(f["partition"], f["offset"]) for f in failures if f["topic"] == CASES}
    for partition, offsets in gaps.items():
        for offset in offsets:  # each removed stretch named at the record read after it
            assert (partition, offset) in named, (partition, offset, sorted(named)[:20])
    assert {f["check"] for f in failures} & {"STAGE_SEQUENCE_GAP", "VERSION_GAP"}, failures[:5]
