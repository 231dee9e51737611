"""metalearn_lab.validation, and every public numeric argument of the core library checked with it.

:data:`ARGUMENTS` lists, for each public function, class and method of the core modules (not the
lessons' companions) that takes an integer or a float, how to call it validly and which values
are out of range. ``test_the_table_names_every_numeric_argument`` walks the signatures of the core
modules and fails when a numeric argument is missing from the table (add it, with its valid
range) or when the table names one that no longer exists. The other tests then check, for every
argument in the table, that NumPy numbers and 0-d tensors are accepted like Python numbers, and
that ``bool``, NaN, infinities and out-of-range values are refused with a ``ValueError`` naming
the argument, the value and the valid range.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import math
import pkgutil
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import metalearn_lab
from metalearn_lab import (
    autodiff,
    baselines,
    bayes,
    blackbox,
    classroom,
    controls,
    cuda_graphs,
    diagnostics,
    drawing,
    functional_models,
    maml,
    metrics,
    models,
    protonet,
    reptile,
    rl,
    samplers,
    shipping,
    siamese,
    sweeps,
    training,
    tryit,
)
from metalearn_lab import report as report_module
from metalearn_lab.data import preferences
from metalearn_lab.experiments import config as config_module
from metalearn_lab.experiments import recipe, registry, runner, selection, splits
from metalearn_lab.experiments.recipes import bayes as bayes_recipe
from metalearn_lab.experiments.recipes import blackbox as blackbox_recipe
from metalearn_lab.experiments.recipes import omniglot as omniglot_recipe
from metalearn_lab.experiments.recipes import point_robot as point_robot_recipe
from metalearn_lab.experiments.recipes import preference as preference_recipe
from metalearn_lab.validation import check_float, check_int

# modules whose names their packages re-use for a function (metalearn_lab.data.sinusoid, ...)
files, lake_runs, omniglot, sinusoid = (importlib.import_module(f"metalearn_lab.data.{m}") for m in ("files", "lake_runs", "omniglot", "sinusoid"))
published = importlib.import_module("metalearn_lab.experiments.published")

# ---------------------------------------------------------------------------------------------
# the validators themselves


def test_check_int_accepts_python_numpy_and_tensor_integers():
    for value in (5, np.int64(5), np.int32(5), np.uint8(5), torch.tensor(5), np.array(5)):
        out = check_int("k_shot", value)
        assert out == 5 and type(out) is int


@pytest.mark.parametrize("value, text", [
    (True, "got the bool True"), (np.bool_(False), "got the bool"), (torch.tensor(True), "got the bool"),
    (5.0, "got 5.0"), (np.float32(2), "got np.float32(2.0)"), (float("nan"), "got nan"), (float("inf"), "got inf"),
    (torch.tensor([5]), "got tensor([5])"), ("5", "got '5'"), (None, "got None"), (0, "got 0"),
])
def test_check_int_refuses_with_name_value_and_range(value, text):
    with pytest.raises(ValueError) as err:
        check_int("k_shot", value)
    assert str(err.value).startswith("k_shot must be an integer >= 1") and text in str(err.value)


def test_check_int_range_in_the_message():
    with pytest.raises(ValueError, match=r"n_validation must be an integer in \[0, 1199\], got 1200"):
        check_int("n_validation", 1200, minimum=0, maximum=1199)
    assert check_int("seed", -3, minimum=None) == -3


def test_check_float_accepts_python_numpy_and_tensor_numbers():
    for value in (0.5, np.float32(0.5), np.float64(0.5), np.float16(0.5), torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float64),
                  np.array(0.5)):
        out = check_float("inner_lr", value, low=0, low_open=True)
        assert out == 0.5 and type(out) is float
    assert check_float("inner_lr", np.int64(2)) == 2.0 and check_float("inner_lr", torch.tensor(2)) == 2.0


@pytest.mark.parametrize("value, text", [
    (True, "got the bool True"), (float("nan"), "got nan"), (np.float32("nan"), "got np.float32(nan)"),
    (float("inf"), "got inf"), (-math.inf, "got -inf"), (torch.tensor(float("inf")), "got tensor(inf)"),
    (0.0, "got 0.0"), (1.5, "got 1.5"), ("0.1", "got '0.1'"), (torch.tensor([0.1, 0.2]), "got tensor("),
])
def test_check_float_refuses_with_name_value_and_range(value, text):
    with pytest.raises(ValueError) as err:
        check_float("outer_lr", value, low=0, high=1, low_open=True)
    assert str(err.value).startswith("outer_lr must be a finite number > 0 and <= 1") and text in str(err.value)


# ---------------------------------------------------------------------------------------------
# the table of every public numeric argument


@dataclass(frozen=True)
class Int:
    """An integer argument: a value the call accepts, and values outside its valid range."""

    valid: int
    bad: tuple = ()
    none_ok: bool = False


@dataclass(frozen=True)
class Float:
    """A float argument: a value the call accepts, and values outside its valid range."""

    valid: float
    bad: tuple = ()
    none_ok: bool = False


@dataclass(frozen=True)
class Entry:
    """``call(**{argument: value})`` calls the function validly, with ``value`` for that argument.

    ``after``: for functions whose full run is too slow for a unit test (a kernel, trained runs), the
    call is made with another input that fails later, for a reason matching ``(exception, regex)``:
    an accepted number gets past the argument check to that failure.
    """

    call: Callable[..., Any]
    arguments: dict
    after: tuple | None = None


class _ZeroPrior(bayes.GaussianPrior):
    """The smallest concrete prior, to call GaussianPrior's own __init__ (mean and kernel are abstract)."""

    def mean(self, x):
        return torch.zeros(x.shape[:-1], dtype=torch.float64)

    def kernel(self, x1, x2):
        return torch.ones(x1.shape[0], x1.shape[1], x2.shape[1], dtype=torch.float64)


def _mlp():
    torch.manual_seed(0)
    return models.SineMLP(hidden=8)


def _sine_batch(tasks=2):
    return sinusoid.SinusoidTasks().sample(tasks, 4, 3, generator=torch.Generator().manual_seed(0))


def _episode():
    classes = torch.rand(10, 20, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    return samplers.EpisodeSampler(classes, 3, 1, 2).sample(2, generator=torch.Generator().manual_seed(0))


class _Flat(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))

    def forward(self, x):
        return self.net(x)


def _adapt(**kw):
    model = _mlp()
    x = torch.linspace(-1, 1, 5)[:, None]
    return maml.adapt(model, dict(model.named_parameters()), x, x, F.mse_loss, **{"inner_steps": 1, "inner_lr": 0.01, **kw})


def _meta_call(function, **kw):
    model = _mlp()
    kw = {"inner_steps": 1, "inner_lr": 0.01, **kw}
    batch = _sine_batch().as_tuple()
    if function is maml.meta_train_step:
        return function(model, torch.optim.SGD(model.parameters(), lr=0.1), batch, F.mse_loss, **kw)
    if function is maml.adapt_and_predict:
        return function(model, batch, F.mse_loss, **kw)
    return function(model, dict(model.named_parameters()), batch, F.mse_loss, **kw)


def _linear_meta_gradient(**kw):
    x = torch.eye(2, dtype=torch.float64)
    return maml.linear_regression_meta_gradient(torch.zeros(2, dtype=torch.float64), x, torch.ones(2, dtype=torch.float64), x,
                                                torch.ones(2, dtype=torch.float64), **{"inner_lr": 0.25, **kw})


def _cost(**kw):
    return maml.meta_gradient_cost(_mlp(), _sine_batch().as_tuple(), F.mse_loss,
                                   **{"inner_steps": 1, "inner_lr": 0.01, "first_order": True, "repeats": 1, **kw})


def _reptile(**kw):
    batch = _sine_batch()
    return reptile.reptile_step(_mlp(), batch.x_support, batch.y_support, F.mse_loss,
                                **{"inner_steps": 1, "inner_lr": 0.01, "outer_lr": 0.5, **kw})


def _functional_adapt(**kw):
    model = _mlp()
    x = torch.linspace(-1, 1, 5)[:, None]
    adapt_fn = maml.functional_adapt(model, F.mse_loss, **{"inner_steps": 1, "inner_lr": 0.01, **kw})
    return adapt_fn(dict(model.named_parameters()), {}, x, x)


def _pairs():
    z1 = torch.zeros(2, 3)
    return z1, z1 + 0.5, torch.tensor([1.0, 0.0])


