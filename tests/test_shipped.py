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
        row = next(line for line in page.splitlines() if f"**{shown}**" in line)
        assert row.split("|")[3].strip() == ("yes" if r["transductive"] else "no"), row  # the transductive column
    assert (tmp_path / "_generated" / "learning_curves.png").stat().st_size > 10_000
    json.dumps(results)  # plain JSON all the way down


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_every_shown_interval_is_students_t_over_the_stored_values(name):
    """Results file, manifest and results page give one interval, recomputed here from the per-task
    (or, for Lake's runs, per-run) values stored with it."""
    from metalearn_lab.metrics import mean_confidence_interval, summarize_mse

    result, entry = load_results()[name], MANIFEST[name]
    pairs = [(result, entry)] + [(result["by_steps"][s], entry["by_steps"][s]) for s in result.get("by_steps", {})]
    for stored, recorded in pairs:
        values = stored["values"]
        if "median" in stored:  # a sinusoid MSE summary: the same summary again
            again = summarize_mse(torch.tensor(values, dtype=torch.float64))
            assert {k: again[k] for k in ("mean", "ci95", "n_tasks", "n_diverged")} == pytest.approx(
                {k: stored[k] for k in ("mean", "ci95", "n_tasks", "n_diverged")}, rel=1e-12)
        else:
            assert mean_confidence_interval(values) == pytest.approx((stored["mean"], stored["ci95"]), rel=1e-12)
        assert (recorded["mean"], recorded["ci95"]) == (stored["mean"], stored["ci95"])
        assert "values" not in recorded  # the manifest stays small
    assert isinstance(result["transductive"], bool) and result["transductive"] is entry["transductive"]
    assert result["protocol"] == entry["protocol"] and ("; transductive: " in result["protocol"]) is result["transductive"]
    if "per_run" in result:  # Lake's runs: the interval is over the 20 runs
        assert result["values"] == result["per_run"] and len(result["values"]) == 20


def test_a_shipped_experiment_loads_with_the_manifest_record(monkeypatch):
    from metalearn_lab.experiments import load_experiment

    name = "omniglot-siamese"
    _, info = load_experiment(name, progress=False)
    assert info["source"] == "shipped"
    for key in ("mean", "ci95", "protocol", "transductive"):
        assert info["metrics"][key] == MANIFEST[name][key], key
