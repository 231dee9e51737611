"""Measure how long each lesson runs, record it in notebooks/run_times.json, and write each lesson's run-time line.

Usage (from the repository root)::

    .venv/bin/python scripts/measure_run_times.py                 # every lesson, both modes
    .venv/bin/python scripts/measure_run_times.py 04 06_maml_omniglot --modes quick
    .venv/bin/python scripts/measure_run_times.py --lines-only    # rewrite the lines from the file, run nothing

Each lesson runs top to bottom from a fresh kernel, once in classroom mode and once in quick mode
(``METALEARN_LAB_QUICK=1``), with ``book/build.py``'s executor: the way the book and the tests run
it. For each run the file keeps the wall-clock seconds (kernel start to last cell), the CPU seconds
of the kernel itself, the date, the machine, the 1-minute load average (mean of samples taken
every 2 s during the run, and just before it) and the commit. Then the lesson's **Run time** line
is rewritten from the file (``metalearn_lab.run_times.run_time_line``); ``tests/test_run_times.py``
fails when a line and the file disagree.

Measure on a machine as quiet as you can get (``uptime``): the wall time grows with the load, and
the line states the load it was measured under. Do not nice this script: that would measure the
nice level, not the lesson. Lessons run one at a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
BUDGETS = {"classroom": 300, "quick": 60}  # seconds, on a quiet 2-core machine (CONTRIBUTING.md)
sys.path.insert(0, str(REPO_DIR))

from metalearn_lab import run_times  # noqa: E402


def load_build():
    spec = importlib.util.spec_from_file_location("metalearn_lab_book_build", REPO_DIR / "book" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there while the file runs
    spec.loader.exec_module(module)
    return module


def machine() -> dict:
    """The CPU model, the cores this process may use, and the versions that matter."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    return {"cpu": model, "cores": cores, "python": platform.python_version(), "torch": torch.__version__}


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_DIR,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds while a lesson runs."""

    def __init__(self, every: float = 2.0):
        self.every, self.samples = every, [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(build, md: Path, quick: bool, timeout: int) -> dict:
    """Run ``md`` once from a fresh kernel; returns its record for the file."""
    before = os.getloadavg()[0]
    with LoadSampler() as load:
        nb, seconds = build.execute_lesson(md, quick, timeout=timeout)
    cpu = nb.metadata.get(build.METADATA_KEY, {}).get("kernel_cpu_seconds")
    if cpu is None:
        raise SystemExit(f"{md.name}: the kernel did not report its CPU time (the probe cell failed)")
    return {
        "wall_seconds": round(seconds, 1),
        "kernel_cpu_seconds": round(cpu, 1),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_before": round(before, 2),
        "load_average": round(sum(load.samples) / len(load.samples), 2),
        **machine(),
        "commit": commit(),
    }


def select(lessons: list[Path], names: list[str]) -> list[Path]:
    if not names:
        return lessons
    chosen = []
    for name in names:
        matches = [md for md in lessons if md.stem == name or md.stem.split("_", 1)[0] == name or md.name == name]
        if not matches:
            raise SystemExit(f"no lesson {name!r}; lessons: {', '.join(md.stem for md in lessons)}")
        chosen += [md for md in matches if md not in chosen]
    return chosen


def read_file(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {}


def write_file(path: Path, lessons: dict) -> None:
    data = {
        "about": (f"Written by {run_times.SCRIPT}: each lesson run from a fresh kernel in classroom and quick "
                  "mode; wall_seconds from kernel start to the last cell, kernel_cpu_seconds the kernel's own "
                  "CPU time, load_average the mean 1-minute load during the run. Do not edit by hand."),
        "lessons": dict(sorted(lessons.items())),
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def rewrite_lines(lessons: list[Path], measured: dict) -> list[str]:
    """Rewrite each lesson's run-time line from ``measured``; returns the names whose line changed."""
    changed = []
    for md in lessons:
        try:
            entry = run_times.lesson_entry(measured, md.stem)
        except run_times.RunTimesError as error:
            print(f"  {md.stem}: line not written: {error}")
            continue
        text = md.read_text(encoding="utf-8")
        new = run_times.with_run_time_line(text, entry)
        if new != text:
            md.write_text(new, encoding="utf-8")
            changed.append(md.stem)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson names or numbers (default: every lesson)")
    parser.add_argument("--modes", nargs="+", choices=run_times.MODES, default=list(run_times.MODES))
    parser.add_argument("--lines-only", action="store_true", help="rewrite the run-time lines from the file; run nothing")
    parser.add_argument("--notebooks-dir", type=Path, default=REPO_DIR / "notebooks")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args(argv)

    build = load_build()
    lessons = select(build.find_lessons(args.notebooks_dir), args.lessons)
    path = run_times.run_times_path(args.notebooks_dir)
    measured = read_file(path).get("lessons", {})
    if not args.lines_only:
        print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {machine()['cores']} cores",
              flush=True)
        for md in lessons:
            for mode in args.modes:
                print(f"  {md.stem}, {mode} mode ...", end=" ", flush=True)
                start = time.perf_counter()
                try:
                    record = measure(build, md, quick=(mode == "quick"), timeout=args.timeout)
                except build.LessonError as error:
                    print(f"FAILED after {time.perf_counter() - start:.0f} s\n{error}", file=sys.stderr)
                    return 1
                measured.setdefault(md.stem, {})[mode] = record
                write_file(path, measured)  # after every run: an interruption keeps what was measured
                print(f"{record['wall_seconds']:.1f} s wall, {record['kernel_cpu_seconds']:.1f} s kernel CPU, "
                      f"load {record['load_average']:.2f}", flush=True)
                budget = BUDGETS[mode]
                if record["wall_seconds"] > budget:
                    print(f"    over the {mode} budget of {budget} s on this machine (CONTRIBUTING.md); "
                          f"{'a loaded machine inflates wall time' if record['load_average'] > record['cores'] else ''}",
                          flush=True)
    changed = rewrite_lines(lessons, measured)
    print(f"run-time lines rewritten: {', '.join(changed) or 'none changed'} ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