def _png(size=12):
    buffer = io.BytesIO()
    Image.new("L", (size, size), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def _toy_omniglot():
    return omniglot.Omniglot(torch.rand(5, 20, 8, 8), list("AAABB"), list("abcde"),
                             torch.tensor([True, True, True, False, False]))


def _figure(draw):
    try:
        return draw()
    finally:
        plt.close("all")


def _axes():
    return plt.subplots()[1]


def _maml_config():
    return registry.EXPERIMENTS["omniglot-maml-5w1s"].replace(eval_tasks=5, eval_n_query=1, eval_inner_steps=1)


def _maml_model():
    torch.manual_seed(0)
    return models.Conv4(hidden=4, out_features=5, track_running_stats=False)


def _omniglot_config():
    return registry.EXPERIMENTS["omniglot-protonet-5w1s"].replace(eval_tasks=5, eval_n_query=1)


def _validation_config():
    return SimpleNamespace(name="toy", n_way=5, k_shot=1, eval_n_query=1, eval_seed=3, eval_tasks_during_training=4,
                           validation_characters=100)


def _sine_config():
    return registry.EXPERIMENTS["sinusoid-pretrain"].quick().replace(eval_tasks=3, eval_tasks_during_training=3, iterations=1)


def _train(tmp_path_factory=None, **kw):
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        return runner.train_experiment(_sine_config(), out_dir=out, progress=False, **kw)


def _save_checkpoint(**kw):
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        return training.save_checkpoint(f"{out}/c.pt", _mlp(), config={"a": 1}, **kw)


# helpers for the lessons 07-12 modules (Reptile's analysis, Bayes, black-box learners, RL, sweeps)
def _reptile_data(tasks=2, n=6):
    g = torch.Generator().manual_seed(0)
    return torch.randn(tasks, n, 2, generator=g), torch.randn(tasks, n, 1, generator=g)


def _linear():
    torch.manual_seed(0)
    return torch.nn.Linear(2, 1)


def _batch_losses():
    a = torch.tensor([1.0, 3.0], dtype=torch.float64)
    return [lambda p: 0.5 * (a * p["w"] ** 2).sum(), lambda p: 0.5 * (a * (p["w"] - 1) ** 2).sum()]


def _w():
    return {"w": torch.zeros(2, dtype=torch.float64)}


def _direction_batches():
    b = sinusoid.SinusoidTasks().sample(2, 4, 4, generator=torch.Generator().manual_seed(0))
    return torch.stack([b.x_support, b.x_query], 1), torch.stack([b.y_support, b.y_query], 1)


def _policy():
    torch.manual_seed(0)
    return rl.GaussianPolicy(hidden=(8,))


def _episodes():
    policy = _policy()
    goals = rl.sample_goals(2, generator=torch.Generator().manual_seed(0))
    trajectories = rl.rollout(policy, rl.policy_params(policy), goals, 2, horizon=4, generator=torch.Generator().manual_seed(1))
    return policy, trajectories, rl.advantages(trajectories, 0.9)


def _maml_rl_loss(**kw):
    policy, before, adv = _episodes()
    return rl.maml_rl_loss(policy, dict(policy.named_parameters()), before, adv, before, adv, **{"inner_lr": 0.1, **kw})


def _rl_step(function, **kw):
    policy = _policy()
    goals = rl.sample_goals(2, generator=torch.Generator().manual_seed(0))
    kw = {"n_episodes": 2, "horizon": 3, "generator": torch.Generator().manual_seed(1), **kw}
    if function is rl.maml_rl_step:
        kw = {"inner_lr": 0.1, **kw}
    return function(policy, torch.optim.Adam(policy.parameters(), lr=1e-3), goals, **kw)


def _adaptation(function, **kw):
    policy = _policy()
    goals = rl.sample_goals(2, generator=torch.Generator().manual_seed(0))
    out = function(policy, rl.policy_params(policy), goals,
                   **{"steps": 1, "n_episodes": 2, "inner_lr": 0.1, "horizon": 3, "generator": torch.Generator().manual_seed(1),
                      **kw})
    return list(out) if function is rl.adaptation_episodes else out  # a generator checks when it starts


def _regression_sets():
    x = torch.linspace(-1, 1, 4).reshape(1, 4, 1)
    return x, x**2, torch.zeros(1, 2, 1)


def _cnp():
    torch.manual_seed(0)
    return blackbox.ConditionalNeuralProcess(hidden=4)


def _preference_users(**kw):
    return preferences.PreferenceTasks().sample(**{"n_users": 3, "k_shot": 2, "generator": torch.Generator().manual_seed(0), **kw})


def _bayes_config():
    return registry.EXPERIMENTS["sinusoid-bayes-sine"].replace(eval_tasks_during_training=3, eval_n_query=5)


def _blackbox_config():
    return registry.EXPERIMENTS["sinusoid-cnp"].replace(eval_tasks_during_training=3, eval_n_query=5, hidden=4)


def _point_robot_config():
    return registry.EXPERIMENTS["point-robot-maml"].quick().replace(horizon=3, eval_episodes=2, eval_steps=1,
                                                                   eval_tasks_during_training=2)


def _preference_config():
    return registry.EXPERIMENTS["preference-maml"].replace(eval_tasks_during_training=3, eval_n_query=5)


def _toy_sweep(**kw):
    return sweeps.Sweep("toy", "sinusoid-maml", grid={"inner_lr": (0.01,)}, **kw)


NEEDS_OMNIGLOT = {"load_omniglot", "load_lake_runs", "omniglot_splits", "omniglot_test_tasks", "omniglot_validation_tasks",
                  "evaluation_tasks", "evaluate_by_adaptation", "background_classes", "validation_alphabets", "lake_validation_runs"}

#: "module.qualname" -> how to call it, and each numeric argument's valid and out-of-range values
ARGUMENTS: dict[str, Entry] = {
    # ---- meta-learning algorithms
    "metalearn_lab.maml.check_inner_loop": Entry(
        lambda **kw: maml.check_inner_loop(**{"inner_steps": 1, "inner_lr": 0.1, **kw}),
        {"inner_steps": Int(2, (-1,)), "inner_lr": Float(0.1, (0.0, -0.1))}),
    "metalearn_lab.maml.adapt": Entry(_adapt, {"inner_steps": Int(2, (-1,)), "inner_lr": Float(0.01, (0.0, -1.0))}),
    "metalearn_lab.maml.functional_adapt": Entry(_functional_adapt, {"inner_steps": Int(2, (-1,)), "inner_lr": Float(0.01, (0.0,))}),
    **{f"metalearn_lab.maml.{f.__name__}": Entry(lambda f=f, **kw: _meta_call(f, **kw),
                                                 {"inner_steps": Int(1, (-1,)), "inner_lr": Float(0.01, (0.0, -0.5))})
       for f in (maml.meta_loss, maml.meta_train_step, maml.adapt_and_predict, maml.meta_gradient)},
    "metalearn_lab.maml.linear_regression_meta_gradient": Entry(
        _linear_meta_gradient, {"inner_lr": Float(0.25, (0.0,)), "inner_steps": Int(2, (-1,))}),
    "metalearn_lab.maml.meta_gradient_cost": Entry(_cost, {"inner_steps": Int(1, (-1,)), "inner_lr": Float(0.01, (0.0,)),
                                                          "repeats": Int(1, (0,)), "threads": Int(1, (0,), none_ok=True)}),
    "metalearn_lab.reptile.reptile_step": Entry(_reptile, {"inner_steps": Int(2, (0,)), "inner_lr": Float(0.01, (0.0,)),
                                                           "outer_lr": Float(0.5, (0.0, 1.5))}),
    "metalearn_lab.protonet.prototypes": Entry(
        lambda **kw: protonet.prototypes(torch.rand(1, 3, 2), torch.tensor([[0, 1, 1]]), **{"n_way": 2, **kw}), {"n_way": Int(2, (0,))}),
    "metalearn_lab.protonet.protonet_logits": Entry(
        lambda **kw: protonet.protonet_logits(_Flat(), *_episode().as_tuple()[:3], **{"n_way": 3, **kw}), {"n_way": Int(3, (0,))}),
    "metalearn_lab.protonet.protonet_loss": Entry(
        lambda **kw: protonet.protonet_loss(_Flat(), _episode(), **kw), {"n_way": Int(3, (0,), none_ok=True)}),
    "metalearn_lab.siamese.contrastive_loss": Entry(lambda **kw: siamese.contrastive_loss(*_pairs(), **kw), {"margin": Float(1.0, (0.0, -1.0))}),
    "metalearn_lab.siamese.siamese_loss": Entry(
        lambda **kw: siamese.siamese_loss(_Flat(), torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4), torch.tensor([1.0, 0.0]), **kw),
        {"margin": Float(1.0, (0.0,))}),
    "metalearn_lab.siamese.verification_accuracy": Entry(
        lambda **kw: siamese.verification_accuracy(_Flat(), torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4), torch.tensor([1.0, 0.0]),
                                                   **{"threshold": 0.5, **kw}), {"threshold": Float(0.5, (-0.1,))}),
    "metalearn_lab.baselines.pretrain": Entry(
        lambda **kw: baselines.pretrain(_mlp(), lambda: (torch.zeros(4, 1), torch.zeros(4, 1)), F.mse_loss,
                                        **{"iterations": 1, "progress": False, **kw}),
        {"iterations": Int(1, (0,)), "lr": Float(0.001, (0.0,))}),
    "metalearn_lab.baselines.fit_from_scratch": Entry(
        lambda **kw: baselines.fit_from_scratch(torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, 1), **{"steps": 1, **kw}),
        {"steps": Int(2, (-1,)), "lr": Float(0.01, (0.0,)), "seed": Int(1, (-1,)), "record_every": Int(1, (0,)),
         "hidden": Int(4, (0,))}),
    "metalearn_lab.autodiff.step_cost": Entry(
        lambda **kw: autodiff.step_cost(lambda: torch.ones(2, requires_grad=True).exp().sum(), **{"repeats": 1, **kw}),
        {"repeats": Int(1, (0,)), "threads": Int(1, (0,), none_ok=True)}),
    "metalearn_lab.autodiff.finite_difference_gradient": Entry(
        lambda **kw: autodiff.finite_difference_gradient(lambda p: (p["w"] ** 2).sum(), {"w": torch.ones(2, dtype=torch.float64)}, **kw),
        {"eps": Float(1e-6, (0.0, -1e-6))}),
    # ---- models
    "metalearn_lab.models.SineMLP": Entry(lambda **kw: models.SineMLP(**kw), {"hidden": Int(8, (0,)), "layers": Int(1, (0,))}),
    "metalearn_lab.models.TaskBatchNorm2d": Entry(lambda **kw: models.TaskBatchNorm2d(**{"num_features": 3, **kw}),
                                                  {"num_features": Int(3, (0,)), "eps": Float(1e-5, (0.0,))}),
    "metalearn_lab.models.conv_block": Entry(lambda **kw: models.conv_block(**{"in_channels": 1, "out_channels": 4, **kw}),
                                             {"in_channels": Int(1, (0,)), "out_channels": Int(4, (0,))}),
    "metalearn_lab.models.Conv4": Entry(lambda **kw: models.Conv4(**{"hidden": 4, **kw}),
                                        {"in_channels": Int(1, (0,)), "hidden": Int(4, (0,)), "out_features": Int(5, (0,), none_ok=True),
                                         "image_size": Int(16, (0, 8, 15))}),  # >= 16: four halvings by max-pooling leave a pixel
    "metalearn_lab.models.EmbeddingNet": Entry(lambda **kw: models.EmbeddingNet(**{"hidden": 4, **kw}),
                                               {"embedding_dim": Int(8, (0,)), "in_channels": Int(1, (0,)), "hidden": Int(4, (0,)),
                                                "image_size": Int(28, (15, 0))}),
    # ---- episodes, pairs, sinusoids
    "metalearn_lab.samplers.Episode.task": Entry(lambda **kw: _episode().task(**{"i": 0, **kw}), {"i": Int(1, (-1, 2))}),
    "metalearn_lab.samplers.EpisodeSampler": Entry(
        lambda **kw: samplers.EpisodeSampler(torch.rand(10, 20, 1, 4, 4), **{"n_way": 5, "k_shot": 1, "n_query": 5, **kw}),
        {"n_way": Int(5, (0, 11)), "k_shot": Int(1, (0, 20)), "n_query": Int(5, (0, 20))}),
    "metalearn_lab.samplers.EpisodeSampler.sample_indices": Entry(
        lambda **kw: samplers.EpisodeSampler(torch.rand(10, 20, 1, 4, 4), 5, 1, 5).sample_indices(**kw), {"meta_batch_size": Int(2, (0,))}),
    "metalearn_lab.samplers.EpisodeSampler.sample": Entry(
        lambda **kw: samplers.EpisodeSampler(torch.rand(10, 20, 1, 4, 4), 5, 1, 5).sample(**kw), {"meta_batch_size": Int(2, (0,))}),
    "metalearn_lab.samplers.FixedEpisodes": Entry(
        lambda **kw: samplers.FixedEpisodes(samplers.EpisodeSampler(torch.rand(10, 20, 1, 4, 4), 5, 1, 5), **{"n_tasks": 3, **kw}),
        {"n_tasks": Int(3, (0,)), "seed": Int(2, (-1,))}),
    "metalearn_lab.samplers.FixedEpisodes.batches": Entry(
        lambda **kw: list(samplers.FixedEpisodes(samplers.EpisodeSampler(torch.rand(10, 20, 1, 4, 4), 5, 1, 5), 3).batches(**kw)),
        {"batch_size": Int(2, (0,)), "limit": Int(2, (0,), none_ok=True)}),
    "metalearn_lab.samplers.PairSampler.sample": Entry(
        lambda **kw: samplers.PairSampler(torch.rand(10, 20, 1, 4, 4)).sample(**{"n_pairs": 4, **kw}), {"n_pairs": Int(4, (1,))}),
    "metalearn_lab.samplers.random_affine": Entry(
        lambda **kw: samplers.random_affine(torch.rand(2, 1, 8, 8), **kw),
        {"max_rotation": Float(10.0, (-1.0,)), "max_shear": Float(0.3, (-0.1,)), "max_shift": Float(0.02, (-0.02,))}),
    "metalearn_lab.data.sinusoid.sinusoid": Entry(
        lambda **kw: sinusoid.sinusoid(torch.zeros(3), **{"amplitude": 1.0, "phase": 0.0, **kw}),
        {"amplitude": Float(2.0), "phase": Float(0.5)}),
    "metalearn_lab.data.sinusoid.SinusoidBatch.task": Entry(lambda **kw: _sine_batch().task(**{"i": 0, **kw}), {"i": Int(1, (-1, 2))}),
    "metalearn_lab.data.sinusoid.SinusoidTasks.sample": Entry(
        lambda **kw: sinusoid.SinusoidTasks().sample(**{"meta_batch_size": 2, "k_shot": 3, **kw}),
        {"meta_batch_size": Int(2, (0,)), "k_shot": Int(3, (0,)), "n_query": Int(4, (0,), none_ok=True)}),
    "metalearn_lab.data.sinusoid.SinusoidTasks.grid": Entry(lambda **kw: sinusoid.SinusoidTasks().grid(**kw), {"points": Int(50, (1,))}),
    # ---- data files
    "metalearn_lab.data.files.decode_png": Entry(lambda **kw: files.decode_png(_png(), **{"image_size": 8, **kw}),
                                                 {"image_size": Int(8, (0,))}),
    "metalearn_lab.data.omniglot.load_omniglot": Entry(lambda **kw: omniglot.load_omniglot(**kw), {"image_size": Int(28, (0,))}),
    "metalearn_lab.data.omniglot.rotation_split_indices": Entry(
        lambda **kw: omniglot.rotation_split_indices(**{"n_characters": 10, "n_train": 7, **kw}),
        {"n_characters": Int(10, (1,)), "n_train": Int(7, (0, 10)), "seed": Int(0, (-1,))}),
    "metalearn_lab.data.omniglot.rotation_split": Entry(
        lambda **kw: omniglot.rotation_split(_toy_omniglot(), **{"n_train": 3, **kw}), {"n_train": Int(3, (0, 5)), "seed": Int(0, (-1,))}),
    "metalearn_lab.data.lake_runs.load_lake_runs": Entry(lambda **kw: lake_runs.load_lake_runs(**kw), {"image_size": Int(28, (0,))}),
    # ---- metrics, training, shipping
    "metalearn_lab.metrics.t_quantile": Entry(lambda **kw: metrics.t_quantile(**{"confidence": 0.95, "n": 5, **kw}),
                                              {"confidence": Float(0.9, (0.0, 1.0)), "n": Int(5, (1,))}),
    "metalearn_lab.metrics.mean_confidence_interval": Entry(lambda **kw: metrics.mean_confidence_interval([0.0, 1.0, 1.0], **kw),
                                                            {"confidence": Float(0.9, (0.0, 1.0, 1.5))}),
    "metalearn_lab.metrics.format_ci": Entry(lambda **kw: metrics.format_ci([0.0, 1.0, 1.0], **kw), {"digits": Int(2, (-1,), none_ok=True)}),
    "metalearn_lab.metrics.format_mse": Entry(lambda **kw: metrics.format_mse({"mean": 0.5, "ci95": 0.1}, **kw), {"digits": Int(2, (-1,))}),
    "metalearn_lab.metrics.moving_average": Entry(lambda **kw: metrics.moving_average([1.0, 2.0, 3.0], **{"window": 2, **kw}),
                                                  {"window": Int(2, (0,))}),
    "metalearn_lab.training.meta_train": Entry(
        lambda **kw: training.meta_train(lambda s: {"loss": 1.0}, **{"iterations": 3, "progress": False, **kw}),
        {"iterations": Int(3, (-1,)), "eval_every": Int(1, (-1,)), "start": Int(1, (-1, 4)), "checkpoint_every": Int(1, (-1,)),
         "time_limit": Float(60.0, (0.0, -1.0), none_ok=True)}),
    "metalearn_lab.training.save_checkpoint": Entry(_save_checkpoint, {"step": Int(3, (-1,))}),
    "metalearn_lab.shipping.downsample_history": Entry(
        lambda **kw: shipping.downsample_history({"step": [0, 1, 2], "loss": [1.0, 2.0, 3.0]}, **kw), {"max_points": Int(2, (0,))}),
    # ---- experiments
    "metalearn_lab.experiments.published.Published": Entry(
        lambda **kw: published.Published(**{"key": "k", "value": 1.0, "interval": None, "unit": "%", "paper": "p", "where": "w",
                                            "benchmark": "b", "transductive": None, "protocol": "", **kw}),
        {"value": Float(98.7), "interval": Float(0.4, (-0.1,), none_ok=True)}),
    "metalearn_lab.experiments.published.Published.text": Entry(
        lambda **kw: published.published("maml-omniglot-5w1s").text(**kw), {"digits": Int(2, (-1,), none_ok=True)}),
    "metalearn_lab.experiments.recipe.step_generator": Entry(lambda **kw: recipe.step_generator(_sine_config(), **{"step": 0, **kw}),
                                                             {"step": Int(3, (-1,))}),
    "metalearn_lab.experiments.recipes.omniglot.evaluation_tasks": Entry(
        lambda **kw: omniglot_recipe.evaluation_tasks(_omniglot_config(), "test", **{"n_tasks": 2, **kw}),
        {"n_tasks": Int(2, (0,), none_ok=True)}),
    "metalearn_lab.experiments.recipes.omniglot.protocol": Entry(
        lambda **kw: omniglot_recipe.protocol(_omniglot_config(), split="test", **{"n_tasks": 5, **kw}), {"n_tasks": Int(5, (0,))}),
    "metalearn_lab.experiments.runner.evaluate_experiment": Entry(
        lambda **kw: runner.evaluate_experiment(_sine_config(), runner.build_model(_sine_config()), **kw),
        {"n_tasks": Int(3, (1,), none_ok=True)}),
    "metalearn_lab.experiments.runner.train_experiment": Entry(_train, {"time_limit": Float(60.0, (0.0,), none_ok=True)}),
    "metalearn_lab.experiments.splits.omniglot_splits": Entry(lambda **kw: splits.omniglot_splits(**kw), {"n_validation": Int(0, (-1, 1200))}),
    "metalearn_lab.experiments.splits.omniglot_test_tasks": Entry(
        lambda **kw: splits.omniglot_test_tasks(_omniglot_config(), **kw),
        {"n_tasks": Int(2, (0,), none_ok=True), "n_query": Int(1, (0,), none_ok=True)}),
    "metalearn_lab.experiments.splits.omniglot_validation_tasks": Entry(
        lambda **kw: splits.omniglot_validation_tasks(_validation_config(), **kw), {"n_tasks": Int(2, (0,), none_ok=True)}),
    "metalearn_lab.experiments.splits.sinusoid_test_tasks": Entry(
        lambda **kw: splits.sinusoid_test_tasks(_sine_config(), **kw), {"n_tasks": Int(2, (0,), none_ok=True)}),
    "metalearn_lab.experiments.splits.sinusoid_validation_tasks": Entry(
        lambda **kw: splits.sinusoid_validation_tasks(_sine_config(), **kw), {"n_tasks": Int(2, (0,), none_ok=True)}),
    # ---- figures shared by lessons
    "metalearn_lab.drawing.show_images": Entry(lambda **kw: _figure(lambda: drawing.show_images(torch.rand(3, 1, 4, 4), **kw)),
                                               {"ncols": Int(2, (0,)), "size": Float(0.5, (0.0,))}),
    "metalearn_lab.drawing.show_episode": Entry(lambda **kw: _figure(lambda: drawing.show_episode(_episode(), **kw)),
                                                {"task": Int(1, (-1,)), "max_per_class": Int(2, (0,)), "size": Float(0.5, (0.0,))}),
    "metalearn_lab.drawing.image_mosaic": Entry(lambda **kw: drawing.image_mosaic([[torch.rand(4, 4)]], **{"cols": 1, **kw}),
                                                {"cols": Int(2, (0,)), "pad": Int(1, (-1,)), "gap_value": Float(0.2, (-0.1, 1.1))}),
    "metalearn_lab.drawing.diagram_box": Entry(
        lambda **kw: _figure(lambda: drawing.diagram_box(_axes(), (0, 0), **{"width": 1.0, "height": 1.0, "text": "t", "color": "w", **kw})),
        {"width": Float(1.0, (0.0,)), "height": Float(1.0, (-1.0,)), "fontsize": Float(8.0, (0.0,)),
         "linewidth": Float(0.5, (-1.0,)), "alpha": Float(0.5, (-0.1, 1.1))}),
    "metalearn_lab.drawing.diagram_arrow": Entry(lambda **kw: _figure(lambda: drawing.diagram_arrow(_axes(), (0, 0), (1, 1), "t", **kw)),
                                                 {"rad": Float(0.2), "fontsize": Float(8.0, (0.0,))}),
    "metalearn_lab.drawing.diagram_axes": Entry(lambda **kw: _figure(lambda: drawing.diagram_axes(None, (2, 2), **{"height": 3.0, **kw})),
                                                {"height": Float(3.0, (0.0,)), "width": Float(4.0, (-4.0,))}),
    "metalearn_lab.drawing.plot_loss_curve": Entry(lambda **kw: _figure(lambda: drawing.plot_loss_curve([1.0, 0.5, 0.2], **kw)),
                                                   {"smooth": Int(2, (0,))}),
    # ---- classroom, Try-its, run selection
    "metalearn_lab.classroom.run_notebook": Entry(lambda **kw: classroom.run_notebook(None, **kw), {"timeout": Int(60, (0,))},
                                                  after=(AttributeError, "metadata")),
    "metalearn_lab.classroom.grade_notebook": Entry(lambda **kw: classroom.grade_notebook("/nonexistent/01_x.ipynb", **kw),
                                                    {"timeout": Int(60, (0,))}),
    "metalearn_lab.classroom.grade": Entry(lambda **kw: classroom.grade([], **kw), {"timeout": Int(60, (0,))},
                                           after=(ValueError, "no submissions")),
    "metalearn_lab.controls.rate_slider": Entry(lambda **kw: controls.rate_slider(**{"value": 0.1, "choices": (0.1, 0.2), "description": "a",
                                                                                   **kw}), {"value": Float(0.2, (0.0, -0.1))}),
    "metalearn_lab.controls.tight_box": Entry(lambda **kw: _figure(lambda: controls.tight_box(plt.figure(figsize=(2, 2)), **kw)),
                                              {"pad": Float(0.1, (-0.1,))}),
    "metalearn_lab.tryit.explorer": Entry(
        lambda **kw: _figure(lambda: tryit.explorer(lambda a: plt.figure(figsize=(1, 1)), {"a": [1]}, **kw)),
        {"dpi": Int(20, (0,)), "max_bytes": Int(10**6, (0,))}),
    "metalearn_lab.experiments.selection.select_run": Entry(lambda **kw: selection.select_run([], **kw),
                                                            {"n_tasks": Int(3, (1,), none_ok=True)},
                                                            after=(ValueError, "runs must name at least 2")),
    "metalearn_lab.data.lake_runs.sample_within_alphabet_runs": Entry(
        lambda **kw: lake_runs.sample_within_alphabet_runs([torch.rand(6, 4, 1, 4, 4)], **{"runs_per_alphabet": 1, "n_way": 3, **kw}),
        {"runs_per_alphabet": Int(2, (0,)), "n_way": Int(3, (1,)), "seed": Int(1, (-1,))}),
    "metalearn_lab.experiments.splits.background_classes": Entry(lambda **kw: splits.background_classes(**kw),
                                                                 {"n_validation_alphabets": Int(1, (-1, 11))}),
    "metalearn_lab.experiments.splits.validation_alphabets": Entry(lambda **kw: splits.validation_alphabets(**{"n": 1, **kw}),
                                                                   {"n": Int(2, (-1, 11)), "seed": Int(1, (-1,))}),
    "metalearn_lab.experiments.splits.lake_validation_runs": Entry(
        lambda **kw: splits.lake_validation_runs(**{"n_validation_alphabets": 1, "runs_per_alphabet": 1, **kw}),
        {"n_validation_alphabets": Int(1, (-1, 11)), "runs_per_alphabet": Int(1, (0,)), "seed": Int(1, (-1,))}),
    "metalearn_lab.experiments.recipes.omniglot.evaluate_by_adaptation": Entry(
        lambda **kw: omniglot_recipe.evaluate_by_adaptation(_maml_config(), _maml_model(), "test", device="cpu", **{"n_tasks": 2, **kw}),
        {"n_tasks": Int(2, (0,), none_ok=True)}),
    "metalearn_lab.maml.query_mse": Entry(lambda **kw: maml.query_mse(_mlp(), _sine_batch(), **{"inner_steps": 1, "inner_lr": 0.01, **kw}),
                                          {"inner_steps": Int(1, (-1,)), "inner_lr": Float(0.01, (0.0,))}),
    "metalearn_lab.protonet.protonet_predict": Entry(
        lambda **kw: protonet.protonet_predict(_Flat(), *_episode().as_tuple()[:3], **{"n_way": 3, **kw}), {"n_way": Int(3, (0,))}),
    "metalearn_lab.drawing.plot_adaptation_curve": Entry(
        lambda **kw: _figure(lambda: drawing.plot_adaptation_curve([0, 1], {"m": ([0.2, 0.5], [0.1, 0.1])}, **kw)),
        {"chance": Float(0.2, (-0.1, 1.5), none_ok=True)}),
    # ---- Reptile with an optimizer, and Nichol et al.'s analysis of the update directions
    "metalearn_lab.reptile.reptile_update": Entry(
        lambda **kw: reptile.reptile_update({"w": torch.zeros(1)}, [{"w": torch.ones(1)}], **{"outer_lr": 0.5, **kw}),
        {"outer_lr": Float(0.5, (0.0, -0.1, 1.5))}),
    "metalearn_lab.reptile.nichol_adam": Entry(lambda **kw: reptile.nichol_adam([torch.nn.Parameter(torch.zeros(2))], **kw),
                                               {"lr": Float(1e-3, (0.0, -1e-3))}),
    "metalearn_lab.reptile.inner_minibatches": Entry(
        lambda **kw: reptile.inner_minibatches(**{"n_examples": 10, "inner_batch_size": 5, "inner_steps": 2, **kw}),
        {"n_examples": Int(10, (0, -1)), "inner_batch_size": Int(5, (0, 11)), "inner_steps": Int(2, (0,))}),
    "metalearn_lab.reptile.train_on_task": Entry(
        lambda **kw: (lambda m, x, y: reptile.train_on_task(m, torch.optim.SGD(m.parameters(), lr=0.1), x[0], y[0], F.mse_loss,
                                                            **{"inner_steps": 2, **kw}))(_linear(), *_reptile_data()),
        {"inner_steps": Int(2, (0,)), "inner_batch_size": Int(3, (0, 7), none_ok=True)}),
    "metalearn_lab.reptile.reptile_optimizer_step": Entry(
        lambda **kw: (lambda m, x, y: reptile.reptile_optimizer_step(
            m, reptile.nichol_adam(m.parameters()), x, y, F.mse_loss,
            **{"inner_steps": 2, "inner_batch_size": 3, "outer_lr": 0.5, **kw}))(_linear(), *_reptile_data()),
        {"inner_steps": Int(2, (0,)), "inner_batch_size": Int(3, (0, 7), none_ok=True), "outer_lr": Float(0.5, (0.0, 1.5))}),
    "metalearn_lab.reptile.fine_tune": Entry(
        lambda **kw: (lambda m, x, y: reptile.fine_tune(m, x[0], y[0], F.mse_loss, **{"inner_steps": 2, **kw}))(
            _linear(), *_reptile_data()),
        {"inner_steps": Int(2, (0,)), "inner_batch_size": Int(3, (0, 7), none_ok=True)}),
    "metalearn_lab.reptile.reptile_step_cost": Entry(
        lambda **kw: reptile.reptile_step_cost(_mlp(), *_sine_batch().as_tuple()[:2], F.mse_loss,
                                               **{"inner_steps": 1, "inner_lr": 0.01, "repeats": 1, **kw}),
        {"inner_steps": Int(1, (-1,)), "inner_lr": Float(0.01, (0.0,)), "repeats": Int(1, (0,)), "threads": Int(1, (0,), none_ok=True)}),
    "metalearn_lab.reptile.update_directions": Entry(
        lambda **kw: reptile.update_directions(_batch_losses(), _w(), **{"inner_lr": 0.1, **kw}), {"inner_lr": Float(0.1, (0.0, -0.1))}),
    "metalearn_lab.reptile.expected_update_directions": Entry(
        lambda **kw: reptile.expected_update_directions([_batch_losses()], _w(), **{"inner_lr": 0.1, "n_batches": 2, **kw}),
        {"inner_lr": Float(0.1, (0.0,)), "n_batches": Int(2, (0, 3))}),
    "metalearn_lab.reptile.taylor_coefficients": Entry(lambda **kw: reptile.taylor_coefficients("Reptile", **{"n_batches": 2, **kw}),
                                                       {"n_batches": Int(2, (0,))}),
    "metalearn_lab.reptile.meta_directions": Entry(
        lambda **kw: (lambda m: reptile.meta_directions(m, dict(m.named_parameters()), *_direction_batches(), F.mse_loss,
                                                        **{"method": "MAML", "inner_lr": 0.01, **kw}))(_mlp()),
        {"inner_lr": Float(0.01, (0.0,))}),
    "metalearn_lab.reptile.meta_direction_step": Entry(
        lambda **kw: (lambda m: reptile.meta_direction_step(m, torch.optim.Adam(m.parameters()), *_direction_batches(), F.mse_loss,
                                                            **{"method": "Reptile", "inner_lr": 0.01, **kw}))(_mlp()),
        {"inner_lr": Float(0.01, (0.0,))}),
    # ---- Bayesian, non-parametric and black-box learners (lesson 08-09)
    "metalearn_lab.bayes.GaussianPrior": Entry(lambda **kw: _ZeroPrior(**kw),
                                               {"noise_var": Float(1e-3, (1e-7, 0.0, -1.0)), "min_noise_var": Float(1e-6, (0.0, -1.0))}),
    "metalearn_lab.bayes.GaussianPrior.sample": Entry(lambda **kw: bayes.RBFPrior().sample(torch.zeros(1, 3, 1), **kw),
                                                      {"n_samples": Int(2, (0,))}),
    "metalearn_lab.bayes.RBFPrior": Entry(lambda **kw: bayes.RBFPrior(**kw), {
        "length_scale": Float(0.5, (0.0, -1.0)), "signal_var": Float(2.0, (0.0,)), "mean": Float(-0.5),
        "noise_var": Float(1e-3, (0.0, 1e-7)), "min_noise_var": Float(1e-6, (0.0,))}),
    "metalearn_lab.bayes.FeaturePrior": Entry(lambda **kw: bayes.FeaturePrior(bayes.sine_features, **{"n_features": 2, **kw}), {
        "n_features": Int(2, (0,)), "weight_cov": Float(4.0, (0.0, -1.0), none_ok=True), "noise_var": Float(1e-3, (0.0,)),
        "min_noise_var": Float(1e-6, (0.0,))}),
    "metalearn_lab.bayes.fit_empirical_bayes": Entry(
        lambda **kw: bayes.fit_empirical_bayes(bayes.RBFPrior(), *_sine_batch(4).as_tuple()[:2], **{"steps": 2, **kw}),
        {"steps": Int(2, (0,)), "lr": Float(0.05, (0.0,)), "meta_batch_size": Int(2, (0,), none_ok=True)}),
    "metalearn_lab.blackbox.check_context": Entry(
        lambda **kw: blackbox.check_context(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1), torch.zeros(2, 4, 1), **{"x_dim": 1, "y_dim": 1, **kw}),
        {"x_dim": Int(1, (0,)), "y_dim": Int(1, (0,))}),
    "metalearn_lab.blackbox.ConditionalNeuralProcess": Entry(lambda **kw: blackbox.ConditionalNeuralProcess(**{"hidden": 4, **kw}), {
        "x_dim": Int(2, (0,)), "y_dim": Int(2, (0,)), "hidden": Int(4, (0,)), "encoder_layers": Int(2, (0,)),
        "decoder_layers": Int(2, (1,)), "min_std": Float(0.01, (-0.1, 1.0))}),
    "metalearn_lab.blackbox.InContextTransformer": Entry(
        lambda **kw: blackbox.InContextTransformer(**{"d_model": 8, "n_heads": 2, "n_layers": 1, "dim_feedforward": 8, **kw}), {
            "x_dim": Int(2, (0,)), "y_dim": Int(2, (0,)), "d_model": Int(8, (0,)), "n_heads": Int(2, (0,)), "n_layers": Int(1, (0,)),
            "dim_feedforward": Int(8, (0,)), "min_std": Float(0.01, (-0.1, 1.0))}),
    "metalearn_lab.blackbox.predict": Entry(
        lambda **kw: blackbox.predict(_cnp(), torch.zeros(5, 2, 1), torch.zeros(5, 2, 1), torch.zeros(5, 3, 1), **kw), {"chunk": Int(2, (0,))}),
    "metalearn_lab.baselines.knn_regression": Entry(lambda **kw: baselines.knn_regression(*_regression_sets(), **{"k": 2, **kw}),
                                                    {"k": Int(2, (0,))}),
    "metalearn_lab.baselines.kernel_regression": Entry(
        lambda **kw: baselines.kernel_regression(*_regression_sets(), **{"bandwidth": 0.5, **kw}), {"bandwidth": Float(0.5, (0.0, -1.0))}),
    "metalearn_lab.baselines.fit_from_scratch_batch": Entry(
        lambda **kw: baselines.fit_from_scratch_batch(*_regression_sets()[:2], _regression_sets()[0], **{"steps": 2, "hidden": 4, **kw}),
        {"steps": Int(2, (-1,)), "lr": Float(0.01, (0.0,)), "seed": Int(1, (-1,)), "hidden": Int(4, (0,))}),
    "metalearn_lab.experiments.recipes.bayes.feature_network": Entry(
        lambda **kw: bayes_recipe.feature_network(**{"hidden": 4, "n_features": 3, **kw}), {"hidden": Int(4, (0,)), "n_features": Int(3, (0,))}),
    "metalearn_lab.experiments.recipes.bayes.SinusoidBayes.evaluate": Entry(
        lambda **kw: bayes_recipe.SinusoidBayes().evaluate(_bayes_config(), bayes_recipe.build_prior(_bayes_config()), split="validation",
                                                           device=torch.device("cpu"), **{"n_tasks": 2, **kw}),
        {"n_tasks": Int(2, (0,), none_ok=True)}),
    "metalearn_lab.experiments.recipes.blackbox.SinusoidBlackBox.evaluate": Entry(
        lambda **kw: blackbox_recipe.SinusoidBlackBox().evaluate(_blackbox_config(), blackbox_recipe.build_blackbox(_blackbox_config()),
                                                                 split="validation", device=torch.device("cpu"), **{"n_tasks": 2, **kw}),
        {"n_tasks": Int(2, (0,), none_ok=True)}),
    "metalearn_lab.experiments.recipes.blackbox.evaluate_by_k_shot": Entry(
        lambda **kw: blackbox_recipe.evaluate_by_k_shot(_blackbox_config(), lambda batch: torch.zeros(len(batch)), split="validation",
                                                        device=torch.device("cpu"), method="zero",
                                                        independence={"transductive": False, "batch_norm": "not transductive: x"},
                                                        **{"n_tasks": 2, **kw}),
        {"n_tasks": Int(2, (0,), none_ok=True)}),
    "metalearn_lab.experiments.recipes.blackbox.queries_attend_to_each_other": Entry(
        lambda **kw: blackbox_recipe.queries_attend_to_each_other(
            blackbox.InContextTransformer(d_model=8, n_heads=2, n_layers=1), **{"k_shot": 3, "n_query": 4, **kw}),
        {"k_shot": Int(3, (-1,)), "n_query": Int(4, (1,))}),
    # ---- CUDA graphs and the hand-written Conv4 forward (the vmap work)
    "metalearn_lab.cuda_graphs.GraphedMetaTrainStep": Entry(  # needs a CUDA model: any accepted number gets to that check
        lambda **kw: (lambda m: cuda_graphs.GraphedMetaTrainStep(m, torch.optim.SGD(m.parameters(), lr=0.1), F.mse_loss,
                                                                 **{"inner_steps": 1, "inner_lr": 0.01, **kw}))(_mlp()),
        {"inner_steps": Int(1, (-1,)), "inner_lr": Float(0.01, (0.0,)), "warmup_steps": Int(2, (0,))},
        after=(ValueError, "needs a model on a CUDA device")),
    "metalearn_lab.cuda_graphs.make_meta_train_step": Entry(
        lambda **kw: (lambda m: cuda_graphs.make_meta_train_step(m, torch.optim.SGD(m.parameters(), lr=0.1), F.mse_loss, cuda_graph=False,
                                                                 **{"inner_steps": 1, "inner_lr": 0.01, **kw}))(_mlp()),
        {"inner_steps": Int(1, (-1,)), "inner_lr": Float(0.01, (0.0,))}),
    "metalearn_lab.functional_models.task_batch_norm": Entry(
        lambda **kw: functional_models.task_batch_norm(torch.randn(2, 3, 4, 4), torch.ones(3), torch.zeros(3), **kw),
        {"eps": Float(1e-3, (0.0, -1e-5))}),
    "metalearn_lab.functional_models.conv4_forward": Entry(
        lambda **kw: (lambda m: functional_models.conv4_forward(dict(m.named_parameters()), torch.randn(2, 1, 28, 28), **kw))(_maml_model()),
        {"blocks": Int(4, (0, 5)), "eps": Float(1e-3, (0.0,))}),
    "metalearn_lab.models.conv4_side": Entry(lambda **kw: models.conv4_side(**{"image_size": 28, **kw}), {"image_size": Int(84, (0, 15))}),
    # ---- task families: preferences (lesson 10), sinusoid pools (lesson 11), the point robot (lesson 10)
    "metalearn_lab.data.preferences.PreferenceBatch.task": Entry(lambda **kw: _preference_users().task(**kw), {"i": Int(2, (-1, 3))}),
    "metalearn_lab.data.preferences.PreferenceTasks": Entry(lambda **kw: preferences.PreferenceTasks(**kw), {"noise": Float(0.0, (-0.1,))}),
    "metalearn_lab.data.preferences.PreferenceTasks.sample": Entry(
        _preference_users, {"n_users": Int(3, (0,)), "k_shot": Int(2, (0,)), "n_query": Int(1, (0,), none_ok=True)}),
    "metalearn_lab.data.preferences.PreferenceTasks.grid": Entry(lambda **kw: preferences.PreferenceTasks().grid(**kw),
                                                                 {"points": Int(5, (1,))}),
    "metalearn_lab.data.sinusoid.SinusoidTasks.pool": Entry(lambda **kw: sinusoid.SinusoidTasks().pool(**{"n_tasks": 3, **kw}),
                                                            {"n_tasks": Int(3, (0,)), "seed": Int(1, (-1,))}),
    "metalearn_lab.data.sinusoid.SinusoidTaskPool": Entry(
        lambda **kw: sinusoid.SinusoidTaskPool(sinusoid.SinusoidTasks(), **{"n_tasks": 3, **kw}), {"n_tasks": Int(3, (0,)), "seed": Int(1, (-1,))}),
    "metalearn_lab.data.sinusoid.SinusoidTaskPool.sample": Entry(
        lambda **kw: sinusoid.SinusoidTasks().pool(3).sample(**{"meta_batch_size": 2, "k_shot": 2, **kw}),
        {"meta_batch_size": Int(2, (0,)), "k_shot": Int(2, (0,)), "n_query": Int(1, (0,), none_ok=True)}),
    "metalearn_lab.rl.point_robot_step": Entry(lambda **kw: rl.point_robot_step(np.zeros(2), np.array([0.5, 0.0]), np.array([0.1, 0.0]), **kw),
                                               {"action_limit": Float(0.2, (0.0, -0.1)), "tolerance": Float(0.05, (0.0, -1.0))}),
    "metalearn_lab.rl.PointRobotEnv": Entry(lambda **kw: rl.PointRobotEnv((0.1, 0.1), **kw), {"horizon": Int(5, (0,))}),
    "metalearn_lab.rl.PointRobotEnv.reset": Entry(lambda **kw: rl.PointRobotEnv().reset(**kw), {"seed": Int(3, (-1,), none_ok=True)}),
    "metalearn_lab.rl.sample_goals": Entry(lambda **kw: rl.sample_goals(**{"n_tasks": 2, **kw}), {"n_tasks": Int(2, (0,))}),
    "metalearn_lab.rl.oracle_return": Entry(lambda **kw: rl.oracle_return((0.3, 0.0), **kw), {"horizon": Int(5, (0,))}),
    "metalearn_lab.rl.GaussianPolicy": Entry(lambda **kw: rl.GaussianPolicy(hidden=(8,), **kw), {
        "obs_dim": Int(3, (0,)), "action_dim": Int(3, (0,)), "init_std": Float(0.5, (0.0, -1.0)), "action_scale": Float(0.2, (0.0,))}),
    "metalearn_lab.rl.rollout": Entry(
        lambda **kw: (lambda p: rl.rollout(p, rl.policy_params(p), rl.sample_goals(2), **{"n_episodes": 2, "horizon": 3, **kw}))(_policy()),
        {"n_episodes": Int(2, (0,)), "horizon": Int(3, (0,))}),
    "metalearn_lab.rl.reward_to_go": Entry(lambda **kw: rl.reward_to_go(torch.ones(4), torch.ones(4), **{"discount": 0.5, **kw}),
                                           {"discount": Float(0.5, (-0.1, 1.1))}),
    "metalearn_lab.rl.linear_baseline": Entry(
        lambda **kw: (lambda t: rl.linear_baseline(t.observations, rl.reward_to_go(t.rewards, t.mask, 0.9), t.mask, **kw))(_episodes()[1]),
        {"reg": Float(1e-3, (0.0, -1.0))}),
    "metalearn_lab.rl.advantages": Entry(lambda **kw: rl.advantages(_episodes()[1], **kw), {"discount": Float(0.9, (-0.1, 1.5))}),
    "metalearn_lab.rl.adapt_policies": Entry(
        lambda **kw: (lambda p, t, a: rl.adapt_policies(p, rl.policy_params(p), t, a, **{"inner_lr": 0.1, **kw}))(*_episodes()),
        {"inner_lr": Float(0.1, (0.0, -0.1))}),
    "metalearn_lab.rl.maml_rl_loss": Entry(_maml_rl_loss, {"inner_lr": Float(0.1, (0.0, -0.1))}),
    "metalearn_lab.rl.maml_rl_step": Entry(lambda **kw: _rl_step(rl.maml_rl_step, **kw), {
        "n_episodes": Int(2, (0,)), "horizon": Int(3, (0,)), "inner_lr": Float(0.1, (0.0,)), "discount": Float(0.9, (-0.1, 1.5))}),
    "metalearn_lab.rl.joint_policy_gradient_step": Entry(lambda **kw: _rl_step(rl.joint_policy_gradient_step, **kw), {
        "n_episodes": Int(2, (0,)), "horizon": Int(3, (0,)), "discount": Float(0.9, (-0.1, 1.5))}),
    **{f"metalearn_lab.rl.{f.__name__}": Entry(lambda f=f, **kw: _adaptation(f, **kw), {
        "steps": Int(2, (-1,)), "n_episodes": Int(2, (0,)), "inner_lr": Float(0.1, (0.0, -0.1)), "discount": Float(0.9, (-0.1, 1.5)),
        "horizon": Int(3, (0,))}) for f in (rl.adaptation_episodes, rl.adaptation_returns)},
    "metalearn_lab.experiments.recipes.point_robot.point_robot_goals": Entry(
        lambda **kw: point_robot_recipe.point_robot_goals(_point_robot_config(), "validation", **kw), {"n_tasks": Int(3, (0, -1), none_ok=True)}),
    "metalearn_lab.experiments.recipes.point_robot.adaptation_curve": Entry(
        lambda **kw: point_robot_recipe.adaptation_curve(_point_robot_config(), _policy(), rl.sample_goals(2), lrs=[0.1], **{"seed": 1, **kw}),
        {"seed": Int(1, (-1,))}),
    "metalearn_lab.experiments.recipes.preference.preference_users": Entry(
        lambda **kw: preference_recipe.preference_users(_preference_config(), "validation", **kw),
        {"n_users": Int(2, (0, -1), none_ok=True), "k_shot": Int(3, (0, -1), none_ok=True)}),
    "metalearn_lab.experiments.recipes.preference.user_mse": Entry(
        lambda **kw: preference_recipe.user_mse(_mlp(), _preference_users(), **{"inner_steps": 1, "inner_lr": 0.01, **kw}),
        {"inner_steps": Int(1, (-1,)), "inner_lr": Float(0.01, (0.0,))}),
    # ---- sweeps, diagnostics, figures and tables of lessons 08-11
    "metalearn_lab.sweeps.Sweep": Entry(_toy_sweep, {"validation_tasks": Int(2, (1, 0)), "train_tasks": Int(2, (1, -1))}),
    "metalearn_lab.sweeps.run_sweep": Entry(lambda **kw: sweeps.run_sweep("no-such-sweep", progress=False, **kw),
                                            {"threads": Int(1, (0,), none_ok=True)}, after=(ValueError, "unknown sweep")),
    "metalearn_lab.diagnostics.check_gradient": Entry(
        lambda **kw: (lambda w: diagnostics.check_gradient(lambda: ((w ** 3).sum(), {"w": 3 * w ** 2}), {"w": w}, **kw))(
            torch.tensor([1.0, 2.0], dtype=torch.float64)),
        {"directions": Int(2, (0,)), "eps": Float(1e-5, (0.0, -1e-6)), "tolerance": Float(1e-3, (0.0,)), "seed": Int(1, (-1,))}),
    "metalearn_lab.diagnostics.check_queries_independent": Entry(
        lambda **kw: diagnostics.check_queries_independent(lambda m, xs, ys, xq, yq: xq * 2, None, torch.zeros(2, 2), torch.zeros(2),
                                                           torch.randn(3, 2), torch.zeros(3), **kw),
        {"atol": Float(1e-5, (-1e-6,)), "seed": Int(1, (-1,))}),
    "metalearn_lab.diagnostics.check_no_label_leak": Entry(
        lambda **kw: diagnostics.check_no_label_leak(lambda m, xs, ys, xq, yq: xq * 2, None, torch.zeros(2, 2), torch.arange(2),
                                                     torch.randn(3, 2), torch.arange(3), **kw),
        {"atol": Float(1e-5, (-1e-6,))}),
    "metalearn_lab.drawing.plot_mse_by_k": Entry(
        lambda **kw: _figure(lambda: drawing.plot_mse_by_k({"a": {1: torch.tensor([1.0, 2.0])}}, k_shots=(1,), **kw)),
        {"floor": Float(1e-3, (0.0, -1.0))}),
    "metalearn_lab.report.mse_by_k_table": Entry(
        lambda **kw: report_module.mse_by_k_table({"MAML": {1: torch.tensor([1.0, 3.0])}}, k_shots=(1,), **kw), {"digits": Int(1, (-1,))}),
}

