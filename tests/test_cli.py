"""Tests for metalearn_lab.cli and metalearn_lab.shipping (always into tmp_path, never the package)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time

import pytest
import torch

from metalearn_lab import shipping, training
from metalearn_lab.cli import main
from metalearn_lab.experiments import EXPERIMENTS
from metalearn_lab.shipping import read_manifest, ship_run, verify_shipped
from metalearn_lab.training import load_checkpoint


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    """A throw-away ``metalearn_lab/checkpoints`` (and runs folder): tests never touch the package."""
    folder = tmp_path / "package" / "checkpoints"
    monkeypatch.setattr(shipping, "SHIPPED_DIR", folder)
    monkeypatch.setattr(shipping, "MANIFEST", folder / "manifest.json")
    monkeypatch.setattr(training, "SHIPPED_DIR", folder)
    monkeypatch.setenv("METALEARN_LAB_RUNS", str(tmp_path / "runs"))
    return folder


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished quick sinusoid-maml run, trained once through the CLI for the whole module."""
    out = tmp_path_factory.mktemp("run") / "sinusoid-maml"
    assert main(["train", "sinusoid-maml", "--quick", "--out", str(out), "--threads", "1", "--no-progress"]) == 0
    return out


def copy_run(run, dest):
    shutil.copytree(run, dest)
    return dest


def test_list(capsys, shipped_dir):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in EXPERIMENTS:
        assert name in out
    assert "shipped" not in out.replace("-", " ").split()


def test_train_quick_writes_a_run(finished_run, capsys):
    assert (finished_run / "checkpoint.pt").is_file() and (finished_run / "results.json").is_file()
    ckpt = load_checkpoint(finished_run / "checkpoint.pt")
    assert ckpt["step"] == ckpt["config"]["iterations"] == 30


def test_train_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "sinusoid-pretrain", "--quick", "--iterations", "3", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[: printed.rindex("}") + 1])
    assert summary["experiment"] == "sinusoid-pretrain" and summary["n_tasks"] == 20
    assert f"wrote {out / 'checkpoint.pt'}" in printed
    assert load_checkpoint(out / "checkpoint.pt")["config"]["iterations"] == 3


