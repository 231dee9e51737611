"""For teachers: student copies of the lessons, and grading of what students hand in.

* :func:`student_copy` writes each lesson as a notebook (``.ipynb``) without its ``solution`` cells,
  ready to hand out. Every check in it reports "not attempted" until the student answers.
* :func:`grade` runs each submitted notebook top to bottom in a fresh kernel, with a time limit
  per cell and the network blocked, and reads the outcome of every exercise's check (the metadata
  that :mod:`metalearn_lab.exercises` attaches to its output): passed, wrong (with the checker's
  diagnosis), not attempted, or error. A notebook that hangs, crashes its kernel, is not valid
  JSON or is not a lesson gets its own row with the reason; grading the others goes on.

Grading runs the students' code. It runs as the user who calls it, with the network blocked in the
kernel's Python (a ``sitecustomize`` that refuses every connection except to this machine), which
stops accidents, not a determined attacker: grade untrusted work in a container or a throw-away
account. ``metalearn-lab student-copy`` and ``metalearn-lab grade`` are the command-line forms.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from metalearn_lab.exercises import ERROR, METADATA_KEY, NOT_ATTEMPTED, PASSED, WRONG, checkers_of
from metalearn_lab.validation import check_int

SOLUTION_TAG = "solution"
LESSON_KEY = "metalearn_lab"  # notebook metadata: {"lesson": slug, "student_copy": true}
CHECK_CELL = re.compile(r"^\s*lesson\.(check_\w+)\(", re.MULTILINE)
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"

_SITECUSTOMIZE = '''\
"""Installed by metalearn_lab.classroom.grade: no connection leaves this machine."""
import socket as _socket

_LOCAL = {"localhost", "127.0.0.1", "::1"}
_connect, _connect_ex = _socket.socket.connect, _socket.socket.connect_ex


def _allowed(sock, address):
    if getattr(_socket, "AF_UNIX", None) is not None and sock.family == _socket.AF_UNIX:
        return True
    host = address[0] if isinstance(address, tuple) else address
    return host in _LOCAL


def _guarded_connect(sock, address):
    if not _allowed(sock, address):
        raise OSError(f"network access is blocked while grading (tried {address!r})")
    return _connect(sock, address)


def _guarded_connect_ex(sock, address):
    if not _allowed(sock, address):
        raise OSError(f"network access is blocked while grading (tried {address!r})")
    return _connect_ex(sock, address)


_socket.socket.connect, _socket.socket.connect_ex = _guarded_connect, _guarded_connect_ex
'''


def lesson_files(notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR) -> list[Path]:
    """The lessons, in order: ``notebooks/[0-9][0-9]_*.md``."""
    return sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.md"))


def slug_of(path: str | os.PathLike) -> str | None:
    """``.../04_maml_sinusoid.md`` (or ``.ipynb``) → ``"maml_sinusoid"``; ``None`` for other names."""
    match = re.fullmatch(r"\d\d_([a-z][a-z0-9_]*)", Path(path).stem)
    return match.group(1) if match else None


def exercises_of(slug: str) -> dict[str, str]:
    """A lesson's exercises, from its companion's checkers in order: checker name → exercise title."""
    module = importlib.import_module(f"metalearn_lab.lessons.{slug}")
    return {c.name: c.exercise for c in checkers_of(module)}


def remove_solutions(nb) -> int:
    """Drop every cell tagged ``solution`` from a notebook (in place); returns how many."""
    before = len(nb.cells)
    nb.cells = [cell for cell in nb.cells if SOLUTION_TAG not in cell.get("metadata", {}).get("tags", [])]
    return before - len(nb.cells)


def student_copy(out_dir: str | os.PathLike, *, lessons: Iterable[str | os.PathLike] | None = None,
                 overwrite: bool = False) -> list[Path]:
    """Write the lessons as notebooks without their solutions into ``out_dir``; returns the files written.

    Parameters
    ----------
    out_dir : path
        Created if needed. Existing notebooks there are never replaced unless ``overwrite``.
    lessons : paths of lesson ``.md`` files, optional
        Default: every lesson in ``notebooks/``.
    overwrite : bool
        Replace notebooks that already exist in ``out_dir``.

    Raises
    ------
    FileExistsError
        If a notebook to write exists and ``overwrite`` is False (nothing is written then).
    ValueError
        If a path is not a lesson (``NN_<slug>.md``).
    """
    import jupytext
    import nbformat

    paths = [Path(p) for p in lessons] if lessons is not None else lesson_files()
    if not paths:
        raise ValueError("no lessons to copy")
    for path in paths:
        if slug_of(path) is None or path.suffix != ".md" or not path.is_file():
            raise ValueError(f"{path} is not a lesson: expected an existing notebooks/NN_<slug>.md")
    out = Path(out_dir)
    targets = [out / f"{path.stem}.ipynb" for path in paths]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{len(existing)} notebook(s) already exist in {out} (e.g. {existing[0]}); "
                              "choose another folder or pass overwrite=True (--force)")
    out.mkdir(parents=True, exist_ok=True)
    for path, target in zip(paths, targets):
        nb = jupytext.read(path)
        remove_solutions(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("jupytext", None)
        nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
        nb.metadata[LESSON_KEY] = {"lesson": slug_of(path), "student_copy": True}
        nbformat.write(nb, target)
    return targets


@dataclass(frozen=True)
class Grade:
    """One row of the grade table: one exercise of one submission (or the submission, when it failed whole)."""

    submission: str
    student: str
    lesson: str
    exercise: str
    status: str
    message: str


def _student_name(path: Path) -> str:
    """The folder a submission sits in names the student (``alice/04_maml_sinusoid.ipynb``), else the file."""
    return path.parent.name if path.parent.name and slug_of(path) else path.stem


def _read_submission(path: Path):
    import nbformat

    if path.suffix == ".md":
        import jupytext

        return jupytext.read(path)
    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"not a valid notebook (not readable JSON: {type(error).__name__}: {error})") from None
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as error:  # nbformat raises several validation error types
        raise ValueError(f"not a valid notebook ({type(error).__name__}: {str(error)[:200]})") from None
    return nb


def _lesson_of(nb, path: Path) -> str | None:
    meta = nb.metadata.get(LESSON_KEY, {})
    slug = meta.get("lesson") if isinstance(meta, dict) else None
    slug = slug or slug_of(path)
    if slug is None:
        return None
    try:
        importlib.import_module(f"metalearn_lab.lessons.{slug}")
    except ImportError:
        return None
    return slug


def _kernel_env(quick: bool) -> tuple[dict[str, str], tempfile.TemporaryDirectory]:
    guard = tempfile.TemporaryDirectory(prefix="metalearn_grade_")
    Path(guard.name, "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([guard.name, *filter(None, [env.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "Agg"
    env.pop("METALEARN_LAB_QUICK", None)
    if quick:
        env["METALEARN_LAB_QUICK"] = "1"
    return env, guard


def _outcomes(nb, checkers: dict[str, str]) -> dict[str, tuple[str, str]]:
    """exercise title → (status, message), read from the executed check cells.

    A check records its outcome in its output's metadata; when the student's own code raised
    inside the check (or the cell was interrupted), the cell's error is the outcome.
    """
    found: dict[str, tuple[str, str]] = {}
    for cell in nb.cells:
        match = CHECK_CELL.search(cell.source) if cell.cell_type == "code" else None
        if match is None:
            continue
        records = [o["metadata"][METADATA_KEY] for o in cell.get("outputs", []) if METADATA_KEY in o.get("metadata", {})]
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if records:
            found[records[-1]["exercise"]] = (records[-1]["status"], records[-1]["message"])
        elif errors:
            title = checkers.get(match.group(1), f"(check cell: {match.group(1)})")
            ename, evalue = errors[-1].get("ename"), errors[-1].get("evalue")
            if ename in ("KeyboardInterrupt", "CellTimeoutError"):  # what an interrupted cell shows
                found[title] = (ERROR, f"the check ran past the time limit per cell and was interrupted ({ename})")
            else:
                found[title] = (ERROR, f"{ename}: {evalue}")
    return found


def run_notebook(nb, *, timeout: int = 120, quick: bool = True, cwd: str | os.PathLike | None = None):
    """Execute a notebook (in place) in a fresh kernel as grading does: errors recorded, not raised.

    Each cell may run ``timeout`` seconds before it is interrupted (its output then holds a
    ``CellTimeoutError``) and the notebook goes on. The kernel's Python refuses network connections
    to other machines. Returns ``None``, or why execution stopped early (the kernel died, ...).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    timeout = check_int("timeout", timeout, minimum=1)  # seconds per cell

    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env, guard = _kernel_env(quick)
    workdir = Path(cwd) if cwd is not None else (NOTEBOOKS_DIR if NOTEBOOKS_DIR.is_dir() else Path.cwd())
    with guard:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": "CellTimeoutError", "evalue": f"the cell ran longer than {timeout} s and was interrupted"},
            resources={"metadata": {"path": str(workdir)}},
        )
        try:
            client.execute(env=env)
        except DeadKernelError as error:
            return f"the kernel died ({str(error)[:200]}); checks after that point did not run"
        except Exception as error:
            return f"{type(error).__name__}: {str(error)[:300]}"
    return None


