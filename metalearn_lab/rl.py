r"""Meta-reinforcement learning: a family of tasks, a Gaussian policy, the policy gradient, MAML for policies.

The task family is the 2-D point robot of Finn, Abbeel & Levine (2017, §5.3): a point starts at
the origin, each action is a velocity command clipped to :math:`[-0.1, 0.1]` per coordinate, the
reward is minus the distance to a goal drawn uniformly from :math:`[-0.5, 0.5]^2`, and an episode
ends when the point is within 0.01 of the goal in both coordinates, or after 100 steps. The agent
sees its position, never the goal: it has to find out where the reward is, which is what makes
each goal a separate task. (The paper says "negative squared distance"; the authors' code,
cbfinn/maml_rl ``point_env_randgoal.py``, uses the distance itself, and so do we.)

Two ways to run it:

* :class:`PointRobotEnv`, one task with the Gymnasium interface (``reset(seed=...)`` →
  ``(observation, info)``, ``step(action)`` → ``(observation, reward, terminated, truncated,
  info)``), for reading, testing and any Gymnasium-compatible code;
* :func:`rollout`, many tasks × many episodes at once as tensors, for training. Both call
  :func:`point_robot_step`, so they share one set of dynamics (a test checks they agree).

The learning side: a :class:`GaussianPolicy`; :func:`reward_to_go`, a linear-feature baseline
(:func:`linear_baseline`) and normalised :func:`advantages`; the REINFORCE surrogate
:func:`policy_gradient_loss`, whose gradient is the policy-gradient estimate (Williams 1992);
MAML's inner step for policies (:func:`adapt_policies`: one step of vanilla policy gradient on a
task's own episodes, Finn et al. 2017, Algorithm 3) and its meta-loss (:func:`maml_rl_loss`);
:func:`adaptation_returns` measures return against episodes spent on a new task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.func import functional_call, grad, vmap

from metalearn_lab.validation import check_float, check_int

Params = dict[str, torch.Tensor]

#: Finn et al. (2017, §5.3): velocity commands are clipped to [-0.1, 0.1] in each coordinate.
ACTION_LIMIT = 0.1
#: Goals are uniform in the square [-0.5, 0.5]^2 (cbfinn/maml_rl, ``point_env_randgoal.py``).
GOAL_RANGE = (-0.5, 0.5)
#: An episode ends within 0.01 of the goal in both coordinates, or after ``HORIZON`` steps.
GOAL_TOLERANCE = 0.01
HORIZON = 100


# ------------------------------------------------------------------------------------------ the task family
def point_robot_step(position, action, goal, *, action_limit: float = ACTION_LIMIT, tolerance: float = GOAL_TOLERANCE):
    """One step of the point robot, for NumPy arrays or tensors of shape ``[..., 2]``.

    The action is clipped to ``[-action_limit, action_limit]`` per coordinate and added to the
    position; the reward is minus the Euclidean distance from the new position to the goal.

    Returns
    -------
    (new_position ``[..., 2]``, reward ``[...]``, reached ``[...]`` bool)

    Examples
    --------
    >>> import numpy as np
    >>> position, reward, reached = point_robot_step(np.zeros(2), np.array([0.5, 0.0]), np.array([0.1, 0.0]))
    >>> position.tolist(), float(reward), bool(reached)
    ([0.1, 0.0], -0.0, True)
    """
    action_limit = check_float("action_limit", action_limit, low=0, low_open=True)
    tolerance = check_float("tolerance", tolerance, low=0, low_open=True)
    new_position = position + action.clip(-action_limit, action_limit)
    offset = new_position - goal
    reward = -((offset**2).sum(-1)) ** 0.5
    reached = (abs(offset) < tolerance).all(-1)
    return new_position, reward, reached


def _check_goal(goal: Any) -> np.ndarray:
    try:
        array = np.asarray(goal, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"goal must be two finite numbers (x, y), got {goal!r}") from None
    if array.shape != (2,) or not np.all(np.isfinite(array)):
        raise ValueError(f"goal must be two finite numbers (x, y), got {goal!r}")
    return array


class PointRobotEnv(gym.Env):
    """One task of the 2-D point-robot family (Finn et al. 2017, §5.3), with the Gymnasium interface.

    Observation: the position ``[2]`` (float32), starting at the origin (it cannot leave
    ``[-0.1 * horizon, 0.1 * horizon]^2``). Action: a velocity
    ``[2]`` in ``[-0.1, 0.1]`` (larger values are clipped). Reward: minus the distance to the goal
    after the move. ``terminated`` when within 0.01 of the goal in both coordinates,
    ``truncated`` after ``horizon`` steps. ``info["goal"]`` is the goal; a learner that reads it
    is cheating (the goal is what the task hides).

    Parameters
    ----------
    goal : (x, y) or None
        The task. ``None``: each ``reset`` draws a goal uniformly from ``[-0.5, 0.5]^2`` with the
        environment's random generator (seeded by ``reset(seed=...)``), i.e. a new task.
    horizon : int
        Steps before truncation (100 in the paper).

    Examples
    --------
    >>> env = PointRobotEnv(goal=(0.25, -0.1))
    >>> observation, info = env.reset(seed=0)
    >>> observation.tolist(), info["goal"].tolist()
    ([0.0, 0.0], [0.25, -0.1])
    >>> observation, reward, terminated, truncated, info = env.step([0.1, -0.1])
    >>> round(reward, 4), terminated, truncated
    (-0.15, False, False)
    """

    metadata = {"render_modes": []}

    def __init__(self, goal: Any = None, *, horizon: int = HORIZON) -> None:
        super().__init__()
        self.horizon = check_int("horizon", horizon)
        self.fixed_goal = None if goal is None else _check_goal(goal)
        reach = np.float32(ACTION_LIMIT * self.horizon)  # the farthest the robot can get from the origin
        self.observation_space = spaces.Box(-reach, reach, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-ACTION_LIMIT, ACTION_LIMIT, shape=(2,), dtype=np.float32)
        self.goal = self.fixed_goal
        self.position = np.zeros(2, dtype=np.float32)
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode at the origin; ``options={"goal": (x, y)}`` sets the task for this episode."""
        super().reset(seed=None if seed is None else check_int("seed", seed, minimum=0))
        goal = (options or {}).get("goal", self.fixed_goal)
        if goal is None:
            goal = self.np_random.uniform(*GOAL_RANGE, size=2)
        self.goal = _check_goal(goal)
        self.position = np.zeros(2, dtype=np.float32)
        self.steps = 0
        return self.position.copy(), {"goal": self.goal.copy()}

    def step(self, action):
        if self.goal is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be two finite numbers (vx, vy), got {action!r}")
        self.position, reward, reached = point_robot_step(self.position, action, self.goal)
        self.position = self.position.astype(np.float32)
        self.steps += 1
        terminated = bool(reached)
        truncated = self.steps >= self.horizon and not terminated
        return self.position.copy(), float(reward), terminated, truncated, {"goal": self.goal.copy()}


