"""Read an exercise's skeleton or solution straight from a lesson's .md, so tests follow the real cells.

``exercise_function(lesson, "posterior_weights")`` executes the code cell of ``notebooks/<lesson>``
that defines ``def posterior_weights(`` (the skeleton) and returns the function;
``exercise_function(lesson, "posterior_weights_solution")`` does the same for the solution cell.
Lines that call the lesson's checker (``lesson.check_...``) are left out, and the cell runs in a
namespace with the lesson's setup imports (the lesson's first code cell).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import jupytext

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _code_cells(lesson: str) -> list[str]:
    return [cell.source for cell in jupytext.read(NOTEBOOKS / lesson).cells if cell.cell_type == "code"]


def setup_namespace(lesson: str) -> dict[str, Any]:
    """The names the lesson's setup cell (its first code cell) defines, in quick mode."""
    namespace: dict[str, Any] = {}
    exec(compile(_code_cells(lesson)[0], f"{lesson}:setup", "exec"), namespace)
    return namespace


def exercise_function(lesson: str, name: str) -> Callable[..., Any]:
    """The function ``name`` as the lesson's code cell defines it (checker calls removed)."""
    pattern = re.compile(rf"^def {re.escape(name)}\(", re.MULTILINE)
    cells = [source for source in _code_cells(lesson) if pattern.search(source)]
    if len(cells) != 1:
        raise LookupError(f"{lesson}: expected one code cell defining {name}(), found {len(cells)}")
    source = "\n".join(line for line in cells[0].splitlines() if not line.startswith("lesson.check_"))
    namespace = setup_namespace(lesson)
    exec(compile(source, f"{lesson}:{name}", "exec"), namespace)
    return namespace[name]
