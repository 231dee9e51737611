"""book/build.py: a link from one lesson to another (a Markdown file in JupyterLab) points at its page in the book."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
from _notebook_utils import load_build

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_links_between_lessons_become_links_between_pages():
    build = load_build()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("See [lesson 04](04_maml_sinusoid.md) and [its summary](04_maml_sinusoid.md#summary)."),
        nbformat.v4.new_markdown_cell("An outside link [x](https://example.org/a.md) stays."),
    ])
    counts = build.prepare_for_book(nb)
    assert counts["lesson links"] == 2
    assert nb.cells[0].source == "See [lesson 04](04_maml_sinusoid.ipynb) and [its summary](04_maml_sinusoid.ipynb#summary)."
    assert nb.cells[1].source.endswith("(https://example.org/a.md) stays.")


def test_every_link_to_a_lesson_names_a_lesson_that_exists():
    lessons = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.md")}
    build = load_build()
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md")):
        for cell in jupytext.read(path).cells:
            if cell.cell_type == "markdown":
                for target in re.findall(build.LESSON_LINK, cell.source):
                    assert target[0] in lessons, f"{path.name} links to {target[0]}.md, which is not a lesson"
