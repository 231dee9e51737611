"""Build the metalearn-lab Jupyter Book: execute the lessons, write the table of contents, render.

Usage (from the repository root; ``make book`` runs the first line)::

    .venv/bin/python book/build.py            # classroom mode: the lessons as students run them
    .venv/bin/python book/build.py --quick    # quick mode: METALEARN_LAB_QUICK=1 in the kernel
    .venv/bin/python book/build.py --executed-dir DIR   # render notebooks executed elsewhere

What it does, in order:

1. Finds every lesson ``notebooks/[0-9][0-9]_*.md`` (MyST Markdown notebooks).
2. Converts each with jupytext and executes it top to bottom in a fresh kernel, with the working
   folder set to the lessons' folder (so relative paths behave as in JupyterLab). Live widgets'
   outputs are dropped and pre-rendered Try-it explorers become the page's HTML
   (:func:`prepare_for_book`). The result goes to ``book/lessons/NAME.ipynb``
   (git-ignored). A lesson whose text, library code and mode are unchanged since its last
   execution is not run again: a hash of the three is kept in the notebook's metadata.
   A cell error stops the build and names the lesson and the cell.
3. Writes ``book/_toc.yml`` from the lessons present (intro first; results, glossary and
   references last), so a new lesson needs no edit here. The file is generated on every build
   and git-ignored: the lessons in ``notebooks/`` are the one source of truth.
4. Runs ``jupyter-book build`` with execution switched off (``_config.yml``).

The widget manager script is vendored in ``book/_static/vendor/html-manager``; if it is missing
it is fetched from the npm registry with ``npm pack`` (the only download the build may make).
MathJax is copied from the ``jupyter-server-mathjax`` package by ``book/_ext/local_assets.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BOOK_DIR = Path(__file__).resolve().parent
REPO_DIR = BOOK_DIR.parent
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
LIBRARY_DIR = REPO_DIR / "metalearn_lab"
LESSON_GLOB = "[0-9][0-9]_*.md"
QUICK_ENV = "METALEARN_LAB_QUICK"
METADATA_KEY = "metalearn_lab"
FIXED_FRONT = "intro"
FIXED_FRONT_CHAPTERS = ("intro_zh",)  # the introduction in Chinese, right after the English one
FIXED_BACK = ("results", "glossary", "references")

HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"  # the manager matching ipywidgets 8.1
VENDOR_DIR = Path("_static") / "vendor" / "html-manager"


class LessonError(RuntimeError):
    """A lesson failed to execute; the message names the lesson and the cell."""


@dataclass
class Executed:
    name: str
    seconds: float
    reused: bool


def find_lessons(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The lessons, in order: ``notebooks_dir/[0-9][0-9]_*.md``."""
    return sorted(Path(notebooks_dir).glob(LESSON_GLOB))


COMPANIONS_DIR = LIBRARY_DIR / "lessons"


def lesson_slug(md_path: Path) -> str:
    """``notebooks/04_maml_sinusoid.md`` -> ``maml_sinusoid`` (the companion's module name)."""
    return Path(md_path).stem.split("_", 1)[1]


def library_digest() -> str:
    """A hash of the core library (code, shipped checkpoints and results, everything but the lessons'
    companions), so that a change to any of it re-executes every lesson."""
    digest = hashlib.sha256()
    files = (p for p in LIBRARY_DIR.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and COMPANIONS_DIR not in p.parents)
    for path in sorted(files):
        digest.update(str(path.relative_to(LIBRARY_DIR)).encode())
        digest.update(path.read_bytes())
    digest.update((COMPANIONS_DIR / "__init__.py").read_bytes())
    return digest.hexdigest()


def lesson_hash(md_path: Path, quick: bool, library: str | None = None) -> str:
    """A hash of what a lesson's execution depends on: its text, its own companion module, the core
    library and the mode. Another lesson's companion is not part of it."""
    digest = hashlib.sha256()
    digest.update(Path(md_path).read_bytes())
    companion = COMPANIONS_DIR / f"{lesson_slug(md_path)}.py"
    digest.update(companion.read_bytes() if companion.is_file() else b"no companion")
    digest.update(b"quick" if quick else b"classroom")
    digest.update((library or library_digest()).encode())
    return digest.hexdigest()


