"""Omniglot: find, check, download, decode and cache Lake's handwritten characters.

Omniglot (Lake, Salakhutdinov & Tenenbaum, 2015) has 1623 characters from 50 alphabets, each
drawn once by 20 different people. The data ships as two zips of 105x105 one-bit PNGs:

* ``images_background.zip``: 30 alphabets, 964 characters (Lake's "background" set),
* ``images_evaluation.zip``: 20 alphabets, 659 characters (Lake's "evaluation" set),

plus ``all_runs.zip`` with Lake's 20 one-shot runs (see :mod:`metalearn_lab.data.lake_runs`).

The zips are looked up in :func:`metalearn_lab.paths.data_dir` (an explicit ``root``, then
``$METALEARN_LAB_DATA``, then ``~/.cache/metalearn_lab/data/omniglot``). They are checked by
*content* (counts of alphabets, characters and drawers), not by md5, so rebuilt but
pixel-identical copies are accepted. Decoded images are cached in
:func:`metalearn_lab.paths.cache_dir` as a small, versioned ``.npz`` of ``uint8`` and memoised
in the process, so only the very first :func:`load_omniglot` call is slow.

Conventions: ink is ``1.0`` and background ``0.0`` (the PNGs are the other way round);
characters are ordered background first (sorted alphabet, sorted ``characterNN``), then
evaluation, which is also the order of Lake's global character ids 0001-1623 within each set.

References
----------
Lake, B. M., Salakhutdinov, R., & Tenenbaum, J. B. (2015). Human-level concept learning through
probabilistic program induction. *Science*, 350(6266), 1332-1338.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metalearn_lab.data.files import (
    OMNIGLOT_MD5,
    OMNIGLOT_URLS,
    OmniglotDataError,
    decode_png,
    download_omniglot,
    open_zip,
    where_to_put_files,
)
from metalearn_lab.paths import cache_dir, data_dir
from metalearn_lab.validation import check_int

__all__ = [
    "OMNIGLOT_URLS",
    "OMNIGLOT_MD5",
    "OmniglotDataError",
    "download_omniglot",
    "find_omniglot",
    "validate_omniglot_zip",
    "Omniglot",
    "load_omniglot",
    "lake_split",
    "rotation_split",
    "rotation_split_indices",
]


#: Expected content of each split: zip file name, top folder, alphabets, characters.
_SPLITS: dict[str, tuple[str, str, int, int]] = {
    "background": ("images_background.zip", "images_background", 30, 964),
    "evaluation": ("images_evaluation.zip", "images_evaluation", 20, 659),
}
_DRAWERS = 20
_N_CHARACTERS = 964 + 659
_IMAGE_ZIPS = ("images_background.zip", "images_evaluation.zip")
#: Which split each image zip holds (used to validate a download).
IMAGE_ZIP_SPLITS = {zip_name: split for split, (zip_name, *_) in _SPLITS.items()}
_CACHE_VERSION = 1


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Find and check
# --------------------------------------------------------------------------------------------


def find_omniglot(root: str | os.PathLike | None = None, *, download: bool = False) -> Path:
    """The folder holding ``images_background.zip`` and ``images_evaluation.zip``.

    Parameters
    ----------
    root : path-like, optional
        Folder to use; default ``$METALEARN_LAB_DATA``, then ``~/.cache/metalearn_lab/data/omniglot``
        (see :func:`metalearn_lab.paths.data_dir`).
    download : bool
        If the zips are missing, download them (see :func:`download_omniglot`).

    Returns
    -------
    pathlib.Path
        The data folder (existence is checked here; content by :func:`validate_omniglot_zip`).

    Raises
    ------
    OmniglotDataError
        If a zip is missing and ``download`` is False (or the download fails). The message
        names the folder, ``$METALEARN_LAB_DATA`` and the download URLs.
    """
    folder = data_dir(root)
    missing = [name for name in _IMAGE_ZIPS if not (folder / name).is_file()]
    if not missing:
        return folder
    if download:
        return download_omniglot(folder)
    raise OmniglotDataError(
        f"Omniglot not found: {', '.join(missing)} missing in {folder}.\n"
        f"{where_to_put_files(folder)}"
    )


def validate_omniglot_zip(path: str | os.PathLike, split: str) -> dict:
    """Check an Omniglot image zip by its content (not its md5).

    The zip must hold ``images_<split>/<Alphabet>/characterNN/<id>_<drawer>.png`` with 30 alphabets /
    964 characters (background) or 20 alphabets / 659 characters (evaluation), exactly 20 PNGs
    (one per drawer) in every character folder, and intact CRCs.

    Parameters
    ----------
    path : path-like
        The zip file.
    split : {"background", "evaluation"}
        Which half of Omniglot the zip should be.

    Returns
    -------
    dict
        ``{"path", "split", "alphabets": int, "characters": int, "images": int,
        "index": {alphabet: {character: [sorted member names]}}}`` with alphabets and
        characters sorted.

    Raises
    ------
    ValueError
        If ``split`` is not "background" or "evaluation".
    OmniglotDataError
        If the file is missing, truncated, corrupt or holds something else; the message names
        the file and compares what was found with what was expected.
    """
    if split not in _SPLITS:
        raise ValueError(f"split={split!r} is not valid; use 'background' or 'evaluation'")
    path = Path(path)
    _, top, n_alphabets, n_characters = _SPLITS[split]
    expected = (
        f"expected {top}/<Alphabet>/characterNN/<id>_<drawer>.png with {n_alphabets} alphabets, "
        f"{n_characters} characters and {_DRAWERS} PNGs per character"
    )
    with open_zip(path) as zf:
        try:
            bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as err:
            bad = f"({type(err).__name__}: {err})"
        if bad is not None:
            raise OmniglotDataError(
                f"{path} is corrupt: member {bad} fails its CRC check. Replace the file.\n"
                f"{where_to_put_files(path.parent)}"
            )
        names = zf.namelist()
    pattern = re.compile(rf"^{re.escape(top)}/([^/]+)/([^/]+)/([^/]+\.png)$")
    index: dict[str, dict[str, list[str]]] = {}
    for name in names:
        match = pattern.match(name)
        if match:
            alphabet, character, _ = match.groups()
            index.setdefault(alphabet, {}).setdefault(character, []).append(name)
    n_images = sum(len(v) for chars in index.values() for v in chars.values())
    found_chars = sum(len(chars) for chars in index.values())
    wrong = [
        f"{a}/{c} ({len(v)} PNGs)"
        for a, chars in sorted(index.items())
        for c, v in sorted(chars.items())
        if len(v) != _DRAWERS
    ]
    if len(index) != n_alphabets or found_chars != n_characters or wrong:
        tops = sorted({n.split("/", 1)[0] for n in names})[:5]
        details = (
            f"found {len(index)} alphabets, {found_chars} characters, {n_images} PNGs under "
            f"{top}/ (top-level entries: {tops}, {len(names)} entries in all)"
        )
        if wrong:
            details += f"; characters without exactly {_DRAWERS} drawers: {', '.join(wrong[:5])}"
            details += f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""
        raise OmniglotDataError(
            f"{path} is not a complete Omniglot {split} zip: {expected}; {details}.\n"
            f"{where_to_put_files(path.parent)}"
        )
    index = {a: {c: sorted(index[a][c]) for c in sorted(index[a])} for a in sorted(index)}
    return {
        "path": path,
        "split": split,
        "alphabets": len(index),
        "characters": found_chars,
        "images": n_images,
        "index": index,
    }


# --------------------------------------------------------------------------------------------
# Decode and cache
# --------------------------------------------------------------------------------------------


@dataclass
class Omniglot:
    """All 1623 Omniglot characters as one tensor, with names.

    Attributes
    ----------
    images : torch.Tensor
        float32 ``[n_characters, 20, S, S]`` (1623 characters, 20 drawers), values in [0, 1],
        ink = 1.0 and background = 0.0. Background characters first (sorted alphabet, sorted
        ``characterNN``), then evaluation characters.
    alphabets : list of str
        Alphabet name of each character, length ``n_characters``.
    characters : list of str
        ``"Alphabet/characterNN"`` for each character.
    background : torch.Tensor
        bool ``[n_characters]``, True for characters of ``images_background``.

    Examples
    --------
    >>> import torch
    >>> toy = Omniglot(torch.zeros(2, 20, 28, 28), ["A", "B"], ["A/character01", "B/character01"],
    ...                torch.tensor([True, False]))
    >>> len(toy), toy.image_size
    (2, 28)
    """

    images: torch.Tensor
    alphabets: list[str]
    characters: list[str]
    background: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != self.images.shape[-2]:
            raise ValueError(
                f"images must have shape [n_characters, n_drawers, S, S]; got {tuple(self.images.shape)}"
            )
        n = self.images.shape[0]
        if len(self.alphabets) != n or len(self.characters) != n or self.background.shape != (n,):
            raise ValueError(
                f"alphabets ({len(self.alphabets)}), characters ({len(self.characters)}) and "
                f"background {tuple(self.background.shape)} must all have length {n} (images.shape[0])"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> int:
        """Side ``S`` of the square images."""
        return self.images.shape[-1]


_MEMO: dict[tuple, Omniglot] = {}


def _decode_zip(path: Path, index: dict, image_size: int, progress=None) -> np.ndarray:
    """Decode every PNG of a validated zip -> uint8 ``[n_characters, 20, S, S]``, ink = 255."""
    n = sum(len(chars) for chars in index.values())
    out = np.empty((n, _DRAWERS, image_size, image_size), dtype=np.uint8)
    with open_zip(path) as zf:
        i = 0
        for chars in index.values():
            for members in chars.values():
                for j, member in enumerate(members):
                    try:
                        out[i, j] = decode_png(zf.read(member), image_size)
                    except Exception as err:
                        raise OmniglotDataError(
                            f"{path}: cannot decode {member} ({type(err).__name__}: {err}). "
                            f"Replace the file.\n{where_to_put_files(path.parent)}"
                        ) from err
                i += 1
                if progress is not None:
                    progress.update(1)
    return out


def _zip_key(folder: Path, image_size: int) -> str:
    """sha256 of both zips' bytes, the cache version and the resize settings."""
    digest = hashlib.sha256(f"omniglot-v{_CACHE_VERSION}-{image_size}px-lanczos".encode())
    for name in _IMAGE_ZIPS:
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def omniglot_cache_path(image_size: int = 28) -> Path:
    """Cache file for decoded images of side ``image_size`` in :func:`~metalearn_lab.paths.cache_dir`.

    >>> omniglot_cache_path(28).name
    'omniglot_v1_28px.npz'
    """
    image_size = check_int("image_size", image_size, minimum=1)
    return cache_dir() / f"omniglot_v{_CACHE_VERSION}_{image_size}px.npz"