def sample_goals(n_tasks: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Goals of ``n_tasks`` point-robot tasks, uniform in ``[-0.5, 0.5]^2``: ``[n_tasks, 2]``.

    >>> sample_goals(3, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 2])
    """
    n_tasks = check_int("n_tasks", n_tasks)
    low, high = GOAL_RANGE
    return low + (high - low) * torch.rand(n_tasks, 2, generator=generator)


def oracle_return(goal: Any, *, horizon: int = HORIZON) -> float:
    """The return of the agent that knows the goal and heads straight for it at full speed.

    A reference for the best achievable return (it is optimal up to the clipping geometry).

    >>> round(oracle_return((0.25, 0.0)), 3)
    -0.2
    """
    env = PointRobotEnv(goal=goal, horizon=horizon)
    observation, _ = env.reset()
    total, done = 0.0, False
    while not done:
        action = np.clip(env.goal - observation, -ACTION_LIMIT, ACTION_LIMIT)
        observation, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    return total


# ------------------------------------------------------------------------------------------ the policy
class GaussianPolicy(nn.Module):
    r"""A Gaussian policy :math:`\pi_\theta(a \mid s) = \mathcal{N}(a;\ c\,\mu_\theta(s),\ (c\,\sigma)^2 I)`.

    :math:`\mu_\theta` is an MLP (two hidden layers of 100 ReLU units in Finn et al. 2017,
    Appendix A.2) and :math:`\log\sigma` a learned vector that does not depend on the state,
    initialised at :math:`\sigma = 1`, as in rllab's Gaussian MLP policy that the authors used.
    :math:`c` = ``action_scale`` = 0.1 expresses the network's outputs in units of the largest
    velocity (the authors' code rescales actions from [-1, 1] in the same way).

    ``forward(observation)`` returns ``(mean, std)`` with shapes ``[..., action_dim]``.

    Examples
    --------
    >>> policy = GaussianPolicy()
    >>> mean, std = policy(torch.zeros(5, 2))
    >>> tuple(mean.shape), [round(s, 3) for s in std[0].tolist()]
    ((5, 2), [0.1, 0.1])
    """

    def __init__(self, obs_dim: int = 2, action_dim: int = 2, hidden: tuple[int, ...] = (100, 100),
                 init_std: float = 1.0, action_scale: float = ACTION_LIMIT) -> None:
        super().__init__()
        obs_dim, action_dim = check_int("obs_dim", obs_dim), check_int("action_dim", action_dim)
        init_std = check_float("init_std", init_std, low=0, low_open=True)
        self.action_scale = check_float("action_scale", action_scale, low=0, low_open=True)
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            h = check_int("hidden", h)
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, action_dim))
        self.mean_net = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(np.log(init_std))))

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.action_scale * self.mean_net(observation)
        std = self.action_scale * self.log_std.exp()
        return mean, std.expand_as(mean)


def log_prob(policy: nn.Module, params: Mapping[str, torch.Tensor], observations: torch.Tensor,
             actions: torch.Tensor) -> torch.Tensor:
    """``log π(a | s)`` of every step under ``params``: ``[...]`` for observations/actions ``[..., 2]``."""
    mean, std = functional_call(policy, dict(params), (observations,))
    z = (actions - mean) / std
    return (-0.5 * z**2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


def policy_params(policy: nn.Module) -> Params:
    """The policy's parameters as a dict of detached tensors (a starting point :math:`\\theta`)."""
    return {k: v.detach() for k, v in policy.named_parameters()}


# ------------------------------------------------------------------------------------------ rollouts
@dataclass
class Trajectories:
    """Episodes of many tasks. Shapes: ``[n_tasks, n_episodes, horizon, ...]``.

    ``observations`` (the position before each step) and ``actions`` (as sampled, before the
    environment clips them) ``[..., 2]``; ``rewards`` and ``mask`` ``[...]`` (mask 1 for the steps
    that happened, 0 after the episode ended); ``goals`` ``[n_tasks, 2]``.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    goals: torch.Tensor

    def returns(self) -> torch.Tensor:
        """The undiscounted return of every episode, ``[n_tasks, n_episodes]``."""
        return (self.rewards * self.mask).sum(-1)

    def lengths(self) -> torch.Tensor:
        """Steps in every episode, ``[n_tasks, n_episodes]``."""
        return self.mask.sum(-1)


def _policy_forward(policy, params, observations, per_task: bool):
    if per_task:
        return vmap(lambda p, o: functional_call(policy, p, (o,)))(params, observations)
    return functional_call(policy, params, (observations,))


def rollout(policy: nn.Module, params: Mapping[str, torch.Tensor], goals: torch.Tensor, n_episodes: int, *,
            horizon: int = HORIZON, generator: torch.Generator | None = None, per_task: bool = False,
            deterministic: bool = False) -> Trajectories:
    """Run ``n_episodes`` episodes of every task in ``goals`` with the policy at ``params``.

    Parameters
    ----------
    policy : GaussianPolicy
    params : dict name → Tensor
        Shared by all tasks (``per_task=False``), or one set per task with a leading
        ``n_tasks`` dimension (``per_task=True``, e.g. after adaptation).
    goals : Tensor ``[n_tasks, 2]``
    n_episodes, horizon : int
    generator : torch.Generator, optional
        Seeds the action noise: the same generator state gives the same episodes.
    deterministic : bool
        Act with the mean action (no exploration noise).

    Returns
    -------
    Trajectories
        No gradient is recorded (episodes are data; :func:`log_prob` scores them later).

    Examples
    --------
    >>> policy = GaussianPolicy()
    >>> trajectories = rollout(policy, policy_params(policy), sample_goals(3), 4, horizon=10)
    >>> tuple(trajectories.rewards.shape), tuple(trajectories.returns().shape)
    ((3, 4, 10), (3, 4))
    """
    n_episodes = check_int("n_episodes", n_episodes)
    horizon = check_int("horizon", horizon)
    goals = torch.as_tensor(goals, dtype=torch.float32)
    if goals.ndim != 2 or goals.shape[1] != 2:
        raise ValueError(f"goals must have shape [n_tasks, 2], got {tuple(goals.shape)}")
    n_tasks = goals.shape[0]
    position = torch.zeros(n_tasks, n_episodes, 2)
    alive = torch.ones(n_tasks, n_episodes, dtype=torch.bool)
    observations = torch.zeros(n_tasks, n_episodes, horizon, 2)
    actions = torch.zeros(n_tasks, n_episodes, horizon, 2)
    rewards = torch.zeros(n_tasks, n_episodes, horizon)
    mask = torch.zeros(n_tasks, n_episodes, horizon)
    with torch.no_grad():
        for t in range(horizon):
            mean, std = _policy_forward(policy, params, position, per_task)
            noise = torch.randn(mean.shape, generator=generator)
            action = mean if deterministic else mean + std * noise
            new_position, reward, reached = point_robot_step(position, action, goals[:, None, :])
            observations[:, :, t] = position
            actions[:, :, t] = action
            rewards[:, :, t] = torch.where(alive, reward, 0.0)
            mask[:, :, t] = alive.float()
            position = torch.where(alive[..., None], new_position, position)
            alive = alive & ~reached
            if not bool(alive.any()):
                break
    return Trajectories(observations, actions, rewards, mask, goals)


# ------------------------------------------------------------------------------------------ the policy gradient
def reward_to_go(rewards: torch.Tensor, mask: torch.Tensor, discount: float) -> torch.Tensor:
    r"""Discounted reward-to-go :math:`G_t = \sum_{k \ge t} \gamma^{k-t} r_k` of every step, ``[..., horizon]``.

    Steps after an episode ended (``mask == 0``) get 0 and contribute nothing.

    >>> reward_to_go(torch.tensor([1.0, 1.0, 1.0, 5.0]), torch.tensor([1.0, 1.0, 1.0, 0.0]), 0.5).tolist()
    [1.75, 1.5, 1.0, 0.0]
    """
    discount = check_float("discount", discount, low=0, high=1)
    if rewards.shape != mask.shape:
        raise ValueError(f"rewards and mask must have the same shape, got {tuple(rewards.shape)} and {tuple(mask.shape)}")
    rewards = rewards * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + discount * running
        out[..., t] = running
    return out * mask


def baseline_features(observations: torch.Tensor) -> torch.Tensor:
    """Features of the linear baseline: position, its square, time, time², time³ and 1 (Duan et al. 2016).

    ``observations [..., horizon, 2]`` → ``[..., horizon, 8]``, in float64; time is step/100.
    """
    obs = observations.double().clamp(-10, 10)
    horizon = observations.shape[-2]
    time = (torch.arange(horizon, dtype=torch.float64) / 100.0).expand(*observations.shape[:-1])[..., None]
    return torch.cat([obs, obs**2, time, time**2, time**3, torch.ones_like(time)], dim=-1)


def linear_baseline(observations: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, *,
                    reg: float = 1e-5) -> torch.Tensor:
    """Fit and evaluate a linear value baseline per task, on that task's own episodes.

    A ridge regression of the reward-to-go on :func:`baseline_features` over all valid steps of a
    task's episodes (rllab's ``LinearFeatureBaseline``, which Finn et al. 2017 used, Appendix A.2).

    Parameters
    ----------
    observations : ``[n_tasks, n_episodes, horizon, 2]``
    returns, mask : ``[n_tasks, n_episodes, horizon]``

    Returns
    -------
    Tensor ``[n_tasks, n_episodes, horizon]`` (float32), 0 where ``mask`` is 0.
    """
    reg = check_float("reg", reg, low=0, low_open=True)  # the ridge keeps the solve well posed (short episodes)
    features = baseline_features(observations) * mask.double()[..., None]
    n_tasks, d = features.shape[0], features.shape[-1]
    flat = features.reshape(n_tasks, -1, d)
    target = (returns.double() * mask.double()).reshape(n_tasks, -1, 1)
    gram = flat.transpose(1, 2) @ flat + reg * torch.eye(d, dtype=torch.float64)
    coefficients = torch.linalg.solve(gram, flat.transpose(1, 2) @ target)
    values = (flat @ coefficients).reshape(returns.shape)
    return values.float() * mask


def advantages(trajectories: Trajectories, discount: float = 0.99, *, baseline: bool = True,
               normalise: bool = True) -> torch.Tensor:
    """Advantage of every step: reward-to-go minus the linear baseline, standardised per task.

    As in the authors' code (rllab ``center_adv``): within each task, the advantages of the valid
    steps are shifted to mean 0 and scaled to standard deviation 1, which makes the policy-gradient
    step size independent of the scale of the rewards. Returns ``[n_tasks, n_episodes, horizon]``.
    """
    discount = check_float("discount", discount, low=0, high=1)
    mask = trajectories.mask
    returns = reward_to_go(trajectories.rewards, mask, discount)
    values = linear_baseline(trajectories.observations, returns, mask) if baseline else torch.zeros_like(returns)
    adv = (returns - values) * mask
    if normalise:
        dims = tuple(range(1, adv.ndim))
        count = mask.sum(dims, keepdim=True).clamp(min=1)
        mean = adv.sum(dims, keepdim=True) / count
        var = (((adv - mean) * mask) ** 2).sum(dims, keepdim=True) / count
        adv = (adv - mean) / (var.sqrt() + 1e-8) * mask
    return adv


def policy_gradient_loss(log_probs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""The REINFORCE surrogate :math:`-\frac{1}{N}\sum_{t} \log\pi_\theta(a_t \mid s_t)\, \hat A_t` over valid steps.

    Its gradient is minus the policy-gradient estimate (Williams 1992; Sutton & Barto 2018, §13.3),
    so gradient *descent* on it raises the probability of actions with positive advantage. The
    advantages are data: they are detached, so no gradient flows through them. ``N`` is the number
    of valid steps (``mask.sum()``), as in the authors' code (a mean over all steps of all episodes).

    >>> log_probs = torch.tensor([-1.0, -2.0], requires_grad=True)
    >>> loss = policy_gradient_loss(log_probs, torch.tensor([1.0, -1.0]), torch.ones(2))
    >>> loss.backward(); log_probs.grad.tolist()
    [-0.5, 0.5]
    """
    if not (log_probs.shape == advantages.shape == mask.shape):
        raise ValueError(f"log_probs, advantages and mask must have one shape; got {tuple(log_probs.shape)}, "
                         f"{tuple(advantages.shape)} and {tuple(mask.shape)}")
    return -(log_probs * advantages.detach() * mask).sum() / mask.sum().clamp(min=1)


