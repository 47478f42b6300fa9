"""The linking stage's outputs on a fixed corpus equal those recorded before its state was redesigned (issue #16),
also when it continues from a state written in the layout before (a restart after the upgrade)."""

from __future__ import annotations

import json

import pytest

from leadbus.avro import SchemaEntry
from leadbus.processors.linking import LinkingHandler
from tests.unit.processors.linking_golden import ACCEPTED, BEFORE_VIEWS, GOLDEN, HALF, dumps, old_state, run


def _compare(now: list[str]) -> None:
    recorded = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert len(now) == len(recorded)
    differ = [index for index, (a, b) in enumerate(zip(now, recorded, strict=True)) if a != b]
    assert not differ, f"{len(differ)} records differ, first at offset {differ[0]}:\nnow  {now[differ[0]]}\n" \
                       f"then {recorded[differ[0]]}"


@pytest.mark.parametrize(("writer", "use_views"), [(ACCEPTED, True), (BEFORE_VIEWS, True), (ACCEPTED, False)],
                         ids=["views", "written-before-views", "views-not-used"])
def test_outputs_equal_the_golden_file_byte_for_byte(writer: SchemaEntry, use_views: bool) -> None:
    """Leads linked by intake's views (`LeadAccepted` v7), written before views (derived in the stage), and with
    views not used (the audit rebuild's way): the same bytes, recorded before either."""
    _compare(dumps(run(LinkingHandler(use_views=use_views), writer=writer)[0]))


def test_continuing_from_the_state_of_the_layout_before_gives_the_same_outputs() -> None:
    lines, _ = run(swap=old_state())
    _compare(dumps(lines))


def test_the_corpus_reaches_every_path() -> None:
    seen = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    topics = [out[0] for line in seen for out in line["out"]]
    assert topics.count("leadbus.cases") > 700 and "leadbus.links.suggested" not in topics  # suggesting's (#16)
    assert any(t.startswith("leadbus.review.") for t in topics)  # LinkDecided of confirms and rejects applied
    assert topics.count("leadbus.leads.rejected") >= 20  # undecodable records, refused decisions
    assert len(seen) > HALF + 300