#: Numeric arguments the table leaves out on purpose, and why.
NOT_CHECKED = {
    "metalearn_lab.validation.check_int": "the checker's own bounds (minimum, maximum), set by library code",
    "metalearn_lab.validation.check_float": "the checker's own bounds (low, high), set by library code",
    "metalearn_lab.experiments.config.Int": "a config field's range, written by the recipe's author",
    "metalearn_lab.experiments.config.Float": "a config field's range, written by the recipe's author",
    "metalearn_lab.experiments.recipe.Recipe.evaluate": "called through evaluate_experiment, which checks n_tasks",
}

CORE_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(metalearn_lab.__path__, "metalearn_lab.")
    if not m.name.startswith("metalearn_lab.lessons") and m.name != "metalearn_lab.cli"
)
NUMBER_TYPES = {"int", "float", "InnerLR"}


def _numeric(parameter: inspect.Parameter) -> bool:
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty:
        default = parameter.default
        return isinstance(default, (int, float)) and not isinstance(default, bool)
    parts = {part.strip() for part in str(annotation).split("|")}
    return bool(parts & NUMBER_TYPES)


def _public_callables(module):
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if getattr(obj, "__module__", None) != module.__name__:
            continue  # imported from elsewhere; listed under its own module
        if inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and inspect.isfunction(member):
                    yield f"{module.__name__}.{name}.{attr}", member
        elif inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj


