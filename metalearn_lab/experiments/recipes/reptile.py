"""Reptile on Omniglot (Nichol, Achiam & Schulman 2018): train on a task, move towards the adapted weights.

Two inner loops share this recipe. ``inner_optimizer="sgd"`` (the first shipped run): plain
gradient steps on the whole task (:func:`metalearn_lab.reptile.reptile_step`), tested like MAML.
``inner_optimizer="adam"``: Nichol et al.'s recipe (openai/supervised-reptile, README commands and
``reptile.py``): Adam with β1 = 0 taking steps on mini-batches of a task's examples, its state kept
across tasks (:func:`metalearn_lab.reptile.reptile_optimizer_step`); tested by fine-tuning each
test task with a fresh Adam (:func:`metalearn_lab.reptile.fine_tune`) and, unless ``transductive``,
classifying each query in a batch of its own with the support set
(:func:`metalearn_lab.reptile.predict_non_transductive`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from metalearn_lab.experiments.config import Float, Int
from metalearn_lab.experiments.recipe import Recipe, step_generator
from metalearn_lab.experiments.recipes.omniglot import (
    EpisodeConfig,
    evaluate_by_adaptation,
    evaluation_tasks,
    protocol,
    train_classes,
)
from metalearn_lab.metrics import accuracy, mean_confidence_interval
from metalearn_lab.models import DOWNSAMPLING, Conv4, unchanged
from metalearn_lab.reptile import fine_tune, nichol_adam, predict_non_transductive, reptile_optimizer_step, reptile_step
from metalearn_lab.samplers import EpisodeSampler, FixedEpisodes

INNER_OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class ReptileConfig(EpisodeConfig):
    """``n_query``: examples per class in a training task (Reptile's "train shots", no support/query split).

    The outer step ``outer_lr`` is annealed linearly to 0 over ``iterations`` (floored at 1e-3), so
    the number of iterations is part of what the run is: it cannot change when a run is continued.

    Attributes
    ----------
    inner_optimizer : {"sgd", "adam"}
        Plain gradient steps of ``inner_lr`` on the whole task, or Adam (β1 = 0, learning rate
        ``inner_lr``) on mini-batches of ``inner_batch_size`` examples, as in Nichol et al.'s code.
    inner_batch_size, eval_inner_batch_size : int
        Examples per inner step in training and at test (Adam only; 0 = all of them).
    transductive : bool
        Test by classifying all of a task's queries in one batch (batch norm sees them together),
        or each query alone with the support set (Nichol et al.'s non-transductive protocol).
    downsample : {"maxpool", "stride"}
        Conv4's down-sampling; Nichol et al.'s Omniglot model uses stride-2 convolutions.
    eval_unrotated_tasks : int
        Adam runs only: also test on this many tasks of the 423 test characters without rotations,
        one query per class, as Nichol et al.'s code does (0: skip).
    """

    outer_lr: float = 1.0
    n_query: int = 5
    inner_steps: int = 5
    inner_lr: float = 0.1
    eval_inner_steps: int = 20
    inner_optimizer: str = "sgd"
    inner_batch_size: int = 0
    eval_inner_batch_size: int = 0
    transductive: bool = True
    downsample: str = "maxpool"
    eval_unrotated_tasks: int = 0

    schedule_fields = frozenset({"eval_every", "checkpoint_every", "note"})
    identity_reasons = {"iterations": "the outer step is annealed linearly to 0 over the planned iterations, so every "
                                      "step's size depends on them (continue with the iterations the run started with)"}
    ranges = {"outer_lr": Float(0, 1, low_open=True), "inner_steps": Int(1), "inner_lr": Float(0, low_open=True),
              "eval_inner_steps": Int(0), "inner_batch_size": Int(0), "eval_inner_batch_size": Int(0),
              "eval_unrotated_tasks": Int(0)}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.downsample not in DOWNSAMPLING:
            raise ValueError(f"downsample must be one of {DOWNSAMPLING}, got {self.downsample!r}")
        if self.inner_optimizer not in INNER_OPTIMIZERS:
            raise ValueError(f"inner_optimizer must be one of {INNER_OPTIMIZERS}, got {self.inner_optimizer!r}")


class Reptile(Recipe):
    algorithm = "reptile"
    config_class = ReptileConfig

    def build_model(self, config):
        return Conv4(out_features=config.n_way, track_running_stats=False, downsample=config.downsample)

    def make_optimizer(self, config, model):
        # Reptile moves the weights itself; with Adam in the inner loop, the runner checkpoints Adam's state.
        if config.inner_optimizer == "adam":
            return nichol_adam(model.parameters(), lr=config.inner_lr)
        return None

    def make_step(self, config, model, optimizer, device):
        sampler = EpisodeSampler(train_classes(config), config.n_way, config.n_query, 1)

        def step(i):
            generator = step_generator(config, i)
            episode = sampler.sample(config.meta_batch_size, generator=generator).to(device)
            frac = 1 - i / max(config.iterations, 1)
            outer_lr = max(config.outer_lr * frac, 1e-3)
            if config.inner_optimizer == "adam":
                moved = reptile_optimizer_step(model, optimizer, episode.x_support, episode.y_support, F.cross_entropy,
                                               inner_steps=config.inner_steps,
                                               inner_batch_size=config.inner_batch_size or None,
                                               outer_lr=outer_lr, generator=generator)
            else:
                moved = reptile_step(model, episode.x_support, episode.y_support, F.cross_entropy,
                                     inner_steps=config.inner_steps, inner_lr=config.inner_lr, outer_lr=outer_lr)
            return {"loss": moved}

        return step

    def evaluate(self, config, model, *, split, n_tasks, device):
        if config.inner_optimizer == "sgd":
            return evaluate_by_adaptation(config, model, split, n_tasks, device)
        tasks = evaluation_tasks(config, split, n_tasks)
        with unchanged(model):
            model.train()
            results = self._evaluate_adam(config, model, tasks, device)
        mode = "transductive" if config.transductive else "non_transductive"
        other = "non_transductive" if config.transductive else "transductive"
        mean, half = mean_confidence_interval(results[mode])
        other_mean, other_half = mean_confidence_interval(results[other])
        extra = (f"; fine-tuned with {config.eval_inner_steps} Adam steps (beta1 = 0, lr {config.inner_lr}) on batches "
                 f"of {config.eval_inner_batch_size or 'all'} support images, a fresh Adam per task; "
                 + ("transductive: all queries of a task in one batch, so batch norm normalises them together"
                    if config.transductive
                    else "not transductive: each query classified in a batch of the support set and itself"))
        out = {"metric": f"accuracy, Omniglot {config.n_way}-way {config.k_shot}-shot", "mean": mean, "ci95": half,
               "n_tasks": len(results[mode]), "values": results[mode], "transductive": bool(config.transductive),
               "protocol": protocol(config, len(results[mode]), split, extra),
               # the same fine-tuned models with batch norm used the other way, for comparison
               f"{other}_result": {"mean": other_mean, "ci95": other_half, "values": results[other],
                                   "transductive": not config.transductive}}
        if split == "test" and config.eval_unrotated_tasks:
            # Nichol et al.'s own test tasks: the 423 test characters without rotations, one query per class.
            test = tasks.sampler.classes
            unrotated = FixedEpisodes(EpisodeSampler(test[: test.shape[0] // 4], config.n_way, config.k_shot, 1),
                                      min(config.eval_unrotated_tasks, n_tasks or config.eval_tasks), seed=config.eval_seed)
            with unchanged(model):
                model.train()
                u_values = self._evaluate_adam(config, model, unrotated, device)[mode]
            u_mean, u_half = mean_confidence_interval(u_values)
            out["unrotated_test_1_query"] = {"mean": u_mean, "ci95": u_half, "n_tasks": len(unrotated), "values": u_values,
                                             "protocol": ("the 423 test characters without rotations (as in Nichol et "
                                                          "al.'s code), one query per class")}
        return out

    @staticmethod
    def _evaluate_adam(config, model, tasks, device) -> dict[str, list[float]]:
        """Per-task accuracies, both ways of using batch norm at test, after the same fine-tuning."""
        values: dict[str, list[float]] = {"transductive": [], "non_transductive": []}
        for index, episode in enumerate(tasks.batches(1)):
            episode = episode.to(device)
            generator = torch.Generator().manual_seed(config.eval_seed * 1_000_003 + index)
            params = fine_tune(model, episode.x_support[0], episode.y_support[0], F.cross_entropy,
                               inner_steps=config.eval_inner_steps, inner_batch_size=config.eval_inner_batch_size or None,
                               make_optimizer=lambda p: nichol_adam(p, lr=config.inner_lr), generator=generator)
            y_query = episode.y_query[0]
            with torch.no_grad():
                together = torch.func.functional_call(model, (params, dict(model.named_buffers())), (episode.x_query[0],))
            alone = predict_non_transductive(model, params, episode.x_support[0], episode.x_query[0])
            values["transductive"].append(float(accuracy(together, y_query)))
            values["non_transductive"].append(float(accuracy(alone, y_query)))
        return values

    def has_validation(self, config):
        return bool(config.validation_characters)
