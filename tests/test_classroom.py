"""Student copies and grading (metalearn_lab.classroom and the CLI's student-copy and grade).

* Every lesson's student copy has no solution cells, runs top to bottom without an error from a
  fresh kernel (quick mode), and every check in it reports "not attempted".
* Grading a real lesson sorts right, wrong, empty and broken answers; a notebook that hangs,
  crashes its kernel, is not JSON or is not a lesson gets its own row, and the others are still graded.
"""

from __future__ import annotations

import ast
import csv
import json
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from metalearn_lab import classroom
from metalearn_lab.cli import main
from metalearn_lab.exercises import NOT_ATTEMPTED

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _notebook_utils as nbu  # noqa: E402

LESSONS = nbu.find_lessons()
pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    out = tmp_path_factory.mktemp("class")
    return classroom.student_copy(out, lessons=LESSONS)


def test_student_copies_have_no_solutions(copies):
    assert [p.stem for p in copies] == [p.stem for p in LESSONS]
    for path, lesson in zip(copies, LESSONS):
        nb = nbformat.read(path, as_version=4)
        tags = [t for cell in nb.cells for t in cell.metadata.get("tags", [])]
        assert "solution" not in tags, f"{path.name} still has a solution cell"
        original = jupytext.read(lesson)
        solutions = [c for c in original.cells if "solution" in c.metadata.get("tags", [])]
        assert len(nb.cells) == len(original.cells) - len(solutions)
        assert nb.metadata["metalearn_lab"] == {"lesson": classroom.slug_of(lesson), "student_copy": True}
        solution_text = "\n".join(c.source for c in solutions)
        # the functions a solution defines at its top level (a nested helper's name, e.g. one a hint suggests, is not the answer)
        names = {n.name for c in solutions for n in ast.parse(c.source).body if isinstance(n, ast.FunctionDef)}
        remaining = "\n".join(c.source for c in nb.cells)
        assert not any(name in remaining for name in names), f"{path.name} mentions a solution's name"
        assert solution_text.strip(), f"{lesson.name} has no solutions to remove"


def test_student_copy_never_overwrites_without_being_asked(copies, tmp_path):
    target = copies[0].parent
    with pytest.raises(FileExistsError, match="already exist"):
        classroom.student_copy(target, lessons=LESSONS[:1])
    assert main(["student-copy", str(target), "--lessons", str(LESSONS[0]), "--force"]) == 0
    with pytest.raises(ValueError, match="not a lesson"):
        classroom.student_copy(tmp_path, lessons=[Path(__file__)])


@pytest.mark.parametrize("index", range(len(LESSONS)), ids=[p.stem for p in LESSONS])
def test_every_student_copy_runs_and_reports_not_attempted(copies, index):
    path = copies[index]
    nb = nbformat.read(path, as_version=4)
    failure = classroom.run_notebook(nb, timeout=300)
    assert failure is None, f"{path.name}: {failure}"
    errors = [(i, o.get("ename"), o.get("evalue")) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name} without solutions fails: {errors[:3]}"
    outcomes = classroom._outcomes(nb, classroom.exercises_of(classroom.slug_of(path)))
    expected = set(classroom.exercises_of(classroom.slug_of(path)).values())
    assert set(outcomes) == expected
    assert {status for status, _ in outcomes.values()} == {NOT_ATTEMPTED}, outcomes


# ------------------------------------------------------------------ grading one real lesson

LESSON = next(p for p in LESSONS if p.stem == "04_maml_sinusoid")


def _exercises(lesson: Path):
    """[(skeleton cell index, function name, solution source renamed to the student's name)] of a lesson."""
    cells = [c for c in jupytext.read(lesson).cells if c.cell_type == "code"]
    found = []
    for i, cell in enumerate(cells):
        if "solution" not in cell.metadata.get("tags", []):
            continue
        skeleton = cells[i - 2]
        name = next(n.name for n in ast.walk(ast.parse(skeleton.source)) if isinstance(n, ast.FunctionDef))
        tree = ast.parse(cell.source)
        tree.body = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
        source = ast.unparse(tree).replace(f"{name}_solution", name)
        found.append((skeleton.source, name, source))
    return found


