"""Companion of lesson ``10_applications``: personalisation (users' preference curves) and
meta-reinforcement learning (the point robot): the learners compared, their figures, the
"Try it" explorer, and the checkers of the exercises (personalise a model, reward-to-go, the
policy-gradient surrogate).

The lesson imports this module as ``lesson``; nothing in the core library imports it.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from metalearn_lab import rl
from metalearn_lab.baselines import fit_from_scratch_batch
from metalearn_lab.controls import fit_labels, show_png
from metalearn_lab.data.preferences import PreferenceBatch, PreferenceTasks
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer
from metalearn_lab.maml import adapt_and_predict
from metalearn_lab.metrics import mean_confidence_interval
from metalearn_lab.models import SineMLP

# ================================================================================ personalisation
#: The four ways to serve a user that the lesson compares, in table order.
LEARNERS = ("ignores the user", "from scratch", "pooled, fine-tuned", "MAML, adapted")


def plot_users(batch: PreferenceBatch, *, n_users: int = 6, population=None, ax=None,
               title="Six users: their true preference curves and the five exercises each has rated"):
    """Draw users' true curves (lines) and their noisy ratings (dots); ``population``: a model's curve (dashed).

    Returns the figure.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.4))
    else:
        fig = ax.figure
    grid = PreferenceTasks().grid()
    true = batch.true_curve(grid)
    for i in range(min(n_users, len(batch))):
        (line,) = ax.plot(grid, true[i], lw=1.6)
        ax.scatter(batch.x_support[i, :, 0], batch.y_support[i, :, 0], color=line.get_color(), s=28, zorder=3)
    if population is not None:
        with torch.no_grad():
            ax.plot(grid, population(grid[:, None])[:, 0], "k--", lw=2, label="one model for everybody (pooled)")
        ax.legend(fontsize=8, loc="upper right")
    ax.set(xlabel="difficulty of the exercise", ylabel="rating", title=title)
    return fig


def _predict(learner: str, models: Mapping[str, torch.nn.Module], setting: Mapping[str, Any], users: PreferenceBatch,
             x_eval: torch.Tensor) -> torch.Tensor:
    """One learner's predictions ``[n_users, P, 1]`` at ``x_eval [n_users, P, 1]`` after seeing each user's ratings."""
    steps, lr = int(setting.get("steps", 0)), float(setting.get("lr", 0.01))
    if learner == "from scratch":
        return fit_from_scratch_batch(users.x_support, users.y_support, x_eval, steps=steps, lr=lr)
    model = models["MAML" if learner.startswith("MAML") else "pooled"]
    if learner == "ignores the user":
        steps = 0
    batch = (users.x_support, users.y_support, x_eval, torch.zeros_like(x_eval))
    return adapt_and_predict(model, batch, F.mse_loss, inner_steps=steps, inner_lr=lr)


def score_learners(models: Mapping[str, torch.nn.Module], users: PreferenceBatch, settings: Mapping[str, Mapping[str, Any]],
                   *, grid_points: int = 101) -> dict[str, dict[str, torch.Tensor]]:
    """Every learner's error on every user: ``{learner: {"mse": [n_users], "regret": [n_users]}}``.

    ``mse``: against the user's noise-free curve at the query difficulties. ``regret``: how much
    rating the user loses when given the difficulty the learner's curve rates highest (on a grid
    of ``grid_points`` difficulties) instead of their true sweet spot.

    ``models``: ``{"MAML": ..., "pooled": ...}``; ``settings``: ``{learner: {"steps", "lr"}}``
    for the learners of :data:`LEARNERS` present in it.
    """
    grid = PreferenceTasks().grid(grid_points)
    n_query = users.x_query.shape[1]
    x_eval = torch.cat([users.x_query, grid.expand(len(users), -1)[..., None]], 1)
    out = {}
    for learner, setting in settings.items():
        prediction = _predict(learner, models, setting, users, x_eval)
        mse = ((prediction[:, :n_query] - users.true_query) ** 2).mean(dim=(1, 2))
        chosen = grid[prediction[:, n_query:, 0].argmax(1)]
        out[learner] = {"mse": mse, "regret": users.regret(chosen)}
    return out


