"""Tests for metalearn_lab.data.lake_runs: Lake's 20 one-shot runs and their scoring."""

from __future__ import annotations

import shutil

import pytest
import torch

from metalearn_lab import paths
from metalearn_lab.baselines import pixel_nearest_neighbour
from metalearn_lab.data import (
    OmniglotDataError,
    load_lake_runs,
    score_lake_runs,
    validate_lake_runs_zip,
)


@pytest.fixture(scope="module")
def runs(omniglot_root):
    return load_lake_runs(omniglot_root)


def test_runs_layout(runs):
    assert len(runs) == 20
    assert [run.name for run in runs] == [f"run{k:02d}" for k in range(1, 21)]
    for run in runs:
        assert run.support.shape == (20, 1, 28, 28) and run.support.dtype == torch.float32
        assert run.query.shape == (20, 1, 28, 28)
        assert 0.0 <= run.support.min() and run.query.max() <= 1.0
        assert run.support.mean() < 0.3 and run.query.mean() < 0.3  # ink = 1
        assert run.labels.dtype == torch.long and run.labels.shape == (20,)
        # Every support character has exactly one query in Lake's runs.
        assert sorted(run.labels.tolist()) == list(range(20))


def test_first_labels_match_class_labels_txt(runs):
    # run01/class_labels.txt starts: item01 -> class08, item02 -> class09, item03 -> class02.
    assert runs[0].labels[:3].tolist() == [7, 8, 1]


def test_pixel_nearest_neighbour_accuracy(runs, omniglot_root):
    result = score_lake_runs(runs, pixel_nearest_neighbour)
    print(f"pixel 1-NN on Lake's runs at 28px: accuracy {result['accuracy']:.3f}")
    # Measured 0.210 (Lake et al. 2015 report 0.217 at 105px); chance is 0.05.
    assert 0.15 <= result["accuracy"] <= 0.30
    assert len(result["per_run"]) == 20
    assert result["error_rate"] == pytest.approx(1 - result["accuracy"])

    full = score_lake_runs(load_lake_runs(omniglot_root, image_size=105), pixel_nearest_neighbour)
    print(f"pixel 1-NN on Lake's runs at 105px: accuracy {full['accuracy']:.3f}")
    assert 0.13 <= full["accuracy"] <= 0.28  # measured 0.190


def test_score_oracle_and_bad_outputs(runs):
    oracle = {id(run.query): run.labels for run in runs}
    assert score_lake_runs(runs, lambda support, query: oracle[id(query)])["accuracy"] == 1.0
    with pytest.raises(ValueError, match=r"shape \[20\]"):
        score_lake_runs(runs, lambda support, query: torch.zeros(20, 20))
    with pytest.raises(ValueError, match="integer"):
        score_lake_runs(runs, lambda support, query: torch.zeros(20))
    with pytest.raises(ValueError, match=r"0\.\.19"):
        score_lake_runs(runs, lambda support, query: torch.full((20,), 20))
    with pytest.raises(ValueError, match="empty"):
        score_lake_runs([], pixel_nearest_neighbour)


def test_pixel_nearest_neighbour_finds_itself(runs):
    run = runs[0]
    assert torch.equal(pixel_nearest_neighbour(run.support, run.support), torch.arange(20))
    with pytest.raises(ValueError, match="same image shape"):
        pixel_nearest_neighbour(run.support, run.query[:, :, :10])


def test_missing_runs_zip(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    with pytest.raises(OmniglotDataError) as err:
        load_lake_runs()
    message = str(err.value)
    assert "all_runs.zip" in message and str(tmp_path) in message and "METALEARN_LAB_DATA" in message


def test_broken_runs_zip(omniglot_root, tmp_path):
    truncated = tmp_path / "all_runs.zip"
    truncated.write_bytes((omniglot_root / "all_runs.zip").read_bytes()[:50_000])
    with pytest.raises(OmniglotDataError, match="all_runs.zip"):
        load_lake_runs(tmp_path)
    shutil.copy(omniglot_root / "images_evaluation.zip", truncated)  # a zip, but not the runs
    with pytest.raises(OmniglotDataError, match="expected 20 folders runNN/"):
        validate_lake_runs_zip(truncated)
