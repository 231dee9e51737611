"""Honest evaluation: validation tasks during training, the test tasks read once at the end.

Every recipe with a validation split trains with the test tasks locked: asking for them raises
TestSetLocked, so a run that finishes proves that nothing read them before the final evaluation.
"""

from __future__ import annotations

import pytest
import torch

from metalearn_lab.data.lake_runs import sample_within_alphabet_runs
from metalearn_lab.experiments import (
    EXPERIMENTS,
    RECIPES,
    TestSetLocked,
    build_model,
    evaluate_experiment,
    get_config,
    omniglot_splits,
    omniglot_test_tasks,
    sinusoid_test_tasks,
    splits,
    train_experiment,
)


def with_validation(name: str):
    """The quick config of ``name`` with a validation split and periodic validation every 2 steps."""
    config = get_config(name, quick=True).replace(iterations=4, eval_every=2, eval_tasks=6, eval_tasks_during_training=4)
    if hasattr(config, "validation_characters"):
        config = config.replace(validation_characters=100)
    if hasattr(config, "validation_alphabets"):
        config = config.replace(validation_alphabets=2, validation_runs_per_alphabet=1, meta_batch_size=8)
    return config


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_training_reads_validation_tasks_and_tests_once_at_the_end(name, tmp_path, request, monkeypatch):
    if not name.startswith("sinusoid"):
        request.getfixturevalue("omniglot")
    config = with_validation(name)
    recipe = RECIPES[config.algorithm]
    assert recipe.has_validation(config)
    splits_seen = []
    original = recipe.evaluate

    def recording(config, model, *, split, n_tasks, device):
        splits_seen.append(split)
        return original(config, model, split=split, n_tasks=n_tasks, device=device)

    monkeypatch.setattr(recipe, "evaluate", recording)
    results = train_experiment(config, out_dir=tmp_path, progress=False)
    assert splits_seen == ["validation", "validation", "test"]
    assert len(results["history"]["eval_metric"]) == 2


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_reading_test_tasks_while_training_raises(name, tmp_path, request, monkeypatch):
    """A recipe that peeks at the test tasks during training is stopped, whatever it monitors."""
    if not name.startswith("sinusoid"):
        request.getfixturevalue("omniglot")
    config = with_validation(name)
    recipe = RECIPES[config.algorithm]
    original = recipe.evaluate

    def peeking(config, model, *, split, n_tasks, device):
        return original(config, model, split="test", n_tasks=n_tasks, device=device)

    monkeypatch.setattr(recipe, "evaluate", peeking)
    with pytest.raises(TestSetLocked, match="final evaluation"):
        train_experiment(config, out_dir=tmp_path, progress=False)
    # outside training the test tasks are readable, e.g. by a lesson evaluating a shipped model
    reader = sinusoid_test_tasks if name.startswith("sinusoid") else None
    if reader is not None:
        assert len(reader(config, 3)) == 3


def test_validation_characters_come_from_the_training_characters(omniglot):
    train, test = omniglot_splits()
    train_v, validation, test_v = omniglot_splits(100)
    assert torch.equal(test, test_v)
    assert train_v.shape[0] == 4 * 1100 and validation.shape[0] == 4 * 100
    # together they are the old training set (same characters, same rotations)
    old = {x.numpy().tobytes() for x in train[:, 0]}
    new = {x.numpy().tobytes() for x in torch.cat([train_v, validation])[:, 0]}
    assert old == new
    assert not {x.numpy().tobytes() for x in validation[:, 0]} & {x.numpy().tobytes() for x in train_v[:, 0]}


def test_validation_alphabets_are_background_and_left_out_of_training(omniglot):
    names = splits.validation_alphabets(5)
    assert len(names) == 5 and names == splits.validation_alphabets(5)
    background = {a for a, b in zip(omniglot.alphabets, omniglot.background.tolist()) if b}
    assert set(names) <= background
    train = splits.background_classes(5)
    held = sum(a in names for a in omniglot.alphabets)
    assert train.shape[0] == 964 - held
    runs = splits.lake_validation_runs(5, 2)
    assert len(runs) == 10
    train_keys = {x.numpy().tobytes() for x in train.flatten(0, 1)}
    assert not any(img.numpy().tobytes() in train_keys for run in runs for img in run.support)


def test_sampled_runs_are_like_lakes():
    alphabet = torch.arange(22 * 3 * 4, dtype=torch.float32).reshape(22, 3, 1, 2, 2)
    (run,) = sample_within_alphabet_runs([alphabet], 1, n_way=20, seed=1)
    # query i is the same character as support labels[i], drawn by another drawer
    for i in range(20):
        s, q = run.support[run.labels[i]], run.query[i]
        character_s = int(s.flatten()[0]) // 12
        character_q = int(q.flatten()[0]) // 12
        assert character_s == character_q and not torch.equal(s, q)
    again = sample_within_alphabet_runs([alphabet], 1, n_way=20, seed=1)[0]
    assert torch.equal(again.query, run.query)
    with pytest.raises(ValueError, match="n_characters >= 20"):
        sample_within_alphabet_runs([alphabet[:10]], 1)


def test_old_protocol_runs_are_marked(omniglot):
    config = get_config("omniglot-maml-5w1s", quick=True)
    assert config.validation_characters == 0 and not RECIPES["maml"].has_validation(config)
    result = evaluate_experiment(config, build_model(config), n_tasks=4)
    assert "old protocol" in result["protocol"]
    assert len(omniglot_test_tasks(config, 4)) == 4


def test_select_run_chooses_on_validation_and_reports_every_run(tmp_path, capsys):
    from metalearn_lab.cli import main
    from metalearn_lab.experiments.selection import select_run

    config = get_config("sinusoid-pretrain", quick=True).replace(iterations=5, eval_tasks=8)
    runs = []
    for seed in (0, 1, 2):
        train_experiment(config.replace(seed=seed), out_dir=tmp_path / f"seed{seed}", progress=False)
        runs.append(tmp_path / f"seed{seed}")
    report = select_run(runs)
    validation = {r["run"]: r["validation"]["mean"] for r in report["runs"]}
    assert report["chosen"] == min(validation, key=validation.get)
    assert all("test" in r and r["test"]["n_tasks"] == 8 for r in report["runs"])
    assert report["test_stdev_over_runs"] > 0
    assert main(["select", *map(str, runs), "--json", str(tmp_path / "report.json")]) == 0
    assert "<- chosen" in capsys.readouterr().out
    with pytest.raises(ValueError, match="at least 2"):
        select_run(runs[:1])
    other = tmp_path / "other"
    train_experiment(get_config("sinusoid-maml", quick=True).replace(iterations=2, eval_tasks=8), out_dir=other, progress=False)
    with pytest.raises(ValueError, match="is a run of"):
        select_run([runs[0], other])
