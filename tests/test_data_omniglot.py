"""Tests for metalearn_lab.data.omniglot: checking, finding, downloading, decoding, caching, splits."""

from __future__ import annotations

import hashlib
import shutil
import time
import zipfile

import numpy as np
import pytest
import torch

import metalearn_lab.data.files as files
import metalearn_lab.data.omniglot as om
from metalearn_lab import paths
from metalearn_lab.data import (
    OmniglotDataError,
    download_omniglot,
    find_omniglot,
    lake_split,
    load_omniglot,
    rotation_split,
    rotation_split_indices,
    validate_omniglot_zip,
)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fresh_memo(monkeypatch):
    """An empty in-process memo for this test only (the real one is restored afterwards)."""
    monkeypatch.setattr(om, "_MEMO", {})


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "split, alphabets, characters", [("background", 30, 964), ("evaluation", 20, 659)]
)
def test_validate_shared_zips(omniglot_root, split, alphabets, characters):
    info = validate_omniglot_zip(omniglot_root / f"images_{split}.zip", split)
    assert (info["alphabets"], info["characters"], info["images"]) == (alphabets, characters, 20 * characters)
    assert all(len(v) == 20 for chars in info["index"].values() for v in chars.values())


def test_validate_truncated_zip(omniglot_root, tmp_path):
    truncated = tmp_path / "images_evaluation.zip"
    truncated.write_bytes((omniglot_root / "images_evaluation.zip").read_bytes()[:1_000_000])
    with pytest.raises(OmniglotDataError, match="truncated") as err:
        validate_omniglot_zip(truncated, "evaluation")
    assert str(truncated) in str(err.value)


def test_validate_foreign_zip(tmp_path):
    foreign = tmp_path / "images_background.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(foreign, "w") as zf:
        for k in range(5):
            zf.writestr(f"stuff/file{k}.bin", rng.bytes(100))
    with pytest.raises(OmniglotDataError) as err:
        validate_omniglot_zip(foreign, "background")
    message = str(err.value)
    assert str(foreign) in message
    assert "expected images_background/" in message and "30 alphabets" in message
    assert "found 0 alphabets" in message and "stuff" in message


def test_validate_wrong_split(omniglot_root):
    with pytest.raises(OmniglotDataError, match="20 alphabets, 659 characters"):
        validate_omniglot_zip(omniglot_root / "images_background.zip", "evaluation")
    with pytest.raises(ValueError, match="split='train'"):
        validate_omniglot_zip(omniglot_root / "images_background.zip", "train")


def test_validate_missing_drawer(omniglot_root, tmp_path):
    source = omniglot_root / "images_evaluation.zip"
    broken = tmp_path / "images_evaluation.zip"
    dropped = "images_evaluation/Angelic/character01/0965_07.png"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(broken, "w", zipfile.ZIP_STORED) as zout:
        assert dropped in zin.namelist()
        for info in zin.infolist():
            if info.filename != dropped:
                data = zin.read(info)
                info.compress_type = zipfile.ZIP_STORED
                zout.writestr(info, data)
    with pytest.raises(OmniglotDataError) as err:
        validate_omniglot_zip(broken, "evaluation")
    assert "Angelic/character01 (19 PNGs)" in str(err.value)
    assert str(broken) in str(err.value)


