"""Stated run times are measured ones: each lesson's run-time line is the one its entry in
notebooks/run_times.json generates (scripts/measure_run_times.py writes both), so they cannot drift."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from metalearn_lab import run_times

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _notebook_utils as nbu  # noqa: E402

LESSONS = nbu.find_lessons()


def _measured():
    try:
        return run_times.load_run_times(nbu.lessons_dir())
    except run_times.RunTimesError as error:
        problem = str(error)
    pytest.fail(problem, pytrace=False)


@pytest.mark.parametrize("lesson", LESSONS, ids=[md.stem for md in LESSONS])
def test_the_stated_run_time_is_the_measured_one(lesson):
    problem = run_times.line_problem(lesson, _measured())
    assert problem is None, problem


ENTRY = {mode: {"wall_seconds": wall, "kernel_cpu_seconds": cpu, "load_average": load, "cores": 2,
                "date": "2026-11-30T07:00:00+00:00"} for mode, wall, cpu, load in
         (("classroom", 54.4, 12.2, 1.46), ("quick", 31.6, 7.0, 0.9))}


def test_the_line_is_rewritten_in_place_and_the_author_notes_after_it_stay():
    text = ("# 4. Title\n\n*subtitle*\n\n**Run time** (typed by hand): classroom mode 1 s, quick mode 1 s.\n"
            "Without the checkpoints it trains for 20 min.\n\n## Learning objectives\n")
    new = run_times.with_run_time_line(text, ENTRY)
    assert run_times.stated_line(new) == run_times.run_time_line(ENTRY)
    assert new.replace(run_times.run_time_line(ENTRY), "**Run time** (typed by hand): classroom mode 1 s, quick mode 1 s.") == text
    assert "classroom mode 54 s, quick mode 32 s" in new and "load average 1.5 and 0.9" in new
    with pytest.raises(run_times.RunTimesError, match="no line starting with"):
        run_times.with_run_time_line("# no line\n", ENTRY)


def test_a_stale_line_a_missing_lesson_and_a_missing_file_name_the_command_to_run(tmp_path):
    md = tmp_path / "09_new_lesson.md"
    md.write_text("# 9. New\n\n**Run time**: about 3 min (from memory)\n")
    problem = run_times.line_problem(md, {})
    assert "no measured classroom or quick run time" in problem and "scripts/measure_run_times.py 09_new_lesson" in problem
    problem = run_times.line_problem(md, {"09_new_lesson": ENTRY})
    assert "not the measured one" in problem and "about 3 min" in problem and "--lines-only" in problem
    md.write_text(run_times.with_run_time_line(md.read_text(), ENTRY))
    assert run_times.line_problem(md, {"09_new_lesson": ENTRY}) is None
    with pytest.raises(run_times.RunTimesError, match="is missing: run"):
        run_times.load_run_times(tmp_path)
    (tmp_path / "run_times.json").write_text("{}")
    with pytest.raises(run_times.RunTimesError, match="not a run-times file"):
        run_times.load_run_times(tmp_path)


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("measure_run_times", REPO / "scripts" / "measure_run_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_measures_a_lesson_in_both_modes_and_writes_its_line(tmp_path, capsys):
    lesson = tmp_path / "01_tiny.md"
    lesson.write_text("---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n  name: python3\n"
                      "  display_name: Python 3\n  language: python\n---\n\n# 1. Tiny\n\n**Run time**: unmeasured\n\n"
                      "```{code-cell} ipython3\nimport os, time\nt = time.process_time()\n"
                      "while time.process_time() - t < 0.3:\n    pass\nprint(os.environ.get('METALEARN_LAB_QUICK'))\n```\n")
    assert _script().main(["--notebooks-dir", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "run_times.json").read_text())
    entry = data["lessons"]["01_tiny"]
    for mode in run_times.MODES:
        record = entry[mode]
        assert record["kernel_cpu_seconds"] >= 0.3, record  # the busy loop, measured in the kernel
        assert record["wall_seconds"] >= record["kernel_cpu_seconds"] / record["cores"]
        assert record["load_average"] >= 0 and record["date"].startswith("20") and record["cpu"]
    assert run_times.line_problem(lesson, data["lessons"]) is None
    assert "run-time lines rewritten: 01_tiny" in capsys.readouterr().out
    lesson.write_text(lesson.read_text().replace(run_times.stated_line(lesson.read_text()), "**Run time**: edited"))
    assert _script().main(["--notebooks-dir", str(tmp_path), "--lines-only"]) == 0
    assert run_times.line_problem(lesson, data["lessons"]) is None