def choose_on_validation(models: Mapping[str, torch.nn.Module], users: PreferenceBatch,
                         candidates: Mapping[str, list[dict[str, Any]]]) -> tuple[dict[str, dict[str, Any]], dict]:
    """For each learner, the candidate setting with the lowest mean MSE on validation ``users``.

    Returns ``(chosen, scores)``: ``chosen[learner]`` is a setting dict; ``scores[learner]`` maps
    each candidate (as a tuple ``(steps, lr)``) to its validation MSE. From-scratch candidates
    with the same learning rate share one training run (predictions are recorded at each number
    of steps), so the search costs one run per learning rate.
    """
    chosen, scores = {}, {}
    for learner, options in candidates.items():
        if not options:
            raise ValueError(f"no candidate settings for {learner!r}")
        table, by_key = {}, {}
        for o in options:
            by_key[int(o.get("steps", 0)), float(o.get("lr", 0.01))] = dict(o)
        if learner == "from scratch":
            for lr in sorted({lr for _, lr in by_key}):
                wanted = sorted({steps for steps, rate in by_key if rate == lr})
                runs = fit_from_scratch_batch(users.x_support, users.y_support, users.x_query, lr=lr, record_at=wanted)
                for steps, prediction in runs.items():
                    table[steps, lr] = float(((prediction - users.true_query) ** 2).mean())
        else:
            for key, o in by_key.items():
                prediction = _predict(learner, models, o, users, users.x_query)
                table[key] = float(((prediction - users.true_query) ** 2).mean())
        best = min(table, key=table.get)
        chosen[learner], scores[learner] = by_key[best], table
    return chosen, scores


