"""Tests for metalearn_lab.experiments: every quick config trains end to end, resumes, evaluates."""

from __future__ import annotations

import json

import pytest
import torch

from metalearn_lab import experiments
from metalearn_lab.experiments import (
    EXPERIMENTS,
    RECIPES,
    build_model,
    evaluate_experiment,
    get_config,
    train_experiment,
)
from metalearn_lab.experiments.recipes import siamese as siamese_recipe
from metalearn_lab.training import load_checkpoint

REQUIRED = ("metric", "mean", "ci95", "n_tasks", "protocol", "train_cpu_s", "commit")



def small(name: str):
    """The quick config with 10 evaluation tasks (Omniglot) — the Siamese test always uses Lake's 20 runs."""
    return get_config(name, quick=True).replace(eval_tasks=10)


def needs_omniglot(name: str) -> bool:
    return not EXPERIMENTS[name].algorithm.startswith("sinusoid")


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_quick_config_trains_end_to_end(name, tmp_path, request):
    if needs_omniglot(name):
        request.getfixturevalue("omniglot")  # fails with instructions when the data is missing
    config = small(name)
    assert config.iterations <= 30 and config.note.startswith("quick mode")
    results = train_experiment(config, out_dir=tmp_path, progress=False)
    for key in REQUIRED:
        assert key in results, key
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert {k: on_disk[k] for k in REQUIRED} == {k: results[k] for k in REQUIRED}
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == config.iterations and ckpt["config"] == config.to_dict()
    assert ckpt["history"]["step"] == list(range(config.iterations))
    assert results["mean"] == results["mean"] and results["ci95"] >= 0  # not NaN
    if config.algorithm.startswith("sinusoid"):
        assert results["n_tasks"] == 10 and set(results["by_steps"]) == {"0", "1", "5", "10"}
    elif config.algorithm == "siamese":
        assert results["n_tasks"] == 400 and len(results["per_run"]) == 20
    else:
        assert results["n_tasks"] == 10 and 0.0 <= results["mean"] <= 1.0


class Interrupted(Exception):
    pass


def test_resume_continues_from_the_checkpoint(tmp_path, monkeypatch):
    config = small("sinusoid-maml").replace(iterations=6, checkpoint_every=2)
    recipe = RECIPES[config.algorithm]
    original = recipe.make_step
    seen: list[int] = []
    stop_at = {"step": 3}

    def recording_make_step(*args, **kwargs):
        step = original(*args, **kwargs)

        def wrapped(i):
            if i == stop_at["step"]:
                raise Interrupted
            seen.append(i)
            return step(i)

        return wrapped

    monkeypatch.setattr(recipe, "make_step", recording_make_step)
    with pytest.raises(Interrupted):
        train_experiment(config, out_dir=tmp_path, progress=False)
    assert seen == [0, 1, 2] and load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    assert not (tmp_path / "results.json").exists()

    stop_at["step"] = -1
    seen.clear()
    results = train_experiment(config, out_dir=tmp_path, progress=False)
    assert seen == [2, 3, 4, 5]  # not from 0
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 6 and ckpt["history"]["step"] == [0, 1, 2, 3, 4, 5]
    assert results["history"]["step"] == [0, 1, 2, 3, 4, 5]

    # resuming gives the same weights as an uninterrupted run (steps are seeded, optimizer state restored)
    monkeypatch.setattr(recipe, "make_step", original)
    straight = tmp_path / "straight"
    train_experiment(config, out_dir=straight, progress=False)
    resumed, fresh = load_checkpoint(tmp_path / "checkpoint.pt")["model"], load_checkpoint(straight / "checkpoint.pt")["model"]
    for k in fresh:
        torch.testing.assert_close(resumed[k], fresh[k])


