"""Suspects after fatal producer failures: halving down to the record that causes them, then dead-lettering it."""

from __future__ import annotations

from dataclasses import dataclass

from leadbus.processors.core.poison import ALONE_FAILURES, Suspects


@dataclass(frozen=True)
class At:
    topic: str
    partition: int
    offset: int


def batch(n: int, start: int = 0) -> list[At]:
    return [At("in", 0, o) for o in range(start, start + n)]


def test_without_suspects_a_transaction_takes_every_record() -> None:
    suspects = Suspects()
    assert not suspects and suspects.allowed(batch(500)) == 500


def test_a_transaction_holding_suspects_takes_half_of_the_one_they_failed_in() -> None:
    suspects = Suspects()
    suspects.failed(batch(300), "fenced")
    assert suspects and suspects.allowed(batch(300)) == 150
    # records before the suspects are not limited: the transaction stops before the first suspect it cannot take
    assert suspects.allowed([At("in", 1, o) for o in range(200)] + batch(300)) == 200
    assert suspects.allowed([At("in", 1, o) for o in range(100)] + batch(300)) == 150
    assert suspects.allowed(batch(10, start=300)) == 10  # not suspected


def test_halving_isolates_the_cause_and_it_is_poison_after_failing_alone_twice() -> None:
    records, poison = batch(300), At("in", 0, 211)
    suspects = Suspects()
    suspects.failed(records, "INVALID_TXN_STATE")
    failures, pending = 1, list(records)
    while pending:
        taken = pending[:suspects.allowed(pending)]
        if poison in taken and not suspects.poisoned(poison):
            suspects.failed(taken, "INVALID_TXN_STATE")
            failures += 1
            continue
        suspects.committed(taken)
        pending = pending[len(taken):]
        if poison in taken:
            assert taken == [poison] and suspects.cause == "INVALID_TXN_STATE"
    assert failures <= 2 + ALONE_FAILURES + 300 .bit_length()
    assert not suspects, "committed records leave the suspects"


def test_a_poison_record_is_taken_alone_wherever_it_stands() -> None:
    suspects = Suspects()
    poison = At("in", 0, 5)
    for _ in range(ALONE_FAILURES):
        suspects.failed([poison], "fatal")
    assert suspects.poisoned(poison)
    assert suspects.allowed(batch(10)) == 5 and suspects.allowed(batch(10, start=5)) == 1