SOLUTION_TAG = "solution"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
TRYIT_MIMETYPE = "application/vnd.metalearn-lab.tryit+html"  # metalearn_lab.tryit.MIMETYPE


#: ``](04_maml_sinusoid.md)`` or ``](04_maml_sinusoid.md#a-section)``: a link from one lesson to another
LESSON_LINK = re.compile(r"\]\((\d\d_[A-Za-z0-9_]+)\.md(#[^)]*)?\)")


def prepare_for_book(nb) -> dict[str, int]:
    """Make an executed lesson's Try-its honest in the book, where no kernel runs.

    A live ipywidgets output would show sliders that move and redraw nothing, so it is dropped (the
    lesson's pre-rendered twin, :func:`metalearn_lab.tryit.explorer`, follows it). A pre-rendered
    explorer's HTML, stored under its own mimetype so JupyterLab shows a plain image, becomes the
    page's HTML. Returns how many outputs of each kind were changed.
    """
    dropped = explorers = links = 0
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            # a link to another lesson's Markdown file (right in JupyterLab) points at its page in the book
            cell["source"], n = LESSON_LINK.subn(r"](\1.ipynb\2)", cell["source"])
            links += n
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                dropped += 1
                continue
            if TRYIT_MIMETYPE in data:
                output["data"] = {"text/html": data[TRYIT_MIMETYPE], "text/plain": data.get("text/plain", "")}
                explorers += 1
            kept.append(output)
        cell["outputs"] = kept
    if dropped:
        nb.metadata.pop("widgets", None)
    return {"live widgets dropped": dropped, "pre-rendered explorers": explorers, "lesson links": links}


def mark_solutions(nb) -> int:
    """Collapse every solution cell in the book: cells tagged ``solution`` get ``hide-input`` (the
    code folds behind a toggle; the check's output stays visible). Returns how many were marked."""
    marked = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if SOLUTION_TAG in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
            marked += 1
    return marked


def kernel_env(quick: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(QUICK_ENV, None)
    if quick:
        env[QUICK_ENV] = "1"
    env.update(extra or {})
    return env


def _failing_cell(nb) -> tuple[int, str] | None:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, cell.source
    return None


# Appended to every lesson while it runs, then removed: the CPU time the kernel used (all threads,
# kernel start-up and imports included), which a loaded machine inflates far less than wall time.
CPU_PROBE = "import time as _t\nprint('metalearn-lab kernel CPU seconds', _t.process_time())\ndel _t"
CPU_MARK = "metalearn-lab kernel CPU seconds"


def _take_cpu_probe(nb) -> float | None:
    """Remove the probe cell appended by :func:`execute_lesson` and return the seconds it printed."""
    cell = nb.cells.pop()
    for output in cell.get("outputs", []):
        text = output.get("text", "")
        if output.get("output_type") == "stream" and CPU_MARK in text:
            try:
                return float(text.split(CPU_MARK, 1)[1].split()[0])
            except (IndexError, ValueError):
                return None
    return None


def execute_lesson(
    md_path: Path,
    quick: bool,
    timeout: int = 1800,
    env: dict[str, str] | None = None,
):
    """Convert ``md_path`` with jupytext and execute it in a fresh kernel.

    Returns the executed notebook (``nbformat.NotebookNode``) and the seconds it took, from
    starting the kernel to its last cell; the kernel's own CPU seconds are stored in the notebook's
    metadata (``metalearn_lab.kernel_cpu_seconds``). The kernel
    runs in the lesson's folder with ``METALEARN_LAB_QUICK=1`` when ``quick``; ``env`` adds or
    overrides environment variables. Raises :class:`LessonError` naming the notebook and cell.
    The notebook keeps its live widgets and their state (the tests read them);
    :func:`prepare_for_book` makes it the book's page.
    """
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    md_path = Path(md_path).resolve()
    nb = jupytext.read(md_path)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    mark_solutions(nb)
    import nbformat

    nb.cells.append(nbformat.v4.new_code_cell(CPU_PROBE))
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(md_path.parent)}},
        store_widget_state=True,
        allow_errors=False,
        record_timing=False,
    )
    start = time.perf_counter()
    try:
        client.execute(env=kernel_env(quick, env))
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        failing = _failing_cell(nb)
        if failing is None:
            where = "a cell (the kernel died or timed out)"
        else:
            index, source = failing
            head = "\n".join(source.splitlines()[:6])
            where = f"cell {index} (counting from 0, markdown included):\n    " + head.replace("\n", "\n    ")
        raise LessonError(
            f"lesson {md_path.name} failed in {where}\n--- error ---\n{_short(str(error))}"
        ) from None
    seconds = time.perf_counter() - start
    cpu_seconds = _take_cpu_probe(nb)
    nb.metadata.setdefault(METADATA_KEY, {})["kernel_cpu_seconds"] = None if cpu_seconds is None else round(cpu_seconds, 2)
    return nb, seconds


