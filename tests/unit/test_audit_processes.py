"""`leadbus.audit.processes`: how many processes a verified replay reads with (a pure rule of cores, load and records,
a number given taken as it is), and the intake leads a split replay's other processes hand back as hashes: merged,
the same findings, coordinates and ranges as merging all they read."""

from __future__ import annotations

import contextlib
import pickle
import random
import time
from pathlib import Path
from typing import Any

import pytest

from leadbus.audit.processes import (
    MIN_LOAD_WINDOW,
    SPARE_CORE,
    CpuTimes,
    LoadWatch,
    busy_cores,
    cpu_times,
    handed,
    hashes_of,
    load_matters,
    measured_load,
    others_load,
    picked,
    reap,
    replay_workers,
    sent_intake,
    taken,
    wanted,
)
from leadbus.audit.verification import AcceptedLeads, Finding, IntakeLeads, Mark
from tests.audit_helpers import intake_lead_values, intake_read, leads_split


@pytest.mark.parametrize(("records", "cpus", "load", "requested", "expected"), [
    (100_000, 2, 0.2, None, 2),  # a quiet machine of two cores: a core for the second process
    (100_000, 2, 1.0, None, 2),  # one core's worth of other work: the other core is free
    (100_000, 2, 1.01, None, 1),  # more than that: the second process would share a core
    (100_000, 2, 3.0, None, 1),  # helpers' benches on the machine
    (100_000, 4, 2.5, None, 2),  # four cores, one and a half free
    (100_000, 4, 3.5, None, 1),
    (100_000, 1, 0.0, None, 1),  # one core
    (100_000, None, 0.0, None, 1),  # cores unknown
    (100_000, 2, None, None, 2),  # no load average: as before the rule
    (19_999, 2, 0.0, None, 1),  # too few records for a second process to pay
    (20_000, 2, 0.0, None, 2),
    (100_000, 2, 3.0, 2, 2),  # a number given is taken as it is, whatever the load
    (10, 2, 0.0, 3, 3),
    (100_000, 2, 0.0, 1, 1),
    (100_000, 2, 0.0, 0, 1),
])
def test_the_processes_follow_the_cores_the_load_and_the_records(records: int, cpus: int | None, load: float | None,
                                                                 requested: int | None, expected: int) -> None:
    assert replay_workers(records, cpus=cpus, load=load, requested=requested, split_min=20_000) == expected


def test_the_rule_turns_at_a_spare_core() -> None:
    for cpus in (2, 3, 8):
        assert replay_workers(10**6, cpus=cpus, load=cpus - SPARE_CORE, requested=None, split_min=1) == 2
        assert replay_workers(10**6, cpus=cpus, load=cpus - SPARE_CORE + 0.01, requested=None, split_min=1) == 1


def _merged_whole(mine: IntakeLeads, others: list[IntakeLeads]) -> tuple[list[Finding], IntakeLeads]:
    found = []
    for other in others:
        found.extend(mine.merge(pickle.loads(pickle.dumps(other))))
    return found, mine


def _merged_by_hashes(mine: IntakeLeads, others: list[IntakeLeads]) -> tuple[list[Finding], IntakeLeads]:
    """As `leadbus.audit.split.run_split` does it: each other sends hashes, is asked back for those held elsewhere."""
    sent = [taken(handed(sent_intake(o._seen, o.sources, o.ranges))) for o in others]
    asks = wanted({hash(ident) for ident in mine._seen}, [hashes_of(s) for s in sent])
    found = []
    for other, was, ask in zip(others, sent, asks, strict=True):
        again = IntakeLeads()
        again._seen = taken(handed(picked(other._seen, ask)))
        again.sources, again.ranges = was.sources, was.ranges
        found.extend(mine.merge(again))
    return found, mine


@pytest.mark.parametrize("shared", [0, 1, 7])
@pytest.mark.parametrize("parts", [2, 3])
def test_leads_handed_back_as_hashes_give_the_findings_of_handing_back_all(shared: int, parts: int) -> None:
    leads = intake_lead_values()
    rng = random.Random(12 + shared + parts)
    groups = leads_split(leads, parts, shared, rng)
    if parts == 3 and shared:  # and a lead two forked processes read, neither of them the parent
        topic, value = next((t, v) for t, p, v in groups[1] if not any(v == w for _, _, w in groups[0]))
        groups[2].append((topic, 2, value))

    def fresh() -> tuple[IntakeLeads, list[IntakeLeads]]:
        return intake_read(groups[0]), [intake_read(g) for g in groups[1:]]

    whole_found, whole = _merged_whole(*fresh())
    found, merged = _merged_by_hashes(*fresh())
    assert sorted(found, key=repr) == sorted(whole_found, key=repr)
    assert (shared == 0) == (found == [])
    assert merged.sources == whole.sources and merged.ranges == whole.ranges


