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
from metalearn_lab.validation import check_int

#: One training step: ``step_fn(i) -> {"loss": float, "metric": float (optional)}``.
StepFn = Callable[[int], dict[str, float]]
SPLITS = ("validation", "test")


def batch_norm_protocol(model: torch.nn.Module, alone: str | None = None) -> dict[str, Any]:
    """Whether an evaluation of ``model`` in its current mode is transductive, as results files record it.

    Returns ``{"transductive": bool, "batch_norm": sentence}``; the sentence goes into the results'
    ``protocol``. Transductive: batch norm normalises each task's queries with their own statistics
    (:func:`metalearn_lab.models.uses_batch_statistics`), so a query's prediction depends on the
    other queries of its task, the protocol of Finn et al.'s MAML code (Nichol et al. 2018, §6).

    ``alone`` says, for a recipe whose model has no batch norm, why each query is still predicted
    on its own (a neural process decodes each query from the support set alone, a posterior mean at
    a point depends on the support points only, ...); it replaces the generic "no batch norm" reason.

    >>> batch_norm_protocol(torch.nn.Linear(1, 1))["batch_norm"]
    'not transductive: no batch norm; each query is predicted on its own'
    >>> batch_norm_protocol(torch.nn.Linear(1, 1), alone="each goal is learnt from its own episodes")["batch_norm"]
    'not transductive: each goal is learnt from its own episodes'
    """
    from metalearn_lab.models import uses_batch_statistics

    if uses_batch_statistics(model):
        return {"transductive": True, "batch_norm": "transductive: batch norm normalises each task's queries with their "
                "own statistics, so a query's prediction depends on the other queries of its task"}
    has_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_norm:
        reason = "batch norm uses the running statistics of training, so each query is classified on its own"
        if alone:
            reason += f"; {alone}"
    else:
        reason = alone or "no batch norm; each query is predicted on its own"
    return {"transductive": False, "batch_norm": "not transductive: " + reason}


def step_generator(config: ExperimentConfig, step: int) -> torch.Generator:
    """The random generator of training step ``step`` (>= 0): the same tasks every time the step is run."""
    return torch.Generator().manual_seed(config.seed * 1_000_003 + check_int("step", step, minimum=0))


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
    legacy_defaults : dict
        Config values of this algorithm's runs that predate a field (see :meth:`ExperimentConfig.from_dict`).
    """

    algorithm: ClassVar[str]
    config_class: ClassVar[type[ExperimentConfig]]
    higher_is_better: ClassVar[bool] = True
    #: Values for config fields that this algorithm's checkpoints lack because they predate them,
    #: where the algorithm did something other than the config class's ``legacy_defaults`` say.
    legacy_defaults: ClassVar[dict[str, Any]] = {}

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
        """Evaluate on ``split`` ("validation" or "test").

        Returns ``{"metric", "mean", "ci95", "n_tasks", "values", "transductive", "protocol", ...}``:
        ``values`` are the numbers the interval is taken over (one per task, or per run), so that
        ``mean_confidence_interval(values) == (mean, ci95)``; ``transductive`` and the protocol's
        batch-norm sentence come from :func:`batch_norm_protocol`.
        """

    def has_validation(self, config: ExperimentConfig) -> bool:
        """Whether this config has validation tasks (runs of the first protocol monitored test tasks)."""
        return True


def maml_regression_step(config: ExperimentConfig, model: torch.nn.Module, optimizer, batch: Callable[[int], tuple]) -> StepFn:
    """A MAML training step on regression tasks: ``batch(i)`` gives step ``i``'s
    ``(x_support, y_support, x_query, y_query)``; the meta-loss is the query MSE after
    ``config.inner_steps`` steps of ``config.inner_lr`` (first order if ``config.first_order``)."""
    import torch.nn.functional as F

    from metalearn_lab.maml import meta_train_step

    def step(i):
        loss, _ = meta_train_step(model, optimizer, batch(i), F.mse_loss, inner_steps=config.inner_steps,
                                  inner_lr=config.inner_lr, first_order=config.first_order)
        return {"loss": loss}

    return step


def pooled_regression_step(model: torch.nn.Module, optimizer, batch: Callable[[int], tuple]) -> StepFn:
    """A pretraining step on regression tasks: one regressor fitted to the support and query points of
    all of step ``i``'s tasks pooled (the baseline that ignores which task a point came from)."""
    import torch.nn.functional as F

    from metalearn_lab.baselines import pretrain_step

    def step(i):
        x_support, y_support, x_query, y_query = batch(i)
        x = torch.cat([x_support, x_query], 1).reshape(-1, 1)
        y = torch.cat([y_support, y_query], 1).reshape(-1, 1)
        return {"loss": pretrain_step(model, optimizer, x, y, F.mse_loss)}

    return step

