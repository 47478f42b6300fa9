"""The linking stage's outputs on a fixed corpus equal those recorded before its state was redesigned (issue #16),
also when it continues from a state written in the layout before (a restart after the upgrade)."""

from __future__ import annotations

import json

from tests.unit.processors.linking_golden import GOLDEN, HALF, dumps, old_state, run


def _compare(now: list[str]) -> None:
    recorded = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert len(now) == len(recorded)
    differ = [index for index, (a, b) in enumerate(zip(now, recorded, strict=True)) if a != b]
    assert not differ, f"{len(differ)} records differ, first at offset {differ[0]}:\nnow  {now[differ[0]]}\n" \
                       f"then {recorded[differ[0]]}"


def test_outputs_equal_the_golden_file_byte_for_byte() -> None:
    _compare(dumps(run()[0]))


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
