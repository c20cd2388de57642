"""securex/console.py without a real terminal: what it writes, byte for byte."""

from __future__ import annotations

import io

from securex.console import Console


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_status_line_never_wraps_whatever_the_file_name(monkeypatch):
    """A wrapped status line leaves a stale row behind on every update."""
    monkeypatch.setenv("COLUMNS", "80")
    out = FakeTerminal()
    console = Console(out, io.StringIO())
    for percent in (10, 20, 30):
        console.status(f"  Receiving {'long name ' * 20}.iso from Mallory: {percent}%")
    rows = out.getvalue().split("\r\x1b[2K")
    assert all(len(row) < 80 for row in rows)


def test_without_a_terminal_lines_are_written_as_they_are_and_no_status():
    out = io.StringIO()
    console = Console(out, io.StringIO())
    console.status("  Receiving x: 50%")
    console.line("[12:00:00] Bob: hi")
    assert out.getvalue() == "[12:00:00] Bob: hi\n"