def _surrogate(policy, params, observations, actions, adv, mask):
    return policy_gradient_loss(log_prob(policy, params, observations, actions), adv, mask)


def adapt_policies(policy: nn.Module, params: Mapping[str, torch.Tensor], trajectories: Trajectories,
                   adv: torch.Tensor, inner_lr: float, *, per_task: bool = False, create_graph: bool = False) -> Params:
    r"""One step of vanilla policy gradient per task: :math:`\theta'_i = \theta - \alpha \nabla_\theta \mathcal{L}_i(\theta)`.

    :math:`\mathcal{L}_i` is :func:`policy_gradient_loss` on task ``i``'s own episodes (MAML's inner
    step for reinforcement learning, Finn et al. 2017, Algorithm 3, with 20 episodes a task).

    Parameters
    ----------
    params : shared (``per_task=False``) or ``[n_tasks, ...]`` per task (``per_task=True``)
    trajectories, adv : episodes of every task and their advantages (:func:`advantages`)
    inner_lr : float > 0
    create_graph : bool
        Keep the step differentiable with respect to ``params`` (for the meta-gradient).

    Returns
    -------
    dict name → Tensor ``[n_tasks, ...]``: one adapted parameter set per task.
    """
    inner_lr = check_float("inner_lr", inner_lr, low=0, low_open=True)

    def one_task(p, observations, actions, a, mask):
        g = grad(_surrogate, argnums=1)(policy, p, observations, actions, a, mask)
        return {k: p[k] - inner_lr * g[k] for k in p}

    in_params = 0 if per_task else None
    data = (trajectories.observations, trajectories.actions, adv, trajectories.mask)
    if create_graph:
        return vmap(one_task, in_dims=(in_params, 0, 0, 0, 0))(dict(params), *data)
    with torch.enable_grad():
        detached = {k: v.detach() for k, v in params.items()}
        adapted = vmap(one_task, in_dims=(in_params, 0, 0, 0, 0))(detached, *data)
    return {k: v.detach() for k, v in adapted.items()}


