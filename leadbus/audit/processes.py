"""How many processes a verified replay reads with, and what a split replay's other process hands back.

The rule (`replay_workers`), for a replay whose caller named no number (`ReplayOptions.workers` None; a number given
is taken as it is, 1 = one process):

* one process when fewer than `split_min` records are to be read (starting another costs more than it saves), or the
  machine has one core;
* else two when a core is to be had for the second: the cores less what other work keeps busy (`load`) leave at
  least `SPARE_CORE` (1.0): on two cores, at most one core's worth of other work;
* else one. With the cores taken by other work the second process gets no core of its own, and the split's own costs
  (a second consumer and its threads, a fork's copied pages, the merge) are paid on top: measured (bench/replay.py,
  CPU per record over all processes), quiet, leadbus.cases one process 7.4 µs, two 10.6 µs for about the same wall
  rate; at load 7-10, the intake topics 52.7 µs against 61.1 (50,000 leads: 55.3-55.7 against 58.9-64.8),
  leadbus.leads.accepted cut in two 38.0 against 43.0, leadbus.cases 27.0 against 30.4. The wall rates at that load
  went either way from run to run (two processes take a larger share of a machine others keep busy: the intake
  topics 9,290/s with one against 6,340/s with two in one run, 7,002-8,364/s against 8,259-10,911/s in another): one
  process is the choice that costs the shared machine least; `--processes 2` takes the larger share.
* an unknown load counts as none: two, as before the rule.

What other work keeps busy is measured over a short window, not the last minute: the cores' time not idle over
`LOAD_WINDOW` (/proc/stat read before and after: `busy_cores`), the one-minute load average only where there is no
/proc/stat. The load average lags the work that made it: a replay started right after another (bench/replay.py reads
leadbus.cases after the intake topics and the accepted leads) found the minute's average above 1.0 on a machine then
quiet, and read with one process. The window is taken only when the rule looks at the load (`load_matters`).
It opens when the replay begins (`LoadWatch`), so that the replay's own preparation (the schemas read, the plan, the
registry of keys: ~40-60 ms) fills it instead of a sleep: the replay's own CPU time in it (its librdkafka threads
included) is taken off the cores' busy time (`others_load`), and only what is left of `MIN_LOAD_WINDOW` is slept.
The 150 ms slept after the preparation were a fifth of a verified 2-process replay of 100,000 leadbus.cases records.

The number chosen is the most processes: the split also needs two partitions with records, the cut of
`leadbus.leads.accepted` and the content workers their own sizes (`leadbus.audit.replay`).

What the other process hands back of `IntakeLeads` (`sent_intake`): the coordinates and ranges the accepted leads'
check reads, and, for the (lead id, revision) pairs it saw, their hashes alone (8 bytes each, an array pickled as one
buffer): the parent asks back only for the pairs whose hash it also holds (`wanted`), then merges those. Sent back,
read and merged (bench/replay_intake_loop.py, 50,000 sealed intake records in halves, CPU per record of the replay):
0.95 µs as the whole table, 0.34 µs as hashes, against 18.7 µs for the verified loop. Hashes agree between a process
and its fork (the same hash secret): a pair read by both has the same hash on both sides; a hash shared by two
different pairs only asks for one pair more, which the merge then finds to be no repeat.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

#: The share of a core, beyond what other work takes (the load average), a second process needs to be worth starting.
SPARE_CORE = 1.0


#: How long the cores' idle time is watched to measure the work others keep running (`measured_load`): long enough
#: for a few scheduler ticks on each core (10 ms each), short against the replay it decides.
LOAD_WINDOW = 0.15

#: The shortest a `LoadWatch` opened at a replay's start is kept open: its preparation usually fills it. /proc/stat
#: counts in ticks of 10 ms, 8 over 40 ms on two cores: a quiet machine reads under half a core of others' work, one
#: core kept busy by others reads about one; the 20 ms more that 60 ms waited were a twentieth of a verified 2-process
#: replay of 100,000 leadbus.leads.accepted records (its preparation, the archive ends and open transactions asked on
#: threads, ~28 ms).
MIN_LOAD_WINDOW = 0.04


def load_matters(records: int, *, cpus: int | None, requested: int | None, split_min: int) -> bool:
    """Whether `replay_workers` decides by the load (else the measure need not be taken)."""
    return requested is None and records >= split_min and cpus is not None and cpus >= 2


def replay_workers(records: int, *, cpus: int | None, load: float | None, requested: int | None,
                   split_min: int) -> int:
    """The most processes a verified replay of `records` records uses (see the module's rule); `load` is the cores'
    worth of other work (`busy_cores`, else the load average), None when unknown."""
    if requested is not None:
        return max(1, requested)
    if not load_matters(records, cpus=cpus, requested=requested, split_min=split_min):
        return 1
    assert cpus is not None
    if load is None:
        return 2
    return 2 if cpus - load >= SPARE_CORE else 1


class CpuTimes(NamedTuple):
    """/proc/stat's first line (all cores summed), in clock ticks: the time idle (waiting on I/O included) and all."""

    idle: int
    total: int


def cpu_times(stat: str) -> CpuTimes | None:
    """The times of /proc/stat's text `stat`; None when its `cpu` line is missing or unreadable."""
    for line in stat.splitlines():
        fields = line.split()
        if not fields or fields[0] != "cpu":
            continue
        try:
            # user nice system idle iowait irq softirq steal (guest time is counted in user already)
            ticks = [int(f) for f in fields[1:9]]
        except ValueError:
            return None
        if len(ticks) < 4:
            return None
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        return CpuTimes(idle, sum(ticks))
    return None


def busy_cores(before: CpuTimes | None, after: CpuTimes | None, cpus: int) -> float | None:
    """The cores' worth of work that ran between two readings of /proc/stat (0.0 idle … `cpus` all busy); None when a
    reading is missing or no time passed between them."""
    if before is None or after is None:
        return None
    total = after.total - before.total
    idle = after.idle - before.idle
    if total <= 0 or idle < 0:
        return None
    return cpus * min(1.0, max(0.0, 1.0 - idle / total))


def read_stat() -> CpuTimes | None:
    """/proc/stat's times now; None where it cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            return cpu_times(stat.read())
    except (OSError, ValueError):
        return None


def others_load(busy: float, own_cpu: float, seconds: float) -> float:
    """The cores' worth of other work: `busy` (`busy_cores` over a window of `seconds`) less this process's own CPU
    time `own_cpu` in that window, never below none."""
    own = own_cpu / seconds if seconds > 0 else 0.0
    return max(0.0, busy - own)


class LoadWatch:
    """A window on the cores' work, opened when a replay begins and read when it decides how many processes to use:
    its own work in between is taken off (`others_load`)."""

    def __init__(self) -> None:
        import time

        self.stat = read_stat()
        self.began = time.monotonic()
        self.own = time.process_time()  # every thread of this process

    def others(self, cpus: int, window: float = MIN_LOAD_WINDOW) -> float | None:
        """The other work's cores (`others_load`) since the watch opened, kept open at least `window` seconds; None
        when /proc/stat cannot tell."""
        import time

        left = window - (time.monotonic() - self.began)
        if left > 0:
            time.sleep(left)
        after = read_stat()
        seconds = time.monotonic() - self.began
        busy = busy_cores(self.stat, after, cpus)
        if busy is None:
            return None
        return others_load(busy, time.process_time() - self.own, seconds)


def measured_load(cpus: int, window: float = LOAD_WINDOW, watch: LoadWatch | None = None) -> float | None:
    """The cores' worth of other work running now: over `watch` (opened earlier, kept open `MIN_LOAD_WINDOW` at least)
    or else over `window` seconds from now (`busy_cores`); where /proc/stat cannot tell, the load average over the last
    minute; None where neither can be had."""
    import os
    import time

    if watch is not None:
        load = watch.others(cpus)
        if load is not None:
            return load
    else:
        before = read_stat()
        if before is not None:
            time.sleep(window)
            busy = busy_cores(before, read_stat(), cpus)
            if busy is not None:
                return busy
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def chosen_workers(records: int, *, requested: int | None, split_min: int, watch: LoadWatch | None = None) -> int:
    """`replay_workers` with this machine's cores and, only when the rule looks at it, the load measured now (over
    `watch` when the replay opened one as it began)."""
    import os

    cpus = os.cpu_count()
    matters = load_matters(records, cpus=cpus, requested=requested, split_min=split_min)
    load = measured_load(cpus, watch=watch) if matters and cpus is not None else None
    return replay_workers(records, cpus=cpus, load=load, requested=requested, split_min=split_min)


@dataclass
class IntakeSent:
    """What a split replay's other process hands back of its `IntakeLeads` (see the module)."""

    hashes: bytes  # array('q') of hash((lead id, revision)) for each pair it saw, in the order it saw them
    sources: dict[tuple[str, int, int], bytes]
    ranges: dict[tuple[str, int], list[int]]


