"""The cells of a lesson's exercises, read from the lesson itself, for the companion tests.

Each exercise is four cells (CONTRIBUTING.md): skeleton, ``lesson.check_x(answer)``, the solution
(tagged ``solution``) and whatever follows. :func:`exercise` finds them by the checker's name in
``notebooks/NN_<slug>.md`` (read with Jupytext), so a test runs the skeleton and the solution the
student sees, not copies of them:

* :meth:`Exercise.skeleton` executes the whole skeleton cell and returns the student's answer as
  the notebook leaves it;
* :meth:`Exercise.solution` executes the solution cell's definitions (imports, and the statements
  that define the name it passes to the checker; not the checker call, nor any figure it draws)
  and returns the solution.

Both run in a namespace prepared by the lesson's setup cell (its first code cell: imports, seeds),
so the cells find the names the lesson gives them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CHECK_CALL = re.compile(r"^lesson\.(check_\w+)\((\w+)\)\s*$", re.MULTILINE)


def lesson_path(slug: str) -> Path:
    """``notebooks/NN_<slug>.md``."""
    found = sorted(NOTEBOOKS.glob(f"[0-9][0-9]_{slug}.md"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one lesson notebooks/NN_{slug}.md, found {[p.name for p in found]}")
    return found[0]


def _defining(source: str, name: str) -> str:
    """The statements of ``source`` that import something or define ``name``."""
    tree = ast.parse(source)
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            kept.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            kept.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                kept.append(node)
    if not any(not isinstance(node, (ast.Import, ast.ImportFrom)) for node in kept):
        raise LookupError(f"no statement defines {name!r} in:\n{source}")
    return ast.unparse(ast.Module(body=kept, type_ignores=[]))


@dataclass
class Exercise:
    """One exercise of a lesson: its checker, and the sources of its setup, skeleton and solution cells."""

    lesson: Path
    checker: str
    setup_source: str
    skeleton_name: str
    skeleton_source: str
    solution_name: str
    solution_source: str

    def namespace(self) -> dict[str, Any]:
        """A fresh namespace after the lesson's setup cell."""
        namespace: dict[str, Any] = {"__name__": f"lesson_{self.lesson.stem}"}
        exec(compile(self.setup_source, f"{self.lesson.name}: setup cell", "exec"), namespace)
        return namespace

    def skeleton(self) -> Any:
        """The answer as the untouched skeleton cell leaves it."""
        namespace = self.namespace()
        exec(compile(self.skeleton_source, f"{self.lesson.name}: skeleton of {self.checker}", "exec"), namespace)
        return namespace[self.skeleton_name]

    def solution(self) -> Any:
        """The solution defined by the solution cell (its checker call is not run)."""
        namespace = self.namespace()
        source = _defining(self.solution_source, self.solution_name)
        exec(compile(source, f"{self.lesson.name}: solution of {self.checker}", "exec"), namespace)
        return namespace[self.solution_name]


def exercise(slug: str, checker: str) -> Exercise:
    """The exercise of lesson ``slug`` whose check cell is ``lesson.<checker>(answer)``."""
    path = lesson_path(slug)
    cells = [cell for cell in jupytext.read(path).cells if cell.cell_type == "code"]
    for i, cell in enumerate(cells):
        if "solution" in cell.metadata.get("tags", []):
            continue
        calls = CHECK_CALL.findall(cell.source)
        if [name for name, _ in calls] != [checker]:
            continue
        if i == 0 or i + 1 >= len(cells):
            raise LookupError(f"{path.name}: the check cell of {checker} needs a skeleton before it and a solution after it")
        solution = cells[i + 1]
        solution_calls = CHECK_CALL.findall(solution.source)
        if "solution" not in solution.metadata.get("tags", []) or [n for n, _ in solution_calls] != [checker]:
            raise LookupError(f"{path.name}: the cell after lesson.{checker}(...) is not its solution cell")
        return Exercise(path, checker, cells[0].source, calls[0][1], cells[i - 1].source,
                        solution_calls[0][1], solution.source)
    raise LookupError(f"{path.name} has no check cell lesson.{checker}(...)")
