"""JupyterLab as a student meets it, in a real browser (Debian's chromium, driven by playwright).

A scratch copy of the lessons is set up with ``scripts/setup_lab.py`` (as ``make lab`` does) and
served by JupyterLab on 127.0.0.1 with quick mode in the kernels (``_jupyterlab.py``). Then:

* the file browser lists each lesson once (no paired ``.ipynb`` beside it), names not cut off;
* a double click on lesson 04 opens it as a notebook with its kernel; no dialog asks for one;
* its solution cells (tag ``solution``) show a collapsed input;
* Run All runs every code cell and none raises (read from the notebook JupyterLab saves);
* an arrow key on a Try-it slider redraws the figure (the PNG's bytes change), and the widget's
  labels are not cut off;
* saving the run notebook leaves the lesson's ``.md`` byte for byte as it was, the outputs go to
  the hidden paired notebook, and the browser asked no host but 127.0.0.1.

A failing step saves a screenshot to the temp folder and names it, with the server's log. A
missing chromium or playwright fails with the command that installs it; nothing here skips.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _jupyterlab as jl  # noqa: E402
import _notebook_utils as nbu  # noqa: E402

LESSON = "04_maml_sinusoid"  # a Try-it with sliders, and a short Run All (about 11 s in quick mode)
SOLUTION_TAG = "solution"
SHOTS = Path(tempfile.gettempdir())
pytestmark = pytest.mark.timeout(600)


def _source_notebook():
    import jupytext

    return jupytext.read(nbu.lessons_dir() / f"{LESSON}.md")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    problem = jl.missing_browser()
    if problem:
        pytest.fail(problem, pytrace=False)
    lessons = nbu.find_lessons()
    if not any(p.stem == LESSON for p in lessons):
        pytest.fail(f"{LESSON}.md is not among the lessons in {nbu.lessons_dir()}", pytrace=False)
    try:
        with jl.serve_lab(lessons, tmp_path_factory.mktemp("jupyterlab")) as server:
            lesson = server.notebooks / f"{LESSON}.md"
            server.original = lesson.read_bytes()
            server.lesson = lesson
            yield server
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def page(lab):
    with jl.open_browser() as browser_page:
        yield browser_page


@contextmanager
def step(page, lab, what: str):
    """One step; on failure, a screenshot in the temp folder, named in the message with the server log."""
    try:
        yield
    except Exception as error:
        shot = SHOTS / f"metalearn_lab_jupyterlab_{re.sub(r'[^a-z0-9]+', '_', what.lower()).strip('_')}.png"
        try:
            page.screenshot(path=str(shot))
            where = f"screenshot: {shot}"
        except Exception as shot_error:  # the browser itself may be gone
            where = f"no screenshot ({shot_error})"
        pytest.fail(f"{what}: {type(error).__name__}: {error}\n{where}; server log: {lab.log}", pytrace=False)


@pytest.fixture(scope="module")
def opened(lab, page):
    """JupyterLab loaded, and the lesson opened by a double click in the file browser."""
    with step(page, lab, "loading JupyterLab"):
        listing = jl.load_lab(page, lab)
    with step(page, lab, f"opening {LESSON}.md by a double click"):
        info = jl.open_lesson(page, f"{LESSON}.md", len(_source_notebook().cells))
    return {**info, "listing": listing}


@pytest.fixture(scope="module")
def ran(lab, opened, page):
    with step(page, lab, "Run All"):
        seconds = jl.run_all(page)
    print(f"{LESSON}: opened in {opened['seconds']:.1f} s, Run All in {seconds:.1f} s")
    return seconds


@pytest.fixture(scope="module")
def saved(lab, ran, page):
    """Save (Ctrl+S) the run notebook; returns the paired notebook as written."""
    paired = lab.notebooks / "_lesson_outputs" / f"{LESSON}.ipynb"
    before = paired.stat().st_mtime_ns
    with step(page, lab, "saving the notebook"):
        page.locator(jl.CELLS).first.click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 60
        while paired.stat().st_mtime_ns == before:
            assert time.monotonic() < deadline, f"{paired.name} was not written within 60 s of Ctrl+S"
            time.sleep(0.25)
        page.wait_for_selector(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current:not(.jp-mod-dirty)")
        time.sleep(0.5)  # the .md is written right after the .ipynb
    return json.loads(paired.read_text(encoding="utf-8"))


def test_file_browser_lists_each_lesson_once_with_its_whole_name(lab, opened):
    lessons = sorted(p.name for p in lab.notebooks.glob("[0-9][0-9]_*.md"))
    names = [item["name"] for item in opened["listing"]]
    assert sorted(n for n in names if re.match(r"\d\d_", n)) == lessons, (
        f"the file browser shows {names}; each lesson once, as its .md, was expected")
    assert "_lesson_outputs" not in names, "the folder of paired notebooks should be hidden"
    cut = [item["name"] for item in opened["listing"] if item["cut"]]
    assert not cut, f"names cut off in the file browser: {cut}"


def test_double_click_opens_the_lesson_as_a_notebook_with_its_kernel(opened):
    assert not opened["dialogs"], f"a dialog opened with the lesson: {opened['dialogs']}"
    assert opened["tab"] == f"{LESSON}.md", f"the open tab is {opened['tab']!r}"
    assert opened["kernel"] == "Python 3 (ipykernel)", f"the notebook's kernel: {opened['kernel']!r}"


def test_solution_cells_are_collapsed(lab, opened, page):
    """Cells tagged ``solution`` show a collapsed input (``jupyter: {source_hidden: true}``)."""
    cells = _source_notebook().cells
    solutions = [i for i, cell in enumerate(cells) if SOLUTION_TAG in cell.metadata.get("tags", [])]
    assert solutions, f"{LESSON}.md has no cell tagged {SOLUTION_TAG!r} (CONTRIBUTING.md: each exercise ends with one)"
    with step(page, lab, "reading the solution cells"):
        collapsed = page.evaluate(
            f"""() => Object.fromEntries([...document.querySelectorAll('{jl.CELLS}')].map(c =>
                [c.getAttribute('data-windowed-list-index'), !!c.querySelector('.jp-InputPlaceholder')]))""")
    shown = [i for i in solutions if not collapsed.get(str(i))]
    assert not shown, f"solution cells open in JupyterLab (cells {shown} of {LESSON}.md, counting from 0)"


def test_run_all_runs_every_cell_without_an_error(saved):
    code = [cell for cell in saved["cells"] if cell["cell_type"] == "code"]
    errors = [(i, o.get("ename"), o.get("evalue")) for i, cell in enumerate(code)
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"code cells raised in JupyterLab (index among code cells, error, message): {errors}"
    not_run = [i for i, cell in enumerate(code) if not cell.get("execution_count")]
    assert not not_run, f"code cells that did not run (index among code cells): {not_run}"


def test_an_arrow_key_on_a_slider_redraws_the_figure(lab, ran, page):
    with step(page, lab, "moving a Try-it slider"):
        slider = page.locator(jl.TRY_IT_SLIDERS).first
        slider.scroll_into_view_if_needed()
        name, readout = slider.locator(".widget-label").text_content(), slider.locator(".widget-readout").text_content()
        before, labels = jl.figure_png(slider), jl.slider_labels(slider)
        key, seconds = jl.press_and_time_redraw(page, slider, "ArrowRight")
        after, moved = jl.figure_png(slider), slider.locator(".widget-readout").text_content()
    print(f"slider {name!r}: {readout} -> {moved}, figure redrawn {seconds:.2f} s after the key press")
    assert moved != readout, f"the slider {name!r} still reads {readout!r} after {key}"
    assert after != before, "the figure's PNG did not change"
    cut = [label["text"] for label in labels if label["cut"]]
    assert not cut, f"labels cut off in the Try-it widget: {cut}"


def test_saving_leaves_the_lesson_unchanged(lab, saved, page):
    assert lab.lesson.read_bytes() == lab.original, (
        f"saving the run notebook in JupyterLab changed {LESSON}.md (git status would show it)")
    assert sum(len(cell.get("outputs", [])) for cell in saved["cells"]) > 0, "no outputs in the paired notebook"
    assert not page.outside_requests, f"the page asked for other hosts: {sorted(set(page.outside_requests))[:10]}"
