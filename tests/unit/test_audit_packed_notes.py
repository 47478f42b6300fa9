"""A cut's tail's notes packed for the pipe back (`leadbus.audit.packed_notes`, and its C twin
`RunReader.pack_notes` / `packed_firsts`): the C packing gives the reference's bytes or refuses the same notes, the rows
read back are the rows noted, and the parent carrying packed notes over after the head's (`boundary._accepted`) keeps
the same revisions and finds the same as with the list (leads met in the head too, met twice in the tail, revisions
going back, a digest differing, notes cut short), with the C reader and with the Python paths alone."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest

from leadbus.audit import verification as verification_module
from leadbus.audit.boundary import _accepted
from leadbus.audit.packed_notes import pack, row_at
from leadbus.audit.verification import AcceptedLeads, Mark, _plain
from leadbus.topics import LEADS_ACCEPTED
from tests.audit_helpers import with_and_without_run_reader


def test_the_packing_reader_is_built_and_in_use() -> None:
    reader = verification_module._RUN_READER
    assert reader is not None, "leadbus.audit._records is not built: run `make install`"
    assert hasattr(reader, "pack_notes") and hasattr(reader, "packed_firsts")
    tail = AcceptedLeads()
    tail.noted = [("LEAD-1", 1, "ab", 0, 7)]
    sent = pickle.loads(pickle.dumps(tail))
    assert sent.noted == [] and sent._packed == pack(tail.noted)


def _notes(rng: random.Random, odd: bool) -> list[Any]:
    leads = [f"LEAD-{i:03d}" for i in range(rng.randrange(1, 40))] + ["lead-é中", "λ" * 70]
    noted: list[Any] = []
    for offset in range(rng.randrange(0, 120)):
        row: tuple[Any, ...] = (rng.choice(leads), rng.choice([0, 1, 2, 3, 2**63 - 1, -(2**63)]),
                                rng.choice(["ab", "cd", "0" * 64, ""]), rng.choice([0, 0, 1, 2**40]), offset)
        if odd and rng.random() < 0.03:
            row = rng.choice([
                row[:4], (*row, 1), list(row), ("\udc80", *row[1:]), (row[0], 2**63, *row[2:]),
                (row[0], -(2**63) - 1, *row[2:]), (row[0], True, *row[2:]), (row[0], 1.0, *row[2:]),
                (7, *row[1:]), (row[0], row[1], b"ab", *row[3:]), (row[0], row[1], row[2], None, row[4]),
                (row[0], row[1], row[2], row[3], "9"), (type("Sub", (str,), {})("x"), *row[1:]),
            ])
        noted.append(row)
    return noted


def test_the_c_packing_gives_the_references_bytes_and_refuses_the_same_notes() -> None:
    rng = random.Random(2121)
    packed = refused = 0
    for _ in range(600):
        noted = _notes(rng, odd=rng.random() < 0.5)
        fast, alone = pack(noted, verification_module._RUN_READER), pack(noted)
        assert fast == alone
        if alone is None:
            refused += 1
            continue
        packed += 1
        rows, at = [], 0
        while at < len(alone):
            row, at = row_at(alone, at)
            rows.append(row)
        assert rows == noted and [tuple(map(type, r)) for r in rows] == [tuple(map(type, r)) for r in noted]
    assert packed > 200 and refused > 100, (packed, refused)
    assert pack([], verification_module._RUN_READER) == pack([]) == b""
    assert verification_module._RUN_READER.pack_notes(("a", 1, "b", 0, 0)) is None  # not a list


def _carried(seed: int, pickled: bool, cut: bool) -> tuple[Any, ...]:
    """A tail's notes (leads met in the head too, twice in the tail, revisions going back, a digest differing) carried
    over after the head's, from the list or sent through a pickle (packed); `cut`: the packed notes cut short."""
    rng = random.Random(seed)
    leads = [f"LEAD-{i:03d}" for i in range(rng.randrange(1, 40))]
    head, tail = AcceptedLeads(), AcceptedLeads()
    for offset in range(rng.randrange(0, 30)):
        head.revision([], rng.choice(leads), rng.randrange(1, 4), rng.choice("ab"), Mark(LEADS_ACCEPTED, 0, offset))
    tail.noted = [(rng.choice(leads), rng.randrange(1, 4), rng.choice("ab"), rng.choice([0, 0, 0, 1]), offset)
                  for offset in range(100, 100 + rng.randrange(0, 120))]
    if pickled:
        tail = pickle.loads(pickle.dumps(tail))
        assert tail.noted == [] or not tail._packed
        if cut and tail._packed:
            tail._packed = tail._packed[:rng.randrange(len(tail._packed))]
    add: list[Any] = []
    carry = _accepted(head, tail, add)
    assert carry is not None
    try:
        carry()
    except ValueError as exc:  # notes cut short: raised at the same row either way
        add.append(str(exc))
    return {k: (r, d, _plain(m)) for k, (r, d, m) in head._revisions.items()}, add


@pytest.mark.parametrize("cut", [False, True])
def test_packed_notes_are_carried_over_as_the_list_is(cut: bool) -> None:
    rng = random.Random(2727)
    findings = 0
    for _ in range(300):
        seed = rng.randrange(2**32)
        fast, alone = with_and_without_run_reader(_carried, seed, True, cut)
        assert fast == alone
        if not cut:
            assert fast == _carried(seed, False, False)
        findings += len(fast[1])
    assert findings > 300, findings