def _read_cache(path: Path, key: str, image_size: int) -> Omniglot | None:
    """The cached dataset, or None if the file is absent, unreadable, stale or malformed."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != key:
                return None
            images = npz["images"]
            alphabets = [str(a) for a in npz["alphabets"]]
            characters = [str(c) for c in npz["characters"]]
            background = npz["background"]
        expected = (_N_CHARACTERS, _DRAWERS, image_size, image_size)
        if images.shape != expected or images.dtype != np.uint8 or background.dtype != bool:
            return None
        return Omniglot(
            images=torch.from_numpy(images.astype(np.float32) / np.float32(255.0)),
            alphabets=alphabets,
            characters=characters,
            background=torch.from_numpy(background.copy()),
        )
    except Exception:  # garbage bytes, truncated npz, missing arrays, wrong lengths
        return None


def _write_cache(path: Path, key: str, images: np.ndarray, alphabets, characters, background) -> None:
    """Write the cache atomically (temp file in the same folder, then rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(
                    f,
                    key=np.array(key),
                    images=images,
                    alphabets=np.array(alphabets),
                    characters=np.array(characters),
                    background=np.asarray(background, dtype=bool),
                )
            os.chmod(tmp_name, 0o644)  # mkstemp makes 0600 files
            os.replace(tmp_name, path)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
    except OSError as err:  # read-only cache folder: work without a cache
        warnings.warn(f"could not write the Omniglot cache {path}: {err}", stacklevel=3)


def load_omniglot(
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    image_size: int = 28,
) -> Omniglot:
    """Load all 1623 Omniglot characters as ink-on-black float images.

    The PNGs are decoded once, converted to grey levels and resized to ``image_size`` with
    PIL's LANCZOS filter (as in the MAML and Prototypical Networks code), inverted so ink = 1,
    and cached in :func:`metalearn_lab.paths.cache_dir` as ``omniglot_v1_<S>px.npz`` (uint8)
    keyed by a sha256 of the zips' bytes. A stale or damaged cache is rebuilt, never trusted.
    Repeated calls in one process return the same memoised object: do not modify it in place.

    Parameters
    ----------
    root : path-like, optional
        Data folder; default ``$METALEARN_LAB_DATA``, then ``~/.cache/metalearn_lab/data/omniglot``.
    download : bool
        Download the zips if they are missing.
    image_size : int
        Side ``S`` of the output images (28 in most papers; 105 keeps the originals, but takes
        1623*20*105*105*4 bytes = 1.4 GB as float32).

    Returns
    -------
    Omniglot
        ``images`` float32 ``[1623, 20, S, S]``, ``alphabets``, ``characters``, ``background``.

    Raises
    ------
    OmniglotDataError
        If the zips are missing (and not downloaded) or not valid.
    ValueError
        If ``image_size`` is not a positive integer.

    Examples
    --------
    >>> data = load_omniglot()
    >>> data.images.shape
    torch.Size([1623, 20, 28, 28])
    """
    image_size = check_int("image_size", image_size, minimum=1)  # e.g. 28, or 105 for the originals
    folder = find_omniglot(root, download=download)
    stats = tuple(
        (st.st_size, st.st_mtime_ns) for st in ((folder / n).stat() for n in _IMAGE_ZIPS)
    )
    memo_key = (str(folder.resolve()), image_size, stats)
    if memo_key in _MEMO:
        return _MEMO[memo_key]

    key = _zip_key(folder, image_size)
    cache = omniglot_cache_path(image_size)
    data = _read_cache(cache, key, image_size)
    if data is None:
        from tqdm.auto import tqdm

        infos = [validate_omniglot_zip(folder / _SPLITS[s][0], s) for s in ("background", "evaluation")]
        parts, alphabets, characters, background = [], [], [], []
        with tqdm(total=_N_CHARACTERS, desc=f"Decoding Omniglot ({image_size}px)", unit="char") as bar:
            for info in infos:
                parts.append(_decode_zip(info["path"], info["index"], image_size, progress=bar))
                for alphabet, chars in info["index"].items():
                    for character in chars:
                        alphabets.append(alphabet)
                        characters.append(f"{alphabet}/{character}")
                        background.append(info["split"] == "background")
        images = np.concatenate(parts)
        _write_cache(cache, key, images, alphabets, characters, background)
        data = Omniglot(
            images=torch.from_numpy(images.astype(np.float32) / np.float32(255.0)),
            alphabets=alphabets,
            characters=characters,
            background=torch.tensor(background, dtype=torch.bool),
        )
    _MEMO[memo_key] = data
    return data


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def lake_split(data: Omniglot) -> tuple[torch.Tensor, torch.Tensor]:
    """Lake's split: background characters for (meta-)training, evaluation ones for testing.

    Parameters
    ----------
    data : Omniglot
        From :func:`load_omniglot`.

    Returns
    -------
    background : torch.Tensor
        ``[964, 20, 1, S, S]`` (30 alphabets).
    evaluation : torch.Tensor
        ``[659, 20, 1, S, S]`` (20 other alphabets: no alphabet is shared).

    Examples
    --------
    >>> import torch
    >>> toy = Omniglot(torch.zeros(3, 20, 8, 8), ["A", "A", "B"], ["A/c1", "A/c2", "B/c1"],
    ...                torch.tensor([True, True, False]))
    >>> [tuple(t.shape) for t in lake_split(toy)]
    [(2, 20, 1, 8, 8), (1, 20, 1, 8, 8)]
    """
    images = data.images.unsqueeze(2)
    return images[data.background], images[~data.background]


def rotation_split_indices(
    n_characters: int = _N_CHARACTERS, *, n_train: int = 1200, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Character indices of the train and test parts of :func:`rotation_split`.

    Parameters
    ----------
    n_characters : int
        Number of characters (1623 for Omniglot).
    n_train : int
        Characters in the training part, ``1 <= n_train < n_characters``.
    seed : int
        Seed of the ``torch.Generator`` used for the permutation.

    Returns
    -------
    train, test : torch.Tensor
        long ``[n_train]`` and ``[n_characters - n_train]``; disjoint, together all characters.

    Examples
    --------
    >>> train, test = rotation_split_indices(10, n_train=7, seed=0)
    >>> len(train), len(test), sorted(train.tolist() + test.tolist()) == list(range(10))
    (7, 3, True)
    """
    n_characters = check_int("n_characters", n_characters, minimum=2)
    n_train = check_int("n_train", n_train, minimum=1, maximum=n_characters - 1)  # both parts non-empty
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    order = torch.randperm(n_characters, generator=generator)
    return order[:n_train], order[n_train:]


def rotation_split(
    data: Omniglot, *, n_train: int = 1200, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotation protocol with a random split, as in MAML's code: 1200 train characters, 423 test, x4 rotations.

    All characters (both of Lake's sets) are shuffled by a fixed seeded permutation
    (:func:`rotation_split_indices`); the first ``n_train`` are for training, the rest for
    testing, so **train and test characters are disjoint** (alphabets are not: unlike
    :func:`lake_split`, a test character may share an alphabet with training ones). Each
    character rotated by 0, 90, 180 and 270 degrees (``torch.rot90``, counter-clockwise) then
    becomes its own class: the rotation protocol of Santoro et al. (2016) and Vinyals et al.
    (2016). A random split like this one is what MAML's and Reptile's code use (Finn et al. 2017,
    who keep 100 of the 1200 for validation; Nichol et al. 2018); ProtoNets (Snell et al. 2017)
    use Vinyals et al.'s fixed split file instead, whose 423 test characters come from 13
    alphabets, 12 of them absent from training.

    Parameters
    ----------
    data : Omniglot
        From :func:`load_omniglot`.
    n_train : int
        Number of training characters, ``1 <= n_train < len(data)``.
    seed : int
        Seed of the permutation; the default gives the same split on every machine.

    Returns
    -------
    train : torch.Tensor
        ``[4 * n_train, 20, 1, S, S]``, i.e. ``[4800, 20, 1, S, S]`` by default.
    test : torch.Tensor
        ``[4 * (len(data) - n_train), 20, 1, S, S]``, i.e. ``[1692, 20, 1, S, S]``.
        In both, class ``k * n + i`` is character ``i`` of the part rotated by ``k * 90``
        degrees (``n`` = number of characters in that part).

    Examples
    --------
    >>> import torch
    >>> toy = Omniglot(torch.rand(5, 20, 8, 8), list("AAABB"), list("abcde"),
    ...                torch.tensor([True, True, True, False, False]))
    >>> train, test = rotation_split(toy, n_train=3)
    >>> tuple(train.shape), tuple(test.shape)
    ((12, 20, 1, 8, 8), (8, 20, 1, 8, 8))
    >>> torch.equal(train[3 + 0], torch.rot90(train[0], 1, dims=(-2, -1)))
    True
    """
    train_idx, test_idx = rotation_split_indices(len(data), n_train=n_train, seed=seed)
    images = data.images.unsqueeze(2)

    def rotations(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])

    return rotations(images[train_idx]), rotations(images[test_idx])