def maml_rl_loss(policy: nn.Module, params: Mapping[str, torch.Tensor], before: Trajectories, adv_before: torch.Tensor,
                 after: Trajectories, adv_after: torch.Tensor, inner_lr: float) -> torch.Tensor:
    r"""MAML's meta-objective for policies, averaged over tasks.

    For task :math:`i`: adapt with one policy-gradient step on the episodes ``before`` (sampled
    with :math:`\theta`), then score the episodes ``after`` (sampled with :math:`\theta'_i`) with
    the surrogate at :math:`\theta'_i`. Differentiating through the adaptation gives the
    second-order meta-gradient. As in the authors' implementation, the dependence of the
    ``before`` episodes' distribution on :math:`\theta` is not differentiated (later work, e.g.
    Rothfuss et al. 2019, adds that term).
    """
    inner_lr = check_float("inner_lr", inner_lr, low=0, low_open=True)

    def one_task(obs_b, act_b, a_b, m_b, obs_a, act_a, a_a, m_a):
        g = grad(_surrogate, argnums=1)(policy, params, obs_b, act_b, a_b, m_b)
        adapted = {k: params[k] - inner_lr * g[k] for k in params}
        return _surrogate(policy, adapted, obs_a, act_a, a_a, m_a)

    losses = vmap(one_task)(before.observations, before.actions, adv_before, before.mask,
                            after.observations, after.actions, adv_after, after.mask)
    return losses.mean()