def test_the_hashes_are_eight_bytes_a_lead() -> None:
    seen = {(f"lead-{i}", 1): (b"d" * 32, "t", 0, i, None, None) for i in range(1000)}
    sent = sent_intake(seen, {}, {})
    assert len(sent.hashes) == 8000 and hashes_of(sent) == {hash(ident) for ident in seen}
    assert picked(seen, set()) == {} and list(picked(seen, {hash(("lead-5", 1)), hash(("lead-2", 1))})) == [
        ("lead-2", 1), ("lead-5", 1)]
    theirs = {hash((f"lead-{i}", 1)) for i in range(990, 1010)}
    # this process's hashes made as they are read (one other process), or a set (several): the same asks
    assert wanted(map(hash, seen), [theirs]) == wanted(set(map(hash, seen)), [theirs]) == [
        {hash((f"lead-{i}", 1)) for i in range(990, 1000)}]


def test_a_hand_back_reads_back_equal_without_the_memo_and_a_cycle_as_ever() -> None:
    noted = [(f"lead-{i}", 1 + i % 3, f"{i:064x}", 0, 50_000 + i) for i in range(2000)]
    shared = ("the same tuple", 1)
    value = {"noted": noted, "twice": [shared, shared], "marks": [Mark("t", 0, 1)]}
    assert taken(handed(value)) == value
    assert len(handed(value)) < len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) + 100
    looped: list[object] = [1, 2]
    looped.append(looped)  # fast pickling refuses a cycle: pickled with the memo instead
    back = taken(handed(looped))
    assert back[:2] == [1, 2] and back[2] is back


def test_the_accepted_leads_go_back_without_the_workers_intake_leads() -> None:
    """A split replay's worker sends its `AcceptedLeads` back: what it read of the accepted leads, not its own
    `IntakeLeads` (whose leads go back as hashes), which the parent's merge never reads."""
    intake = IntakeLeads()
    intake._seen = {(f"lead-{i}", 1): (b"d" * 32, "t", 0, i, None, None) for i in range(500)}
    accepted = AcceptedLeads(intake)
    accepted._revisions = {"lead-1": (2, "digest", Mark("leadbus.leads.accepted", 0, 7))}
    accepted._sources = [(("leadbus.intake.SAMR", 0, 3), b"s" * 32, Mark("leadbus.leads.accepted", 0, 7))]
    back = taken(handed(accepted))
    assert back.intake is None and accepted.intake is intake
    assert back._revisions == accepted._revisions and back._sources == accepted._sources
    assert len(handed(accepted)) < 1000
    parent = AcceptedLeads(IntakeLeads())
    parent.merge(back)
    assert parent._revisions == accepted._revisions and parent._sources == accepted._sources


STAT = """cpu  {user} 10 {system} {idle} {iowait} 0 5 0 0 0
cpu0 1 2 3 4 5 6 7 0 0 0
intr 12345
"""


def _stat(user: int, system: int, idle: int, iowait: int = 0) -> CpuTimes:
    times = cpu_times(STAT.format(user=user, system=system, idle=idle, iowait=iowait))
    assert times is not None
    return times


def test_cpu_times_read_the_summed_line_idle_with_io_waits() -> None:
    assert _stat(100, 50, 1000, 20) == CpuTimes(1020, 100 + 10 + 50 + 1000 + 20 + 5)
    assert cpu_times("cpu  1 2 3 4\n") == CpuTimes(4, 10)  # an old kernel's four fields
    assert cpu_times("cpu0 1 2 3 4 5\n") is None  # no summed line
    assert cpu_times("cpu  1 2 x 4 5\n") is None
    assert cpu_times("cpu  1 2\n") is None
    assert cpu_times("") is None


@pytest.mark.parametrize(("busy_ticks", "idle_ticks", "cpus", "expected"), [
    (0, 30, 2, 0.0),  # nothing ran: both cores spare
    (15, 15, 2, 1.0),  # one core's worth
    (30, 0, 2, 2.0),
    (10, 30, 4, 1.0),
])
def test_busy_cores_are_the_share_not_idle_of_every_core(busy_ticks: int, idle_ticks: int, cpus: int,
                                                         expected: float) -> None:
    before = _stat(1000, 500, 9000)
    after = _stat(1000 + busy_ticks, 500, 9000 + idle_ticks)
    assert busy_cores(before, after, cpus) == pytest.approx(expected)


def test_busy_cores_unknown_without_two_readings_apart() -> None:
    one = _stat(1000, 500, 9000)
    assert busy_cores(None, one, 2) is None
    assert busy_cores(one, None, 2) is None
    assert busy_cores(one, one, 2) is None  # no tick between them
    assert busy_cores(_stat(1000, 500, 9010), one, 2) is None  # the counters went back: not a measure