def grade_notebook(path: str | os.PathLike, *, timeout: int = 120, quick: bool = True) -> list[Grade]:
    """Grade one submission: run it in a fresh kernel and read every exercise's outcome.

    ``timeout`` is the limit per cell in seconds; a cell past it is interrupted, recorded as an error,
    and the notebook goes on. Solution cells left in a submission are removed before running.
    Returns one :class:`Grade` per exercise of the lesson, or one row saying why the notebook could
    not be graded.
    """
    timeout = check_int("timeout", timeout, minimum=1)  # seconds per cell
    path = Path(path)
    student = _student_name(path)
    try:
        nb = _read_submission(path)
    except ValueError as error:
        return [Grade(str(path), student, "", "(notebook)", ERROR, str(error))]
    slug = _lesson_of(nb, path)
    if slug is None:
        return [Grade(str(path), student, "", "(notebook)", ERROR,
                      "not a lesson: neither its metadata nor its file name (NN_<slug>) names a lesson of metalearn-lab")]
    checkers = exercises_of(slug)
    remove_solutions(nb)
    failure = run_notebook(nb, timeout=timeout, quick=quick)
    outcomes = _outcomes(nb, checkers)
    rows = []
    for exercise in checkers.values():
        if exercise in outcomes:
            status, message = outcomes.pop(exercise)
        else:
            status = ERROR
            message = failure or "its check did not run (the check cell is missing or an earlier error stopped it)"
        rows.append(Grade(str(path), student, slug, exercise, status, message))
    for exercise, (status, message) in outcomes.items():  # check cells of checkers the lesson does not have
        rows.append(Grade(str(path), student, slug, exercise, status, message))
    return rows