def maml_rl_step(policy: nn.Module, optimizer: torch.optim.Optimizer, goals: torch.Tensor, *, n_episodes: int,
                 inner_lr: float, discount: float = 0.99, generator: torch.Generator | None = None,
                 horizon: int = HORIZON) -> dict[str, float]:
    """One meta-iteration of MAML for reinforcement learning (Finn et al. 2017, Algorithm 3).

    Samples ``n_episodes`` per goal with θ, adapts each task with one policy-gradient step,
    samples ``n_episodes`` more with each adapted policy, and updates θ with ``optimizer`` on
    :func:`maml_rl_loss`. Returns ``{"loss", "return_before", "return_after"}`` (mean returns).
    """
    n_episodes, horizon = check_int("n_episodes", n_episodes), check_int("horizon", horizon)
    inner_lr = check_float("inner_lr", inner_lr, low=0, low_open=True)
    discount = check_float("discount", discount, low=0, high=1)
    params = dict(policy.named_parameters())
    before = rollout(policy, params, goals, n_episodes, horizon=horizon, generator=generator)
    adv_before = advantages(before, discount)
    adapted = adapt_policies(policy, params, before, adv_before, inner_lr)
    after = rollout(policy, adapted, goals, n_episodes, horizon=horizon, generator=generator, per_task=True)
    adv_after = advantages(after, discount)
    optimizer.zero_grad(set_to_none=True)
    loss = maml_rl_loss(policy, params, before, adv_before, after, adv_after, inner_lr)
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach()), "return_before": float(before.returns().mean()),
            "return_after": float(after.returns().mean())}