def sent_intake(seen: dict[tuple[str, int], Any], sources: dict[tuple[str, int, int], bytes],
                ranges: dict[tuple[str, int], list[int]]) -> IntakeSent:
    return IntakeSent(array("q", map(hash, seen)).tobytes(), sources, ranges)


def hashes_of(sent: IntakeSent) -> set[int]:
    found = array("q")
    found.frombytes(sent.hashes)
    return set(found)


def wanted(own: Iterable[int], parts: list[set[int]]) -> list[set[int]]:
    """For each process's hashes, those also held by this process (`own`: its hashes, iterated once for each part) or
    by another process: the pairs to ask it for, so that each pair read by two processes is met again in the merge,
    whichever two they are. `own` may be hashes made as they are read (`map(hash, seen)` with one other process): no
    set of this process's hashes is built, nor copied into a union (50,000 leads a side: 19-23 ms against 27-30)."""
    out = []
    for i, hashes in enumerate(parts):
        found = hashes.intersection(own)
        for j, other in enumerate(parts):
            if j != i:
                found |= hashes & other
        out.append(found)
    return out


def reap(process: Any) -> None:
    """`process.join` on a thread of its own, for a forked replay process that has handed back all it had: its end (the
    kernel unmapping the parent's pages it shared) took 8-43 ms that a cut replay of `leadbus.leads.accepted` waited
    out before its report. A bare thread (`_thread`), which dies with the interpreter as a daemon does: the process,
    told to end (its pipe closed), ends on its own; and `threading.Thread.start` waits for its thread to run, 0.3-4.4
    ms (measured, 8 cut replays) while the process ending kept a core."""
    import _thread

    _thread.start_new_thread(process.join, (30,))


def handed(value: Any) -> bytes:
    """What a split or cut replay's process sends back (`taken` reads it), pickled without the pickler's memo: a
    record of every object written, which a hand-back of hundreds of thousands of small tuples (the tail of a cut
    `leadbus.leads.accepted`: 50,000 noted leads, 5.9 MB) paid a dict entry for each: 31-37 ms to pickle, 9-11 without,
    and 20 ms to read back against 15. An object met twice is written twice (equal, no longer the same object: no
    hand-back relies on which); one that refers back to itself cannot be written so, and is pickled as ever."""
    import io
    import pickle

    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True
    try:
        pickler.dump(value)
    except (ValueError, RecursionError):  # a cycle (fast mode refuses it): with the memo, which writes it once
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return out.getvalue()


def taken(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)


def picked(seen: dict[tuple[str, int], Any], hashes: set[int]) -> dict[tuple[str, int], Any]:
    """The pairs of `seen` whose hash is asked for, in the order they were seen."""
    if not hashes:
        return {}
    return {ident: at for ident, at in seen.items() if hash(ident) in hashes}
