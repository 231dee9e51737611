"""Personalised learning on users' preference curves (:mod:`metalearn_lab.data.preferences`).

* ``preference-maml``: MAML on the population of users: an initialisation from which a few
  gradient steps on one user's ratings fit that user's curve.
* ``preference-pooled``: one regressor fitted to the ratings of all users pooled. It predicts the
  population's average taste and ignores who is asking (its headline number is with no adaptation);
  fine-tuned on a user's ratings it is the transfer-learning baseline.

Both use the 1-40-40-1 ReLU network of the sinusoid experiments. Evaluation: on fixed users with
``eval_k_shot`` rated exercises, the MSE between the model's predictions at ``eval_n_query`` other
difficulties and the user's noise-free curve, after each number of plain gradient steps in
``eval_steps`` (step size ``inner_lr``), mean ± 95% interval over users. For MAML the number of
test-time steps is chosen on validation users before the test users are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from metalearn_lab.data.preferences import PreferenceBatch, PreferenceTasks
from metalearn_lab.experiments.config import ExperimentConfig, Float, Int, Ints
from metalearn_lab.experiments.recipe import (
    Recipe,
    batch_norm_protocol,
    maml_regression_step,
    pooled_regression_step,
    step_generator,
)
from metalearn_lab.experiments.splits import _check_unlocked, _optional_count
from metalearn_lab.maml import adapt_and_predict
from metalearn_lab.metrics import summarize_mse
from metalearn_lab.models import SineMLP


@dataclass(frozen=True)
class PreferenceConfig(ExperimentConfig):
    """Users per step, ratings per user (support) and held-out ratings (query), the inner loop, the evaluation."""

    meta_batch_size: int = 25
    k_shot: int = 5
    n_query: int = 10
    inner_steps: int = 1
    inner_lr: float = 0.01
    first_order: bool = False
    eval_k_shot: int = 5
    eval_n_query: int = 100
    eval_steps: tuple[int, ...] = (0, 1, 2, 5, 10)

    ranges = {"k_shot": Int(1), "n_query": Int(1), "inner_steps": Int(0), "inner_lr": Float(0, low_open=True),
              "eval_k_shot": Int(1), "eval_n_query": Int(1), "eval_steps": Ints(Int(0))}

    def quick(self) -> "PreferenceConfig":
        return super().quick().replace(iterations=min(self.iterations, 30))


def preference_users(config: PreferenceConfig, split: str, n_users: int | None = None, *,
                     k_shot: int | None = None) -> PreferenceBatch:
    """The fixed users of ``split`` ("validation" or "test"); test users are locked while a run trains.

    ``k_shot`` overrides ``config.eval_k_shot``: the same users (same curves, same query
    difficulties) then rate the first ``k_shot`` of a fixed list of exercises, so that results for
    several K are paired.
    """
    n_users = _optional_count("n_users", n_users)  # None: the config's number
    k_shot = _optional_count("k_shot", k_shot)  # None: config.eval_k_shot
    if split == "test":
        _check_unlocked("preference test users")
        seed, n = config.eval_seed, n_users or config.eval_tasks
    elif split == "validation":
        seed, n = config.eval_seed + 1, n_users or config.eval_tasks_during_training
    else:
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    k = config.eval_k_shot if k_shot is None else k_shot
    most = max(k, 20)
    users = PreferenceTasks().sample(n, most, config.eval_n_query, generator=torch.Generator().manual_seed(seed))
    users.x_support, users.y_support = users.x_support[:, :k], users.y_support[:, :k]
    return users


def user_mse(model: torch.nn.Module, users: PreferenceBatch, inner_steps: int, inner_lr: float) -> torch.Tensor:
    """Each user's MSE against their noise-free curve after ``inner_steps`` steps on their ratings: ``[n_users]``."""
    prediction = adapt_and_predict(model, users.as_tuple(), F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr)
    return ((prediction - users.true_query) ** 2).mean(dim=(1, 2))


class _Preference(Recipe):
    config_class = PreferenceConfig
    higher_is_better = False
    #: which number of adaptation steps is the headline ("mean") of an evaluation; None: chosen on validation users
    headline_steps: int | None = None

    def build_model(self, config):
        return SineMLP()

    def _batch(self, config, i, device):
        batch = PreferenceTasks().sample(config.meta_batch_size, config.k_shot, config.n_query,
                                         generator=step_generator(config, i))
        return tuple(t.to(device) for t in batch.as_tuple())

    def _choose_steps(self, config, model) -> tuple[int, dict[str, float]]:
        if self.headline_steps is not None:
            return self.headline_steps, {}
        users = preference_users(config, "validation")
        scores = {str(s): float(user_mse(model, users, s, config.inner_lr).mean()) for s in config.eval_steps}
        return int(min(scores, key=scores.get)), scores

    def evaluate(self, config, model, *, split, n_tasks, device) -> dict[str, Any]:
        chosen, validation = self._choose_steps(config, model) if split == "test" else (max(config.eval_steps), {})
        if self.headline_steps is not None:
            chosen = self.headline_steps
        users = preference_users(config, split, n_tasks)
        by_steps = {}
        for s in sorted({*config.eval_steps, chosen}):  # the headline's steps are always among them
            mse = user_mse(model, users, s, config.inner_lr).detach()
            by_steps[str(s)] = {**summarize_mse(mse), "values": mse.double().cpu().tolist()}
        headline = by_steps[str(chosen)]
        norm = batch_norm_protocol(model, alone="the network is fitted to the user's ratings only and predicts each "
                                                "query difficulty on its own")
        return {"metric": f"MSE against the user's true curve, K={config.eval_k_shot} ratings, after {chosen} steps",
                **headline, "by_steps": by_steps, "chosen_steps": chosen, "validation_mse_by_steps": validation,
                "transductive": norm["transductive"],
                "protocol": f"{len(users)} {split} users (simulated preference curves, rating noise 0.5); "
                            f"{config.eval_k_shot} rated exercises, {config.eval_n_query} query difficulties; "
                            f"SGD inner_lr={config.inner_lr}; steps chosen on validation users; {norm['batch_norm']}"}


class PreferenceMAML(_Preference):
    """MAML on users: the meta-loss is a user's query error after ``inner_steps`` steps on their ratings."""

    algorithm = "preference-maml"

    def make_step(self, config, model, optimizer, device):
        return maml_regression_step(config, model, optimizer, lambda i: self._batch(config, i, device))


class PreferencePooled(_Preference):
    """One regressor for everybody: fitted to all users' ratings pooled (its headline: no adaptation)."""

    algorithm = "preference-pooled"
    headline_steps = 0

    def make_step(self, config, model, optimizer, device):
        return pooled_regression_step(model, optimizer, lambda i: self._batch(config, i, device))
