"""Shared file handling for the data sets: the official files, zip opening, md5, download, PNG decoding.

Omniglot's two image zips (:mod:`metalearn_lab.data.omniglot`) and Lake's one-shot runs
(:mod:`metalearn_lab.data.lake_runs`) come from the same repository and are handled the same way:
looked up in :func:`metalearn_lab.paths.data_dir`, opened with :func:`open_zip` (a clear error for
a missing or truncated file), decoded with :func:`decode_png`, and fetched, when asked, by
:func:`download_omniglot`, which checks each file's md5 before it is renamed into place. Every error
says where the files go (:func:`where_to_put_files`).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from metalearn_lab.paths import DATA_ENV, data_dir
from metalearn_lab.validation import check_int

__all__ = [
    "OMNIGLOT_URLS",
    "OMNIGLOT_MD5",
    "OmniglotDataError",
    "where_to_put_files",
    "open_zip",
    "md5_of",
    "decode_png",
    "download_omniglot",
]


_GITHUB = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"


#: Official download addresses (GitHub ``brendenlake/omniglot``).
OMNIGLOT_URLS: dict[str, str] = {
    "images_background.zip": f"{_GITHUB}/images_background.zip",
    "images_evaluation.zip": f"{_GITHUB}/images_evaluation.zip",
    "all_runs.zip": f"{_GITHUB}/one-shot-classification/all_runs.zip",
}


#: md5 of the official files. Used only to check fresh downloads; files already on disk are
#: checked by content, because pixel-identical rebuilt copies have other md5s.
OMNIGLOT_MD5: dict[str, str] = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
    "all_runs.zip": "e8996daecdf12afeeb4a53a179f06b19",
}


_ALL_FILES = ("images_background.zip", "images_evaluation.zip", "all_runs.zip")


_TIMEOUT_S = 10.0


class OmniglotDataError(RuntimeError):
    """Omniglot files are missing, truncated, corrupt or not what was expected.

    The message names the file, says what is wrong and where the files should go.
    """


def where_to_put_files(folder: str | os.PathLike | None = None) -> str:
    """A few lines telling the user where the Omniglot zips go and how to get them.

    Parameters
    ----------
    folder : path-like, optional
        The data folder that was searched; defaults to :func:`metalearn_lab.paths.data_dir`.

    Returns
    -------
    str
        Human-readable instructions naming the folder, ``$METALEARN_LAB_DATA``, the download
        URLs and ``download=True``.
    """
    folder = data_dir(folder)
    urls = "\n".join(f"  {name}: {url}" for name, url in OMNIGLOT_URLS.items())
    return (
        f"Put images_background.zip, images_evaluation.zip and all_runs.zip in {folder} "
        f"(or set the environment variable {DATA_ENV} to the folder that holds them, or pass "
        f"root=...). Get them with download=True / download_omniglot(), or by hand from:\n{urls}"
    )


def fetch(url: str, dest: Path, timeout: float = _TIMEOUT_S) -> None:
    """Copy the bytes at ``url`` into the file ``dest`` (which the caller later checks)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_valid_file(path: Path) -> bool:
    """True if ``path`` is an intact copy of the Omniglot file of that name (md5 or content)."""
    if not path.is_file():
        return False
    name = path.name
    try:
        if md5_of(path) == OMNIGLOT_MD5.get(name):
            return True
        # the validators live with their data sets, which import this module
        if name == "all_runs.zip":
            from metalearn_lab.data.lake_runs import validate_lake_runs_zip

            validate_lake_runs_zip(path)
            return True
        from metalearn_lab.data.omniglot import IMAGE_ZIP_SPLITS, validate_omniglot_zip

        validate_omniglot_zip(path, IMAGE_ZIP_SPLITS[name])
        return True
    except (OmniglotDataError, OSError, KeyError):
        return False


def download_omniglot(
    root: str | os.PathLike | None = None,
    *,
    files: tuple[str, ...] = _ALL_FILES,
) -> Path:
    """Download the official Omniglot zips into the data folder.

    Each file goes to a temporary file in the same folder, is checked against
    :data:`OMNIGLOT_MD5` and only then renamed into place, so an interrupted download never
    leaves a half-written zip. A file that is already there and valid (official md5, or correct
    content) is never overwritten; an invalid one is replaced.

    Parameters
    ----------
    root : path-like, optional
        Target folder; default :func:`metalearn_lab.paths.data_dir` (``$METALEARN_LAB_DATA``...).
    files : tuple of str
        Which files to get, among ``"images_background.zip"``, ``"images_evaluation.zip"``
        and ``"all_runs.zip"``.

    Returns
    -------
    pathlib.Path
        The folder that now holds the files.

    Raises
    ------
    OmniglotDataError
        When offline (fails after a short timeout), on an HTTP error or an md5 mismatch. The
        message names the file and where to put it by hand.
    ValueError
        If ``files`` names an unknown file.
    """
    if isinstance(files, str):
        files = (files,)
    unknown = [f for f in files if f not in OMNIGLOT_URLS]
    if unknown:
        raise ValueError(f"files={unknown!r} are not Omniglot files; valid: {list(OMNIGLOT_URLS)}")
    folder = data_dir(root)
    todo = [name for name in files if not is_valid_file(folder / name)]
    if not todo:
        return folder
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OmniglotDataError(
            f"cannot create the data folder {folder}: {err}.\n{where_to_put_files(folder)}"
        ) from err
    try:
        for name in todo:
            url = OMNIGLOT_URLS[name]
            fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                try:
                    fetch(url, tmp)
                except Exception as err:  # URLError, timeouts, HTTP errors, blocked sockets
                    raise OmniglotDataError(
                        f"could not download {name} from {url} ({type(err).__name__}: {err}). "
                        f"Are you offline?\n{where_to_put_files(folder)}"
                    ) from err
                got = md5_of(tmp)
                if got != OMNIGLOT_MD5[name]:
                    raise OmniglotDataError(
                        f"downloaded {name} from {url} has md5 {got}, expected "
                        f"{OMNIGLOT_MD5[name]} (incomplete or altered download); nothing was "
                        f"written.\n{where_to_put_files(folder)}"
                    )
                os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
                os.replace(tmp, folder / name)
            finally:
                tmp.unlink(missing_ok=True)
    except OmniglotDataError:
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise
    return folder


def open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise OmniglotDataError(f"{path} does not exist.\n{where_to_put_files(path.parent)}")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise OmniglotDataError(
            f"{path} is not a readable zip ({type(err).__name__}: {err}); it is probably "
            f"truncated or corrupt ({path.stat().st_size:,} bytes). Replace it.\n"
            f"{where_to_put_files(path.parent)}"
        ) from err


def decode_png(data: bytes, image_size: int) -> np.ndarray:
    """One Omniglot PNG (white background, black ink) -> uint8 ``[S, S]`` with ink = 255, ``S = image_size``."""
    image_size = check_int("image_size", image_size, minimum=1)
    image = Image.open(io.BytesIO(data)).convert("L")
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.LANCZOS)
    return 255 - np.asarray(image, dtype=np.uint8)
