"""Every lesson runs top to bottom, in quick mode, from a fresh kernel; and follows the skeleton.

Running a notebook is a test: one test per ``notebooks/[0-9][0-9]_*.md``, executed with nbclient
in a fresh kernel whose working folder is the lessons' folder (as in JupyterLab), with
``METALEARN_LAB_QUICK=1``. A failure names the lesson and the first lines of the failing cell.
The executed notebooks are kept for ``test_book.py`` (see ``_notebook_utils.py``).

``METALEARN_LAB_NOTEBOOKS_DIR`` points the tests at another folder of lessons.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _notebook_utils as nbu  # noqa: E402

LESSONS = nbu.find_lessons()
NO_LESSONS = "no lessons"
# The lesson skeleton (see STYLE.md): a stated run time, learning objectives, a summary.
RUN_TIME = re.compile(r"run[\s-]?time\b[^\n]*\d", re.IGNORECASE)
OBJECTIVES = re.compile(r"^#{1,6}\s*Learning objectives\b", re.IGNORECASE | re.MULTILINE)
SUMMARY = re.compile(r"^#{1,6}\s*Summary\b", re.IGNORECASE | re.MULTILINE)
# The summary again in Chinese (issue 11): the section right after the English one.
SUMMARY_ZH = "## 小结 (Summary in Chinese)"


def _params():
    if not LESSONS:  # a missing lessons folder must fail, not pass with nothing to run
        return [pytest.param(None, id=NO_LESSONS)]
    return [pytest.param(path, id=path.stem) for path in LESSONS]


def _require(lesson: Path | None) -> Path:
    if lesson is None:
        pytest.fail(f"no lessons found: expected notebooks matching [0-9][0-9]_*.md in {nbu.lessons_dir()}")
    return lesson


# A quick-mode run here may take longer than the recorded one (CI machines vary, and so does the
# load); only a gross excess fails: it means the lesson grew and its stated time is stale.
GROSS_FACTOR, GROSS_SLACK = 5, 60


@pytest.mark.parametrize("lesson", _params())
def test_lesson_runs(lesson, tmp_path_factory):
    from metalearn_lab import run_times

    lesson = _require(lesson)
    outcome = nbu.execute_once(lesson, tmp_path_factory)
    if outcome.error is not None:
        pytest.fail(outcome.error, pytrace=False)
    try:
        recorded = run_times.lesson_entry(run_times.load_run_times(nbu.lessons_dir()), lesson.stem)["quick"]
    except run_times.RunTimesError as error:  # test_run_times.py fails on it, with the command to run
        recorded, missing = None, str(error)
    cpu = f", kernel CPU {outcome.kernel_cpu_seconds:.1f} s" if outcome.kernel_cpu_seconds is not None else ""
    if recorded is None:
        print(f"{lesson.name}: {outcome.seconds:.1f} s in quick mode{cpu}; no recorded time ({missing})")
        return
    print(f"{lesson.name}: {outcome.seconds:.1f} s in quick mode{cpu}, load {os.getloadavg()[0]:.1f}; recorded "
          f"{recorded['wall_seconds']:.1f} s, kernel CPU {recorded['kernel_cpu_seconds']:.1f} s, "
          f"load {recorded['load_average']:.1f} ({recorded['date'][:10]})")
    limit = GROSS_FACTOR * recorded["wall_seconds"] + GROSS_SLACK
    assert outcome.seconds <= limit, (
        f"{lesson.name} took {outcome.seconds:.0f} s in quick mode, more than {GROSS_FACTOR}x its recorded "
        f"{recorded['wall_seconds']:.0f} s + {GROSS_SLACK} s: re-measure it (`.venv/bin/python "
        f"{run_times.SCRIPT} {lesson.stem}`) or find what made it slower")


@pytest.mark.parametrize("lesson", _params())
def test_lesson_skeleton(lesson):
    text = _require(lesson).read_text(encoding="utf-8")
    missing = []
    if not RUN_TIME.search(text):
        missing.append("a line stating the measured run time (e.g. 'Run time: about 4 min classroom, 20 s quick')")
    if not OBJECTIVES.search(text):
        missing.append("a 'Learning objectives' heading")
    summary = SUMMARY.search(text)
    if not summary:
        missing.append("a 'Summary' heading")
    else:
        following = re.search(r"^## .*$", text[summary.end():], re.MULTILINE)
        if following is None or following.group(0).strip() != SUMMARY_ZH:
            missing.append(f"a section '{SUMMARY_ZH}' right after the Summary, translating it "
                           "(book/glossary.md has the English-Chinese terms)")
    assert not missing, f"{lesson.name} lacks: " + "; ".join(missing)


# Every Try-it control, read from the widget state the executed lesson stores: its label has room
# (ipywidgets' default label is 80 px: "K (support poi…" was cut), and every value a slider can
# take reads as itself (a log slider stepping 0.05 in log10 showed 0.398 for 10**-0.4).
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PX_PER_CHAR = 8  # a generous average for JupyterLab's 13 px interface font
DEFAULT_LABEL_PX = 80


def _label_fits(description: str, width: str) -> bool:
    """Whether a label of ``width`` (CSS, as in ``style.description_width``) holds ``description``.

    >>> _label_fits("K (support points)", "110px"), _label_fits("K (support points)", "20ch"), _label_fits("seed", "")
    (False, True, True)
    """
    width = (width or "").strip()
    if width in {"initial", "auto", "max-content", "fit-content"}:
        return True
    if not width:
        return len(description) * PX_PER_CHAR <= DEFAULT_LABEL_PX
    number = re.fullmatch(r"([\d.]+)(px|ch|em)", width)
    if number is None:
        return False
    size, unit = float(number.group(1)), number.group(2)
    return {"px": len(description) * PX_PER_CHAR <= size, "ch": len(description) + 1 <= size,
            "em": len(description) * 0.6 <= size}[unit]


def _slider_values(name: str, state: dict) -> list[float]:
    """Every value a float slider can take (its grid)."""
    low, high, step = state["min"], state["max"], state["step"]
    count = int(round((high - low) / step))
    exponents = [low + k * step for k in range(count + 1)]
    return [state["base"] ** e for e in exponents] if name == "FloatLogSliderModel" else exponents


def _misread(value: float, readout_format: str) -> bool:
    shown = float(format(value, readout_format.lstrip("~")))
    return abs(shown - value) > 1e-9 * max(1.0, abs(value))


@pytest.mark.parametrize("lesson", _params())
def test_widgets_show_whole_labels_and_the_values_they_use(lesson, tmp_path_factory):
    import nbformat

    outcome = nbu.execute_once(_require(lesson), tmp_path_factory)
    if outcome.error is not None:
        pytest.fail(f"{lesson.name} did not run (see test_lesson_runs)", pytrace=False)
    models = nbformat.read(outcome.path, as_version=4).metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    sliders = [m for m in models.values() if m["model_name"].endswith("SliderModel")]
    assert sliders, (f"{lesson.name}: no slider in the stored widget state; every lesson has a live Try-it "
                     "(and the executed notebook must keep its widgets: book/build.py drops them only for the book)")
    problems = []
    for model in models.values():
        name, state = model["model_name"], model["state"]
        description = state.get("description") or ""
        if description and name != "ButtonModel":
            style = models.get(str(state.get("style", "")).removeprefix("IPY_MODEL_"), {}).get("state", {})
            width = style.get("description_width", "")
            if not _label_fits(description, width):
                problems.append(f"{name} {description!r}: label width {width or 'default (80px)'} cuts it off")
        if name in {"FloatSliderModel", "FloatLogSliderModel"}:
            misread = [v for v in _slider_values(name, state) if _misread(v, state["readout_format"])]
            if misread:
                problems.append(f"{name} {description!r}: {len(misread)} positions show a rounded value, e.g. "
                                f"{misread[0]!r} as {format(misread[0], state['readout_format'])}")
    assert not problems, f"{lesson.name}:\n" + "\n".join(problems)