def test_evaluate_a_checkpoint(finished_run, capsys):
    assert main(["evaluate", str(finished_run / "checkpoint.pt"), "--tasks", "5", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_tasks"] == 5 and result["checkpoint"] == str(finished_run / "checkpoint.pt")
    assert "values" not in result and result["mean"] > 0


def test_unknown_experiment(capsys, shipped_dir):
    assert main(["train", "no-such-experiment", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'no-such-experiment'" in err and "sinusoid-maml" in err


def test_evaluate_without_a_run(capsys, shipped_dir):
    assert main(["evaluate", "sinusoid-maml"]) == 2
    assert "metalearn-lab train sinusoid-maml" in capsys.readouterr().err
    assert main(["evaluate", str(shipped_dir / "nothing.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_ship_refuses_an_unfinished_run(finished_run, tmp_path, shipped_dir, capsys):
    run = copy_run(finished_run, tmp_path / "unfinished")
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["step"] = 10
    torch.save(ckpt, run / "checkpoint.pt")
    assert main(["ship", "sinusoid-maml", "--run", str(run)]) == 2
    assert "not a finished run (step 10 of 30)" in capsys.readouterr().err
    # a run without results.json is not finished either
    run2 = copy_run(finished_run, tmp_path / "no-results")
    (run2 / "results.json").unlink()
    assert main(["ship", "sinusoid-maml", "--run", str(run2)]) == 2
    assert not shipped_dir.exists() or not any(shipped_dir.iterdir())


def test_ship_refuses_a_run_of_another_experiment(finished_run, tmp_path, shipped_dir):
    run = copy_run(finished_run, tmp_path / "run")
    with pytest.raises(ValueError, match="not 'sinusoid-pretrain'"):
        ship_run("sinusoid-pretrain", run)


def test_ship_run_writes_manifest_and_verify_detects_changes(finished_run, tmp_path, shipped_dir, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    assert main(["ship", "sinusoid-maml", "--run", str(run)]) == 0
    entry = json.loads(capsys.readouterr().out)
    shipped = shipped_dir / "sinusoid-maml.pt"
    assert shipped.is_file()
    manifest = read_manifest()
    assert manifest["sinusoid-maml"] == entry
    assert entry["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert entry["bytes"] == shipped.stat().st_size and entry["config"]["iterations"] == 30
    ckpt = load_checkpoint(shipped)
    assert ckpt["optimizer"] is None and ckpt["step"] == 30  # weights only, no optimizer state
    assert (shipped_dir.parent / "results" / "sinusoid-maml.json").is_file()
    assert verify_shipped() == {"sinusoid-maml": entry["sha256"]}
    # `list` now marks it shipped
    assert main(["list"]) == 0
    assert any(line.startswith("sinusoid-maml ") and line.rstrip().endswith("shipped") for line in capsys.readouterr().out.splitlines())

    data = bytearray(shipped.read_bytes())
    data[-10] ^= 0xFF
    shipped.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged or was replaced"):
        verify_shipped()
    with pytest.raises(FileExistsError, match="does not match the manifest"):
        ship_run("sinusoid-maml", run)
    ship_run("sinusoid-maml", run, overwrite=True)
    assert verify_shipped()["sinusoid-maml"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    shipped.unlink()
    with pytest.raises(ValueError, match="missing"):
        verify_shipped()


def test_train_with_a_time_limit_pauses_and_the_same_command_finishes(tmp_path, capsys, monkeypatch):
    from metalearn_lab.experiments import RECIPES

    recipe = RECIPES["sinusoid-pretrain"]
    original = recipe.make_step

    def slow(*args, **kwargs):
        step = original(*args, **kwargs)

        def wrapped(i):
            time.sleep(0.03)
            return step(i)

        return wrapped

    monkeypatch.setattr(recipe, "make_step", slow)
    out = tmp_path / "run"
    args = ["train", "sinusoid-pretrain", "--quick", "--iterations", "20", "--out", str(out), "--no-progress"]
    assert main(args + ["--time-limit", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "paused at step" in printed and "of 20" in printed and not (out / "results.json").exists()
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out and (out / "results.json").exists()


def test_ship_reevaluate_rewrites_the_evaluation_and_keeps_the_training_record(finished_run, tmp_path, shipped_dir, capsys):
    run = copy_run(finished_run, tmp_path / "run")
    assert main(["ship", "sinusoid-maml", "--run", str(run)]) == 0
    capsys.readouterr()
    results_file = shipped_dir.parent / "results" / "sinusoid-maml.json"
    # a results file from before the results contract: no values, no transductive field, an older protocol
    old = json.loads(results_file.read_text())
    stale = {k: v for k, v in old.items() if k not in ("values", "transductive")}
    stale.update(protocol="20 test tasks (the old words)", mean=old["mean"] + 1.0,
                 by_steps={s: {k: v for k, v in r.items() if k != "values"} for s, r in old["by_steps"].items()})
    results_file.write_text(json.dumps(stale))
    manifest = read_manifest()
    manifest["sinusoid-maml"] = {k: v for k, v in manifest["sinusoid-maml"].items() if k != "transductive"}
    shipping.MANIFEST.write_text(json.dumps(manifest))
    sha = manifest["sinusoid-maml"]["sha256"]

    assert main(["ship", "sinusoid-maml", "--reevaluate", "--threads", "1"]) == 0
    entry = json.loads(capsys.readouterr().out)
    new = json.loads(results_file.read_text())
    assert new["values"] == old["values"] and new["mean"] == old["mean"] and new["protocol"] == old["protocol"]
    assert new["transductive"] is False and entry["transductive"] is False and "values" not in entry
    for key in ("history", "train_cpu_s", "train_wall_s", "commit", "config"):  # the training record is kept
        assert new[key] == old[key], key
    record = new["reevaluated"]
    assert record == entry["reevaluated"] and record["reason"] == shipping.REEVALUATION_REASON
    assert record["previous"]["mean"] == old["mean"] + 1.0 and record["mean_change"] == pytest.approx(-1.0)
    assert record["date"].count("-") == 2 and record["commit"] and record["eval_wall_s"] >= 0
    assert entry["sha256"] == sha and verify_shipped() == {"sinusoid-maml": sha}  # the checkpoint is not touched
    assert entry["check_subset"]["n_tasks"] == 20 and entry["mean"] == new["mean"]
    assert main(["ship", "sinusoid-maml", "--reevaluate", "--reason", "a field added"]) == 0  # once more, saying why
    again = json.loads(capsys.readouterr().out)["reevaluated"]
    assert again["reason"] == "a field added" and again["previous"]["mean"] == new["mean"] and again["mean_change"] == 0


def test_ship_reevaluate_refuses_an_experiment_that_is_not_shipped(shipped_dir, capsys):
    assert main(["ship", "sinusoid-pretrain", "--reevaluate"]) == 2
    err = capsys.readouterr().err
    assert "'sinusoid-pretrain' is not shipped" in err and "shipped experiments: none" in err
    assert main(["ship", "no-such-experiment", "--reevaluate"]) == 2
    assert "'no-such-experiment' is not shipped" in capsys.readouterr().err
    assert not shipped_dir.exists()


def test_ship_records_the_registry_config_for_the_registry_run(finished_run, tmp_path, shipped_dir, monkeypatch):
    """A run that predates fields of its config (same run, same length) is shipped with the registry's config."""
    from metalearn_lab.experiments import ExperimentConfig, registry

    run = copy_run(finished_run, tmp_path / "run")
    ckpt = load_checkpoint(run / "checkpoint.pt")
    registered = ExperimentConfig.from_dict(ckpt["config"]).replace(note="chosen on validation tasks")
    monkeypatch.setitem(registry.EXPERIMENTS, "sinusoid-maml", registered)
    older = {k: v for k, v in ckpt["config"].items() if k not in ("amplitude", "phase", "n_train_tasks")}
    torch.save({**torch.load(run / "checkpoint.pt", weights_only=True), "config": older}, run / "checkpoint.pt")
    entry = ship_run("sinusoid-maml", run)
    assert entry["config"] == registered.to_dict() == load_checkpoint(shipped_dir / "sinusoid-maml.pt")["config"]
    assert json.loads((shipped_dir.parent / "results" / "sinusoid-maml.json").read_text())["config"] == registered.to_dict()
    # another run (a different seed) keeps its own config
    monkeypatch.setitem(registry.EXPERIMENTS, "sinusoid-maml", registered.replace(seed=5))
    assert ship_run("sinusoid-maml", run, overwrite=True)["config"] == older