def joint_policy_gradient_step(policy: nn.Module, optimizer: torch.optim.Optimizer, goals: torch.Tensor, *,
                               n_episodes: int, discount: float = 0.99, generator: torch.Generator | None = None,
                               horizon: int = HORIZON) -> dict[str, float]:
    """One step of ordinary policy gradient on episodes of many tasks pooled: the pretrained baseline.

    The policy is trained to do well on average over tasks, with no adaptation in the objective
    (Finn et al. 2017, §5.3, "pretrained" comparison). Returns ``{"loss", "return_before"}``.
    """
    n_episodes, horizon = check_int("n_episodes", n_episodes), check_int("horizon", horizon)
    discount = check_float("discount", discount, low=0, high=1)
    params = dict(policy.named_parameters())
    episodes = rollout(policy, params, goals, n_episodes, horizon=horizon, generator=generator)
    adv = advantages(episodes, discount)
    optimizer.zero_grad(set_to_none=True)
    loss = policy_gradient_loss(log_prob(policy, params, episodes.observations, episodes.actions), adv, episodes.mask)
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach()), "return_before": float(episodes.returns().mean())}


# ------------------------------------------------------------------------------------------ evaluation
def adaptation_episodes(policy: nn.Module, params: Mapping[str, torch.Tensor], goals: torch.Tensor, *, steps: int,
                        n_episodes: int, inner_lr: float | list[float], optimizer: str = "sgd", discount: float = 0.99,
                        generator: torch.Generator | None = None, horizon: int = HORIZON):
    """Adapt to every task with ``steps`` policy-gradient updates; yield the episodes of each stage.

    Yields ``steps + 1`` :class:`Trajectories`: the ``n_episodes`` episodes of every task sampled
    with the policy after 0, 1, ..., ``steps`` updates. Update ``j + 1`` learns from the episodes
    of stage ``j``, so reaching stage ``j`` has cost ``j * n_episodes`` episodes of the new task.
    Each task is adapted on its own episodes only. See :func:`adaptation_returns` for the arguments.
    """
    steps = check_int("steps", steps, minimum=0)
    rates = list(inner_lr) if isinstance(inner_lr, (list, tuple)) else [inner_lr] * max(steps, 1)
    if len(rates) < steps:
        raise ValueError(f"inner_lr has {len(rates)} values for {steps} steps")
    rates = [check_float("inner_lr", r, low=0, low_open=True) for r in rates]
    n_episodes, horizon = check_int("n_episodes", n_episodes), check_int("horizon", horizon)
    discount = check_float("discount", discount, low=0, high=1)
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    params = {k: v.detach() for k, v in params.items()}
    per_task = False
    moments: dict[str, Any] = {}
    for j in range(steps + 1):
        episodes = rollout(policy, params, goals, n_episodes, horizon=horizon, generator=generator, per_task=per_task)
        yield episodes
        if j == steps:
            return
        adv = advantages(episodes, discount)
        if optimizer == "sgd":
            params = adapt_policies(policy, params, episodes, adv, rates[j], per_task=per_task)
        else:
            # a step of size 1 moves params by minus the gradient: read the gradient off it, then step with Adam
            moved = adapt_policies(policy, params, episodes, adv, 1.0, per_task=per_task)
            current = params if per_task else {k: v.expand_as(moved[k]) for k, v in params.items()}
            gradients = {k: current[k] - moved[k] for k in moved}
            params = _adam_update(current, gradients, moments, rates[j], j + 1)
        per_task = True


