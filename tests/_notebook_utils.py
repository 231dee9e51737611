"""Shared by test_notebooks.py and test_book.py: find the lessons and execute each once a session.

Each lesson is executed at most once per pytest session, in quick mode, by whichever test asks
first; the executed notebook (or the error) is remembered, so the book test renders the very
notebooks that the notebook tests ran. The execution itself is ``book/build.py``'s, so the tests
run the lessons exactly as ``make book`` does.

Set ``METALEARN_LAB_NOTEBOOKS_DIR`` to test lessons from another folder (for example a scratch
folder while developing the book); by default the lessons are ``notebooks/[0-9][0-9]_*.md``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO_DIR = Path(__file__).resolve().parents[1]
BOOK_DIR = REPO_DIR / "book"
NOTEBOOKS_ENV = "METALEARN_LAB_NOTEBOOKS_DIR"
CELL_TIMEOUT = 300  # seconds per cell, in quick mode

# Quick mode, and matplotlib's inline backend: as headless as Agg, but the figures stay in the
# executed notebooks (with Agg they vanish), so the book built from them shows them.
KERNEL_ENV = {"METALEARN_LAB_QUICK": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def load_build() -> ModuleType:
    """``book/build.py`` as a module (it is a script, not part of the package)."""
    name = "metalearn_lab_book_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BOOK_DIR / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def lessons_dir() -> Path:
    override = os.environ.get(NOTEBOOKS_ENV, "").strip()
    return Path(override).expanduser().resolve() if override else REPO_DIR / "notebooks"


def find_lessons() -> list[Path]:
    return load_build().find_lessons(lessons_dir())


@dataclass
class Outcome:
    path: Path | None  # the executed .ipynb, or None when it failed
    error: str | None
    seconds: float
    kernel_cpu_seconds: float | None = None


_OUTCOMES: dict[Path, Outcome] = {}
_EXECUTED_DIR: list[Path] = []


def executed_dir(tmp_path_factory) -> Path:
    """The session's folder of executed notebooks (one per pytest session)."""
    if not _EXECUTED_DIR:
        _EXECUTED_DIR.append(tmp_path_factory.mktemp("executed_lessons"))
    return _EXECUTED_DIR[0]


def execute_once(md_path: Path, tmp_path_factory) -> Outcome:
    """Execute one lesson in quick mode (once a session) into :func:`executed_dir`."""
    import nbformat

    md_path = Path(md_path).resolve()
    if md_path in _OUTCOMES:
        return _OUTCOMES[md_path]
    build = load_build()
    try:
        nb, seconds = build.execute_lesson(md_path, quick=True, timeout=CELL_TIMEOUT, env=KERNEL_ENV)
    except build.LessonError as error:
        outcome = Outcome(None, str(error), float("nan"))
    else:
        nb.metadata[build.METADATA_KEY].update({
            "source_hash": build.lesson_hash(md_path, quick=True),
            "mode": "quick",
            "seconds": round(seconds, 2),
        })
        target = executed_dir(tmp_path_factory) / f"{md_path.stem}.ipynb"
        nbformat.write(nb, target)
        outcome = Outcome(target, None, seconds, nb.metadata[build.METADATA_KEY].get("kernel_cpu_seconds"))
    _OUTCOMES[md_path] = outcome
    return outcome
