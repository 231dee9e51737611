"""Tests for metalearn_lab.experiments: every quick config trains end to end, resumes, evaluates."""

from __future__ import annotations

import json

import pytest
import torch

from metalearn_lab import experiments, training
from metalearn_lab.experiments import (
    EXPERIMENTS,
    RECIPES,
    build_model,
    evaluate_experiment,
    get_config,
    train_experiment,
)
from metalearn_lab.experiments.recipes import siamese as siamese_recipe
from metalearn_lab.metrics import mean_confidence_interval
from metalearn_lab.training import load_checkpoint

REQUIRED = ("metric", "mean", "ci95", "n_tasks", "protocol", "train_cpu_s", "commit")



def small(name: str):
    """The quick config with 10 evaluation tasks (Omniglot) — the Siamese test always uses Lake's 20 runs."""
    return get_config(name, quick=True).replace(eval_tasks=10)


def needs_omniglot(name: str) -> bool:
    return not EXPERIMENTS[name].algorithm.startswith(("sinusoid", "preference", "point-robot"))


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
    # the numbers the interval is over travel with it: anyone can recompute mean ± Student's t interval
    assert isinstance(results["transductive"], bool)
    summaries = results["by_steps"].values() if "by_steps" in results else [results]
    for summary in summaries:
        mean, half = mean_confidence_interval(summary["values"])
        assert mean == pytest.approx(summary["mean"], rel=1e-12) and half == pytest.approx(summary["ci95"], rel=1e-12)
    if config.algorithm in ("sinusoid-maml", "sinusoid-pretrain"):
        assert results["n_tasks"] == 10 and set(results["by_steps"]) == {"0", "1", "5", "10"}
    elif config.algorithm in ("sinusoid-blackbox", "sinusoid-bayes"):
        assert results["n_tasks"] == 10 and set(results["by_k_shot"]) == {"1", "2", "5", "10"}
        assert results["selected_step"] == config.iterations  # quick configs validate only at the end
    elif config.algorithm == "siamese":
        assert results["n_tasks"] == 400 and len(results["per_run"]) == 20
    elif config.algorithm.startswith("preference"):  # MSE against each user's true curve, after each number of steps
        assert results["n_tasks"] == 10 and results["mean"] >= 0
        assert set(results["by_steps"]) == {str(s) for s in config.eval_steps}
        assert str(results["chosen_steps"]) in results["by_steps"]
    elif config.algorithm.startswith("point-robot"):  # average return after 0..eval_steps updates, one per goal
        assert results["n_tasks"] == 10 and results["mean"] < 0
        assert set(results["by_steps"]) == {str(j) for j in range(config.eval_steps + 1)}
        assert len(results["per_task"]) == 10 and len(results["per_task"][0]) == config.eval_steps + 1
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


def test_a_recipe_reads_its_older_checkpoints_as_what_it_did_then():
    """point-robot-maml always kept its validation-best weights before select_on_validation was a field."""
    for name, selected in (("point-robot-maml", True), ("point-robot-scratch", False)):
        config = EXPERIMENTS[name]
        older = {k: v for k, v in config.to_dict().items() if k != "select_on_validation"}
        assert experiments.ExperimentConfig.from_dict(older).select_on_validation is selected
        assert experiments.ExperimentConfig.from_dict(older) == config
    sine = {k: v for k, v in EXPERIMENTS["sinusoid-cnp"].to_dict().items() if k != "select_on_validation"}
    assert experiments.ExperimentConfig.from_dict(sine).select_on_validation is False  # the base default


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


# ---------------------------------------------------------------------------------------------
# A paused and continued run is the run that never paused: weights, optimizer, schedule, random
# state and history, for every registered experiment, paused by a time limit and by a shorter
# `iterations` (where the recipe allows it).