def test_a_quiet_window_after_a_busy_minute_gives_two_processes() -> None:
    """The case the load average got wrong: a minute of other replays (load 1.6 on two cores) then a quiet machine."""
    quiet = busy_cores(_stat(1000, 500, 9000), _stat(1001, 500, 9029), 2)
    assert quiet is not None and quiet < 0.1
    assert replay_workers(100_000, cpus=2, load=1.6, requested=None, split_min=20_000) == 1
    assert replay_workers(100_000, cpus=2, load=quiet, requested=None, split_min=20_000) == 2
    busy = busy_cores(_stat(1000, 500, 9000), _stat(1020, 500, 9010), 2)
    assert busy is not None and replay_workers(100_000, cpus=2, load=busy, requested=None, split_min=20_000) == 1


@pytest.mark.parametrize(("records", "cpus", "requested", "expected"), [
    (100_000, 2, None, True),
    (19_999, 2, None, False),  # too few records: one process, whatever the load
    (100_000, 1, None, False),
    (100_000, None, None, False),
    (100_000, 2, 2, False),  # a number given
])
def test_the_load_is_measured_only_when_the_rule_looks_at_it(records: int, cpus: int | None, requested: int | None,
                                                            expected: bool) -> None:
    assert load_matters(records, cpus=cpus, requested=requested, split_min=20_000) is expected


def test_the_measure_on_this_machine_is_within_its_cores() -> None:
    load = measured_load(2, window=0.05)
    assert load is not None and 0.0 <= load <= (2.0 if Path("/proc/stat").exists() else 1e6)


@pytest.mark.parametrize(("busy", "own_cpu", "seconds", "expected"), [
    (1.0, 0.06, 0.06, 0.0),  # the replay's own preparation was all the work: a quiet machine
    (2.0, 0.06, 0.06, 1.0),  # one core's worth of others besides it
    (1.9, 0.03, 0.06, 1.4),  # its preparation half on the core, half waiting on the broker
    (0.8, 0.06, 0.06, 0.0),  # ticks missed the replay's own work: never below none
    (1.5, 0.0, 0.0, 1.5),  # no time measured: nothing to take off
])
def test_the_replays_own_work_in_the_window_is_not_counted_as_others(busy: float, own_cpu: float, seconds: float,
                                                                     expected: float) -> None:
    assert others_load(busy, own_cpu, seconds) == pytest.approx(expected)


def test_a_watch_opened_at_the_start_sleeps_only_what_is_left_of_its_window() -> None:
    watch = LoadWatch()
    time.sleep(MIN_LOAD_WINDOW)  # the replay's preparation, longer than the window
    began = time.monotonic()
    load = measured_load(2, watch=watch)
    assert time.monotonic() - began < MIN_LOAD_WINDOW / 2
    assert load is not None and 0.0 <= load <= 2.0


def test_a_watch_read_at_once_waits_out_its_window() -> None:
    watch = LoadWatch()
    load = watch.others(2)
    assert time.monotonic() - watch.began >= MIN_LOAD_WINDOW
    assert load is None or 0.0 <= load <= 2.0


def test_the_watch_takes_this_process_spinning_off_the_cores_busy_time() -> None:
    """A process that keeps one core busy through the window reads as no other work on a machine otherwise as it
    was: the measure with the spinning taken off is within a core of the measure of a sleeping window."""
    asleep = LoadWatch().others(2, window=0.2)
    watch = LoadWatch()
    while time.monotonic() - watch.began < 0.2:
        pass
    spinning = watch.others(2, window=0.2)
    if asleep is None or spinning is None:
        assert not Path("/proc/stat").exists()
        return
    assert spinning <= asleep + 0.75


def _ends_when_told(conn: Any, parents: Any) -> None:
    parents.close()  # the fork's copy of the parent's end: else its close would not end the wait
    with contextlib.suppress(EOFError):
        conn.recv_bytes()


def test_a_forked_process_is_reaped_without_the_caller_waiting_for_it() -> None:
    """`reap` returns at once, while the process still runs; the process, told to end, is then waited for (its exit
    code known) by no one but the thread reap started."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    mine, theirs = context.Pipe()
    process = context.Process(target=_ends_when_told, args=(theirs, mine), daemon=True)
    process.start()
    theirs.close()
    began = time.monotonic()
    reap(process)
    assert time.monotonic() - began < 0.5 and process.is_alive()  # not waited for here
    mine.close()  # told to end
    deadline = time.monotonic() + 10
    while process._popen.returncode is None and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)  # (returncode, not exitcode: exitcode would wait for it here)
    assert process._popen.returncode == 0  # type: ignore[union-attr]
