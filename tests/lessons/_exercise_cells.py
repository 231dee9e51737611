"""An exercise's cells, read from the lesson itself, so that the tests follow the notebook.

Each exercise is four cells (CONTRIBUTING.md): skeleton, ``lesson.check_x(answer)``, the solution
(tag ``solution``) defining ``answer_solution``. :func:`exercise` finds them by the checker's name;
:func:`run_skeleton` and :func:`run_solution` execute the lesson's setup cell and then the
skeleton or the solution (without its check line, and without any other bare expression such as a
print or a figure that needs the lesson's data), and return the answer they define.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import jupytext

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CHECK_LINE = re.compile(r"^lesson\.(check_\w+)\((\w+)\)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Exercise:
    setup: str
    skeleton: str
    solution: str
    answer: str  # the name the skeleton defines; the solution defines answer + "_solution"


def lesson_path(slug: str) -> Path:
    (path,) = NOTEBOOKS.glob(f"[0-9][0-9]_{slug}.md")
    return path


def exercise(slug: str, checker_name: str) -> Exercise:
    """The setup, skeleton and solution cells of the exercise checked by ``lesson.<checker_name>``."""
    cells = [c for c in jupytext.read(lesson_path(slug)).cells if c.cell_type == "code"]
    for i, cell in enumerate(cells):
        calls = CHECK_LINE.findall(cell.source)
        if calls and calls[0][0] == checker_name and "solution" not in cell.metadata.get("tags", []):
            solution = cells[i + 1]
            assert "solution" in solution.metadata.get("tags", []), f"the check of {checker_name} has no solution cell after it"
            return Exercise(cells[0].source, cells[i - 1].source, solution.source, calls[0][1])
    raise LookupError(f"no check cell lesson.{checker_name}(...) in {lesson_path(slug).name}")


def later_uses_of_answer(slug: str, checker_name: str) -> list[int]:
    """Code cells after the exercise (check and solution excluded) that use the student's answer's name."""
    cells = [c for c in jupytext.read(lesson_path(slug)).cells if c.cell_type == "code"]
    answer = exercise(slug, checker_name).answer
    check = next(i for i, c in enumerate(cells) if f"lesson.{checker_name}({answer})" in c.source)
    users = []
    for i, cell in enumerate(cells[check + 1:], start=check + 1):
        if "solution" in cell.metadata.get("tags", []):
            continue
        try:
            names = {node.id for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Name)}
        except SyntaxError:  # IPython magics: fall back to words
            names = set(re.findall(r"\b\w+\b", cell.source))
        if answer in names:
            users.append(i)
    return users


def _run(setup: str, source: str) -> dict:
    namespace: dict = {"__name__": "__lesson__"}
    exec(compile(setup, "<setup cell>", "exec"), namespace)
    exec(compile(source, "<exercise cell>", "exec"), namespace)
    return namespace


def run_skeleton(slug: str, checker_name: str):
    """The answer as the student finds it: the skeleton cell executed after the setup cell."""
    ex = exercise(slug, checker_name)
    return _run(ex.setup, ex.skeleton)[ex.answer]


def definitions(source: str) -> str:
    """``source`` without its bare expressions: the check line, and any print or figure that needs the lesson's data."""
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not isinstance(node, ast.Expr)]
    return ast.unparse(tree)


def run_solution(slug: str, checker_name: str):
    """The lesson's solution (its cell without the check line and other bare expressions), executed after the setup cell."""
    ex = exercise(slug, checker_name)
    return _run(ex.setup, definitions(ex.solution))[ex.answer + "_solution"]