def _assert_same(a, b, where="checkpoint"):
    """Bit-for-bit equality of nested checkpoint contents (tensors, numbers with NaN == NaN, lists, dicts)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        same = bool(torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                          and torch.equal(a.nan_to_num(), b.nan_to_num())))
        assert same, f"{where}: largest difference {float((a.double() - b.double()).abs().max()):.3g}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))} differ"
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths {len(a)} and {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and a != a:
        assert isinstance(b, float) and b != b, where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def resumable_config(name: str):
    """A few-step config of experiment `name`, with periodic evaluation and, where the recipe has one, a schedule."""
    config = small(name).replace(iterations=6, eval_every=3, eval_tasks=4, eval_tasks_during_training=2, checkpoint_every=0)
    smaller = {"meta_batch_size": 2, "train_way": 0, "inner_steps": 2, "eval_inner_steps": 2, "eval_n_query": 2}  # seconds, not minutes
    config = config.replace(**{k: min(v, getattr(config, k)) for k, v in smaller.items() if hasattr(config, k)})
    if hasattr(config, "eval_steps"):  # step counts for sinusoids and users, one count for the point robot
        config = config.replace(eval_steps=(1, 2) if isinstance(config.eval_steps, tuple) else 2)
    recipe = RECIPES[config.algorithm]
    with_schedule = config.replace(lr_decay_every=2)
    model = build_model(config)
    if recipe.make_scheduler(with_schedule, recipe.make_optimizer(with_schedule, model)) is not None:
        config = with_schedule
    return config


class FakeClock:
    """Stands in for time.perf_counter in the training loop: one second per call, so a time limit of
    k - 0.5 s pauses a run after exactly k steps of a session."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


def _run_with_noise(monkeypatch, recipe):
    """Make every training step also draw from the global random generators (as dropout or a
    user's augmentation would): a resumed run must draw the same numbers as an uninterrupted one."""
    import random

    import numpy as np

    original = type(recipe).make_step

    def make_step(self, config, model, optimizer, device):
        step = original(self, config, model, optimizer, device)

        def noisy(i):
            out = step(i)
            noise = torch.rand(()) + float(np.random.rand()) + random.random()
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] += 1e-6 * noise
            return out

        return noisy

    monkeypatch.setattr(type(recipe), "make_step", make_step)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_a_paused_and_continued_run_equals_the_uninterrupted_run(name, tmp_path, monkeypatch, request):
    import random

    import numpy as np

    if needs_omniglot(name):
        request.getfixturevalue("omniglot")
    config = resumable_config(name)
    recipe = RECIPES[config.algorithm]
    _run_with_noise(monkeypatch, recipe)

    def seeded_globals():
        torch.manual_seed(123)
        np.random.seed(123)
        random.seed(123)

    seeded_globals()
    straight = train_experiment(config, out_dir=tmp_path / "straight", progress=False)
    after_straight = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())

    clock = FakeClock()
    monkeypatch.setattr(training, "time", type("T", (), {"perf_counter": staticmethod(clock.perf_counter)}))
    paused = tmp_path / "paused"
    seeded_globals()
    first = train_experiment(config, out_dir=paused, progress=False, time_limit=0.5)  # 1 step
    assert first["paused"] and first["step"] == 1
    if "iterations" in config.schedule_fields:  # a shorter run that is finished, evaluated, then extended
        shorter = train_experiment(config.replace(iterations=3), out_dir=paused, progress=False)
        assert "paused" not in shorter and load_checkpoint(paused / "checkpoint.pt")["step"] == 3
    else:  # the planned length is part of the run: a shorter one is refused, and nothing is written
        before = (paused / "checkpoint.pt").read_bytes()
        with pytest.raises(FileExistsError, match="iterations") as err:
            train_experiment(config.replace(iterations=3), out_dir=paused, progress=False)
        assert "annealed" in str(err.value)
        assert (paused / "checkpoint.pt").read_bytes() == before
        assert train_experiment(config, out_dir=paused, progress=False, time_limit=1.5)["step"] == 3  # 2 steps
    assert train_experiment(config, out_dir=paused, progress=False, time_limit=0.5)["step"] == 4
    seeded_globals()
    resumed = train_experiment(config, out_dir=paused, progress=False)
    after_resumed = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())

    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(paused / "checkpoint.pt")
    assert a["step"] == b["step"] == config.iterations
    for part in ("model", "optimizer", "scheduler", "history"):
        _assert_same(a[part], b[part], part)
    assert a["history"]["step"] == list(range(config.iterations)) and a["history"]["eval_step"] == [3, 6]
    for key in ("mean", "ci95", "history"):
        _assert_same(straight[key], resumed[key], key)
    # the caller's random generators are left as they were: training draws from its own, per step
    assert torch.equal(after_straight[0], after_resumed[0]) and (after_straight[1] == after_resumed[1]).all()
    assert after_straight[2] == after_resumed[2]


