"""Empirical Bayes on sinusoids: a Gaussian prior over functions fitted to many tasks.

The model is a :class:`metalearn_lab.bayes.GaussianPrior`: Bayesian linear regression on
``(sin x, cos x)`` (``prior="sine"``, the right family), a squared-exponential Gaussian process
(``prior="rbf"``, a generic smoothness prior), or Bayesian linear regression on the features of a
small ReLU network (``prior="features"``, ALPaCA: Harrison, Sharma & Pavone 2018). Each training
step draws ``meta_batch_size`` tasks with ``k_shot + n_query`` points (the size of MAML's training
tasks) and takes an Adam step on their negative log marginal likelihood per point (empirical Bayes,
Rasmussen & Williams 2006, §5.4). Evaluation: query MSE of the posterior mean on the fixed test
tasks at every K in ``eval_k_shots``, exactly as for the black-box learners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from metalearn_lab.bayes import FeaturePrior, RBFPrior, log_marginal_likelihood, posterior_predictive, sine_features
from metalearn_lab.data.sinusoid import SinusoidTasks
from metalearn_lab.experiments.config import ExperimentConfig, Float, Int, Ints
from metalearn_lab.experiments.recipe import Recipe, batch_norm_protocol, step_generator
from metalearn_lab.experiments.recipes.blackbox import evaluate_by_k_shot
from metalearn_lab.validation import check_int

PRIORS = ("sine", "rbf", "features")


@dataclass(frozen=True)
class BayesConfig(ExperimentConfig):
    """Fields of an empirical-Bayes prior: which family, its size, the noise floor, the tasks it is fitted on.

    ``prior``: ``"sine"``, ``"rbf"`` or ``"features"`` (a 1-``hidden``-``hidden``-``n_features``
    ReLU network). Each training task has ``k_shot + n_query`` points, all of them used (empirical
    Bayes has no support/query split); evaluation as in :class:`BlackBoxConfig`.
    """

    prior: str = "sine"
    n_features: int = 16
    hidden: int = 40
    min_noise_var: float = 1e-4
    meta_batch_size: int = 25
    outer_lr: float = 0.01
    k_shot: int = 10
    n_query: int = 10
    eval_k_shot: int = 5
    eval_n_query: int = 100
    eval_k_shots: tuple[int, ...] = (1, 2, 5, 10)

    # k_shot + n_query points per training task, all of them used: n_query may be 0
    ranges = {"n_features": Int(1), "hidden": Int(1), "min_noise_var": Float(0, low_open=True), "k_shot": Int(1),
              "n_query": Int(0), "eval_k_shot": Int(1), "eval_n_query": Int(1), "eval_k_shots": Ints(Int(1))}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")

    def quick(self) -> "BayesConfig":
        return super().quick().replace(iterations=min(self.iterations, 30))


def feature_network(hidden: int, n_features: int) -> nn.Sequential:
    """The feature map of ALPaCA-style priors: 1 → hidden → hidden → n_features, ReLU between layers."""
    hidden, n_features = check_int("hidden", hidden), check_int("n_features", n_features)
    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_features))


def build_prior(config: BayesConfig) -> nn.Module:
    """The prior a config describes, at its starting hyper-parameters (unit scales, zero means)."""
    if config.prior == "sine":
        return FeaturePrior(sine_features, 2, noise_var=1e-2, min_noise_var=config.min_noise_var)
    if config.prior == "rbf":
        return RBFPrior(noise_var=1e-2, min_noise_var=config.min_noise_var)
    return FeaturePrior(feature_network(config.hidden, config.n_features), config.n_features, noise_var=1e-2,
                        min_noise_var=config.min_noise_var)


class SinusoidBayes(Recipe):
    algorithm = "sinusoid-bayes"
    config_class = BayesConfig
    higher_is_better = False

    def build_model(self, config: BayesConfig) -> nn.Module:
        return build_prior(config)

    def make_step(self, config, model, optimizer, device):
        tasks = SinusoidTasks()

        def step(i):
            batch = tasks.sample(config.meta_batch_size, config.k_shot, config.n_query, generator=step_generator(config, i))
            x = torch.cat([batch.x_support, batch.x_query], 1).to(device)
            y = torch.cat([batch.y_support, batch.y_query], 1).to(device)
            loss = -log_marginal_likelihood(model, x, y).mean() / x.shape[1]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return {"loss": float(loss.detach())}

        return step

    def evaluate(self, config: BayesConfig, model: nn.Module, *, split: str, n_tasks: int | None,
                 device: torch.device) -> dict[str, Any]:
        def task_mse(batch):
            mean, _ = posterior_predictive(model, batch.x_support, batch.y_support, batch.x_query)
            return ((mean - batch.y_query) ** 2).mean(dim=(1, 2))

        # the posterior mean at a query point depends on the support points and that point only
        alone = batch_norm_protocol(model, alone="the posterior mean at each query point depends on the support "
                                                 "points and that point only")
        return evaluate_by_k_shot(config, task_mse, split=split, n_tasks=n_tasks, device=device,
                                  method=f"{config.prior} prior fitted by empirical Bayes, posterior mean",
                                  independence=alone)
