"""Sinusoid regression (Finn et al. 2017, §5.1 and Appendix C.1): MAML and the pretrained baseline.

Tasks ``y = A sin(x - φ)``, ``A ~ U[0.1, 5]``, ``φ ~ U[0, π]``, ``x ~ U[-5, 5]``; a 1-40-40-1 ReLU
network; ``k_shot`` support and ``n_query`` query points per training task. Evaluation: query MSE of
fixed tasks with ``eval_k_shot`` support points after each number of fine-tuning steps in
``eval_steps`` (plain SGD with ``inner_lr``).

``amplitude`` and ``phase`` set the task distribution of training, validation and test (Finn et
al.'s by default); ``n_train_tasks > 0`` trains on a finite pool of that many tasks
(:class:`~metalearn_lab.data.sinusoid.SinusoidTaskPool`) while validation and test tasks stay new
tasks of the same distribution. The lesson on meta-learning's challenges uses both (task shift,
meta-overfitting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from metalearn_lab.data.sinusoid import SinusoidTaskPool, SinusoidTasks
from metalearn_lab.experiments.config import ExperimentConfig, Float, Int, Interval, Ints
from metalearn_lab.experiments.recipe import (
    Recipe,
    batch_norm_protocol,
    maml_regression_step,
    pooled_regression_step,
    step_generator,
)
from metalearn_lab.experiments.splits import sinusoid_test_tasks, sinusoid_validation_tasks
from metalearn_lab.maml import query_mse
from metalearn_lab.metrics import summarize_mse
from metalearn_lab.models import SineMLP


@dataclass(frozen=True)
class SinusoidConfig(ExperimentConfig):
    """Sinusoid fields: shots and queries of training tasks, the inner loop, the evaluation's steps."""

    meta_batch_size: int = 25
    k_shot: int = 10
    n_query: int = 10
    inner_steps: int = 1
    inner_lr: float = 0.01
    first_order: bool = False
    eval_k_shot: int = 5
    eval_n_query: int = 100
    eval_steps: tuple[int, ...] = (1, 5, 10)
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    n_train_tasks: int = 0

    def distribution(self) -> SinusoidTasks:
        """The task distribution p(T) of this experiment (training, validation and test tasks)."""
        return SinusoidTasks(amplitude=tuple(self.amplitude), phase=tuple(self.phase))

    def training_tasks(self) -> SinusoidTasks | SinusoidTaskPool:
        """What training samples from: the distribution, or a pool of ``n_train_tasks`` of its tasks."""
        if self.n_train_tasks:
            return self.distribution().pool(self.n_train_tasks, seed=self.seed)
        return self.distribution()

    ranges = {"k_shot": Int(1), "n_query": Int(1), "inner_steps": Int(0), "inner_lr": Float(0, low_open=True),
              "eval_k_shot": Int(1), "eval_n_query": Int(1), "eval_steps": Ints(Int(0)),
              # any finite (low, high) with low <= high, as SinusoidTasks takes; n_train_tasks 0: a new task every time
              "amplitude": Interval(), "phase": Interval(), "n_train_tasks": Int(0)}

    def quick(self) -> "SinusoidConfig":
        return super().quick().replace(iterations=min(self.iterations, 30))


def _ranges(config: SinusoidConfig) -> str:
    """``"A~U[0.1,5], phase~U[0,pi]"``: the task distribution as the protocol line states it."""
    def bound(v):
        return "pi" if v == math.pi else f"{v:.3g}"
    return (f"A~U[{config.amplitude[0]:g},{config.amplitude[1]:g}], "
            f"phase~U[{bound(config.phase[0])},{bound(config.phase[1])}]")


class _Sinusoid(Recipe):
    config_class = SinusoidConfig
    higher_is_better = False

    def build_model(self, config: SinusoidConfig) -> torch.nn.Module:
        return SineMLP()

    def _batch(self, config: SinusoidConfig, i: int, device: torch.device):
        if not hasattr(self, "_tasks") or self._tasks[0] != config:  # the pool is drawn once per config
            self._tasks = (config, config.training_tasks())
        batch = self._tasks[1].sample(config.meta_batch_size, config.k_shot, config.n_query,
                                      generator=step_generator(config, i))
        return tuple(t.to(device) for t in batch.as_tuple())

    def evaluate(self, config: SinusoidConfig, model: torch.nn.Module, *, split: str, n_tasks: int | None,
                 device: torch.device) -> dict[str, Any]:
        tasks = sinusoid_test_tasks if split == "test" else sinusoid_validation_tasks
        batch = tasks(config, n_tasks)
        tup = tuple(t.to(device) for t in batch.as_tuple())
        norm = batch_norm_protocol(model)
        by_steps = {}
        for steps in sorted({0, *config.eval_steps}):
            mse = query_mse(model, tup, inner_steps=steps, inner_lr=config.inner_lr)
            by_steps[str(steps)] = {**summarize_mse(mse), "values": mse.detach().double().cpu().tolist()}
        final = by_steps[str(max(config.eval_steps))]
        return {"metric": f"query MSE, K={config.eval_k_shot}, after {max(config.eval_steps)} steps",
                **final, "by_steps": by_steps, "transductive": norm["transductive"],
                "protocol": f"{len(batch)} {split} tasks {_ranges(config)}, x~U[-5,5]; {config.eval_k_shot} support, "
                            f"{config.eval_n_query} query points; SGD inner_lr={config.inner_lr}; {norm['batch_norm']}"}


class SinusoidMAML(_Sinusoid):
    """MAML on sinusoids: the meta-loss after ``inner_steps`` steps, backpropagated through them."""

    algorithm = "sinusoid-maml"

    def make_step(self, config, model, optimizer, device):
        return maml_regression_step(config, model, optimizer, lambda i: self._batch(config, i, device))


class SinusoidPretrain(_Sinusoid):
    """The pretrained baseline: one regressor fitted to the support and query points of all tasks pooled."""

    algorithm = "sinusoid-pretrain"

    def make_step(self, config, model, optimizer, device):
        return pooled_regression_step(model, optimizer, lambda i: self._batch(config, i, device))