def test_validate_corrupt_member(omniglot_root, tmp_path):
    """Flipping bytes inside compressed data is caught by the CRC check."""
    data = bytearray((omniglot_root / "images_evaluation.zip").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    corrupt = tmp_path / "images_evaluation.zip"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(OmniglotDataError, match="corrupt") as err:
        validate_omniglot_zip(corrupt, "evaluation")
    assert str(corrupt) in str(err.value)


# ------------------------------------------------------------------------------ find / download


def test_find_missing_folder(tmp_path, monkeypatch):
    missing = tmp_path / "no_such_folder"
    monkeypatch.setenv(paths.DATA_ENV, str(missing))
    with pytest.raises(OmniglotDataError) as err:
        find_omniglot()
    message = str(err.value)
    assert str(missing) in message
    assert "METALEARN_LAB_DATA" in message
    assert om.OMNIGLOT_URLS["images_background.zip"] in message and "download=True" in message


def test_find_shared(omniglot_root):
    assert find_omniglot() == omniglot_root


def test_download_offline_fails_fast_and_cleanly(tmp_path):
    target = tmp_path / "omniglot"
    start = time.perf_counter()
    with pytest.raises(OmniglotDataError) as err:
        find_omniglot(target, download=True)
    assert time.perf_counter() - start < 5
    assert "images_background.zip" in str(err.value) and "METALEARN_LAB_DATA" in str(err.value)
    assert not target.exists() or list(target.iterdir()) == []


def test_download_rejects_wrong_md5(tmp_path, monkeypatch):
    def fake_fetch(url, dest, timeout=None):
        dest.write_bytes(b"not the real omniglot zip")

    monkeypatch.setattr(files, "fetch", fake_fetch)
    with pytest.raises(OmniglotDataError, match="md5") as err:
        download_omniglot(tmp_path, files=("all_runs.zip",))
    assert "all_runs.zip" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_download_keeps_valid_files_and_replaces_broken_ones(omniglot_root, tmp_path, monkeypatch):
    # A content-valid (rebuilt, non-official md5) image zip and an official all_runs.zip.
    for name in ("images_evaluation.zip", "all_runs.zip"):
        shutil.copy(omniglot_root / name, tmp_path / name)
    before = {name: sha256(tmp_path / name) for name in ("images_evaluation.zip", "all_runs.zip")}

    def no_fetch(url, dest, timeout=None):
        raise AssertionError(f"download_omniglot fetched {url} although the file was valid")

    monkeypatch.setattr(files, "fetch", no_fetch)
    assert download_omniglot(tmp_path, files=("images_evaluation.zip", "all_runs.zip")) == tmp_path
    assert {name: sha256(tmp_path / name) for name in before} == before

    # A broken file is replaced by a download whose md5 checks out.
    (tmp_path / "all_runs.zip").write_bytes(b"garbage")
    fetched = []

    def good_fetch(url, dest, timeout=None):
        fetched.append(url)
        shutil.copy(omniglot_root / "all_runs.zip", dest)

    monkeypatch.setattr(files, "fetch", good_fetch)
    download_omniglot(tmp_path, files=("all_runs.zip",))
    assert fetched == [om.OMNIGLOT_URLS["all_runs.zip"]]
    assert sha256(tmp_path / "all_runs.zip") == before["all_runs.zip"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all_runs.zip", "images_evaluation.zip"]


def test_download_unknown_file(tmp_path):
    with pytest.raises(ValueError, match="not Omniglot files"):
        download_omniglot(tmp_path, files=("mnist.zip",))


# ------------------------------------------------------------------------------ load and cache


def test_load_omniglot(omniglot):
    images = omniglot.images
    assert images.shape == (1623, 20, 28, 28) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert images.mean() < 0.3  # ink = 1 on a background of 0
    assert images[..., 0, :].mean() < 0.02  # borders are background
    assert int(omniglot.background.sum()) == 964
    assert bool(omniglot.background[:964].all()) and not bool(omniglot.background[964:].any())
    assert len(set(omniglot.alphabets)) == 50 and len(set(omniglot.characters)) == 1623
    assert omniglot.characters[0] == "Alphabet_of_the_Magi/character01"
    assert omniglot.characters[964] == "Angelic/character01"
    assert omniglot.characters == sorted(omniglot.characters[:964]) + sorted(omniglot.characters[964:])


def test_load_is_memoised(omniglot, omniglot_root):
    assert load_omniglot(omniglot_root) is omniglot


def test_load_rejects_bad_image_size(omniglot_root):
    with pytest.raises(ValueError, match="image_size"):
        load_omniglot(omniglot_root, image_size=0)


def test_cache_is_reused(omniglot, omniglot_root, tmp_path, monkeypatch, fresh_memo):
    cache = om.omniglot_cache_path(28)
    assert cache.is_file(), "the session fixture should have written the cache"
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path))
    shutil.copy(cache, om.omniglot_cache_path(28))

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded the zips although a valid cache exists")

    monkeypatch.setattr(om, "_decode_zip", must_not_decode)
    again = load_omniglot(omniglot_root)
    assert again is not omniglot
    assert torch.equal(again.images, omniglot.images)
    assert again.characters == omniglot.characters and torch.equal(again.background, omniglot.background)
    assert cache.stat().st_size < 20e6  # uint8, compressed


