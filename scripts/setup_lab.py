#!/usr/bin/env python3
"""Set up JupyterLab for the lessons; shared by ``make lab`` and repo2docker's ``postBuild``.

Run it with the Python of the environment that runs JupyterLab (``.venv/bin/python`` for ``make
lab``; the conda environment on Binder or a JupyterHub image). It writes only into that
environment and into the git-ignored ``notebooks/_lesson_outputs/``; it never writes a lesson or
any other tracked file, so ``git status`` stays clean:

1. A double click opens a lesson as a notebook: JupyterLab's default viewer for Markdown and MyST
   files becomes Jupytext's notebook, with the kernel named in the lesson's header (``python3``).
   Written to ``APP_DIR/settings/overrides.d/metalearn-lab.json`` (``APP_DIR`` is JupyterLab's
   application folder, ``PREFIX/share/jupyter/lab``), which also hides the file browser's
   "Modified" column (so lesson names are not cut off) and turns off the news feed (no request
   leaves the machine). A choice the user makes in JupyterLab's Settings Editor still wins.
2. Each lesson shows once: ``notebooks/jupytext.toml`` pairs every lesson with a notebook that
   keeps its outputs in ``notebooks/_lesson_outputs/``, and that folder is added to
   ``ContentsManager.hide_globs`` in ``PREFIX/etc/jupyter/jupyter_server_config.json`` (merged
   with what the file holds).
3. The paired notebooks are brought up to date: inputs from the lesson, outputs kept, the lesson's
   modification time (so Jupytext reads the inputs from the lesson). A lesson changed by ``git
   pull`` opens with its new text. Paired copies left beside the lessons by older set-ups
   (``notebooks/NN_name.ipynb``) move into ``_lesson_outputs/``.
4. Omniglot: prints where the lessons look for it (``metalearn_lab.paths.data_dir``);
   ``--download-data`` fetches it there when it is missing (needs internet).

Usage::

    python scripts/setup_lab.py [--prefix PREFIX] [--notebooks DIR] [--download-data]

``--prefix`` writes both settings files under another folder instead (the tests use a scratch
folder and point JupyterLab at it with ``JUPYTER_CONFIG_PATH`` and ``--LabApp.app_settings_dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
NAME = "metalearn-lab"
OUTPUTS_DIR = "_lesson_outputs"  # the folder named in notebooks/jupytext.toml
LAB_OVERRIDES = {
    # "Jupytext Notebook" is the viewer that Jupytext's JupyterLab extension registers.
    "@jupyterlab/docmanager-extension:plugin": {
        "defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
    },
    "@jupyterlab/filebrowser-extension:browser": {"showLastModifiedColumn": False},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def settings_paths(prefix: Path | None) -> dict[str, Path]:
    """Where the two settings files go: ``{"lab": ..., "server": ...}``."""
    if prefix is None:
        from jupyterlab.commands import get_app_dir  # honours $JUPYTERLAB_DIR

        lab_settings, etc = Path(get_app_dir()) / "settings", Path(sys.prefix) / "etc" / "jupyter"
    else:
        lab_settings, etc = prefix / "share" / "jupyter" / "lab" / "settings", prefix / "etc" / "jupyter"
    return {"lab": lab_settings / "overrides.d" / f"{NAME}.json", "server": etc / "jupyter_server_config.json"}


def server_config(existing: dict) -> dict:
    """``existing`` server settings with the folder of paired notebooks among the hidden files.

    Jupyter reads ``ContentsManager`` settings from ``jupyter_server_config.json`` (a
    ``jupyter_server_config.d`` folder is read for server extensions only), hence the merge.

    >>> server_config({"ServerApp": {"port": 9999}})["ServerApp"]
    {'port': 9999}
    >>> server_config({"ContentsManager": {"hide_globs": ["*.tmp"]}})["ContentsManager"]["hide_globs"]
    ['*.tmp', '_lesson_outputs']
    >>> "__pycache__" in server_config({})["ContentsManager"]["hide_globs"]  # Jupyter's defaults stay
    True
    """
    from jupyter_server.services.contents.manager import ContentsManager

    config = json.loads(json.dumps(existing))
    section = config.setdefault("ContentsManager", {})
    hidden = list(section.get("hide_globs") or ContentsManager.class_traits()["hide_globs"].default())
    if OUTPUTS_DIR not in hidden:
        hidden.append(OUTPUTS_DIR)
    section["hide_globs"] = hidden
    return config


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def configure_jupyterlab(prefix: Path | None = None) -> list[Path]:
    """Write the JupyterLab and server settings (see the module docstring); returns their paths."""
    paths = settings_paths(prefix)
    existing = json.loads(paths["server"].read_text(encoding="utf-8")) if paths["server"].exists() else {}
    _write_json(paths["lab"], LAB_OVERRIDES)
    _write_json(paths["server"], server_config(existing))
    return [paths["lab"], paths["server"]]


def find_lessons(notebooks: Path) -> list[Path]:
    return sorted(Path(notebooks).glob("[0-9][0-9]_*.md"))


def sync_lessons(notebooks: Path) -> list[Path]:
    """Write ``notebooks/_lesson_outputs/NAME.ipynb`` for each lesson: inputs from the lesson, outputs kept.

    Only the paired notebooks are written, never a lesson; each gets its lesson's modification
    time, so Jupytext, which takes the inputs from the newer file of a pair, reads the lesson.
    """
    import jupytext
    import nbformat
    from jupytext.combine import combine_inputs_with_outputs

    written = []
    for md in find_lessons(notebooks):
        target = md.parent / OUTPUTS_DIR / f"{md.stem}.ipynb"
        target.parent.mkdir(exist_ok=True)
        old_copy = md.with_suffix(".ipynb")  # where set-ups before _lesson_outputs/ paired it
        if old_copy.exists() and not target.exists():
            old_copy.rename(target)
        nb = jupytext.read(md)
        if target.exists():
            try:
                nb = combine_inputs_with_outputs(nb, nbformat.read(target, as_version=4), fmt="md:myst")
            except Exception as error:  # an unreadable copy only held outputs: start it afresh
                print(f"{target}: unreadable ({error}); written afresh", file=sys.stderr)
        jupytext.write(nb, target, fmt="ipynb")
        stat = md.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        written.append(target)
    return written


def data_status(download: bool = False) -> str:
    """Where the lessons look for Omniglot and whether it is there; with ``download``, fetch what is missing."""
    from metalearn_lab import paths

    root = paths.data_dir()
    needed = ("images_background.zip", "images_evaluation.zip", "all_runs.zip")
    missing = [name for name in needed if not (root / name).is_file()]
    if missing and download:
        from metalearn_lab.data import download_omniglot

        download_omniglot(root)
        missing = [name for name in needed if not (root / name).is_file()]
    if not missing:
        return f"Omniglot: found in {root}"
    return (f"Omniglot: {', '.join(missing)} not in {root}; lessons 02, 05 and 06 need them. Fetch them with "
            f"`metalearn-lab download` (or this script's --download-data), or set {paths.DATA_ENV} to a folder "
            "that holds them (README, 'Omniglot').")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, help="write the settings under this folder instead of the environment")
    parser.add_argument("--notebooks", type=Path, default=REPO_DIR / "notebooks", help="the lessons (default: %(default)s)")
    parser.add_argument("--download-data", action="store_true", help="fetch Omniglot when it is missing")
    args = parser.parse_args(argv)
    if not find_lessons(args.notebooks):
        parser.error(f"--notebooks: no lessons (NN_name.md) in {args.notebooks}")
    if not (args.notebooks / "jupytext.toml").is_file():
        parser.error(f"--notebooks: {args.notebooks} has no jupytext.toml (it pairs the lessons with {OUTPUTS_DIR}/)")
    for path in configure_jupyterlab(args.prefix):
        print(f"wrote {path}")
    synced = sync_lessons(args.notebooks)
    print(f"synced {len(synced)} lessons with {args.notebooks / OUTPUTS_DIR}")
    print(data_status(args.download_data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
