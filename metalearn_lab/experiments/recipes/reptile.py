"""Reptile on Omniglot (Nichol, Achiam & Schulman 2018): SGD inner steps, move towards the adapted weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from metalearn_lab.experiments.config import Float, Int
from metalearn_lab.experiments.recipe import Recipe, step_generator
from metalearn_lab.experiments.recipes.omniglot import EpisodeConfig, evaluate_by_adaptation, train_classes
from metalearn_lab.models import Conv4
from metalearn_lab.reptile import reptile_step
from metalearn_lab.samplers import EpisodeSampler


@dataclass(frozen=True)
class ReptileConfig(EpisodeConfig):
    """``n_query``: examples per class in a training task (Reptile's "train shots", no support/query split).

    The outer step ``outer_lr`` is annealed linearly to 0 over ``iterations`` (floored at 1e-3), so
    the number of iterations is part of what the run is: it cannot change when a run is continued.
    """

    outer_lr: float = 1.0
    n_query: int = 5
    inner_steps: int = 5
    inner_lr: float = 0.1
    eval_inner_steps: int = 20

    schedule_fields = frozenset({"eval_every", "checkpoint_every", "note"})
    identity_reasons = {"iterations": "the outer step is annealed linearly to 0 over the planned iterations, so every "
                                      "step's size depends on them (continue with the iterations the run started with)"}
    ranges = {"outer_lr": Float(0, 1, low_open=True), "inner_steps": Int(1), "inner_lr": Float(0, low_open=True),
              "eval_inner_steps": Int(0)}


class Reptile(Recipe):
    algorithm = "reptile"
    config_class = ReptileConfig

    def build_model(self, config):
        return Conv4(out_features=config.n_way, track_running_stats=False)

    def make_optimizer(self, config, model):
        return None  # Reptile moves the weights itself (metalearn_lab.reptile.reptile_step)

    def make_step(self, config, model, optimizer, device):
        sampler = EpisodeSampler(train_classes(config), config.n_way, config.n_query, 1)

        def step(i):
            episode = sampler.sample(config.meta_batch_size, generator=step_generator(config, i)).to(device)
            frac = 1 - i / max(config.iterations, 1)
            moved = reptile_step(model, episode.x_support, episode.y_support, F.cross_entropy,
                                 inner_steps=config.inner_steps, inner_lr=config.inner_lr,
                                 outer_lr=max(config.outer_lr * frac, 1e-3))
            return {"loss": moved}

        return step

    def evaluate(self, config, model, *, split, n_tasks, device):
        return evaluate_by_adaptation(config, model, split, n_tasks, device)

    def has_validation(self, config):
        return bool(config.validation_characters)