@pytest.mark.parametrize("damage", ["garbage", "stale_key", "wrong_shape"])
def test_damaged_cache_is_rebuilt(omniglot_root, tmp_path, monkeypatch, fresh_memo, damage):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path))
    cache = om.omniglot_cache_path(28)
    if damage == "garbage":
        cache.write_bytes(b"\x00garbage" * 100)
    else:
        key = "stale" if damage == "stale_key" else om._zip_key(omniglot_root, 28)
        n = 1623 if damage == "stale_key" else 3
        np.savez_compressed(
            cache,
            key=np.array(key),
            images=np.zeros((n, 20, 28, 28), np.uint8),
            alphabets=np.array(["A"] * n),
            characters=np.array(["A/c"] * n),
            background=np.ones(n, bool),
        )
    calls = []

    def fake_decode(path, index, image_size, progress=None):  # fast stand-in for the real decode
        calls.append(path.name)
        n = sum(len(chars) for chars in index.values())
        return np.full((n, 20, image_size, image_size), 255, np.uint8)

    monkeypatch.setattr(om, "_decode_zip", fake_decode)
    data = load_omniglot(omniglot_root)
    assert calls == ["images_background.zip", "images_evaluation.zip"]
    assert data.images.shape == (1623, 20, 28, 28) and bool((data.images == 1.0).all())
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]  # no temp files left

    # The rebuilt cache is now trusted.
    om._MEMO.clear()
    monkeypatch.setattr(om, "_decode_zip", lambda *a, **k: pytest.fail("decoded a valid cache"))
    assert bool((load_omniglot(omniglot_root).images == 1.0).all())


# ------------------------------------------------------------------------------ splits


def test_lake_split(omniglot):
    background, evaluation = lake_split(omniglot)
    assert background.shape == (964, 20, 1, 28, 28)
    assert evaluation.shape == (659, 20, 1, 28, 28)
    assert torch.equal(evaluation[0, :, 0], omniglot.images[964])


def test_rotation_split(omniglot):
    train, test = rotation_split(omniglot)
    assert train.shape == (4 * 1200, 20, 1, 28, 28)
    assert test.shape == (4 * 423, 20, 1, 28, 28)
    train_idx, test_idx = rotation_split_indices(len(omniglot), n_train=1200, seed=1)
    # Train and test characters are disjoint and together are all 1623.
    assert set(train_idx.tolist()).isdisjoint(test_idx.tolist())
    assert sorted(train_idx.tolist() + test_idx.tolist()) == list(range(1623))
    # Class k * n + i is character i rotated by k * 90 degrees.
    for i in (0, 517, 1199):
        base = omniglot.images[train_idx[i]]
        assert torch.equal(train[i, :, 0], base)
        for k in (1, 2, 3):
            assert torch.equal(train[k * 1200 + i], torch.rot90(train[i], k, dims=(-2, -1)))
    assert torch.equal(test[3 * 423 + 5, :, 0], torch.rot90(omniglot.images[test_idx[5]], 3, dims=(-2, -1)))


def test_rotation_split_is_deterministic():
    a = rotation_split_indices(1623, n_train=1200, seed=1)
    b = rotation_split_indices(1623, n_train=1200, seed=1)
    c = rotation_split_indices(1623, n_train=1200, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("n_train", [0, 1623, 2000, 1.5, True])
def test_rotation_split_validates_n_train(n_train):
    with pytest.raises(ValueError, match="n_train"):
        rotation_split_indices(1623, n_train=n_train)
