"""The intake core's outputs on a fixed corpus equal those recorded before it was optimised (issue #16)."""

from __future__ import annotations

import json

from tests.unit.processors.intake_golden import GOLDEN, lines


def test_outputs_equal_the_golden_file_byte_for_byte() -> None:
    recorded = GOLDEN.read_text(encoding="utf-8").splitlines()
    now = lines()
    assert len(now) == len(recorded)
    differ = [index for index, (a, b) in enumerate(zip(now, recorded, strict=True)) if a != b]
    assert not differ, f"{len(differ)} events differ, first at offset {differ[0]}:\nnow  {now[differ[0]]}\n" \
                       f"then {recorded[differ[0]]}"


def test_the_corpus_reaches_every_path() -> None:
    seen = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    accepted = [line["accepted"] for line in seen if "accepted" in line]
    reasons = {line["rejected"][0] for line in seen if "rejected" in line}
    warnings = {code for lead in accepted for code in lead[3]}
    assert len(accepted) >= 700 and sum("decision" in line for line in seen) == 6
    assert warnings == {"LEGACY_RESIDENT_ID", "USCC_CHECKSUM"}
    assert {"PHONE_FORMAT", "URL_FORMAT", "IP_FORMAT", "DECODE_CORRUPT", "DECODE_TRUNCATED", "OVERSIZED",
            "BAD_SIGNATURE", "WRONG_TOPIC", "TIME_IN_FUTURE", "LEAD_ID_FORMAT"} <= reasons
    # signed events travel to their sequence lane; redeliveries carry the first copy's digest
    assert any(out[0] == "leadbus.internal.intake-by-lead" and any(h[0] == "leadbus-intake-phase" for h in out[2])
               for line in seen for out in line["out"])
    digests: dict[tuple[str, int], set[str]] = {}
    for lead_id, revision, digest, _ in accepted:
        digests.setdefault((lead_id, revision), set()).add(digest)
    assert any(len(d) == 1 for d in digests.values())