def _submission(folder: Path, student: str, answers: dict[int, str]) -> Path:
    """The student copy of lesson 04 with the skeleton of exercise k replaced by ``answers[k]``."""
    (path,) = classroom.student_copy(folder / student, lessons=[LESSON])
    nb = nbformat.read(path, as_version=4)
    skeletons = [skeleton for skeleton, _, _ in _exercises(LESSON)]
    for k, answer in answers.items():
        cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.strip() == skeletons[k].strip())
        cell.source = answer
    nbformat.write(nb, path)
    return path


def _tiny(folder: Path, name: str, cells: list[str], lesson: str | None = "maml_sinusoid") -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    if lesson:
        nb.metadata["metalearn_lab"] = {"lesson": lesson}
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_grading_sorts_right_wrong_empty_broken_and_bad_notebooks(tmp_path):
    exercises = _exercises(LESSON)
    assert len(exercises) == 2
    (_, name_1, right_1), (_, name_2, _) = exercises
    a = _submission(tmp_path, "alice", {0: right_1, 1: f"import torch\n\ndef {name_2}(*args, **kwargs):\n    return torch.zeros(7)\n"})
    b = _submission(tmp_path, "bob", {1: f"def {name_2}(*args, **kwargs):\n    raise RuntimeError('student bug')\n"})
    hang = _tiny(tmp_path, "carol/04_maml_sinusoid.ipynb", [
        "from metalearn_lab.lessons import maml_sinusoid as lesson",
        f"def {name_1}(*args):\n    import time\n    time.sleep(600)",
        f"lesson.check_sine_adapt({name_1})",
    ])
    crash = _tiny(tmp_path, "dan/04_maml_sinusoid.ipynb", ["import os\nos._exit(1)"])
    not_json = tmp_path / "erin" / "04_maml_sinusoid.ipynb"
    not_json.parent.mkdir()
    not_json.write_text("{ this is not json")
    not_lesson = _tiny(tmp_path, "frank/homework.ipynb", ["x = 1"], lesson=None)
    out = tmp_path / "grades.csv"
    assert main(["grade", str(a), str(b), str(hang), str(crash), str(not_json), str(not_lesson), "--out", str(out),
                 "--timeout", "40"]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    by = {(r["student"], r["exercise"]): r for r in rows}
    titles = list(classroom.exercises_of("maml_sinusoid").values())
    assert by["alice", titles[0]]["status"] == "passed"
    assert by["alice", titles[1]]["status"] == "wrong" and by["alice", titles[1]]["message"]
    assert by["bob", titles[0]]["status"] == "not attempted"
    assert by["bob", titles[1]]["status"] == "error" and "student bug" in by["bob", titles[1]]["message"]
    assert by["carol", titles[0]]["status"] == "error" and "time limit" in by["carol", titles[0]]["message"]
    assert {by["dan", t]["status"] for t in titles} == {"error"} and "died" in by["dan", titles[0]]["message"]
    assert by["erin", "(notebook)"]["status"] == "error" and "JSON" in by["erin", "(notebook)"]["message"]
    assert by["homework", "(notebook)"]["status"] == "error" and "not a lesson" in by["homework", "(notebook)"]["message"]
    with pytest.raises(FileExistsError):
        classroom.grade([a], out_csv=out)


def test_grading_blocks_the_network(tmp_path):
    path = _tiny(tmp_path, "gina/04_maml_sinusoid.ipynb", [
        "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n    print('CONNECTED')\n"
        "except OSError as error:\n    print('BLOCKED', error)",
    ])
    nb = nbformat.read(path, as_version=4)
    assert classroom.run_notebook(nb, timeout=60) is None
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "BLOCKED" in printed and "blocked while grading" in printed, json.dumps(nb.cells[0].outputs)[:500]
