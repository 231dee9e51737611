"""Every lesson runs top to bottom, in quick mode, from a fresh kernel; and follows the skeleton.

Running a notebook is a test: one test per ``notebooks/[0-9][0-9]_*.md``, executed with nbclient
in a fresh kernel whose working folder is the lessons' folder (as in JupyterLab), with
``METALEARN_LAB_QUICK=1``. A failure names the lesson and the first lines of the failing cell.
The executed notebooks are kept for ``test_book.py`` (see ``_notebook_utils.py``).

``METALEARN_LAB_NOTEBOOKS_DIR`` points the tests at another folder of lessons.
"""

from __future__ import annotations

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


def _params():
    if not LESSONS:  # a missing lessons folder must fail, not pass with nothing to run
        return [pytest.param(None, id=NO_LESSONS)]
    return [pytest.param(path, id=path.stem) for path in LESSONS]


def _require(lesson: Path | None) -> Path:
    if lesson is None:
        pytest.fail(f"no lessons found: expected notebooks matching [0-9][0-9]_*.md in {nbu.lessons_dir()}")
    return lesson


@pytest.mark.parametrize("lesson", _params())
def test_lesson_runs(lesson, tmp_path_factory):
    lesson = _require(lesson)
    outcome = nbu.execute_once(lesson, tmp_path_factory)
    if outcome.error is not None:
        pytest.fail(outcome.error, pytrace=False)
    print(f"{lesson.name}: {outcome.seconds:.1f} s in quick mode")


@pytest.mark.parametrize("lesson", _params())
def test_lesson_skeleton(lesson):
    text = _require(lesson).read_text(encoding="utf-8")
    missing = []
    if not RUN_TIME.search(text):
        missing.append("a line stating the measured run time (e.g. 'Run time: about 4 min classroom, 20 s quick')")
    if not OBJECTIVES.search(text):
        missing.append("a 'Learning objectives' heading")
    if not SUMMARY.search(text):
        missing.append("a 'Summary' heading")
    assert not missing, f"{lesson.name} lacks: " + "; ".join(missing)