def numeric_arguments() -> dict[str, set[str]]:
    """Every public callable of the core modules that takes a number, with the names of those arguments."""
    found = {}
    for module_name in CORE_MODULES:
        module = importlib.import_module(module_name)
        for qualname, obj in _public_callables(module):
            if inspect.isclass(obj) and issubclass(obj, config_module.ExperimentConfig):
                continue  # configs: see test_every_config_field_has_a_checked_range
            try:
                signature = inspect.signature(obj)
            except (TypeError, ValueError):
                continue
            names = {p.name for p in signature.parameters.values() if p.name not in ("self", "cls") and _numeric(p)}
            if names:
                found[qualname] = names
    return found


def test_the_table_writes_each_function_once():
    """A key written twice in the ``ARGUMENTS`` literal would silently drop the first entry's arguments."""
    import ast

    tree = ast.parse(inspect.getsource(inspect.getmodule(test_the_table_writes_each_function_once)))
    table = next(node.value for node in tree.body if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "ARGUMENTS")
    keys = [k.value for k in table.keys if isinstance(k, ast.Constant)]
    assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})


def test_the_table_names_every_numeric_argument():
    found = numeric_arguments()
    listed = {name: set(entry.arguments) for name, entry in ARGUMENTS.items()}
    missing = {name: sorted(args - listed.get(name, set())) for name, args in found.items()
               if name not in NOT_CHECKED and args - listed.get(name, set())}
    assert not missing, f"public numeric arguments without an entry in ARGUMENTS (add each with its valid range): {missing}"
    stale = {name: sorted(args - found.get(name, set())) for name, args in listed.items() if args - found.get(name, set())}
    assert not stale, f"ARGUMENTS names arguments that no public function has: {stale}"
    assert set(NOT_CHECKED) <= set(found)