def _short(text: str, limit: int = 4000) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # the traceback's colours
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _stored_hash(ipynb: Path) -> str | None:
    try:
        meta = json.loads(ipynb.read_text(encoding="utf-8"))["metadata"].get(METADATA_KEY, {})
    except (OSError, ValueError, KeyError):
        return None
    return meta.get("source_hash")


def _stored_seconds(ipynb: Path) -> float:
    try:
        return float(json.loads(ipynb.read_text(encoding="utf-8"))["metadata"][METADATA_KEY]["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return float("nan")


def execute_all(
    lessons: list[Path], out_dir: Path, quick: bool, force: bool = False, timeout: int = 1800
) -> list[Executed]:
    """Execute each lesson into ``out_dir/NAME.ipynb`` unless its stored hash is current."""
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    library = library_digest()
    done = []
    for md in lessons:
        target = out_dir / f"{md.stem}.ipynb"
        source_hash = lesson_hash(md, quick, library)
        if not force and target.exists() and _stored_hash(target) == source_hash:
            seconds = _stored_seconds(target)
            print(f"  {md.stem}: unchanged, not re-executed (last run {seconds:.1f} s)", flush=True)
            done.append(Executed(md.stem, seconds, True))
            continue
        print(f"  {md.stem}: executing ({'quick' if quick else 'classroom'} mode) ...", flush=True)
        nb, seconds = execute_lesson(md, quick, timeout=timeout)
        prepare_for_book(nb)
        nb.metadata[METADATA_KEY].update({
            "source_hash": source_hash,
            "mode": "quick" if quick else "classroom",
            "seconds": round(seconds, 2),
        })
        nbformat.write(nb, target)
        print(f"  {md.stem}: {seconds:.1f} s", flush=True)
        done.append(Executed(md.stem, seconds, False))
    return done


def copy_executed(lessons: list[Path], executed_dir: Path, out_dir: Path) -> list[Executed]:
    """Take already-executed notebooks ``executed_dir/NAME.ipynb`` instead of running them (each
    made ready for the book by :func:`prepare_for_book`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [md.stem for md in lessons if not (executed_dir / f"{md.stem}.ipynb").exists()]
    if missing:
        raise SystemExit(f"--executed-dir {executed_dir} lacks executed notebooks for: {', '.join(missing)}")
    import nbformat

    for md in lessons:
        nb = nbformat.read(executed_dir / f"{md.stem}.ipynb", as_version=4)
        prepare_for_book(nb)  # notebooks executed elsewhere (the tests) still hold their live widgets
        nbformat.write(nb, out_dir / f"{md.stem}.ipynb")
    return [Executed(md.stem, _stored_seconds(out_dir / f"{md.stem}.ipynb"), True) for md in lessons]


def remove_stale(out_dir: Path, lessons: list[Path]) -> None:
    keep = {f"{md.stem}.ipynb" for md in lessons}
    for path in out_dir.glob("*.ipynb"):
        if path.name not in keep:
            path.unlink()


def write_results(book_dir: Path, notebooks_dir: Path) -> Path:
    """Render ``results.md`` (generated, git-ignored) from the shipped results files."""
    sys.path.insert(0, str(REPO_DIR))
    from metalearn_lab.report import write_results_page

    return write_results_page(book_dir / "results.md", notebooks_dir=notebooks_dir,
                              benchmark_md=REPO_DIR / "benchmarks" / "README.md")


def write_toc(book_dir: Path, lesson_names: list[str]) -> Path:
    """Write ``book_dir/_toc.yml``: intro, the lessons in order, then the reference pages."""
    lines = [
        "# GENERATED by book/build.py from notebooks/[0-9][0-9]_*.md on every build; do not edit.",
        "# (git-ignored: add a lesson to notebooks/ and it appears here.)",
        "format: jb-book",
        f"root: {FIXED_FRONT}",
        "parts:",
    ]
    lines += ["  - caption: 中文 (Chinese)", "    chapters:"]
    lines += [f"      - file: {name}" for name in FIXED_FRONT_CHAPTERS]
    if lesson_names:  # a part may not be empty
        lines += ["  - caption: Lessons", "    chapters:"]
        lines += [f"      - file: lessons/{name}" for name in lesson_names]
    lines += ["  - caption: Reference", "    chapters:"]
    lines += [f"      - file: {name}" for name in FIXED_BACK]
    toc = book_dir / "_toc.yml"
    toc.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return toc


def ensure_vendor(book_dir: Path) -> None:
    """Fetch the widget manager from the npm registry if the vendored copy is missing."""
    vendor = book_dir / VENDOR_DIR
    if (vendor / "embed.js").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            f"{vendor}/embed.js is missing and npm is not installed to fetch {HTML_MANAGER};"
            " restore it with `git checkout book/_static/vendor` or install npm"
        )
    print(f"fetching {HTML_MANAGER} from the npm registry into {vendor}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", HTML_MANAGER, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (tarball,) = Path(tmp).glob("*.tgz")
        vendor.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.name.startswith("package/dist/") and (
                    name in {"embed.js", "embed.js.LICENSE.txt"} or name.endswith(".woff2")
                ):
                    with tar.extractfile(member) as src, open(vendor / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)


def build_html(book_dir: Path, extra_args: list[str]) -> None:
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book) if jupyter_book.exists() else "jupyter-book", "build", str(book_dir)]
    subprocess.run(command + extra_args, check=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"execute with {QUICK_ENV}=1 (shrunken training)")
    parser.add_argument("--executed-dir", type=Path, help="take executed NAME.ipynb files from here, run nothing")
    parser.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS_DIR, help="where the lessons are")
    parser.add_argument("--book-dir", type=Path, default=BOOK_DIR, help="the book's source folder")
    parser.add_argument("--force", action="store_true", help="re-execute every lesson")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--no-html", action="store_true", help="execute and write the toc, skip jupyter-book")
    parser.add_argument("--all", action="store_true", help="make jupyter-book re-render every page")
    parser.add_argument("--strict", action="store_true", help="turn Sphinx warnings into errors")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    book_dir = args.book_dir.resolve()
    lessons = find_lessons(args.notebooks_dir)
    if not lessons:
        print(f"warning: no lessons ({LESSON_GLOB}) in {args.notebooks_dir}", file=sys.stderr)
    out_dir = book_dir / "lessons"
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir, lessons)

    start = time.perf_counter()
    try:
        if args.executed_dir is not None:
            print(f"taking executed lessons from {args.executed_dir}", flush=True)
            executed = copy_executed(lessons, args.executed_dir.resolve(), out_dir)
        else:
            print(f"executing {len(lessons)} lessons from {args.notebooks_dir}", flush=True)
            executed = execute_all(lessons, out_dir, args.quick, args.force, args.timeout)
    except LessonError as error:
        print(f"\nBOOK BUILD FAILED: {error}", file=sys.stderr)
        return 1
    execute_seconds = time.perf_counter() - start

    write_toc(book_dir, [md.stem for md in lessons])
    write_results(book_dir, args.notebooks_dir)
    ensure_vendor(book_dir)
    render_seconds = 0.0
    if not args.no_html:
        extra = (["--all"] if args.all else []) + (["-W", "-n", "--keep-going"] if args.strict else [])
        start = time.perf_counter()
        try:
            build_html(book_dir, extra)
        except subprocess.CalledProcessError as error:
            print(f"\nBOOK BUILD FAILED: jupyter-book exited with {error.returncode}", file=sys.stderr)
            return 1
        render_seconds = time.perf_counter() - start

    print("\nlesson execution times:")
    for item in executed:
        print(f"  {item.name:32s} {item.seconds:8.1f} s{'  (reused)' if item.reused else ''}")
    print(f"executing: {execute_seconds:.1f} s, rendering: {render_seconds:.1f} s")
    if not args.no_html:
        print(f"site: {book_dir / '_build' / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
