"""Try-it latency in JupyterLab: from an arrow-key press on a slider to the redrawn figure.

For every lesson: JupyterLab (set up by ``scripts/setup_lab.py``, on 127.0.0.1) opens it in
Debian's chromium, runs all cells, and then, for every slider of every Try-it widget (a slider
that shares its cell's output with a figure), focuses the slider's handle and presses an arrow
key ``--repeats`` times (right, or left at the maximum), timing each press in the page's clock
from the keydown event to the moment the new figure is in the page. Prints one row per slider:
the median and every sample, in seconds. The goal (CONTRIBUTING.md, "Try it") is a median of at
most 0.3 s for every slider.

Usage::

    python benchmarks/slider_latency.py                 # quick mode (the models' shapes are the same)
    python benchmarks/slider_latency.py --classroom     # the shipped checkpoints, as in class
    python benchmarks/slider_latency.py --lessons 04 06 --repeats 9

Needs Debian's chromium (``apt-get install -y chromium``) and the ``playwright`` Python package
(never ``playwright install``); ``METALEARN_LAB_DATA`` must point at Omniglot for lessons 02, 05, 06.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import _jupyterlab as jl  # noqa: E402
import _notebook_utils as nbu  # noqa: E402

GOAL_S = 0.3


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}"


def measure_lesson(page, md: Path, repeats: int, run_timeout: float, shots: Path | None = None) -> tuple[list[dict], float]:
    import jupytext

    n_cells = len(jupytext.read(md).cells)
    opened = jl.open_lesson(page, md.name, n_cells)
    if opened["dialogs"]:
        raise RuntimeError(f"{md.name}: a dialog opened with the lesson: {opened['dialogs']}")
    run_seconds = jl.run_all(page, timeout=run_timeout)
    rows = []
    sliders = page.locator(jl.TRY_IT_SLIDERS)
    for index in range(sliders.count()):
        slider = sliders.nth(index)
        slider.scroll_into_view_if_needed()
        name = slider.locator(".widget-label").text_content().strip()
        samples = []
        for _ in range(repeats):
            _, seconds = jl.press_and_time_redraw(page, slider)
            samples.append(seconds)
            time.sleep(0.2)  # let the kernel settle before the next key press
        if shots is not None:
            slider.evaluate("s => s.closest('.jp-OutputArea').scrollIntoView()")
            slider.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea')][1]").screenshot(
                path=str(shots / f"{md.stem}_{index}.png"))
        rows.append({"lesson": md.stem, "widget": name, "median": statistics.median(samples), "samples": samples,
                     "cut": [label["text"] for label in jl.slider_labels(slider) if label["cut"]]})
    jl.close_all_tabs(page)
    return rows, run_seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classroom", action="store_true", help="run the lessons in classroom mode (default: quick)")
    parser.add_argument("--lessons", nargs="*", help="lesson numbers or names to measure (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="key presses per slider (default: %(default)s)")
    parser.add_argument("--screenshots", type=Path, help="save a screenshot of each Try-it here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    problem = jl.missing_browser()
    if problem:
        parser.error(problem)
    lessons = nbu.find_lessons()
    if args.lessons:
        lessons = [md for md in lessons if any(md.stem.startswith(want) or md.stem == want for want in args.lessons)]
        if not lessons:
            parser.error(f"--lessons {' '.join(args.lessons)}: no such lesson in {nbu.lessons_dir()}")
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = datetime.datetime.now()
    rows, runs = [], {}
    with tempfile.TemporaryDirectory(prefix="slider_latency_") as root:
        with jl.serve_lab(lessons, Path(root), quick=not args.classroom) as lab, jl.open_browser() as page:
            jl.load_lab(page, lab)
            for md in lessons:
                lesson_rows, runs[md.stem] = measure_lesson(page, md, args.repeats, 900, args.screenshots)
                rows += lesson_rows
                for row in lesson_rows:
                    print(f"  {row['lesson']} {row['widget']!r}: median {row['median']:.3f} s", file=sys.stderr, flush=True)
            if page.outside_requests:
                print(f"warning: the page asked for other hosts: {sorted(set(page.outside_requests))[:5]}", file=sys.stderr)
    load_after = os.getloadavg()

    mode = "classroom" if args.classroom else "quick"
    print(f"Slider latency, key press to redrawn figure, median of {args.repeats} (s); {mode} mode; "
          f"{started:%Y-%m-%d %H:%M}")
    print(f"{machine()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print()
    print("| lesson | slider | median (s) | samples (s) | ≤ 0.3 s |")
    print("|---|---|---|---|---|")
    for row in rows:
        samples = " ".join(f"{s:.2f}" for s in row["samples"])
        print(f"| {row['lesson']} | {row['widget']} | {row['median']:.3f} | {samples} | "
              f"{'yes' if row['median'] <= GOAL_S else 'no'} |")
    print()
    print("Run All in the browser (s): " + ", ".join(f"{name} {seconds:.0f}" for name, seconds in runs.items()))
    cut = [f"{row['lesson']}: {', '.join(row['cut'])}" for row in rows if row["cut"]]
    print("Labels cut off: " + ("; ".join(sorted(set(cut))) if cut else "none"))
    slow = [row for row in rows if row["median"] > GOAL_S]
    print(f"{len(rows) - len(slow)} of {len(rows)} sliders within {GOAL_S} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