CASES = [pytest.param(name, argument, spec, id=f"{name.removeprefix('metalearn_lab.')}:{argument}")
         for name, entry in ARGUMENTS.items() for argument, spec in entry.arguments.items()]


@pytest.fixture
def call(request):
    name = request.node.callspec.params["name"]
    if name.rsplit(".", 1)[-1] in NEEDS_OMNIGLOT:
        request.getfixturevalue("omniglot")  # fails with instructions when the data is missing
    return ARGUMENTS[name].call


def _accepted(name, call, **kw):
    after = ARGUMENTS[name].after
    if after is None:
        call(**kw)
    else:  # past the argument check, to the later failure this input was chosen for
        with pytest.raises(after[0], match=after[1]):
            call(**kw)


def _same_kind(spec):
    """The valid value as a Python number, NumPy numbers and a 0-d tensor."""
    v = spec.valid
    if isinstance(spec, Int):
        return [v, np.int64(v), np.int32(v), torch.tensor(v)]
    return [v, np.float32(v), np.float64(v), torch.tensor(v), torch.tensor(v, dtype=torch.float64)]


@pytest.mark.parametrize("name, argument, spec", CASES)
def test_numpy_numbers_and_0d_tensors_are_accepted(name, argument, spec, call):
    for value in _same_kind(spec):
        _accepted(name, call, **{argument: value})
    if spec.none_ok:
        _accepted(name, call, **{argument: None})