def test_the_issue_example_gives_equal_learning_rates(tmp_path):
    cfg = EXPERIMENTS["sinusoid-pretrain"].replace(iterations=8, lr_decay_every=2, checkpoint_every=4, eval_every=0, eval_tasks=5,
                                                   meta_batch_size=4)
    train_experiment(cfg, out_dir=tmp_path / "straight", progress=False)
    train_experiment(cfg.replace(iterations=4), out_dir=tmp_path / "resumed", progress=False)
    train_experiment(cfg, out_dir=tmp_path / "resumed", progress=False)

    def lr(d):
        return load_checkpoint(tmp_path / d / "checkpoint.pt")["optimizer"]["param_groups"][0]["lr"]

    assert lr("straight") == lr("resumed") == 1e-3 * 0.5 ** 4


def test_a_checkpoint_without_schedule_state_resumes_at_the_right_rate(tmp_path):
    """Checkpoints written before the schedule's state was stored: the rate follows from the step count."""
    cfg = EXPERIMENTS["sinusoid-pretrain"].quick().replace(iterations=6, lr_decay_every=2, eval_tasks=3)
    train_experiment(cfg, out_dir=tmp_path / "straight", progress=False)
    train_experiment(cfg.replace(iterations=3), out_dir=tmp_path / "old", progress=False)
    ckpt = load_checkpoint(tmp_path / "old" / "checkpoint.pt")
    del ckpt["scheduler"]
    for group in ckpt["optimizer"]["param_groups"]:
        group["lr"] *= 0.5 ** 3  # the fault this replaces: an earlier resume decayed the stored rate again
    torch.save(ckpt, tmp_path / "old" / "checkpoint.pt")
    train_experiment(cfg, out_dir=tmp_path / "old", progress=False)
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(tmp_path / "old" / "checkpoint.pt")
    _assert_same(a["optimizer"], b["optimizer"], "optimizer")
    _assert_same(a["model"], b["model"], "model")


@pytest.mark.parametrize("change, match", [
    ({"seed": 1}, "seed"), ({"lr_decay_every": 3}, "lr_decay_every"), ({"outer_lr": 0.01}, "outer_lr"),
])
def test_a_continuation_that_changes_the_run_is_refused(tmp_path, change, match):
    config = small("sinusoid-pretrain").replace(iterations=4, lr_decay_every=2)
    train_experiment(config, out_dir=tmp_path, progress=False, time_limit=1e-9)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match=match) as err:
        train_experiment(config.replace(**change), out_dir=tmp_path, progress=False)
    assert "change what the run computes" in str(err.value)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_a_run_cannot_be_shortened_below_the_steps_it_has_trained(tmp_path):
    config = small("sinusoid-pretrain").replace(iterations=6)
    train_experiment(config, out_dir=tmp_path, progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "results.json").read_bytes()
    with pytest.raises(FileExistsError, match="has trained 6 steps.*iterations=4"):
        train_experiment(config.replace(iterations=4), out_dir=tmp_path, progress=False)
    assert ((tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "results.json").read_bytes()) == before


# ---------------------------------------------------------------------------------------------
# evaluate_experiment never writes into a model, for every recipe and every model it can evaluate,
# and records whether its evaluation is transductive