def adaptation_returns(policy: nn.Module, params: Mapping[str, torch.Tensor], goals: torch.Tensor, *, steps: int,
                       n_episodes: int, inner_lr: float | list[float], optimizer: str = "sgd", discount: float = 0.99,
                       generator: torch.Generator | None = None, horizon: int = HORIZON) -> torch.Tensor:
    """Mean return of each task after 0, 1, ..., ``steps`` policy-gradient updates on that task alone.

    Every update uses ``n_episodes`` fresh episodes of the task, sampled with the current
    policy; the return recorded after ``j`` updates is the mean return of the episodes that the
    ``j+1``-th update learns from (as rllab reports ``AverageReturn``). So ``j`` updates have cost
    ``j * n_episodes`` episodes of experience in the new task.

    Parameters
    ----------
    params : the starting point θ, shared by all tasks (a meta-learned one, or a fresh policy's)
    goals : ``[n_tasks, 2]``
    inner_lr : float, or one float per update
        Finn et al. (2017, Appendix A.2) halve it after the first update at test time.
    optimizer : "sgd" (vanilla policy gradient, as MAML's inner loop) or "adam" (per task,
        fresh moments: a stronger learner for an agent starting from scratch)

    Returns
    -------
    Tensor ``[n_tasks, steps + 1]``

    Examples
    --------
    >>> policy = GaussianPolicy()
    >>> curve = adaptation_returns(policy, policy_params(policy), sample_goals(2), steps=1, n_episodes=3,
    ...                            inner_lr=0.1, horizon=5)
    >>> tuple(curve.shape)
    (2, 2)
    """
    stages = adaptation_episodes(policy, params, goals, steps=steps, n_episodes=n_episodes, inner_lr=inner_lr,
                                 optimizer=optimizer, discount=discount, generator=generator, horizon=horizon)
    return torch.stack([episodes.returns().mean(1) for episodes in stages], 1)


