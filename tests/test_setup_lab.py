"""scripts/setup_lab.py and notebooks/jupytext.toml: set-up and saving never change a lesson.

The set-up is shared by ``make lab`` and repo2docker's ``postBuild`` (README, "On Binder or a
JupyterHub"); these tests run it on a scratch copy of the lessons with ``--prefix`` pointing at a
scratch folder, and save every lesson through Jupytext's contents manager (what JupyterLab's Save
calls) as a notebook that has run. ``test_jupyterlab.py`` does the same in a real browser.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "setup_lab.py"
LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md"))


def _load_script():
    spec = importlib.util.spec_from_file_location("setup_lab", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


setup_lab = _load_script()


def copy_lessons(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for path in LESSONS + [REPO / "notebooks" / "jupytext.toml"]:
        shutil.copy2(path, folder / path.name)
    return folder


def run_setup(notebooks: Path, prefix: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "METALEARN_LAB_DATA": str(notebooks / "no_data_here")}
    return subprocess.run([sys.executable, str(SCRIPT), "--prefix", str(prefix), "--notebooks", str(notebooks), *extra],
                          capture_output=True, text=True, timeout=300, env=env)


def test_there_are_lessons():
    assert LESSONS, f"no lessons in {REPO / 'notebooks'}"


def test_docstring_examples():
    result = doctest.testmod(setup_lab)
    assert result.attempted > 0 and result.failed == 0, result


def test_setup_writes_settings_and_paired_notebooks_but_never_a_lesson(tmp_path):
    notebooks, prefix = copy_lessons(tmp_path / "notebooks"), tmp_path / "prefix"
    before = {p.name: p.read_bytes() for p in notebooks.iterdir()}
    result = run_setup(notebooks, prefix)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name: p.read_bytes() for p in notebooks.iterdir() if p.is_file()} == before, "the set-up changed a lesson"

    lab = json.loads((prefix / "share/jupyter/lab/settings/overrides.d/metalearn-lab.json").read_text())
    viewers = lab["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
    server = json.loads((prefix / "etc/jupyter/jupyter_server_config.json").read_text())
    assert "_lesson_outputs" in server["ContentsManager"]["hide_globs"]

    for md in LESSONS:
        paired = notebooks / "_lesson_outputs" / f"{md.stem}.ipynb"
        assert paired.is_file(), f"no paired notebook for {md.name}"
        assert paired.stat().st_mtime_ns == (notebooks / md.name).stat().st_mtime_ns, "paired notebook newer than its lesson"
    # Omniglot: says where it looked (here: nowhere useful) and how to get it.
    assert "not in" in result.stdout and "metalearn-lab download" in result.stdout


def test_setup_again_keeps_outputs_and_takes_the_new_text(tmp_path):
    import nbformat

    notebooks, prefix = copy_lessons(tmp_path / "notebooks"), tmp_path / "prefix"
    assert run_setup(notebooks, prefix).returncode == 0
    lesson = LESSONS[0].name
    paired = notebooks / "_lesson_outputs" / lesson.replace(".md", ".ipynb")
    nb = nbformat.read(paired, as_version=4)
    code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells[code].outputs = [nbformat.v4.new_output("stream", name="stdout", text="an output from yesterday\n")]
    nbformat.write(nb, paired)
    md = notebooks / lesson  # as if `git pull` changed the lesson's text
    md.write_text(md.read_text(encoding="utf-8").replace("## Learning objectives", "## Learning objectives (new)", 1),
                  encoding="utf-8")
    changed = md.read_bytes()
    assert run_setup(notebooks, prefix).returncode == 0
    nb = nbformat.read(paired, as_version=4)
    assert nb.cells[code].outputs and nb.cells[code].outputs[0]["text"] == "an output from yesterday\n"
    assert any("Learning objectives (new)" in c.source for c in nb.cells)
    assert md.read_bytes() == changed


def test_setup_merges_server_settings_and_moves_old_copies(tmp_path):
    notebooks, prefix = copy_lessons(tmp_path / "notebooks"), tmp_path / "prefix"
    server = prefix / "etc/jupyter/jupyter_server_config.json"
    server.parent.mkdir(parents=True)
    server.write_text(json.dumps({"ServerApp": {"port": 9999}, "ContentsManager": {"hide_globs": ["*.tmp"]}}))
    old = notebooks / LESSONS[0].with_suffix(".ipynb").name  # a copy an older `make lab` paired beside the lesson
    old.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert run_setup(notebooks, prefix).returncode == 0
    assert run_setup(notebooks, prefix).returncode == 0  # twice: nothing is added twice
    config = json.loads(server.read_text())
    assert config == {"ServerApp": {"port": 9999}, "ContentsManager": {"hide_globs": ["*.tmp", "_lesson_outputs"]}}
    assert not old.exists() and (notebooks / "_lesson_outputs" / old.name).exists()


def test_setup_refuses_a_folder_without_lessons(tmp_path):
    result = run_setup(tmp_path, tmp_path / "prefix")
    assert result.returncode != 0 and "--notebooks" in result.stderr and str(tmp_path) in result.stderr


def _as_jupyterlab_saves_it(model: dict) -> dict:
    """The notebook JupyterLab sends back after Run All: outputs, counts, kernel info, UI metadata."""
    content = json.loads(json.dumps(model["content"]))
    content["metadata"]["language_info"] = {"name": "python", "version": "3.11.2", "mimetype": "text/x-python"}
    content["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                                     "version_minor": 0}}
    for count, cell in enumerate(c for c in content["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = count + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
        cell["metadata"].update({"scrolled": True, "collapsed": False,
                                 "execution": {"iopub.status.idle": "2026-01-01T00:00:00.000Z"}})
    return {"type": "notebook", "format": "json", "content": content}


@pytest.mark.parametrize("lesson", [pytest.param(p, id=p.stem) for p in LESSONS])
def test_opening_running_and_saving_leaves_the_lesson_unchanged(lesson, tmp_path):
    """JupyterLab's Save goes through Jupytext's contents manager: the .md must come back byte for byte."""
    from jupytext import TextFileContentsManager

    notebooks = copy_lessons(tmp_path / "notebooks")
    manager = TextFileContentsManager(root_dir=str(notebooks))
    model = manager.get(lesson.name, content=True, type="notebook")
    assert model["content"]["metadata"]["kernelspec"]["name"] == "python3", "no kernel named: JupyterLab would ask"
    manager.save(_as_jupyterlab_saves_it(model), lesson.name)
    assert (notebooks / lesson.name).read_bytes() == lesson.read_bytes(), f"saving {lesson.name} changed it"
    paired = json.loads((notebooks / "_lesson_outputs" / f"{lesson.stem}.ipynb").read_text())
    assert any(c.get("outputs") for c in paired["cells"]), "the outputs were not kept in the paired notebook"