def config_name(algorithm: str) -> str:
    return next(c.name for c in EXPERIMENTS.values() if c.algorithm == algorithm)


def _eval_config(algorithm: str):
    config = next(c for c in EXPERIMENTS.values() if c.algorithm == algorithm).quick()
    smaller = {"eval_inner_steps": 1, "eval_n_query": 2, "eval_steps": (1,)}
    # a field keeps its type: eval_steps is a tuple of step counts for sinusoids and users, one count for the point robot
    return config.replace(**{k: v if isinstance(getattr(config, k), tuple) else v[0] if isinstance(v, tuple) else v
                             for k, v in smaller.items() if hasattr(config, k)})


OWN_MODEL = "the recipe's own model"


def _models_for(algorithm: str):
    """Every model of tests/test_models.py's table that this recipe's evaluation can run; recipes whose
    models take other inputs (neural processes, priors, policies) are walked with their own model."""
    from _model_zoo import MODELS, kinds

    wanted = {"sinusoid-maml": "sine", "sinusoid-pretrain": "sine", "maml": "logits", "reptile": "logits",
              "protonet": "image", "siamese": "image"}.get(algorithm)
    if wanted is None:
        return [OWN_MODEL]
    return [name for name in MODELS if wanted in kinds(name)]


EVALUATION_CASES = [pytest.param(algorithm, name, mode, id=f"{algorithm} | {name} | {mode}")
                    for algorithm in RECIPES for name in _models_for(algorithm) for mode in ("train", "eval")]


def test_every_recipe_is_covered_by_the_evaluation_cases():
    assert {case.values[0] for case in EVALUATION_CASES} == set(RECIPES)


@pytest.mark.parametrize("algorithm, name, mode", EVALUATION_CASES)
def test_evaluate_experiment_leaves_the_model_unchanged_and_says_if_transductive(algorithm, name, mode, request):
    from _model_zoo import assert_unchanged, built, state

    if needs_omniglot(config_name(algorithm)):
        request.getfixturevalue("omniglot")
    config = _eval_config(algorithm)
    if name == OWN_MODEL:
        torch.manual_seed(0)
        model = build_model(config).train(mode == "train")
        if algorithm == "point-robot-scratch":  # its learning rate is chosen by its training steps, on validation goals
            step = RECIPES[algorithm].make_step(config, model, None, torch.device("cpu"))
            for i in range(len(config.candidate_lrs)):
                step(i)
    else:
        model, _ = built(name, mode)
    before = state(model)
    results = evaluate_experiment(config, model, n_tasks=2)
    assert_unchanged(model, before, f"evaluate_experiment ({algorithm})")
    # MAML and Reptile adapt in training mode (batch statistics, as in their authors' code); ProtoNets
    # and Siamese nets embed in eval mode (running statistics); sinusoid nets keep the caller's mode
    evaluated_in = {"maml": True, "reptile": True, "protonet": False, "siamese": False}.get(algorithm, mode == "train")
    from metalearn_lab.models import uses_batch_statistics

    expected = uses_batch_statistics(model.train(evaluated_in))
    assert results["transductive"] is expected
    assert ("; transductive: batch norm normalises each task's queries" in results["protocol"]) is expected
    assert ("; not transductive: " in results["protocol"]) is (not expected)


# ---------------------------------------------------------------- select_on_validation
def scripted_validation(monkeypatch, values):
    """Make every validation evaluation return the next of ``values`` (the test split is evaluated for real)."""
    from metalearn_lab.experiments import runner

    real, queue = runner.evaluate_experiment, list(values)

    def fake(config, model, *, split="test", **kwargs):
        if split == "validation":
            return {"mean": queue.pop(0)}
        return real(config, model, split=split, **kwargs)

    monkeypatch.setattr(runner, "evaluate_experiment", fake)