def _refusals(spec):
    common = [True, False, float("nan"), float("inf"), -math.inf, np.float32("nan"), torch.tensor(float("inf"))]
    if isinstance(spec, Int):
        common += [2.5, float(spec.valid)]  # a float where a count is expected
    if not spec.none_ok:
        common.append(None)
    return common + list(spec.bad)


@pytest.mark.parametrize("name, argument, spec", CASES)
def test_bool_nan_inf_and_out_of_range_are_refused_by_name(name, argument, spec, call):
    for value in _refusals(spec):
        with pytest.raises(ValueError) as err:
            call(**{argument: value})
        message = str(err.value)
        assert re.search(rf"\b{re.escape(argument)}\b.* must be ", message), f"{argument}={value!r}: the message does not name it: {message}"
        shown = {repr(value), str(value)}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown |= {repr(float(value)), repr(int(value)) if float(value).is_integer() else ""}
        assert any(s and s in message for s in shown), f"{argument}={value!r}: the message does not show the value: {message}"
        if value in spec.bad:
            assert re.search(r"[<>]=? -?\d|in \[", message), f"{argument}={value!r}: the message gives no valid range: {message}"


# ---------------------------------------------------------------------------------------------
# configs: every numeric field has a range, checked on construction


CONFIG_CLASSES = sorted({type(c) for c in registry.EXPERIMENTS.values()} | {config_module.ExperimentConfig}, key=lambda c: c.__name__)


