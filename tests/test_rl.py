"""metalearn_lab.rl: the point-robot environment (Gymnasium interface and batched rollouts agree), the
policy-gradient pieces against hand computations, MAML's inner step and meta-gradient against a loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from metalearn_lab import rl


# ------------------------------------------------------------------------------------------ the environment
def test_gymnasium_checker_accepts_the_environment():
    check_env(rl.PointRobotEnv(), skip_render_check=True)
    check_env(rl.PointRobotEnv(goal=(0.2, -0.3)), skip_render_check=True)


def test_reset_returns_the_origin_and_the_goal_and_seeds_new_goals():
    env = rl.PointRobotEnv()
    obs_a, info_a = env.reset(seed=5)
    obs_b, info_b = rl.PointRobotEnv().reset(seed=5)
    assert obs_a.tolist() == [0.0, 0.0] and obs_a.dtype == np.float32
    np.testing.assert_array_equal(info_a["goal"], info_b["goal"])
    assert np.all(np.abs(info_a["goal"]) <= 0.5)
    _, info_c = env.reset(seed=6)
    assert not np.array_equal(info_a["goal"], info_c["goal"])
    _, info_d = env.reset(options={"goal": (0.1, 0.2)})
    np.testing.assert_allclose(info_d["goal"], [0.1, 0.2])


def test_actions_are_clipped_and_the_reward_is_minus_the_distance():
    env = rl.PointRobotEnv(goal=(0.5, 0.5))
    env.reset()
    obs, reward, terminated, truncated, info = env.step(np.array([3.0, -0.05], dtype=np.float32))
    np.testing.assert_allclose(obs, [0.1, -0.05], atol=1e-7)
    assert reward == pytest.approx(-math.hypot(0.4, 0.55), abs=1e-6)
    assert not terminated and not truncated


def test_episode_terminates_at_the_goal_and_truncates_at_the_horizon():
    env = rl.PointRobotEnv(goal=(0.05, 0.0), horizon=3)
    env.reset()
    *_, terminated, truncated, _ = env.step([0.05, 0.0])
    assert terminated and not truncated
    env = rl.PointRobotEnv(goal=(0.5, 0.5), horizon=3)
    env.reset()
    flags = [env.step([0.0, 0.0])[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


@pytest.mark.parametrize("bad", [[0.1], [0.1, 0.2, 0.3], [float("nan"), 0.0]])
def test_a_bad_action_is_refused_with_its_value(bad):
    env = rl.PointRobotEnv(goal=(0.1, 0.1))
    env.reset()
    with pytest.raises(ValueError, match="action must be two finite numbers"):
        env.step(bad)


def test_step_before_reset_and_bad_goals_and_horizons_are_refused():
    with pytest.raises(RuntimeError, match="reset"):
        rl.PointRobotEnv().step([0.0, 0.0])
    for goal in [(0.1,), (0.1, float("inf")), "ab"]:
        with pytest.raises(ValueError, match="goal must be two finite numbers"):
            rl.PointRobotEnv(goal=goal)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        rl.PointRobotEnv(horizon=0)


def test_batched_rollout_agrees_with_the_gymnasium_environment_step_for_step():
    torch.manual_seed(0)
    policy = rl.GaussianPolicy()
    goals = torch.tensor([[0.05, -0.04], [0.3, 0.2], [-0.45, 0.1]])
    episodes = rl.rollout(policy, rl.policy_params(policy), goals, 3, horizon=30,
                          generator=torch.Generator().manual_seed(1))
    for task in range(3):
        for e in range(3):
            env = rl.PointRobotEnv(goal=goals[task].tolist(), horizon=30)
            obs, _ = env.reset()
            for t in range(30):
                if episodes.mask[task, e, t] == 0:
                    break
                np.testing.assert_allclose(obs, episodes.observations[task, e, t].numpy(), atol=1e-5)
                obs, reward, terminated, truncated, _ = env.step(episodes.actions[task, e, t].numpy())
                assert reward == pytest.approx(float(episodes.rewards[task, e, t]), abs=1e-5)
                done = terminated or truncated
                assert done == (t + 1 == int(episodes.lengths()[task, e])), (task, e, t)
                if done:
                    break


def test_termination_agrees_between_rollout_and_environment():
    policy = rl.GaussianPolicy()
    with torch.no_grad():  # a policy whose mean action is (0.06, 0.03) everywhere
        policy.mean_net[-1].weight.zero_()
        policy.mean_net[-1].bias.copy_(torch.tensor([0.6, 0.3]))
    params = rl.policy_params(policy)
    goal = torch.tensor([[0.18, 0.09]])  # reached after exactly 3 steps
    episodes = rl.rollout(policy, params, goal, 1, horizon=10, deterministic=True)
    assert int(episodes.lengths()[0, 0]) == 3 and float(episodes.rewards[0, 0, 2]) == pytest.approx(0.0, abs=1e-6)
    env = rl.PointRobotEnv(goal=goal[0].tolist(), horizon=10)
    env.reset()
    outcomes = [env.step(episodes.actions[0, 0, t].numpy())[2] for t in range(3)]
    assert outcomes == [False, False, True]


def test_rollout_is_reproducible_and_checks_its_goals():
    policy = rl.GaussianPolicy()
    params = rl.policy_params(policy)
    a = rl.rollout(policy, params, rl.sample_goals(2), 2, horizon=5, generator=torch.Generator().manual_seed(3))
    b = rl.rollout(policy, params, a.goals, 2, horizon=5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.rewards, b.rewards)
    with pytest.raises(ValueError, match=r"goals must have shape \[n_tasks, 2\]"):
        rl.rollout(policy, params, torch.zeros(3), 2)
    with pytest.raises(ValueError, match="n_episodes must be an integer >= 1"):
        rl.rollout(policy, params, a.goals, 0)


def test_goals_are_in_the_square_and_the_oracle_is_near_optimal():
    goals = rl.sample_goals(500, generator=torch.Generator().manual_seed(0))
    assert goals.shape == (500, 2) and float(goals.abs().max()) <= 0.5
    # distance 0.35 straight along x: 3 full steps then 0.05, rewards -0.25, -0.15, -0.05, 0
    assert rl.oracle_return((0.35, 0.0)) == pytest.approx(-0.45, abs=1e-6)
    with pytest.raises(ValueError, match="n_tasks"):
        rl.sample_goals(0)


# ------------------------------------------------------------------------------------------ the policy
def test_gaussian_policy_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    policy = rl.GaussianPolicy()
    obs, actions = torch.randn(7, 2) * 0.3, torch.randn(7, 2) * 0.1
    mean, std = policy(obs)
    expected = torch.distributions.Normal(mean, std).log_prob(actions).sum(-1)
    torch.testing.assert_close(rl.log_prob(policy, dict(policy.named_parameters()), obs, actions), expected)
    assert torch.allclose(std, torch.full_like(std, 0.1))


@pytest.mark.parametrize(("kwargs", "message"), [({"init_std": 0.0}, "init_std"), ({"action_scale": -1.0}, "action_scale"),
                                                 ({"hidden": (0,)}, "hidden"), ({"obs_dim": 0}, "obs_dim")])
def test_gaussian_policy_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rl.GaussianPolicy(**kwargs)


# ------------------------------------------------------------------------------------------ the policy gradient
def test_reward_to_go_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    got = rl.reward_to_go(rewards, mask, 0.5)
    torch.testing.assert_close(got, torch.tensor([[2.75, 3.5, 3.0, 0.0], [1.875, 1.75, 1.5, 1.0]]))
    with pytest.raises(ValueError, match="discount must be a finite number >= 0 and <= 1"):
        rl.reward_to_go(rewards, mask, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        rl.reward_to_go(rewards, mask[:, :3], 0.5)


def test_linear_baseline_fits_returns_that_are_linear_in_its_features():
    torch.manual_seed(0)
    observations = torch.rand(2, 4, 6, 2)
    features = rl.baseline_features(observations)
    weights = torch.randn(2, 8, dtype=torch.float64)
    returns = torch.einsum("tesf,tf->tes", features, weights).float()
    mask = torch.ones(2, 4, 6)
    mask[0, 1, 4:] = 0
    fitted = rl.linear_baseline(observations, returns, mask)
    torch.testing.assert_close(fitted, returns * mask, atol=1e-3, rtol=1e-3)
    assert float(fitted[0, 1, 4:].abs().sum()) == 0.0


def test_advantages_are_standardised_per_task_over_valid_steps():
    torch.manual_seed(0)
    policy = rl.GaussianPolicy()
    episodes = rl.rollout(policy, rl.policy_params(policy), torch.tensor([[0.02, 0.0], [0.4, -0.4]]), 6, horizon=20,
                          generator=torch.Generator().manual_seed(0))
    adv = rl.advantages(episodes)
    for task in range(2):
        valid = adv[task][episodes.mask[task] > 0]
        assert abs(float(valid.mean())) < 1e-5 and float(valid.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
        assert float(adv[task][episodes.mask[task] == 0].abs().sum()) == 0.0


def test_policy_gradient_loss_gradient_is_the_reinforce_estimate():
    log_probs = torch.randn(3, 5, requires_grad=True)
    adv = torch.randn(3, 5, requires_grad=True)
    mask = torch.ones(3, 5)
    mask[1, 3:] = 0
    rl.policy_gradient_loss(log_probs, adv, mask).backward()
    torch.testing.assert_close(log_probs.grad, -(adv.detach() * mask) / mask.sum())
    assert adv.grad is None
    with pytest.raises(ValueError, match="one shape"):
        rl.policy_gradient_loss(log_probs, adv[:, :4], mask)


# ------------------------------------------------------------------------------------------ MAML for policies
def _episodes(n_tasks=3, seed=0):
    torch.manual_seed(seed)
    policy = rl.GaussianPolicy(hidden=(16, 16))
    goals = rl.sample_goals(n_tasks, generator=torch.Generator().manual_seed(seed))
    episodes = rl.rollout(policy, rl.policy_params(policy), goals, 4, horizon=12, generator=torch.Generator().manual_seed(seed))
    return policy, episodes, rl.advantages(episodes)


def _surrogate(policy, params, episodes, adv, task):
    return rl.policy_gradient_loss(rl.log_prob(policy, params, episodes.observations[task], episodes.actions[task]),
                                   adv[task], episodes.mask[task])


def test_adapt_policies_is_one_gradient_step_per_task():
    policy, episodes, adv = _episodes()
    params = dict(policy.named_parameters())
    adapted = rl.adapt_policies(policy, params, episodes, adv, 0.3)
    for task in range(3):
        grads = torch.autograd.grad(_surrogate(policy, params, episodes, adv, task), list(params.values()))
        for (name, p), g in zip(params.items(), grads):
            torch.testing.assert_close(adapted[name][task], p.detach() - 0.3 * g, atol=1e-6, rtol=1e-5)
    again = rl.adapt_policies(policy, adapted, episodes, adv, 0.3, per_task=True)
    assert again["log_std"].shape == (3, 2)
    with pytest.raises(ValueError, match="inner_lr"):
        rl.adapt_policies(policy, params, episodes, adv, 0.0)


def test_maml_rl_meta_gradient_matches_a_per_task_loop():
    policy, before, adv_before = _episodes(seed=1)
    _, after, adv_after = _episodes(seed=2)
    params = dict(policy.named_parameters())
    loss = rl.maml_rl_loss(policy, params, before, adv_before, after, adv_after, 0.2)
    vectorised = torch.autograd.grad(loss, list(params.values()))
    total = 0.0
    for task in range(3):
        grads = torch.autograd.grad(_surrogate(policy, params, before, adv_before, task), list(params.values()),
                                    create_graph=True)
        adapted = {name: p - 0.2 * g for (name, p), g in zip(params.items(), grads)}
        total = total + _surrogate(policy, adapted, after, adv_after, task) / 3
    looped = torch.autograd.grad(total, list(params.values()))
    for a, b in zip(vectorised, looped):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    # the second-order term is there: the first-order gradient (adaptation treated as a constant shift) differs
    first_order = 0.0
    for task in range(3):
        grads = torch.autograd.grad(_surrogate(policy, params, before, adv_before, task), list(params.values()))
        adapted = {name: p - 0.2 * g for (name, p), g in zip(params.items(), grads)}
        first_order = first_order + _surrogate(policy, adapted, after, adv_after, task) / 3
    first = torch.autograd.grad(first_order, list(params.values()))
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(vectorised, first))


def test_maml_rl_step_updates_the_policy_and_reports_returns():
    torch.manual_seed(0)
    policy = rl.GaussianPolicy(hidden=(16, 16))
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    out = rl.maml_rl_step(policy, optimizer, rl.sample_goals(3), n_episodes=4, inner_lr=0.5, horizon=10,
                          generator=torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "return_before", "return_after"} and out["return_before"] < 0
    assert any(not torch.equal(before[k], v) for k, v in policy.state_dict().items())
    out = rl.joint_policy_gradient_step(policy, optimizer, rl.sample_goals(3), n_episodes=4, horizon=10)
    assert set(out) == {"loss", "return_before"}


def test_adaptation_returns_shapes_learning_rates_and_optimizers():
    torch.manual_seed(0)
    policy = rl.GaussianPolicy(hidden=(16, 16))
    goals = rl.sample_goals(2, generator=torch.Generator().manual_seed(0))
    params = rl.policy_params(policy)
    kwargs = dict(n_episodes=3, horizon=8, generator=None)
    curve = rl.adaptation_returns(policy, params, goals, steps=2, inner_lr=[0.5, 0.25], **kwargs)
    assert curve.shape == (2, 3) and bool((curve <= 0).all())
    assert rl.adaptation_returns(policy, params, goals, steps=0, inner_lr=0.1, **kwargs).shape == (2, 1)
    assert rl.adaptation_returns(policy, params, goals, steps=2, inner_lr=1e-2, optimizer="adam", **kwargs).shape == (2, 3)
    # the first stage's episodes do not depend on the optimizer: same seed, same return
    g = dict(n_episodes=3, horizon=8)
    sgd = rl.adaptation_returns(policy, params, goals, steps=1, inner_lr=0.1, generator=torch.Generator().manual_seed(4), **g)
    adam = rl.adaptation_returns(policy, params, goals, steps=1, inner_lr=0.1, optimizer="adam",
                                 generator=torch.Generator().manual_seed(4), **g)
    torch.testing.assert_close(sgd[:, 0], adam[:, 0])
    with pytest.raises(ValueError, match="inner_lr has 1 values for 2 steps"):
        rl.adaptation_returns(policy, params, goals, steps=2, inner_lr=[0.1], **kwargs)
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        rl.adaptation_returns(policy, params, goals, steps=1, inner_lr=0.1, optimizer="rmsprop", **kwargs)


def test_per_task_adam_matches_torch_adam():
    torch.manual_seed(0)
    start = {"w": torch.randn(3, 4), "b": torch.randn(3)}  # 3 tasks' parameters
    gradients = [{"w": torch.randn(3, 4), "b": torch.randn(3)} for _ in range(4)]
    moments, params = {}, dict(start)
    for t, g in enumerate(gradients, 1):
        params = rl._adam_update(params, g, moments, 0.05, t)
    reference = {k: v.clone().requires_grad_() for k, v in start.items()}
    optimizer = torch.optim.Adam(reference.values(), lr=0.05)
    for g in gradients:
        for k, v in reference.items():
            v.grad = g[k].clone()
        optimizer.step()
    for k in start:
        torch.testing.assert_close(params[k], reference[k].detach())


def test_scratch_agent_chooses_the_best_validated_learning_rate():
    agent = rl.ScratchAgent((1e-3, 1e-2, 1e-1))
    with pytest.raises(RuntimeError, match="no learning rate has been evaluated"):
        agent.learning_rate
    agent.validation_returns[:2] = torch.tensor([-50.0, -20.0])
    assert agent.learning_rate == pytest.approx(1e-2)
    assert set(agent.state_dict()) >= {"candidate_lrs", "validation_returns"}
    with pytest.raises(ValueError, match="at least one"):
        rl.ScratchAgent(())
    with pytest.raises(ValueError, match="candidate_lrs"):
        rl.ScratchAgent((0.0,))