def selecting_config(**changes):
    fields = {"iterations": 6, "eval_every": 2, "checkpoint_every": 2, "select_on_validation": True, **changes}
    return small("sinusoid-bayes-rbf").replace(**fields)


def test_select_on_validation_keeps_the_best_validated_weights(tmp_path, monkeypatch):
    config = selecting_config()
    scripted_validation(monkeypatch, [3.0, 1.0, 2.0])  # after steps 2, 4, 6: the best is step 4
    results = train_experiment(config, out_dir=tmp_path / "select", progress=False)
    assert results["selected_step"] == 4 and results["selected_validation"] == 1.0
    ckpt = load_checkpoint(tmp_path / "select" / "checkpoint.pt")
    at_step_4 = train_experiment(config.replace(iterations=4, select_on_validation=False, eval_every=0), out_dir=tmp_path / "four",
                                 progress=False)
    assert at_step_4["mean"] == pytest.approx(results["mean"])  # the test tasks saw the step-4 weights
    four = load_checkpoint(tmp_path / "four" / "checkpoint.pt")["model"]
    for k in four:
        torch.testing.assert_close(ckpt["model"][k], four[k])
        torch.testing.assert_close(ckpt["best_model"][k], four[k])
    assert any(not torch.equal(ckpt["last_model"][k], four[k]) for k in four)  # the last weights are kept apart


def test_the_last_weights_compete_when_no_validation_ran(tmp_path):
    config = selecting_config(eval_every=0)
    results = train_experiment(config, out_dir=tmp_path, progress=False)
    assert results["selected_step"] == config.iterations


