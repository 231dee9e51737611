"""The lessons' measured run times: the file that holds them and the line each lesson states.

``notebooks/run_times.json`` is written by ``scripts/measure_run_times.py``, which runs each lesson
top to bottom from a fresh kernel in classroom and quick mode (with ``book/build.py``'s executor,
as the book and the tests run it) and records, per lesson and mode, the wall-clock seconds, the
CPU seconds of the kernel itself, the date, the machine and its load average. The same script
rewrites each lesson's **Run time** line from the file (:func:`run_time_line`); a test fails when a
lesson's line and the file disagree, so a stated time is always a measured one. The results page
(:func:`metalearn_lab.report.write_results_page`) reads the file as well.

On a shared machine the wall time grows with the load; the kernel's CPU time hardly does, which is
why both are kept, with the load they were measured under.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

FILE_NAME = "run_times.json"
MODES = ("classroom", "quick")
SCRIPT = "scripts/measure_run_times.py"
LABEL = "**Run time**"
# The lesson's run-time line: the first line that starts with the bold label.
LINE = re.compile(r"^\*\*Run time\*\*[^\n]*$", re.MULTILINE)


class RunTimesError(ValueError):
    """The run-times file is missing, unreadable, or lacks a lesson or mode; the message says what to run."""


def run_times_path(notebooks_dir: str | Path) -> Path:
    return Path(notebooks_dir) / FILE_NAME


def load_run_times(notebooks_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The measured entries by lesson name (``"04_maml_sinusoid"``) from ``notebooks_dir/run_times.json``.

    Raises
    ------
    RunTimesError
        If the file is missing or is not the JSON the script writes.
    """
    path = run_times_path(notebooks_dir)
    if not path.is_file():
        raise RunTimesError(f"{path} is missing: run `.venv/bin/python {SCRIPT}` to measure every lesson")
    try:
        lessons = json.loads(path.read_text(encoding="utf-8"))["lessons"]
    except (ValueError, KeyError, TypeError) as error:
        raise RunTimesError(f"{path} is not a run-times file written by {SCRIPT} ({error!r}); measure again") from None
    if not isinstance(lessons, dict):
        raise RunTimesError(f"{path}: 'lessons' must map lesson names to their measurements")
    return lessons


def lesson_entry(run_times: dict[str, dict[str, Any]], lesson: str) -> dict[str, Any]:
    """The entry of ``lesson`` with both modes measured, or a :class:`RunTimesError` naming the command to run."""
    entry = run_times.get(lesson)
    missing = [mode for mode in MODES if not isinstance((entry or {}).get(mode), dict)]
    if missing:
        raise RunTimesError(
            f"{lesson}: no measured {' or '.join(missing)} run time in notebooks/{FILE_NAME}: run "
            f"`.venv/bin/python {SCRIPT} {lesson}` (it runs the lesson from a fresh kernel in both modes, "
            f"records the times and writes the lesson's run-time line)"
        )
    return entry


def _seconds(value: float) -> str:
    """``54.4`` -> ``"54 s"``; ``503.2`` -> ``"503 s (8.4 min)"``."""
    text = f"{value:.0f} s"
    return text + (f" ({value / 60:.1f} min)" if value >= 120 else "")


def _cores(entry: dict[str, Any]) -> str:
    cores = sorted({entry[mode].get("cores") for mode in MODES} - {None})
    return f"{'/'.join(map(str, cores))}-core CPU" if cores else "CPU"


def run_time_line(entry: dict[str, Any]) -> str:
    """The **Run time** line a lesson states, generated from its measured entry.

    Examples
    --------
    >>> m = {"wall_seconds": 54.4, "kernel_cpu_seconds": 12.2, "date": "2026-11-30", "cores": 2, "load_average": 1.46}
    >>> q = {**m, "wall_seconds": 31.6, "kernel_cpu_seconds": 7.0, "load_average": 0.9}
    >>> print(run_time_line({"classroom": m, "quick": q}))
    **Run time** (measured with `scripts/measure_run_times.py` from a fresh kernel with the shipped checkpoints, on a 2-core CPU at load average 1.5 and 0.9, on 2026-11-30): classroom mode 54 s, quick mode 32 s; the kernel itself used 12 s and 7 s of CPU time.
    """
    modes = [entry[mode] for mode in MODES]
    dates = sorted({m["date"][:10] for m in modes})
    loads = " and ".join(f"{m['load_average']:.1f}" for m in modes)
    walls = ", ".join(f"{mode} mode {_seconds(m['wall_seconds'])}" for mode, m in zip(MODES, modes))
    cpus = " and ".join(f"{m['kernel_cpu_seconds']:.0f} s" for m in modes)
    return (f"{LABEL} (measured with `{SCRIPT}` from a fresh kernel with the shipped checkpoints, on a "
            f"{_cores(entry)} at load average {loads}, on {' and '.join(dates)}): {walls}; "
            f"the kernel itself used {cpus} of CPU time.")


def stated_line(text: str) -> str | None:
    """The lesson's run-time line (the first line starting with ``**Run time**``), or None."""
    match = LINE.search(text)
    return match.group(0) if match else None


def with_run_time_line(text: str, entry: dict[str, Any]) -> str:
    """``text`` (a lesson) with its run-time line replaced by the one generated from ``entry``.

    Raises :class:`RunTimesError` if the lesson has no run-time line to replace.
    """
    if stated_line(text) is None:
        raise RunTimesError(f"the lesson has no line starting with {LABEL!r} under its title to rewrite")
    line = run_time_line(entry)
    return LINE.sub(lambda _: line, text, count=1)


def line_problem(md_path: str | Path, run_times: dict[str, dict[str, Any]]) -> str | None:
    """Why ``md_path``'s run-time line is not the one its measurement gives, or None when it is."""
    md_path = Path(md_path)
    try:
        want = run_time_line(lesson_entry(run_times, md_path.stem))
    except RunTimesError as error:
        return str(error)
    have = stated_line(md_path.read_text(encoding="utf-8"))
    if have != want:
        return (f"{md_path.name}: its run-time line is not the measured one in notebooks/{FILE_NAME}.\n"
                f"  states:   {have}\n  measured: {want}\n"
                f"Never edit the line by hand: `.venv/bin/python {SCRIPT} --lines-only` rewrites it from the file, "
                f"`.venv/bin/python {SCRIPT} {md_path.stem}` measures the lesson again.")
    return None