def learner_table(scores: Mapping[str, Mapping[str, torch.Tensor]], settings: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table: each learner's MSE and regret, mean ± 95% interval over users, and its setting."""
    rows = ["| learner | what it knows about the user | setting (chosen on validation users) | MSE on the user's curve | regret of the chosen difficulty |",
            "| --- | --- | --- | --- | --- |"]
    knows = {"ignores the user": "nothing: one curve for everybody", "from scratch": "only their K ratings",
             "pooled, fine-tuned": "K ratings + the average user", "MAML, adapted": "K ratings + how users differ"}
    for learner, s in scores.items():
        setting = settings.get(learner, {})
        steps = setting.get("steps", 0)
        shown = ("no adaptation" if learner == "ignores the user"
                 else f"{steps} step{'s' if steps != 1 else ''}, lr {setting.get('lr', 0.01):g}")
        cells = []
        for key in ("mse", "regret"):
            mean, half = mean_confidence_interval(s[key])
            cells.append(f"{mean:.3f} ± {half:.3f}")
        rows.append(f"| {learner} | {knows.get(learner, '')} | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_personalised(models, users: PreferenceBatch, settings, *, n_users: int = 3, title=None):
    """One panel per user: the true curve, the K ratings, and every learner's curve for that user."""
    grid = PreferenceTasks().grid()
    n = min(n_users, len(users))
    fig, axes = plt.subplots(1, n, figsize=(4.0 * n, 3.2), sharey=True, squeeze=False)
    x_eval = grid.expand(len(users), -1)[..., None]
    curves = {learner: _predict(learner, models, setting, users, x_eval)[..., 0] for learner, setting in settings.items()}
    true = users.true_curve(grid)
    styles = {"ignores the user": ("0.4", "--"), "from scratch": ("tab:orange", "-"),
              "pooled, fine-tuned": ("tab:purple", ":"), "MAML, adapted": ("tab:blue", "-")}
    for i in range(n):
        ax = axes[0, i]
        ax.plot(grid, true[i], color="tab:red", lw=2.5, alpha=0.6, label="the user's true curve")
        for learner, curve in curves.items():
            color, style = styles.get(learner, ("k", "-"))
            ax.plot(grid, curve[i], style, color=color, lw=1.6, label=learner)
        ax.scatter(users.x_support[i, :, 0], users.y_support[i, :, 0], marker="^", color="k", s=35, zorder=4,
                   label=f"{users.x_support.shape[1]} ratings")
        ax.set(xlabel="difficulty", title=f"user {i + 1}")
    axes[0, 0].set_ylabel("rating")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _user_setup(seed: int = 0):
    """A small regressor (a few pooled steps, so its gradients are not tiny) and one user with 5 ratings."""
    torch.manual_seed(seed)
    model = SineMLP()
    users = PreferenceTasks().sample(8, 5, 20, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(5):
        optimizer.zero_grad()
        F.mse_loss(model(users.x_query.reshape(-1, 1)), users.y_query.reshape(-1, 1)).backward()
        optimizer.step()
    return model, users.x_support[0], users.y_support[0]


def _reference_personal(model, x_user, y_user, inner_steps, inner_lr, *, optimizer="sgd", loss="mean"):
    """What a right (and some typical wrong) personalisation returns: a fine-tuned copy of ``model``."""
    personal = copy.deepcopy(model)
    params = list(personal.parameters())
    adam = torch.optim.Adam(params, lr=inner_lr) if optimizer == "adam" else None
    with torch.enable_grad():
        for _ in range(inner_steps):
            error = (personal(x_user) - y_user) ** 2
            grads = torch.autograd.grad(error.mean() if loss == "mean" else error.sum(), params)
            if adam is not None:
                for p, g in zip(params, grads):
                    p.grad = g
                adam.step()
            else:
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        p -= inner_lr * g
    return personal


@checker("Exercise 1: personalise one model for one user")
def check_personalise(personalise: Callable) -> str:
    """Check ``personalise(model, x_user, y_user, inner_steps, inner_lr) -> nn.Module``.

    Right: a copy of ``model`` after ``inner_steps`` steps of plain gradient descent with step
    ``inner_lr`` on the mean squared error of the user's ratings; ``model`` itself unchanged.
    """
    model, x_user, y_user = _user_setup()
    shared = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grid = PreferenceTasks().grid(50)[:, None]
    steps, lr = 3, 0.01
    personal = require_answer(personalise(model, x_user, y_user, steps, lr), "personalise(...)")
    changed = any(not torch.equal(shared[k], v) for k, v in model.state_dict().items())
    if personal is model or changed:
        raise WrongAnswer("the shared model changed: this user's steps were applied to the model every user starts "
                          "from, so the next user would begin from this user's curve. Personalise a copy "
                          "(copy.deepcopy(model)) and leave `model` as it was")
    expect(isinstance(personal, torch.nn.Module), f"return the personal model (an nn.Module that predicts this user's "
                                                  f"ratings), not a {type(personal).__name__}")
    with torch.no_grad():
        got = personal(grid)
    expect(got.shape == grid.shape, f"the personal model maps difficulties [P, 1] to ratings [P, 1]; got shape "
                                    f"{tuple(got.shape)}")

    def same(other):
        with torch.no_grad():
            return torch.allclose(got, other(grid), atol=1e-5, rtol=1e-4)

    if same(_reference_personal(model, x_user, y_user, steps, lr)):
        zero = require_answer(personalise(model, x_user, y_user, 0, lr), "personalise(..., inner_steps=0, ...)")
        with torch.no_grad():
            unchanged = torch.allclose(zero(grid), model(grid), atol=1e-6)
        expect(unchanged, "with inner_steps=0 the personal model should predict exactly what the shared model predicts")
        return "a personal copy, 3 gradient steps on the user's 5 ratings, and the shared model untouched"
    expect(not same(model), "the personal model predicts what the shared model predicts: it did not learn from "
                            "the user's ratings (did the optimizer get the copy's parameters, and did you call step()?)")
    expect(not same(_reference_personal(model, x_user, y_user, steps, -lr)),
           "the ratings' error went up: you stepped uphill (use p - inner_lr * gradient)")
    for other in (1, 2, 4, 5, 6):
        expect(not same(_reference_personal(model, x_user, y_user, other, lr)),
               f"you took {other} step(s) where inner_steps={steps} asked for {steps}")
    expect(not same(_reference_personal(model, x_user, y_user, steps, lr, loss="sum")),
           "you summed the squared errors over the ratings: with the sum the step grows with the number of "
           "ratings K; use the mean (F.mse_loss), the loss MAML was meta-trained with")
    expect(not same(_reference_personal(model, x_user, y_user, steps, lr, optimizer="adam")),
           "you used Adam: MAML's initialisation was trained for plain gradient steps (torch.optim.SGD), and the "
           "personalisation step should be that one")
    raise WrongAnswer("the personal model's predictions differ from 3 plain gradient steps of size inner_lr on the "
                      "mean squared error of (x_user, y_user); check the loss and the optimizer")


# ================================================================================ meta-reinforcement learning
def _rtg_setup():
    generator = torch.Generator().manual_seed(3)
    rewards = -torch.rand(2, 3, 6, generator=generator)
    lengths = torch.tensor([[6, 4, 2], [5, 6, 1]])
    mask = (torch.arange(6) < lengths[..., None]).float()
    rewards = torch.where(mask > 0, rewards, torch.full_like(rewards, -7.0))  # junk after the end of each episode
    return rewards, mask


@checker("Exercise 2: the reward-to-go")
def check_reward_to_go(reward_to_go: Callable) -> str:
    """Check ``reward_to_go(rewards, mask, discount) -> Tensor`` (same shape) against :func:`metalearn_lab.rl.reward_to_go`."""
    rewards, mask = _rtg_setup()
    discount = 0.9
    got = require_answer(reward_to_go(rewards.clone(), mask.clone(), discount), "reward_to_go(...)")
    got = torch.as_tensor(got, dtype=torch.float32)
    expect(got.shape == rewards.shape, f"return one value per step, shape {tuple(rewards.shape)}; got {tuple(got.shape)}")
    right = rl.reward_to_go(rewards, mask, discount)

    def same(other):
        return torch.allclose(got, other, atol=1e-5)

    if same(right):
        return "G_t = sum over k >= t of discount^(k-t) r_k, zero after each episode's end"
    clean = rewards * mask
    powers = discount ** torch.arange(6.0)
    expect(not same(rl.reward_to_go(rewards, torch.ones_like(mask), discount) * mask) and
           not same(rl.reward_to_go(rewards, torch.ones_like(mask), discount)),
           "you counted rewards after the episode ended: steps where mask is 0 never happened (their rewards here "
           "are junk, -7); multiply the rewards by the mask first")
    expect(not same(torch.cumsum(clean, -1) * mask) and not same(torch.cumsum(clean * powers, -1) * mask),
           "you summed the rewards *before* step t (a running total from the start); the reward-to-go sums those "
           "from t to the end: run the loop backwards, G_t = r_t + discount * G_(t+1)")
    expect(not same(rl.reward_to_go(rewards, mask, discount)[..., :1].expand_as(rewards) * mask),
           "every step got the whole episode's return; an action can only affect the rewards that come after it, so "
           "step t gets the sum from t on")
    expect(not same(rl.reward_to_go(rewards, mask, 1.0)), "you left out the discount: G_t = r_t + discount * G_(t+1)")
    from_start = torch.flip(torch.cumsum(torch.flip(clean * powers, [-1]), -1), [-1]) * mask
    expect(not same(from_start), "you discounted from the start of the episode (discount^k r_k); discount from "
                                 "step t (discount^(k-t) r_k), so that r_t itself counts fully")
    expect(not same((right - clean) * mask) and not same((right - clean) / discount * mask),
           "G_t starts with the reward of step t itself; yours starts at step t+1")
    raise WrongAnswer("not the discounted reward-to-go; compare yours with G_t = r_t + discount * G_(t+1) on one "
                      "short episode by hand")


def _pg_setup():
    generator = torch.Generator().manual_seed(4)
    log_probs = torch.randn(2, 3, 5, generator=generator)
    advantages = torch.randn(2, 3, 5, generator=generator)
    mask = (torch.arange(5) < torch.tensor([[5, 3, 2], [4, 5, 1]])[..., None]).float()
    return log_probs, advantages * mask, mask


@checker("Exercise 3: the policy-gradient surrogate")
def check_policy_gradient_loss(policy_gradient_loss: Callable) -> str:
    """Check ``policy_gradient_loss(log_probs, advantages, mask) -> 0-d tensor`` and its gradient."""
    log_probs, adv, mask = _pg_setup()
    lp = log_probs.clone().requires_grad_()
    a = adv.clone().requires_grad_()
    got = require_answer(policy_gradient_loss(lp, a, mask.clone()), "policy_gradient_loss(...)")
    expect(isinstance(got, torch.Tensor) and got.dim() == 0, "return one number, a 0-d tensor (average over the steps)")
    expect(got.requires_grad, "the loss has no gradient: log_probs must stay in the graph (don't detach them or "
                              "convert them to numbers)")
    got.backward()
    ref_lp = log_probs.clone().requires_grad_()
    right = rl.policy_gradient_loss(ref_lp, adv, mask)
    right.backward()
    value = float(got.detach())
    if a.grad is not None and float(a.grad.abs().sum()) > 0:
        raise WrongAnswer("the gradient flows into the advantages: they are data (how good each action turned out), "
                          "not something to optimise; use advantages.detach()")
    if math.isclose(value, float(right.detach()), rel_tol=1e-4, abs_tol=1e-6) and lp.grad is not None and \
            torch.allclose(lp.grad, ref_lp.grad, atol=1e-6):
        return "minus the mean of log π · advantage over the valid steps; its gradient is the policy gradient"
    expect(not math.isclose(value, -float(right.detach()), rel_tol=1e-4, abs_tol=1e-6),
           "wrong sign: minimising your loss makes the actions with positive advantage *less* likely; the surrogate "
           "is -mean(log π · A), so that gradient descent climbs the return")
    expect(not math.isclose(value, float(-(log_probs * adv).mean()), rel_tol=1e-4),
           "you averaged over all steps, including the padding after each episode ended; divide by the number of "
           "valid steps, mask.sum()")
    expect(not math.isclose(value, float(-(log_probs * adv * mask).sum()), rel_tol=1e-4),
           "you summed over the steps; take the mean over valid steps (divide by mask.sum()), so that the step size "
           "does not grow with the number of episodes")
    expect(not math.isclose(value, float(-(log_probs * adv * mask).sum() / mask[..., 0].sum()), rel_tol=1e-4),
           "you divided by the number of episodes; the authors' code (and the library) average over the valid steps")
    raise WrongAnswer("not -sum(log_probs * advantages * mask) / mask.sum(); check each factor")


def return_curves(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Curves of return against episodes from evaluation results (``by_steps``): ``{label: {"episodes", "mean", "ci95"}}``."""
    curves = {}
    for label, r in results.items():
        steps = sorted(r["by_steps"], key=int)
        per = r["by_steps"]
        curves[label] = {"episodes": [per[s].get("episodes", int(s) * r.get("eval_episodes", 40)) for s in steps],
                         "mean": [per[s]["mean"] for s in steps], "ci95": [per[s]["ci95"] for s in steps]}
    return curves


def plot_return_curves(curves: Mapping[str, Mapping[str, list[float]]], *, oracle: float | None = None,
                       published: Mapping[str, tuple[list[float], list[float]]] | None = None, ax=None,
                       title="New goals: return against the episodes spent on them"):
    """Average return (mean ± 95% CI band over goals) against episodes of experience in the new task.

    ``published``: ``{label: (episodes, returns)}`` drawn as markers (e.g. Finn et al.'s Table 4);
    ``oracle``: the mean return of the agent that knows the goal, dotted.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
    else:
        fig = ax.figure
    for i, (label, c) in enumerate(curves.items()):
        x, m, h = (np.asarray(c[k], dtype=float) for k in ("episodes", "mean", "ci95"))
        ax.plot(x, m, "o-", color=f"C{i}", lw=1.8, ms=4, label=label)
        ax.fill_between(x, m - h, m + h, color=f"C{i}", alpha=0.18)
    for label, (x, values) in (published or {}).items():
        ax.plot(x, values, "kx", ms=8, mew=2, label=label)
    if oracle is not None:
        ax.axhline(oracle, color="0.3", ls=":", lw=1.2, label=f"knows the goal ({oracle:.1f})")
    ax.set(xlabel="episodes of experience in the new task", ylabel="average return of an episode", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_episodes(ax, episodes: rl.Trajectories, task: int = 0, *, n_show: int = 10, color="tab:blue", label=None):
    """Draw the paths of the first ``n_show`` episodes of ``task`` and its goal on ``ax``.

    All paths are one line with breaks between episodes (one artist: quick to draw, which the
    pre-rendered explorer needs).
    """
    mask = episodes.mask[task, :n_show].bool()
    pieces = []
    for e in range(mask.shape[0]):
        steps = int(mask[e].sum())
        end = episodes.observations[task, e, steps - 1] + episodes.actions[task, e, steps - 1].clamp(-rl.ACTION_LIMIT,
                                                                                                     rl.ACTION_LIMIT)
        pieces += [episodes.observations[task, e, :steps], end[None], torch.full((1, 2), float("nan"))]
    path = torch.cat(pieces).numpy()
    ax.plot(path[:, 0], path[:, 1], color=color, lw=0.9, alpha=0.7, label=label)
    goal = episodes.goals[task]
    ax.plot([float(goal[0])], [float(goal[1])], "*", color="tab:red", ms=14, mec="k", zorder=5)
    ax.plot([0], [0], "ko", ms=4)
    ax.set(xlim=(-0.75, 0.75), ylim=(-0.75, 0.75), aspect="equal")
    ax.add_patch(plt.Rectangle((-0.5, -0.5), 1, 1, fill=False, ls=":", color="0.6"))


def _agent(agents: Mapping[str, tuple[torch.nn.Module, dict[str, Any]]], name: str):
    policy, how = agents[name]
    policy = policy.policy if isinstance(policy, rl.ScratchAgent) else policy
    return policy, how


def adapted_episodes(agents, name: str, goals: torch.Tensor, *, steps: int, n_episodes: int = 20, seed: int = 0):
    """The episodes of agent ``name`` on ``goals`` after each of 0..``steps`` updates (a list of Trajectories)."""
    policy, how = _agent(agents, name)
    rates = list(how["lrs"])
    rates = (rates + rates[-1:] * steps)[: max(steps, 1)]  # the last step size repeats
    return list(rl.adaptation_episodes(policy, rl.policy_params(policy), goals, steps=steps, n_episodes=n_episodes,
                                       inner_lr=rates, optimizer=how.get("optimizer", "sgd"),
                                       generator=torch.Generator().manual_seed(seed)))


def robot_adaptation_figure(agents, goals: torch.Tensor, *, stages=(0, 1, 3), n_episodes: int = 20, seed: int = 0):
    """The explorer's view for the book: one row per agent, one column per number of updates, goals overlaid.

    ``agents``: ``{name: (policy, {"lrs": [...], "optimizer": "sgd" | "adam"})}``.
    """
    stages = sorted(set(int(s) for s in stages))
    fig, axes = plt.subplots(len(agents), len(stages), figsize=(3.1 * len(stages), 3.1 * len(agents)), squeeze=False)
    colors = ["tab:blue", "tab:green", "tab:purple", "tab:orange"]
    for row, name in enumerate(agents):
        episodes = adapted_episodes(agents, name, goals, steps=stages[-1], n_episodes=n_episodes, seed=seed)
        for col, stage in enumerate(stages):
            ax = axes[row, col]
            for task in range(goals.shape[0]):
                plot_episodes(ax, episodes[stage], task, n_show=5, color=colors[task % len(colors)])
            ret = float(episodes[stage].returns().mean())
            ax.set_title(f"{name}\n{stage} update(s), {stage * n_episodes} episodes: return {ret:.1f}", fontsize=8.5)
    fig.tight_layout()
    return fig


class RobotExplorer:
    """Sliders for the goal and the number of updates, a choice of agent, and one figure of episodes.

    The chosen agent starts from its initial policy and takes policy-gradient updates on episodes
    of the chosen goal only (``n_episodes`` per update); the figure shows the episodes after the
    last update and the title their mean return. A 2-100-100-2 policy on one goal adapts in a few
    hundredths of a second a step on a laptop.

    Attributes
    ----------
    goal_x, goal_y, steps : ipywidgets sliders;  agent : ipywidgets.Dropdown;  fig, ax;  ui
    """

    def __init__(self, agents, *, goal=(0.3, -0.2), steps=1, n_episodes=20, seed=0, max_steps=10):
        import ipywidgets as widgets
        from matplotlib.figure import Figure

        if not agents:
            raise ValueError("agents must hold at least one agent, e.g. {'MAML': (policy, {'lrs': [0.5]})}")
        self.agents = dict(agents)
        self.n_episodes, self.seed = n_episodes, seed
        self.goal_x = widgets.FloatSlider(value=goal[0], min=-0.5, max=0.5, step=0.05, description="goal x")
        self.goal_y = widgets.FloatSlider(value=goal[1], min=-0.5, max=0.5, step=0.05, description="goal y")
        self.steps = widgets.IntSlider(value=steps, min=0, max=max_steps, description="updates")
        self.agent = widgets.Dropdown(options=list(self.agents), description="agent")
        fit_labels(self.goal_x, self.goal_y, self.steps, self.agent)
        self.output = widgets.Output()
        self.fig = Figure(figsize=(4.2, 4.2))
        self.ax = self.fig.add_axes((0.14, 0.1, 0.8, 0.74))  # room for the two-line title inside the figure
        self.returns: float = float("nan")
        for w in (self.goal_x, self.goal_y, self.steps, self.agent):
            w.observe(self.update, names="value")
        self.ui = widgets.VBox([widgets.HBox([self.goal_x, self.goal_y]), widgets.HBox([self.steps, self.agent]),
                                self.output])
        self.update()

    def update(self, _change=None) -> None:
        """Adapt the chosen agent to the chosen goal and redraw."""
        from IPython.display import clear_output

        goals = torch.tensor([[float(self.goal_x.value), float(self.goal_y.value)]])
        steps = int(self.steps.value)
        episodes = adapted_episodes(self.agents, self.agent.value, goals, steps=steps, n_episodes=self.n_episodes,
                                    seed=self.seed)[-1]
        self.returns = float(episodes.returns().mean())
        self.ax.clear()
        plot_episodes(self.ax, episodes, 0, n_show=10)
        self.ax.set_title(f"{self.agent.value}: {steps} update(s) = {steps * self.n_episodes} episodes\n"
                          f"average return {self.returns:.1f}", fontsize=9)
        with self.output:
            clear_output(wait=True)
            show_png(self.fig, close=False)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)


def robot_tryit(agents, *, positions=(-0.4, 0.0, 0.4), updates=(0, 1, 2, 3, 10), n_episodes: int = 40, seed: int = 0,
                dpi: int = 60):
    """The explorer pre-rendered for the book (:func:`metalearn_lab.tryit.explorer`): agent, goal and updates.

    Every combination of agent, goal ``(x, y)`` with ``x, y`` in ``positions``, and number of
    ``updates`` is drawn in advance; each agent adapts once per goal (to the largest number of
    updates) and the frames show the stages on the way.
    """
    from metalearn_lab import tryit

    updates = sorted({int(u) for u in updates})
    stages: dict[tuple, list] = {}

    def draw(agent, goal_x, goal_y, updates_done):
        key = (agent, goal_x, goal_y)
        if key not in stages:
            stages[key] = adapted_episodes(agents, agent, torch.tensor([[goal_x, goal_y]]), steps=updates[-1],
                                           n_episodes=n_episodes, seed=seed)
        episodes = stages[key][updates_done]
        fig, ax = plt.subplots(figsize=(3.4, 3.4))
        plot_episodes(ax, episodes, 0, n_show=10)
        ax.set_title(f"{agent}: {updates_done} update(s) = {updates_done * n_episodes} episodes\n"
                     f"average return {float(episodes.returns().mean()):.1f}", fontsize=9)
        return fig

    names = list(agents)
    return tryit.explorer(draw, {"agent": names, "goal_x": list(positions), "goal_y": list(positions),
                                 "updates_done": updates},
                          initial={"agent": names[0], "goal_x": positions[-1], "goal_y": positions[0],
                                   "updates_done": updates[min(1, len(updates) - 1)]},
                          labels={"agent": "agent", "goal_x": "goal x", "goal_y": "goal y", "updates_done": "updates"},
                          title="The point robot adapting to a goal (pre-rendered)", dpi=dpi)


def robot_widget(agents, **kwargs) -> RobotExplorer:
    """Build the "Try it" explorer for the point robot; display it by leaving it last in a cell."""
    return RobotExplorer(agents, **kwargs)


__all__ = [
    "LEARNERS", "RobotExplorer", "adapted_episodes", "check_personalise", "check_policy_gradient_loss",
    "check_reward_to_go", "choose_on_validation", "learner_table", "plot_episodes", "plot_personalised",
    "plot_return_curves", "plot_users", "return_curves", "robot_adaptation_figure", "robot_tryit", "robot_widget",
    "score_learners",
]