def test_selection_survives_a_pause(tmp_path, monkeypatch):
    config = selecting_config()
    scripted_validation(monkeypatch, [1.0, 3.0, 2.0])  # best at step 2, before the pause
    recipe = RECIPES[config.algorithm]
    original = recipe.make_step

    def pausing_make_step(*args, **kwargs):
        step = original(*args, **kwargs)

        def wrapped(i):
            if i == 3 and not (tmp_path / "resumed").exists():
                (tmp_path / "resumed").touch()
                raise Interrupted
            return step(i)

        return wrapped

    monkeypatch.setattr(recipe, "make_step", pausing_make_step)
    with pytest.raises(Interrupted):
        train_experiment(config, out_dir=tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["best_step"] == 2
    results = train_experiment(config, out_dir=tmp_path / "run", progress=False)
    assert results["selected_step"] == 2 and results["selected_validation"] == 1.0


def test_scratch_agent_chooses_its_learning_rate_on_validation_goals(tmp_path):
    config = get_config("point-robot-scratch", quick=True)
    results = train_experiment(config, out_dir=tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    validation = ckpt["model"]["validation_returns"]
    assert not bool(torch.isnan(validation).any()) and len(validation) == len(config.candidate_lrs)
    best = config.candidate_lrs[int(validation.argmax())]
    assert results["learning_rates"] == [best]
    # more iterations than candidates: each candidate is scored again on new episodes and keeps its mean score
    twice = train_experiment(config.replace(iterations=2 * len(config.candidate_lrs)), out_dir=tmp_path / "twice",
                             progress=False)
    again = load_checkpoint(tmp_path / "twice" / "checkpoint.pt")["model"]["validation_returns"]
    scores = twice["history"]["metric"]
    n = len(config.candidate_lrs)
    for c in range(n):
        assert float(again[c]) == pytest.approx((scores[c] + scores[c + n]) / 2)
        assert float(validation[c]) == pytest.approx(scores[c])


def test_preference_steps_are_chosen_on_validation_users():
    config = get_config("preference-maml", quick=True)
    model = build_model(config)
    results = evaluate_experiment(config, model, n_tasks=10)
    validation = results["validation_mse_by_steps"]
    assert set(validation) == {str(s) for s in config.eval_steps}
    assert str(results["chosen_steps"]) == min(validation, key=validation.get)
    assert results["mean"] == results["by_steps"][str(results["chosen_steps"])]["mean"]
    pooled = evaluate_experiment(get_config("preference-pooled", quick=True), model, n_tasks=10)
    assert pooled["chosen_steps"] == 0 and pooled["validation_mse_by_steps"] == {}


def test_new_test_sets_are_locked_while_training():
    from metalearn_lab.experiments import point_robot_goals, preference_users
    from metalearn_lab.experiments.splits import test_tasks_locked

    config = get_config("point-robot-maml", quick=True)
    with test_tasks_locked("a test"):
        with pytest.raises(experiments.TestSetLocked):
            point_robot_goals(config, "test")
        with pytest.raises(experiments.TestSetLocked):
            preference_users(get_config("preference-maml", quick=True), "test")
        assert point_robot_goals(config, "validation").shape == (config.eval_tasks_during_training, 2)
    with pytest.raises(ValueError, match="split must be 'validation' or 'test'"):
        point_robot_goals(config, "train")


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
    with pytest.raises(ValueError, match="n_train_tasks must be an integer >= 0, got -1"):  # 0: a new task every time
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


# ---------------------------------------------------------------------------------------------
# "not transductive" is a claim about the model: a query's prediction must not move when the
# other queries of its task change. Checked on the black-box and Bayesian learners (their models
# read the whole task at once), and the check must catch a transformer whose queries see each other.


def _support_and_queries():
    generator = torch.Generator().manual_seed(0)
    x_support, x_query = torch.rand(3, 5, 1, generator=generator) * 10 - 5, torch.rand(3, 4, 1, generator=generator) * 10 - 5
    other = x_query.clone()
    other[:, 1:] = torch.rand(3, 3, 1, generator=generator) * 10 - 5  # the same first query, other companions
    return x_support, torch.sin(x_support), x_query, other


def _first_query_prediction(model, algorithm, x_support, y_support, x_query):
    from metalearn_lab.bayes import posterior_predictive

    with torch.no_grad():
        if algorithm == "sinusoid-bayes":
            return posterior_predictive(model, x_support, y_support, x_query)[0][:, 0]
        return model.eval()(x_support, y_support, x_query)[0][:, 0]


@pytest.mark.parametrize("name", [n for n, c in EXPERIMENTS.items() if c.algorithm in ("sinusoid-blackbox", "sinusoid-bayes")])
def test_a_query_of_a_non_transductive_learner_is_predicted_without_the_other_queries(name):
    config = get_config(name, quick=True)
    torch.manual_seed(0)
    model = build_model(config)
    x_support, y_support, x_query, other = _support_and_queries()
    a = _first_query_prediction(model, config.algorithm, x_support, y_support, x_query)
    b = _first_query_prediction(model, config.algorithm, x_support, y_support, other)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    result = evaluate_experiment(config, model, n_tasks=2)
    assert result["transductive"] is False and "; not transductive: " in result["protocol"]


def test_a_transformer_whose_queries_see_each_other_is_called_transductive(monkeypatch):
    from metalearn_lab.blackbox import InContextTransformer
    from metalearn_lab.experiments.recipes.blackbox import queries_attend_to_each_other

    config = get_config("sinusoid-transformer", quick=True)
    torch.manual_seed(0)
    model = build_model(config)
    assert not queries_attend_to_each_other(model)
    # open the mask between queries: predictions now depend on the other queries, and the evaluation must say so
    monkeypatch.setattr(InContextTransformer, "attention_mask",
                        staticmethod(lambda k_shot, n_query: torch.zeros(k_shot + n_query, k_shot + n_query, dtype=torch.bool)))
    assert queries_attend_to_each_other(model)
    x_support, y_support, x_query, other = _support_and_queries()
    a = _first_query_prediction(model, "sinusoid-blackbox", x_support, y_support, x_query)
    b = _first_query_prediction(model, "sinusoid-blackbox", x_support, y_support, other)
    assert not torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    result = evaluate_experiment(config, model, n_tasks=2)
    assert result["transductive"] is True and "; transductive: " in result["protocol"]
