"""Meta-reinforcement learning on the 2-D point robot (Finn et al. 2017, §5.3 and Appendix A.2).

Two recipes share one config and one evaluation:

* ``point-robot-maml``: MAML for policies. Each meta-iteration samples ``meta_batch_size``
  goals, adapts the policy to each with one vanilla policy-gradient step on ``n_episodes``
  episodes, and updates the initial policy with Adam on the adapted policies' surrogate loss.
  (Finn et al. use TRPO for the outer update; see :mod:`metalearn_lab.rl`.)
* ``point-robot-scratch``: an agent that learns every new task from scratch
  (:class:`~metalearn_lab.rl.ScratchAgent`). It has nothing to meta-train; its "training" is the
  choice of its learning rate on validation goals, one candidate per step, by the average return
  over all ``eval_steps + 1`` stages of adaptation (the area under its learning curve).

Evaluation (both): for each of ``eval_tasks`` fixed goals, the mean return after 0, 1, ...,
``eval_steps`` policy-gradient updates, each on ``eval_episodes`` fresh episodes of that goal
(Finn et al. test with 40), with a 95% interval over goals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from metalearn_lab import rl
from metalearn_lab.experiments.config import ExperimentConfig, Float, Floats, Int
from metalearn_lab.experiments.recipe import Recipe, batch_norm_protocol, step_generator
from metalearn_lab.experiments.splits import _check_unlocked, _optional_count
from metalearn_lab.metrics import mean_confidence_interval
from metalearn_lab.validation import check_int


@dataclass(frozen=True)
class PointRobotConfig(ExperimentConfig):
    """Fields of the point-robot experiments.

    Attributes
    ----------
    meta_batch_size : goals per meta-iteration (Finn et al. 2017, Appendix A.2: 20; their code: 40)
    n_episodes : episodes per goal for each policy-gradient step (20, Appendix A.2)
    horizon, discount : episode length (100) and the discount of the returns-to-go (0.99, rllab's default)
    inner_lr : the inner policy-gradient step (Appendix A.2 says 0.1; the authors' point-robot script uses 0.5)
    eval_steps, eval_episodes : updates and episodes per update at test (Finn et al.: up to 3, 40)
    eval_optimizer : "sgd" (vanilla policy gradient, MAML's inner loop) or "adam"
    eval_lrs : step size of each test update (the last repeats); empty: ``inner_lr`` then half of it
        (Appendix A.2: "halving the learning rate after the first gradient step")
    candidate_lrs : the learning rates the from-scratch agent chooses among, on validation goals
    """

    meta_batch_size: int = 20
    n_episodes: int = 20
    horizon: int = 100
    discount: float = 0.99
    inner_lr: float = 0.5
    eval_steps: int = 3
    eval_episodes: int = 40
    eval_optimizer: str = "sgd"
    eval_lrs: tuple[float, ...] = ()
    candidate_lrs: tuple[float, ...] = ()
    eval_tasks: int = 100
    eval_tasks_during_training: int = 20
    checkpoint_every: int = 10

    ranges = {"n_episodes": Int(1), "horizon": Int(1), "discount": Float(0, 1), "inner_lr": Float(0, low_open=True),
              "eval_steps": Int(0), "eval_episodes": Int(1),
              "eval_lrs": Floats(Float(0, low_open=True), allow_empty=True),  # empty: inner_lr, then half of it
              "candidate_lrs": Floats(Float(0, low_open=True), allow_empty=True)}  # empty: only point-robot-maml runs

    def quick(self) -> "PointRobotConfig":
        candidates = self.candidate_lrs[:2]
        return super().quick().replace(iterations=min(self.iterations, 2),
                                       candidate_lrs=candidates, meta_batch_size=4, n_episodes=4, horizon=20,
                                       eval_steps=min(self.eval_steps, 2), eval_episodes=4, eval_tasks=4,
                                       eval_tasks_during_training=4)


def point_robot_goals(config: PointRobotConfig, split: str, n_tasks: int | None = None) -> torch.Tensor:
    """The fixed goals of ``split`` ("validation" or "test"), ``[n_tasks, 2]``; test goals are locked while training."""
    n_tasks = _optional_count("n_tasks", n_tasks)  # None: the config's number
    if split == "test":
        _check_unlocked("point-robot test goals")
        seed, n = config.eval_seed, n_tasks or config.eval_tasks
    elif split == "validation":
        seed, n = config.eval_seed + 1, n_tasks or config.eval_tasks_during_training
    else:
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    return rl.sample_goals(n, generator=torch.Generator().manual_seed(seed))


def evaluation_lrs(config: PointRobotConfig, model: torch.nn.Module) -> list[float]:
    """The step size of each test update: the scratch agent's chosen rate, ``eval_lrs``, or Finn et al.'s schedule."""
    if isinstance(model, rl.ScratchAgent):
        return [model.learning_rate]
    if config.eval_lrs:
        return list(config.eval_lrs)
    return [config.inner_lr] + [config.inner_lr / 2] * max(config.eval_steps - 1, 0)


def adaptation_curve(config: PointRobotConfig, model: torch.nn.Module, goals: torch.Tensor, *, lrs: list[float],
                     seed: int) -> torch.Tensor:
    """Mean return per goal after 0..``eval_steps`` updates, ``[n_goals, eval_steps + 1]`` (seeded episodes)."""
    seed = check_int("seed", seed, minimum=0)
    policy = model.policy if isinstance(model, rl.ScratchAgent) else model
    rates = (lrs + [lrs[-1]] * config.eval_steps)[: max(config.eval_steps, 1)]
    return rl.adaptation_returns(policy, rl.policy_params(policy), goals, steps=config.eval_steps,
                                 n_episodes=config.eval_episodes, inner_lr=rates, optimizer=config.eval_optimizer,
                                 discount=config.discount, horizon=config.horizon,
                                 generator=torch.Generator().manual_seed(seed))


def _summarise(curve: torch.Tensor, config: PointRobotConfig, split: str, lrs: list[float], what: str,
               model: torch.nn.Module) -> dict[str, Any]:
    """Mean ± 95% CI over goals after each number of updates; ``values``: the per-goal returns behind each interval."""
    by_steps = {}
    for j in range(curve.shape[1]):
        values = curve[:, j].double().tolist()
        mean, half = mean_confidence_interval(values)
        by_steps[str(j)] = {"mean": mean, "ci95": half, "episodes": j * config.eval_episodes, "values": values}
    last = by_steps[str(curve.shape[1] - 1)]
    # each goal's policy learns from that goal's own episodes: the linear baseline and the advantage
    # normalisation are per goal (rl.linear_baseline, rl.advantages), so no goal's result reads another's
    norm = batch_norm_protocol(model, alone="each goal's policy is adapted on that goal's own episodes only (baseline "
                                            "and advantage normalisation per goal)")
    return {"metric": f"average return after {config.eval_steps} policy-gradient updates ({what})",
            "mean": last["mean"], "ci95": last["ci95"], "n_tasks": curve.shape[0], "values": last["values"],
            "by_steps": by_steps, "per_task": curve.tolist(), "learning_rates": lrs, "transductive": norm["transductive"],
            "protocol": f"{curve.shape[0]} fixed {split} goals uniform in [-0.5, 0.5]^2, horizon {config.horizon}; "
                        f"{config.eval_episodes} episodes per update, {config.eval_optimizer} step sizes {lrs}; "
                        f"mean ± 95% CI over goals; {norm['batch_norm']}"}


class PointRobotMAML(Recipe):
    """MAML for policies on the point robot (Finn et al. 2017, Algorithm 3, with Adam as the outer optimizer)."""

    algorithm = "point-robot-maml"
    config_class = PointRobotConfig
    #: Finn et al. (2017, Appendix A.2) evaluate "the model with the best average return during
    #: training"; we keep the one with the best return on validation goals. Before
    #: ``select_on_validation`` was a config field this recipe always did so (its shipped run among them).
    legacy_defaults = {"select_on_validation": True}

    def build_model(self, config):
        return rl.GaussianPolicy()

    def make_step(self, config, model, optimizer, device):
        def step(i):
            generator = step_generator(config, i)
            goals = rl.sample_goals(config.meta_batch_size, generator=generator)
            out = rl.maml_rl_step(model, optimizer, goals, n_episodes=config.n_episodes, inner_lr=config.inner_lr,
                                  discount=config.discount, generator=generator, horizon=config.horizon)
            return {"loss": out["loss"], "metric": out["return_after"]}

        return step

    def evaluate(self, config, model, *, split, n_tasks, device):
        goals = point_robot_goals(config, split, n_tasks)
        lrs = evaluation_lrs(config, model)
        seed = config.eval_seed + (2 if split == "test" else 3)
        return _summarise(adaptation_curve(config, model, goals, lrs=lrs, seed=seed), config, split, lrs,
                          "meta-trained initial policy", model)


class PointRobotScratch(PointRobotMAML):
    """No meta-training: a fresh policy per task; training step ``i`` scores candidate learning rate ``i mod n`` on validation goals."""

    algorithm = "point-robot-scratch"
    legacy_defaults = {}  # it never selected weights: it has none to train

    def build_model(self, config):
        if not config.candidate_lrs:
            raise ValueError(f"{config.name}: point-robot-scratch needs candidate_lrs to choose from")
        return rl.ScratchAgent(config.candidate_lrs)

    def make_optimizer(self, config, model):
        return None

    def make_step(self, config, model, optimizer, device):
        n = len(config.candidate_lrs)

        def step(i):
            # step i scores candidate i mod n; a candidate scored again (iterations > n) on new episodes of the same
            # validation goals keeps the mean of its scores, so more iterations give a less noisy choice
            candidate, repeat = i % n, i // n
            goals = point_robot_goals(config, "validation")
            curve = adaptation_curve(config, model, goals, lrs=[config.candidate_lrs[candidate]],
                                     seed=config.eval_seed + 3 + 1000 * repeat)
            # the return collected while learning, averaged over all stages (the area under the learning curve):
            # a rate that gets there in the end after wrecking the first episodes is not a fast learner
            score = float(curve.mean())
            old = float(model.validation_returns[candidate])
            model.validation_returns[candidate] = score if repeat == 0 else old + (score - old) / (repeat + 1)
            return {"loss": -score, "metric": score}

        return step

    def evaluate(self, config, model, *, split, n_tasks, device):
        goals = point_robot_goals(config, split, n_tasks)
        lrs = evaluation_lrs(config, model)
        seed = config.eval_seed + (2 if split == "test" else 3)
        return _summarise(adaptation_curve(config, model, goals, lrs=lrs, seed=seed), config, split, lrs,
                          "a fresh policy, learning from scratch", model)