def test_a_different_config_in_the_same_folder_raises(tmp_path):
    config = small("sinusoid-pretrain").replace(iterations=3)
    train_experiment(config, out_dir=tmp_path, progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match="different config"):
        train_experiment(config.replace(seed=1), out_dir=tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_evaluate_experiment_runs(omniglot):
    config = small("omniglot-protonet-5w1s")
    result = evaluate_experiment(config, build_model(config), n_tasks=6)
    assert result["n_tasks"] == 6 and 0 <= result["mean"] <= 1 and "5-way 1-shot" in result["metric"]
    sine = small("sinusoid-maml")
    result = evaluate_experiment(sine, build_model(sine), n_tasks=5)
    assert result["n_tasks"] == 5 and result["mean"] > 0
    # MAML on Omniglot uses the adapted model: more inner steps change the answer
    maml = small("omniglot-maml-5w1s")
    model = build_model(maml)
    a = evaluate_experiment(maml.replace(eval_inner_steps=0), model, n_tasks=4)
    b = evaluate_experiment(maml, model, n_tasks=4)
    assert a["n_tasks"] == b["n_tasks"] == 4 and "3 inner steps" in b["protocol"]


def test_get_config_and_build_model():
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        get_config("nope")
    assert get_config("sinusoid-maml", quick=False) == EXPERIMENTS["sinusoid-maml"]
    assert get_config("sinusoid-maml", quick=True).iterations == 30
    a, b = build_model(EXPERIMENTS["omniglot-maml-5w1s"]), build_model(EXPERIMENTS["omniglot-maml-5w1s"])
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_time_limit_pauses_with_a_checkpoint_and_the_same_call_resumes(tmp_path, monkeypatch):
    config = small("sinusoid-maml").replace(iterations=12, checkpoint_every=0)
    recipe = RECIPES[config.algorithm]
    original = recipe.make_step

    def slow_make_step(*args, **kwargs):
        step = original(*args, **kwargs)

        def wrapped(i):
            if i < 3:
                import time
                time.sleep(0.05)
            return step(i)

        return wrapped

    monkeypatch.setattr(recipe, "make_step", slow_make_step)
    paused = train_experiment(config, out_dir=tmp_path, progress=False, time_limit=0.01)
    assert paused["paused"] is True and paused["step"] == 1 and paused["iterations"] == 12
    assert not (tmp_path / "results.json").exists()  # nothing is evaluated on a pause
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 1 and ckpt["metrics"]["devices"] == ["cpu"]
    assert ckpt["metrics"]["machines"][0].startswith("cpu: ")

    results = train_experiment(config, out_dir=tmp_path, progress=False)
    assert "paused" not in results and results["history"]["step"] == list(range(12))
    assert results["device"] == "cpu" and results["machine"].startswith("cpu: ")
    assert json.loads((tmp_path / "results.json").read_text())["mean"] == results["mean"]


def test_devices_of_earlier_sessions_are_kept_when_a_run_is_finished(tmp_path):
    config = small("sinusoid-pretrain").replace(iterations=4)
    train_experiment(config.replace(iterations=2), out_dir=tmp_path, progress=False)
    # pretend the first two steps ran on a GPU machine
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    ckpt["metrics"].update(devices=["cuda"], machines=["cuda: some GPU"])
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    results = train_experiment(config, out_dir=tmp_path, progress=False)
    assert results["device"] == "cuda+cpu" and results["machine"].startswith("cuda: some GPU; cpu: ")


def test_config_from_dict_fills_new_fields_and_rejects_unknown_ones():
    config = EXPERIMENTS["omniglot-siamese"]
    stored = config.to_dict()
    assert experiments.ExperimentConfig.from_dict(stored) == config
    maml = EXPERIMENTS["omniglot-maml-5w1s"]
    older = {k: v for k, v in maml.to_dict().items() if k != "first_order"}  # a field added later takes its default
    assert experiments.ExperimentConfig.from_dict(older) == maml
    flat = {**maml.to_dict(), "margin": 1.0, "augment": False, "train_way": 0}  # the old flat config: other algorithms' fields
    assert experiments.ExperimentConfig.from_dict(flat) == maml
    assert experiments.same_run(older, maml.replace(iterations=10).to_dict())
    assert not experiments.same_run(older, maml.replace(inner_lr=0.1).to_dict())
    with pytest.raises(ValueError, match="unknown config fields \\['colour'\\]"):
        experiments.ExperimentConfig.from_dict({**stored, "colour": "red"})


def test_augmented_siamese_steps_differ_from_plain_ones(omniglot, monkeypatch):
    seen = {}
    original = siamese_recipe.random_affine

    def counting(x, **kw):
        seen["n"] = seen.get("n", 0) + len(x)
        return original(x, **kw)

    monkeypatch.setattr(siamese_recipe, "random_affine", counting)
    config = small("omniglot-siamese").replace(meta_batch_size=8)
    assert config.augment
    for augment in (False, True):
        model = build_model(config)
        optimizer = torch.optim.Adam(model.parameters())
        step = RECIPES["siamese"].make_step(config.replace(augment=augment), model, optimizer, torch.device("cpu"))
        step(0)
    assert seen["n"] == 16  # both images of 8 pairs, only when augment=True


# --- sinusoid experiments with another task distribution or a pool of tasks ---------------------------

def test_sinusoid_config_distribution_sets_training_validation_and_test_tasks():
    import math as _math

    from metalearn_lab.data.sinusoid import SinusoidTaskPool
    from metalearn_lab.experiments import sinusoid_test_tasks, sinusoid_validation_tasks

    config = get_config("sinusoid-maml", quick=True).replace(amplitude=(2.5, 5.0), phase=(0.0, _math.pi / 2))
    for tasks in (sinusoid_test_tasks(config, 50), sinusoid_validation_tasks(config, 50)):
        assert float(tasks.amplitude.min()) >= 2.5 and float(tasks.phase.max()) <= _math.pi / 2
    assert isinstance(config.replace(n_train_tasks=7).training_tasks(), SinusoidTaskPool)
    assert len(config.replace(n_train_tasks=7).training_tasks()) == 7
    with pytest.raises(ValueError, match="n_train_tasks must be 0"):
        config.replace(n_train_tasks=-1).training_tasks()


def test_default_sinusoid_tasks_are_unchanged_by_the_distribution_fields():
    """The fields' defaults are Finn et al.'s distribution: the shipped runs' test tasks stay the same tasks."""
    from metalearn_lab.data.sinusoid import SinusoidTasks
    from metalearn_lab.experiments import sinusoid_test_tasks

    config = get_config("sinusoid-maml", quick=False)
    expected = SinusoidTasks().sample(20, config.eval_k_shot, config.eval_n_query,
                                      generator=torch.Generator().manual_seed(config.eval_seed))
    assert torch.equal(sinusoid_test_tasks(config, 20).x_support, expected.x_support)
    assert torch.equal(sinusoid_test_tasks(config, 20).amplitude, expected.amplitude)


def test_old_sinusoid_checkpoint_configs_read_back_as_the_same_run():
    from metalearn_lab.experiments import ExperimentConfig, same_run

    config = get_config("sinusoid-maml", quick=False)
    old = {k: v for k, v in config.to_dict().items() if k not in ("amplitude", "phase", "n_train_tasks")}
    assert ExperimentConfig.from_dict(old) == config
    assert same_run(old, config.to_dict())
    assert ExperimentConfig.from_dict(config.replace(amplitude=(1.0, 2.0)).to_dict()).amplitude == (1.0, 2.0)


def test_pool_limited_sinusoid_run_trains_on_its_pool_only():
    from metalearn_lab.experiments import RECIPES, step_generator

    config = get_config("sinusoid-maml", quick=True).replace(n_train_tasks=2, meta_batch_size=6)
    pool = config.training_tasks()
    for i in range(3):
        _, y_support, _, _ = RECIPES["sinusoid-maml"]._batch(config, i, torch.device("cpu"))
        expected = pool.sample(config.meta_batch_size, config.k_shot, config.n_query, generator=step_generator(config, i))
        assert torch.equal(expected.y_support, y_support)
        assert set(expected.amplitude.tolist()) <= set(pool.amplitude.tolist())
