"""Every checkpoint shipped in the package: intact (sha256) and still reaching its recorded metric."""

from __future__ import annotations

import json

import pytest
import torch

from metalearn_lab.experiments import EXPERIMENTS, ExperimentConfig, build_model, evaluate_experiment
from metalearn_lab.report import format_result, load_results, write_results_page
from metalearn_lab.shipping import SHIPPED_DIR, read_manifest, sha256_of, verify_shipped
from metalearn_lab.training import load_checkpoint

MANIFEST = read_manifest()


def test_manifest_lists_every_shipped_file():
    assert MANIFEST, "no checkpoints are shipped: metalearn_lab/checkpoints/manifest.json is empty or missing"
    files = {p.name for p in SHIPPED_DIR.glob("*.pt")}
    assert files == {entry["file"] for entry in MANIFEST.values()}
    assert set(MANIFEST) <= set(EXPERIMENTS)
    assert verify_shipped().keys() == MANIFEST.keys()


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_shipped_checkpoint_reproduces_its_metric(name):
    entry = MANIFEST[name]
    path = SHIPPED_DIR / entry["file"]
    assert sha256_of(path) == entry["sha256"]
    ckpt = load_checkpoint(path)  # weights_only=True
    assert ckpt["config"] == entry["config"], "checkpoint and manifest disagree on the config"
    assert ExperimentConfig.from_dict(ckpt["config"]) == EXPERIMENTS[name], "shipped config drifted from experiments.py"
    config = ExperimentConfig.from_dict(ckpt["config"])
    model = build_model(config)
    model.load_state_dict(ckpt["model"])
    torch.manual_seed(0)
    result = evaluate_experiment(config, model, n_tasks=entry["check_subset"]["n_tasks"])
    expected = entry["check_subset"]["mean"]
    if config.algorithm.startswith(("sinusoid", "preference")):  # mean squared errors
        assert result["mean"] == pytest.approx(expected, rel=1e-3)
    elif config.algorithm.startswith("point-robot"):  # returns of sampled episodes: a flipped termination moves them a little
        assert result["mean"] == pytest.approx(expected, rel=2e-2), f"{name}: {result['mean']:.3f} vs manifest {expected:.3f}"
    else:  # accuracy: allow a couple of flipped predictions across CPUs
        assert abs(result["mean"] - expected) <= 0.01, f"{name}: {result['mean']:.4f} vs manifest {expected:.4f}"


def test_results_page_renders_every_shipped_result(tmp_path):
    results = load_results()
    assert set(results) >= set(MANIFEST)
    page = write_results_page(tmp_path / "results.md", notebooks_dir="notebooks").read_text()
    for name, entry in MANIFEST.items():
        r = results[name]
        assert r["mean"] == pytest.approx(entry["mean"])
        shown = format_result(r)
        assert shown in page, f"{name}'s result {shown} is missing from the results page"
    assert (tmp_path / "_generated" / "learning_curves.png").stat().st_size > 10_000
    json.dumps(results)  # plain JSON all the way down