def _adam_update(params: Params, gradients: Params, moments: dict[str, Any], lr: float, t: int,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Params:
    """Adam (Kingma & Ba 2015) on a dict of per-task parameters; ``moments`` is updated in place."""
    out = {}
    for k, g in gradients.items():
        m, v = moments.get(k, (torch.zeros_like(g), torch.zeros_like(g)))
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g**2
        moments[k] = (m, v)
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        out[k] = params[k] - lr * m_hat / (v_hat.sqrt() + eps)
    return out


class ScratchAgent(nn.Module):
    """An agent that learns every new task from scratch: a freshly initialised policy and its learning rate.

    The comparison for meta-reinforcement learning: no knowledge from other tasks, only
    policy-gradient updates on the new task's own episodes (with Adam, a stronger learner than
    MAML's plain gradient step). Its learning rate is chosen among ``candidate_lrs`` by the return
    it collects on *validation* tasks while it learns (:attr:`validation_returns`, filled in by the
    ``point-robot-scratch`` experiment), so that test tasks are never used to tune it.

    Examples
    --------
    >>> agent = ScratchAgent((1e-3, 1e-2))
    >>> agent.validation_returns[:] = torch.tensor([-30.0, -20.0])
    >>> agent.learning_rate
    0.01
    """

    def __init__(self, candidate_lrs: tuple[float, ...] = (1e-3,), **policy_kwargs: Any) -> None:
        super().__init__()
        if not candidate_lrs:
            raise ValueError("candidate_lrs must name at least one learning rate")
        rates = [check_float("candidate_lrs", r, low=0, low_open=True) for r in candidate_lrs]
        self.policy = GaussianPolicy(**policy_kwargs)
        self.register_buffer("candidate_lrs", torch.tensor(rates, dtype=torch.float64))
        self.register_buffer("validation_returns", torch.full((len(rates),), float("nan"), dtype=torch.float64))

    @property
    def learning_rate(self) -> float:
        """The candidate with the best validation return; ``RuntimeError`` before any was measured."""
        scores = self.validation_returns
        if bool(torch.isnan(scores).all()):
            raise RuntimeError("no learning rate has been evaluated on validation tasks yet")
        return float(self.candidate_lrs[torch.nan_to_num(scores, nan=-float("inf")).argmax()])

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy(observation)