def grade(submissions: Iterable[str | os.PathLike], *, out_csv: str | os.PathLike | None = None,
          timeout: int = 120, quick: bool = True, overwrite: bool = False) -> list[Grade]:
    """Grade every submission (see :func:`grade_notebook`); write the table to ``out_csv`` if given.

    The CSV has one row per student × exercise: ``student, lesson, exercise, status, message,
    submission``. An existing ``out_csv`` is replaced only with ``overwrite``.
    """
    timeout = check_int("timeout", timeout, minimum=1)  # seconds per cell
    paths = [Path(p) for p in submissions]
    if not paths:
        raise ValueError("no submissions to grade")
    if out_csv is not None and Path(out_csv).exists() and not overwrite:
        raise FileExistsError(f"{out_csv} exists; choose another file or pass overwrite=True (--force)")
    rows: list[Grade] = []
    for path in paths:
        if not path.is_file():
            rows.append(Grade(str(path), path.stem, "", "(notebook)", ERROR, "no such file"))
            continue
        rows.extend(grade_notebook(path, timeout=timeout, quick=quick))
    if out_csv is not None:
        with open(out_csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["student", "lesson", "exercise", "status", "message", "submission"])
            for r in rows:
                writer.writerow([r.student, r.lesson, r.exercise, r.status, r.message, r.submission])
    return rows


def summary(rows: list[Grade]) -> str:
    """A plain-text table: one line per submission, counts of passed / wrong / not attempted / error."""
    lines = [f"{'student':20s} {'lesson':24s} {PASSED:>7s} {WRONG:>6s} {NOT_ATTEMPTED:>14s} {ERROR:>6s}"]
    seen: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        counts = seen.setdefault((r.student, r.lesson or "(not graded)"), {PASSED: 0, WRONG: 0, NOT_ATTEMPTED: 0, ERROR: 0})
        counts[r.status] += 1
    for (student, lesson), c in seen.items():
        lines.append(f"{student:20s} {lesson:24s} {c[PASSED]:7d} {c[WRONG]:6d} {c[NOT_ATTEMPTED]:14d} {c[ERROR]:6d}")
    return "\n".join(lines)
