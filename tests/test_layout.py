"""The layout rules of CONTRIBUTING.md that a test can enforce.

* every lesson ``notebooks/NN_<slug>.md`` has its companion ``metalearn_lab/lessons/<slug>.py`` and
  its tests ``tests/lessons/test_<slug>.py``, and imports no other lesson's companion;
* no core module imports ``metalearn_lab.lessons``;
* no identifier in the library carries a lesson number;
* every exercise is four cells: skeleton, check, collapsed solution (tag ``solution``) run through
  the same checker under its own name, and nothing later uses a name the solution defined;
* every checker of a companion is used by exactly one check cell of its lesson.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import jupytext
import pytest

from metalearn_lab.exercises import checkers_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _notebook_utils as nbu  # noqa: E402

REPO = nbu.REPO_DIR
LIBRARY = REPO / "metalearn_lab"
LESSONS = nbu.find_lessons()
CHECK_CALL = re.compile(r"^lesson\.(check_\w+)\((\w+)\)\s*$", re.MULTILINE)


def slug(path: Path) -> str:
    return path.stem.split("_", 1)[1]


def code_cells(path: Path) -> list:
    return [cell for cell in jupytext.read(path).cells if cell.cell_type == "code"]


def defined_names(source: str) -> set[str]:
    """The names a cell binds at module level (what later cells could see), not its functions' locals."""
    names = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(child.name)  # its body's names are local to it
            elif isinstance(child, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                continue  # their variables are local too
            else:
                if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                    names.add(child.id)
                elif isinstance(child, ast.alias):
                    names.add((child.asname or child.name).split(".")[0])
                visit(child)

    visit(ast.parse(source))
    return names


def used_names(source: str) -> set[str]:
    """The names a cell reads (binding a name again, as in ``a, _ = f()``, is not a use)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: fall back to words
        return set(re.findall(r"\b\w+\b", source))
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def test_the_answer_leak_check_sees_module_names_only():
    solution = ("import torch as T\nfrom math import pi\ndef solve_solution(x):\n    total = 0\n"
                "    for _ in range(3):\n        total += x\n    return total\nanswer = [k for k in range(2)]\n")
    assert defined_names(solution) == {"T", "pi", "solve_solution", "answer"}
    assert used_names("a, _ = f(total)\nprint(answer)") == {"f", "total", "print", "answer"}
    assert defined_names(solution) & used_names("result = answer + 1") == {"answer"}


def test_there_are_lessons():
    assert LESSONS, f"no lessons in {nbu.lessons_dir()}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_has_companion_and_tests(lesson):
    name = slug(lesson)
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name), f"{lesson.name}: the slug {name!r} must be a Python module name"
    assert (LIBRARY / "lessons" / f"{name}.py").is_file(), f"{lesson.name} has no companion metalearn_lab/lessons/{name}.py"
    assert (REPO / "tests" / "lessons" / f"test_{name}.py").is_file(), f"{lesson.name} has no tests/lessons/test_{name}.py"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_imports_only_its_own_companion(lesson):
    text = "\n".join(cell.source for cell in code_cells(lesson))
    imported = set(re.findall(r"metalearn_lab\.lessons(?:\.| import )(\w+)", text))
    assert imported == {slug(lesson)}, f"{lesson.name} imports companions {sorted(imported)}; it must import exactly its own, {slug(lesson)}"


def test_core_never_imports_lessons():
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        if (LIBRARY / "lessons") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            if any(n == "metalearn_lab.lessons" or n.startswith("metalearn_lab.lessons.") for n in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"core modules import lesson companions: {offenders}"


def test_no_lesson_numbers_in_identifiers():
    pattern = re.compile(r"^(_?l\d{1,2}_|.*_l\d{2}\b|.*lesson_?\d{1,2})", re.IGNORECASE)
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(node, "name", None) or (node.id if isinstance(node, ast.Name) else None)
            if isinstance(name, str) and pattern.match(name):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert not offenders, f"identifiers name lessons by number (use the slug or the concept): {sorted(set(offenders))}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_exercises_follow_the_four_cell_pattern(lesson):
    cells = code_cells(lesson)
    module = importlib.import_module(f"metalearn_lab.lessons.{slug(lesson)}")
    checkers = {c.name for c in checkers_of(module)}
    problems, used_checkers, solution_names = [], [], []
    for i, cell in enumerate(cells):
        tags = cell.metadata.get("tags", [])
        if "hide-cell" in tags:
            problems.append(f"code cell {i} uses the old hide-cell tag; solutions are tagged 'solution'")
        calls = CHECK_CALL.findall(cell.source)
        if "solution" in tags:
            previous = CHECK_CALL.findall(cells[i - 1].source) if i else []
            if not previous:
                problems.append(f"solution cell {i} does not follow a check cell")
                continue
            if not cell.metadata.get("jupyter", {}).get("source_hidden"):
                problems.append(f"solution cell {i} is not collapsed (metadata jupyter.source_hidden: true)")
            if [c for c, _ in calls] != [previous[0][0]]:
                problems.append(f"solution cell {i} must run the same checker as the check before it, lesson.{previous[0][0]}")
            for _, argument in calls:
                if not argument.endswith("_solution") or argument not in defined_names(cell.source):
                    problems.append(f"solution cell {i} must define its answer under its own name <name>_solution, got {argument}")
            solution_names.append((i, defined_names(cell.source)))
            continue
        for checker, argument in calls:
            used_checkers.append(checker)
            if checker not in checkers:
                problems.append(f"code cell {i} calls lesson.{checker}, which is not a @checker of the companion")
            following = cells[i + 1] if i + 1 < len(cells) else None
            if following is None or "solution" not in following.metadata.get("tags", []):
                problems.append(f"check cell {i} (lesson.{checker}) is not followed by its solution cell")
            if argument.endswith("_solution"):
                problems.append(f"check cell {i} checks {argument}: the check cell checks the student's answer")
    for i, names in solution_names:
        for j in range(i + 1, len(cells)):
            if "solution" in cells[j].metadata.get("tags", []):
                continue
            leaked = names & used_names(cells[j].source)
            if leaked:
                problems.append(f"code cell {j} uses {sorted(leaked)}, defined in solution cell {i}; later cells must "
                                "use the library, never the solution (student copies have no solutions)")
    if sorted(used_checkers) != sorted(checkers):
        problems.append(f"the companion's checkers {sorted(checkers)} must each be used by one check cell; "
                        f"the lesson's check cells use {sorted(used_checkers)}")
    if len(checkers) < 2:
        problems.append(f"a lesson has at least two exercises; {lesson.name} has {len(checkers)}")
    assert not problems, f"{lesson.name}:\n  " + "\n  ".join(problems)
