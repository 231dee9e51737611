"""metalearn_lab.report: the lesson run-time table of the results page."""

import re
from pathlib import Path

from metalearn_lab.report import lesson_run_times, run_time_statement

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_every_lesson_states_a_run_time_without_stray_markdown():
    rows = lesson_run_times(NOTEBOOKS)
    assert [name for name, _ in rows] == sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.md"))
    for name, statement in rows:
        assert statement != "not stated" and re.search(r"\d", statement), f"{name}: {statement!r}"
        # An unbalanced ** or __ would show as literal asterisks in the table (it did, in every row).
        assert statement.count("**") % 2 == 0 and statement.count("__") % 2 == 0, f"{name}: {statement!r}"
        assert not re.match(r"(?i)[*_ ]*run[ -]?time", statement), f"{name}: the label is repeated: {statement!r}"


def test_run_time_statement_takes_the_line_that_starts_with_the_label():
    text = "Intro: each run time below is measured.\n\n__Run time__: 5 s | 3 s\n"
    assert run_time_statement(text) == "5 s | 3 s"
    assert run_time_statement("no such line") is None
    assert run_time_statement("**Run time**\n") is None