@pytest.mark.parametrize("config_class", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_config_field_has_a_checked_range(config_class):
    ranges = config_module.field_ranges(config_class)
    for field in dataclasses.fields(config_class):
        parts = {p.strip() for p in str(field.type).split("|")}
        numeric = parts & {"int", "float", "tuple[int, ...]", "tuple[float, ...]", "tuple[float, float]"}
        assert not numeric or field.name in ranges, f"{config_class.__name__}.{field.name} has no entry in its ranges"
    base = next(c for c in registry.EXPERIMENTS.values() if type(c) is config_class) if config_class is not config_module.ExperimentConfig \
        else config_module.ExperimentConfig("x")
    for name, valid_range in ranges.items():
        value = getattr(base, name)
        if isinstance(valid_range, config_module.Ints):
            assert base.replace(**{name: [np.int64(v) for v in value]}).__getattribute__(name) == value
            for bad in ([], [True], [-1], [float("nan")]):
                with pytest.raises(ValueError, match=re.escape(name)):
                    base.replace(**{name: bad})
            continue
        if isinstance(valid_range, config_module.Floats):
            sample = value or (valid_range.each.low + 1 if valid_range.each.low is not None else 0.5,)
            copy = base.replace(**{name: [np.float32(v) for v in sample[:-1]] + [torch.tensor(sample[-1])]})
            assert all(type(v) is float for v in getattr(copy, name)) and getattr(copy, name) == pytest.approx(sample)
            if valid_range.allow_empty:
                assert base.replace(**{name: []}).__getattribute__(name) == ()
            bad_lists = [[True], [float("nan")], [math.inf], "0.1", 0.1] + ([] if valid_range.allow_empty else [[]])
            if valid_range.each.low is not None:
                bad_lists.append([valid_range.each.low if valid_range.each.low_open else valid_range.each.low - 1])
            for bad in bad_lists:
                with pytest.raises(ValueError, match=rf"^{re.escape(name)}(\[0\])? must be "):
                    base.replace(**{name: bad})
            continue
        if isinstance(valid_range, config_module.Interval):
            low, high = value
            copy = base.replace(**{name: (np.float32(low), torch.tensor(high, dtype=torch.float64))})
            assert all(type(v) is float for v in getattr(copy, name)) and getattr(copy, name) == pytest.approx(value)
            for bad in [(high + 1, low), (low,), (low, high, high), (True, high), (low, float("nan")), (-math.inf, high),
                        "ab", None, low]:
                with pytest.raises(ValueError, match=rf"^{re.escape(name)}(\[[01]\])? must be "):
                    base.replace(**{name: bad})
            continue
        numpy_value = np.int64(value) if isinstance(valid_range, config_module.Int) else np.float32(value)
        copy = base.replace(**{name: numpy_value})
        assert type(getattr(copy, name)) is type(value) and getattr(copy, name) == pytest.approx(value)
        as_tensor = torch.tensor(value, dtype=torch.int64 if isinstance(value, int) else torch.float64)
        assert base.replace(**{name: as_tensor}) == base.replace(**{name: value})
        bad_values = [True, float("nan"), float("inf"), None]
        if isinstance(valid_range, config_module.Int):
            bad_values += [2.5] + ([valid_range.minimum - 1] if valid_range.minimum is not None else [])
        else:
            if valid_range.low is not None:
                bad_values.append(valid_range.low if valid_range.low_open else valid_range.low - 1)
            if valid_range.high is not None:
                bad_values.append(valid_range.high + 1)
        for bad in bad_values:
            with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be "):
                base.replace(**{name: bad})


def test_a_config_with_numpy_numbers_can_be_stored_in_a_checkpoint(tmp_path):
    config = registry.EXPERIMENTS["sinusoid-pretrain"].quick().replace(
        iterations=np.int64(1), eval_tasks=np.int64(3), outer_lr=np.float32(0.01), inner_lr=torch.tensor(0.01), eval_steps=(np.int64(1),))
    results = runner.train_experiment(config, out_dir=tmp_path, progress=False)
    assert results["config"]["iterations"] == 1 and type(results["config"]["outer_lr"]) is float


def test_tuple_arguments_check_each_number():
    assert sinusoid.SinusoidTasks(amplitude=(np.float32(1.0), torch.tensor(2.0))).amplitude == (1.0, 2.0)
    for bad, match in [((True, 2.0), r"amplitude\[0\] must be"), ((1.0, float("nan")), r"amplitude\[1\] must be"),
                       ((2.0, 1.0), "low <= high"), ((1.0,), "a pair")]:
        with pytest.raises(ValueError, match=match):
            sinusoid.SinusoidTasks(amplitude=bad)
    x = torch.rand(2, 1, 8, 8)
    samplers.random_affine(x, scale=(np.float32(0.9), torch.tensor(1.1)))
    for bad, match in [((0.0, 1.0), r"scale\[0\] must be"), ((1.2, 0.8), "low <= high"), ((1.0, float("inf")), r"scale\[1\]")]:
        with pytest.raises(ValueError, match=match):
            samplers.random_affine(x, scale=bad)


def test_the_issue_examples():
    """The inputs of the bug report: read from a NumPy array, they are accepted like Python numbers."""
    samplers.EpisodeSampler(torch.rand(10, 20, 1, 4, 4), 5, np.int64(1), 5)
    a = _adapt(inner_lr=np.float32(0.01), inner_steps=np.int64(2))
    b = _adapt(inner_lr=0.01, inner_steps=2)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert _reptile(outer_lr=np.float32(0.1)) == _reptile(outer_lr=0.1)
    # a learned (differentiable) inner learning rate keeps its gradient
    lr = torch.tensor(0.01, requires_grad=True)
    adapted = _adapt(inner_lr=lr)
    model = _mlp()
    loss = F.mse_loss(torch.func.functional_call(model, adapted, (torch.zeros(2, 1),)), torch.ones(2, 1))
    (grad,) = torch.autograd.grad(loss, lr)
    assert torch.isfinite(grad)
