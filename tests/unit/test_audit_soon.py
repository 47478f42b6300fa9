"""`leadbus.audit.soon`: a question asked on a thread now, its answer waited for later."""

from __future__ import annotations

import threading

from leadbus.audit.soon import soon


def test_the_answer_comes_from_the_thread_named() -> None:
    seen: list[str] = []

    def ask() -> int:
        seen.append(threading.current_thread().name)
        return 42

    wait = soon(ask, lambda: -1, "leadbus-test-soon")
    assert wait() == 42
    assert seen == ["leadbus-test-soon"]


def test_a_question_that_raises_answers_what_failed_gives() -> None:
    def ask() -> int:
        raise OSError("broker unreachable")

    assert soon(ask, lambda: -1, "leadbus-test-soon")() == -1


def test_the_question_runs_while_the_caller_goes_on() -> None:
    release = threading.Event()
    started = threading.Event()

    def ask() -> str:
        started.set()
        release.wait(5)
        return "late"

    wait = soon(ask, lambda: "failed", "leadbus-test-soon")
    assert started.wait(5)  # asked before anyone waits
    release.set()
    assert wait() == "late"
    assert wait() == "late"  # waiting again gives the same answer


def test_without_failed_what_the_question_raised_is_raised_where_it_is_waited_for() -> None:
    def ask() -> int:
        raise ValueError("a head of another shape")

    wait = soon(ask, None, "leadbus-test-soon")
    for _ in range(2):  # each time it is waited for
        try:
            wait()
        except ValueError as exc:
            assert str(exc) == "a head of another shape"
        else:
            raise AssertionError("not raised")
