"""The usual records of a trusted run, checked and counted in C (`leadbus.audit._records.RunReader`, built by
`make install`); None without the extension (the Python paths alone: `CaseVersions.check_run` and `tally_run` in
`leadbus.audit.verification`, the reference).

A trusted run of `leadbus.cases` is mostly records that only move their case on by one version, then count once under
(CaseUpdated, leadbus:linking): in Python that bookkeeping was a quarter of a verified replay's CPU per record. The C
reader takes those records from a run in one call and stops at the first other one, which the Python path judges (or
counts) as before, then calls it again. It reads the record's slots directly, which is why it is made from the class
and the names of the slots it reads. Tests hold its findings and counts to the Python path's over hostile runs.
"""

from __future__ import annotations

from typing import Any

#: The slots of `ReplayRecord` the reader reads, in the order `_records.RunReader` takes them
RUN_SLOTS = ("trusted", "_decoded", "value", "_picked", "_schema", "partition", "offset", "file", "index", "_sealed",
             "headers", "topic", "timestamp_ms", "opens_log")

try:
    from leadbus.audit._records import RunReader
except ImportError:  # not built (a source tree without `make install`): the Python paths alone
    NATIVE = False
else:
    NATIVE = True


def run_reader(cls: type) -> Any:
    """The C reader of runs of `cls`'s records, or None (not built)."""
    return RunReader(cls, RUN_SLOTS) if NATIVE else None
