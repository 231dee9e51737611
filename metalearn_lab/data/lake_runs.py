"""Lake's 20 one-shot, 20-way classification runs (``all_runs.zip``) and how to score them.

Each run shows 20 new characters from one evaluation alphabet, one image each (the *support*
set, ``training/class01..20.png``), and 20 test images of the same characters drawn by other
people (the *query* set, ``test/item01..20.png``). ``class_labels.txt`` says which support image
each query matches. The 20 runs come in pairs from 10 of the 20 evaluation alphabets (runs 01-02
Atlantean, ..., 19-20 Tibetan: their images are Omniglot's). Humans make 4.5% errors (Lake et al.
2015, p. 1335); a nearest neighbour on raw pixels gets 21.7% right (Lake et al. 2013, as listed by
Koch et al. 2015, Table 2; see :func:`metalearn_lab.experiments.published`).

References
----------
Lake, B. M., Salakhutdinov, R., & Tenenbaum, J. B. (2015). Human-level concept learning through
probabilistic program induction. *Science*, 350(6266), 1332-1338.
Lake, B. M., Salakhutdinov, R., & Tenenbaum, J. B. (2013). One-shot learning by inverting a
compositional causal process. *NIPS*.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metalearn_lab.data.files import (
    OmniglotDataError,
    decode_png,
    download_omniglot,
    open_zip,
    where_to_put_files,
)
from metalearn_lab.paths import data_dir
from metalearn_lab.validation import check_int

__all__ = [
    "LakeRun",
    "load_lake_runs",
    "validate_lake_runs_zip",
    "score_lake_runs",
    "sample_within_alphabet_runs",
]

_N_RUNS = 20
_N_WAY = 20
_LINE = re.compile(r"^(run\d\d)/test/item(\d\d)\.png\s+(run\d\d)/training/class(\d\d)\.png$")


@dataclass
class LakeRun:
    """One of Lake's one-shot runs: 20 support images, 20 queries, and the answers.

    Attributes
    ----------
    support : torch.Tensor
        float32 ``[20, 1, S, S]``: ``training/class01..class20``, ink = 1.
    query : torch.Tensor
        float32 ``[20, 1, S, S]``: ``test/item01..item20``, ink = 1.
    labels : torch.Tensor
        long ``[20]``: for each query, the index (0..19) of its matching support image.
    name : str
        ``"run01"`` ... ``"run20"``.
    """

    support: torch.Tensor
    query: torch.Tensor
    labels: torch.Tensor
    name: str


def validate_lake_runs_zip(path: str | os.PathLike) -> dict:
    """Check that ``all_runs.zip`` holds Lake's 20 runs and return their layout.

    Parameters
    ----------
    path : path-like
        The zip file.

    Returns
    -------
    dict
        ``{"path", "runs": ["run01", ...], "labels": {run: long array [20]}}`` where
        ``labels[run][i]`` is the support index matching query ``i``.

    Raises
    ------
    OmniglotDataError
        If the file is missing, not a zip, or lacks runs, images or a valid ``class_labels.txt``.
    """
    path = Path(path)
    with open_zip(path) as zf:
        names = set(zf.namelist())
        runs = sorted({n.split("/", 1)[0] for n in names if re.match(r"^run\d\d/", n)})
        problems = []
        if len(runs) != _N_RUNS:
            problems.append(f"found {len(runs)} runNN/ folders")
        labels = {}
        for run in runs:
            for kind, stem in (("training", "class"), ("test", "item")):
                missing = [
                    f"{run}/{kind}/{stem}{k:02d}.png"
                    for k in range(1, _N_WAY + 1)
                    if f"{run}/{kind}/{stem}{k:02d}.png" not in names
                ]
                if missing:
                    problems.append(f"{len(missing)} PNGs missing, e.g. {missing[0]}")
            try:
                text = zf.read(f"{run}/class_labels.txt").decode("ascii")
            except (KeyError, zipfile.BadZipFile, UnicodeDecodeError, OSError) as err:
                problems.append(f"{run}/class_labels.txt unreadable ({type(err).__name__})")
                continue
            run_labels = np.full(_N_WAY, -1, dtype=np.int64)
            for line in text.splitlines():
                match = _LINE.match(line.strip())
                if match and match.group(1) == run == match.group(3):
                    run_labels[int(match.group(2)) - 1] = int(match.group(4)) - 1
            if (run_labels < 0).any() or (run_labels >= _N_WAY).any():
                problems.append(f"{run}/class_labels.txt does not give a class for all 20 items")
            labels[run] = run_labels
    if problems:
        raise OmniglotDataError(
            f"{path} is not Lake's all_runs.zip: expected {_N_RUNS} folders runNN/ each with "
            f"training/class01..20.png, test/item01..20.png and class_labels.txt; "
            f"{'; '.join(problems[:5])}.\n{where_to_put_files(path.parent)}"
        )
    return {"path": path, "runs": runs, "labels": labels}


def load_lake_runs(
    root: str | os.PathLike | None = None,
    *,
    image_size: int = 28,
    download: bool = False,
) -> list[LakeRun]:
    """Load Lake's 20 one-shot 20-way runs from ``all_runs.zip``.

    Images are converted like :func:`~metalearn_lab.data.omniglot.load_omniglot` does it:
    grey levels, LANCZOS resize to ``image_size``, inverted so ink = 1.

    Parameters
    ----------
    root : path-like, optional
        Data folder; default ``$METALEARN_LAB_DATA``, then ``~/.cache/metalearn_lab/data/omniglot``.
    image_size : int
        Side ``S`` of the images (105 keeps the originals).
    download : bool
        Download ``all_runs.zip`` if it is missing.

    Returns
    -------
    list of LakeRun
        20 runs, ``run01`` first; each ``support``/``query`` ``[20, 1, S, S]``, ``labels`` ``[20]``.

    Raises
    ------
    OmniglotDataError
        If ``all_runs.zip`` is missing or broken; the message says where to put it.
    ValueError
        If ``image_size`` is not a positive integer.

    Examples
    --------
    >>> runs = load_lake_runs()
    >>> len(runs), tuple(runs[0].support.shape)
    (20, (20, 1, 28, 28))
    """
    image_size = check_int("image_size", image_size, minimum=1)  # e.g. 28, or 105 for the originals
    folder = data_dir(root)
    path = folder / "all_runs.zip"
    if not path.is_file():
        if download:
            download_omniglot(folder, files=("all_runs.zip",))
        else:
            raise OmniglotDataError(
                f"Lake's runs not found: all_runs.zip missing in {folder}.\n"
                f"{where_to_put_files(folder)}"
            )
    layout = validate_lake_runs_zip(path)
    runs = []
    with open_zip(path) as zf:

        def read(member: str) -> np.ndarray:
            try:
                return decode_png(zf.read(member), image_size)
            except Exception as err:
                raise OmniglotDataError(
                    f"{path}: cannot decode {member} ({type(err).__name__}: {err}). Replace "
                    f"the file.\n{where_to_put_files(folder)}"
                ) from err

        for run in layout["runs"]:
            images = {}
            for kind, stem in (("training", "class"), ("test", "item")):
                stack = np.stack([read(f"{run}/{kind}/{stem}{k:02d}.png") for k in range(1, _N_WAY + 1)])
                images[kind] = torch.from_numpy(stack.astype(np.float32) / np.float32(255.0)).unsqueeze(1)
            runs.append(
                LakeRun(
                    support=images["training"],
                    query=images["test"],
                    labels=torch.from_numpy(layout["labels"][run]),
                    name=run,
                )
            )
    return runs


def score_lake_runs(
    runs: list[LakeRun],
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> dict:
    """Score a one-shot classifier on Lake's runs.

    Parameters
    ----------
    runs : list of LakeRun
        From :func:`load_lake_runs`.
    predict : callable
        ``predict(support [20, 1, S, S], query [20, 1, S, S]) -> LongTensor [20]``: for each
        query, the index of the support image it is judged to match.

    Returns
    -------
    dict
        ``{"per_run": [accuracy of each run], "accuracy": mean accuracy, "error_rate":
        1 - accuracy}``; accuracies are fractions in [0, 1].

    Raises
    ------
    ValueError
        If ``runs`` is empty or ``predict`` returns something that is not an integer tensor of
        shape ``[n_query]`` with values in ``0..n_support-1``.

    Examples
    --------
    >>> import torch
    >>> run = LakeRun(torch.rand(20, 1, 8, 8), torch.rand(20, 1, 8, 8), torch.arange(20), "toy")
    >>> score_lake_runs([run], lambda support, query: torch.arange(20))["accuracy"]
    1.0
    """
    if len(runs) == 0:
        raise ValueError("runs is empty; pass the list returned by load_lake_runs()")
    per_run = []
    for run in runs:
        with torch.no_grad():
            output = predict(run.support, run.query)
        try:
            chosen = torch.as_tensor(output)
        except Exception as err:
            raise ValueError(
                f"predict must return a LongTensor of shape [{len(run.query)}]; on {run.name} it "
                f"returned {type(output).__name__}"
            ) from err
        n_query, n_support = len(run.query), len(run.support)
        if chosen.shape != (n_query,) or chosen.dtype.is_floating_point or chosen.dtype.is_complex:
            raise ValueError(
                f"predict must return integer support indices of shape [{n_query}] (one per query); "
                f"on {run.name} it returned dtype {chosen.dtype}, shape {tuple(chosen.shape)}"
            )
        if chosen.dtype == torch.bool or chosen.min() < 0 or chosen.max() >= n_support:
            raise ValueError(
                f"predict must return support indices in 0..{n_support - 1}; on {run.name} it "
                f"returned values from {int(chosen.min())} to {int(chosen.max())}"
            )
        per_run.append(float((chosen.cpu() == run.labels).float().mean()))
    accuracy = float(np.mean(per_run))
    return {"per_run": per_run, "accuracy": accuracy, "error_rate": 1.0 - accuracy}


def sample_within_alphabet_runs(
    alphabets: list[torch.Tensor],
    runs_per_alphabet: int,
    *,
    n_way: int = 20,
    seed: int = 0,
    names: list[str] | None = None,
) -> list[LakeRun]:
    """One-shot runs built like Lake's, from other characters: for validation without touching the test runs.

    Each run takes ``n_way`` characters of one alphabet and two different drawers: drawer A's images
    are the support set (one per character), drawer B's the queries, in a shuffled order; the label of
    query ``i`` is the index of its character's support image. Lake et al.'s 20 runs were made the
    same way from the 20 evaluation alphabets (two runs per alphabet for 10 of them).

    Parameters
    ----------
    alphabets : list of Tensor ``[n_characters, n_drawers, C, S, S]``
        One tensor per alphabet (e.g. held-out background alphabets), each with >= ``n_way`` characters.
    runs_per_alphabet : int >= 1
    n_way : int >= 2
        Characters per run (20 in Lake's runs).
    seed : int
        Seeds the choice of characters, drawers and query order: the same seed gives the same runs.
    names : list of str, optional
        Alphabet names, used in the runs' names.

    Returns
    -------
    list of LakeRun
        ``len(alphabets) * runs_per_alphabet`` runs named ``"<alphabet>-<k>"``.

    Examples
    --------
    >>> runs = sample_within_alphabet_runs([torch.rand(25, 20, 1, 8, 8)], 2, n_way=20, seed=0)
    >>> len(runs), tuple(runs[0].support.shape), sorted(runs[0].labels.tolist()) == list(range(20))
    (2, (20, 1, 8, 8), True)
    """
    from metalearn_lab.validation import check_int

    runs_per_alphabet = check_int("runs_per_alphabet", runs_per_alphabet)
    n_way = check_int("n_way", n_way, minimum=2)
    seed = check_int("seed", seed, minimum=0)
    if not alphabets:
        raise ValueError("alphabets is empty; pass one tensor [n_characters, n_drawers, C, S, S] per alphabet")
    names = names or [f"alphabet{i}" for i in range(len(alphabets))]
    if len(names) != len(alphabets):
        raise ValueError(f"names has {len(names)} entries for {len(alphabets)} alphabets")
    generator = torch.Generator().manual_seed(int(seed))
    runs = []
    for name, images in zip(names, alphabets):
        if images.dim() != 5 or images.shape[0] < n_way or images.shape[1] < 2:
            raise ValueError(f"alphabet {name!r} must be [n_characters >= {n_way}, n_drawers >= 2, C, S, S], "
                             f"got shape {tuple(images.shape)}")
        for k in range(runs_per_alphabet):
            characters = torch.randperm(images.shape[0], generator=generator)[:n_way]
            drawer_a, drawer_b = torch.randperm(images.shape[1], generator=generator)[:2].tolist()
            order = torch.randperm(n_way, generator=generator)
            support = images[characters, drawer_a]
            query = images[characters[order], drawer_b]
            runs.append(LakeRun(support=support, query=query, labels=order.clone(), name=f"{name}-{k + 1}"))
    return runs
