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
    classroom,
    controls,
    drawing,
    maml,
    metrics,
    models,
    protonet,
    reptile,
    samplers,
    shipping,
    siamese,
    training,
    tryit,
)
from metalearn_lab.experiments import config as config_module
from metalearn_lab.experiments import recipe, registry, runner, selection, splits
from metalearn_lab.experiments.recipes import omniglot as omniglot_recipe
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
                                        {"in_channels": Int(1, (0,)), "hidden": Int(4, (0,)), "out_features": Int(5, (0,), none_ok=True)}),
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
        {"width": Float(1.0, (0.0,)), "height": Float(1.0, (-1.0,)), "fontsize": Float(8.0, (0.0,))}),
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
        numeric = parts & {"int", "float", "tuple[int, ...]", "tuple[float, ...]"}
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
