"""What a recipe provides: how to build, train one step of, and evaluate one algorithm.

A recipe is a small class with a config class and five methods. The generic runner
(:func:`metalearn_lab.experiments.train_experiment`) does everything else the same way for every
algorithm: seeding, the optimizer's schedule, checkpoints and resuming, time limits, periodic
validation, the final test evaluation, and the results file.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

import torch

from metalearn_lab.experiments.config import ExperimentConfig

#: One training step: ``step_fn(i) -> {"loss": float, "metric": float (optional)}``.
StepFn = Callable[[int], dict[str, float]]
SPLITS = ("validation", "test")


def step_generator(config: ExperimentConfig, step: int) -> torch.Generator:
    """The random generator of training step ``step``: the same tasks every time the step is run."""
    return torch.Generator().manual_seed(config.seed * 1_000_003 + step)


class Recipe(abc.ABC):
    """One algorithm, as the experiment runner needs it. Subclass it in ``experiments/recipes/``.

    Attributes
    ----------
    algorithm : str
        The registry name, stored in every config (``config.algorithm``).
    config_class : type
        The :class:`ExperimentConfig` subclass with this algorithm's fields.
    higher_is_better : bool
        Direction of the evaluation's ``"mean"`` (accuracy: True; MSE: False).
    keep_best : bool
        Test (and save) the weights with the best periodic validation score rather than the last
        ones; for noisy training such as reinforcement learning. Needs ``config.eval_every``.
    """

    algorithm: ClassVar[str]
    config_class: ClassVar[type[ExperimentConfig]]
    higher_is_better: ClassVar[bool] = True
    keep_best: ClassVar[bool] = False

    @abc.abstractmethod
    def build_model(self, config: ExperimentConfig) -> torch.nn.Module:
        """The network, freshly initialised (the runner seeds torch with ``config.seed`` first)."""

    def make_optimizer(self, config: ExperimentConfig, model: torch.nn.Module) -> torch.optim.Optimizer | None:
        """The outer optimizer: Adam with ``config.outer_lr`` unless the recipe says otherwise."""
        return torch.optim.Adam(model.parameters(), lr=config.outer_lr)

    def make_scheduler(self, config: ExperimentConfig, optimizer: torch.optim.Optimizer | None):
        """The learning-rate schedule: halve every ``lr_decay_every`` steps (none when 0)."""
        if optimizer is None or not config.lr_decay_every:
            return None
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_decay_every, gamma=0.5)

    @abc.abstractmethod
    def make_step(self, config: ExperimentConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                  device: torch.device) -> StepFn:
        """A function that performs training step ``i`` (an outer update) and returns its loss."""

    @abc.abstractmethod
    def evaluate(self, config: ExperimentConfig, model: torch.nn.Module, *, split: str, n_tasks: int | None,
                 device: torch.device) -> dict[str, Any]:
        """Evaluate on ``split`` ("validation" or "test"); returns ``{"metric", "mean", "ci95", "n_tasks", "protocol", ...}``."""

    def has_validation(self, config: ExperimentConfig) -> bool:
        """Whether this config has validation tasks (runs of the first protocol monitored test tasks)."""
        return True
