"""What a replay or rebuild prints comes from the records (keys, publishers, case ids, file names): printed as written,
never read as Rich markup (red team round 12: a key `[/x]` in a finding was a MarkupError traceback, and a file path
`[leadbus.cases/…]` vanished from a rebuild's line as an unknown style)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from leadbus.audit.replay import ReplayReport
from leadbus.audit.verification import Finding
from leadbus.cli import _print_replay_summary

HOSTILE = "key b'[/x]' under [bold]publisher[/bold] [leadbus.cases/2026-11-30/22-p1.avro]"


@pytest.mark.parametrize("terminal", [False, True])
def test_a_finding_and_a_publisher_print_as_written(terminal: bool) -> None:
    report = ReplayReport("kafka x")
    report.by_type_publisher[("cn.leadbus.CaseLead", "[/evil]")] = 1
    report.findings.append(Finding("KEY_MISMATCH", HOSTILE, "leadbus.cases", 1, 2))
    out = io.StringIO()
    _print_replay_summary(Console(file=out, force_terminal=terminal, width=400, color_system=None), report)
    text = out.getvalue()
    assert HOSTILE in text and "[/evil]" in text, text
