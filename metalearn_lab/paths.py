"""Where metalearn-lab looks for data, caches and checkpoints, and the quick-mode switch.

Every lookup follows the same order: an explicit argument, then an environment variable, then a
per-user cache folder (``$XDG_CACHE_HOME/metalearn_lab`` or ``~/.cache/metalearn_lab``).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "METALEARN_LAB_DATA"
CACHE_ENV = "METALEARN_LAB_CACHE"
QUICK_ENV = "METALEARN_LAB_QUICK"
RUNS_ENV = "METALEARN_LAB_RUNS"


def user_cache_root() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/metalearn_lab`` or ``~/.cache/metalearn_lab``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "metalearn_lab"


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """Folder that holds (or will hold) the Omniglot zips.

    Order: ``root`` argument, then ``$METALEARN_LAB_DATA``, then ``<user cache>/data/omniglot``.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return user_cache_root() / "data" / "omniglot"


def cache_dir() -> Path:
    """Folder for derived files (decoded image caches): ``$METALEARN_LAB_CACHE`` or the user cache."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else user_cache_root() / "cache"


def runs_dir() -> Path:
    """Folder where training writes checkpoints and results: ``$METALEARN_LAB_RUNS`` or ``./runs``."""
    env = os.environ.get(RUNS_ENV, "").strip()
    return Path(env).expanduser() if env else Path.cwd() / "runs"


def is_quick() -> bool:
    """True when ``$METALEARN_LAB_QUICK`` is set to 1/true/yes: lessons shrink their training."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
