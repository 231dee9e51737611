"""The companion of lesson 10 (applications): the three checkers against the lesson's own skeleton
and solution cells and against typical wrong answers, the learners' comparison, the figures and the
point-robot explorer."""

from __future__ import annotations

import copy

import _exercise_cells as cells  # tests/lessons/_exercise_cells.py
import matplotlib
import pytest
import torch

from metalearn_lab import rl
from metalearn_lab.data.preferences import PreferenceTasks
from metalearn_lab.lessons import applications as lesson
from metalearn_lab.models import SineMLP

matplotlib.use("Agg")
CHECKERS = ["check_personalise", "check_reward_to_go", "check_policy_gradient_loss"]


@pytest.mark.parametrize("checker", CHECKERS)
def test_skeleton_is_not_attempted_and_solution_passes(checker, capsys):
    check = getattr(lesson, checker)
    result = check.run(cells.run_skeleton("applications", checker))
    assert result.status == "not attempted" and "returned None" in result.message, result
    solution = cells.run_solution("applications", checker)
    result = check.run(solution)
    assert result.status == "passed", result.message
    check(solution)
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("checker", CHECKERS)
def test_nothing_after_the_exercise_uses_the_students_answer(checker):
    assert cells.later_uses_of_answer("applications", checker) == [], "later cells must use the library, not the answer"


# ------------------------------------------------------------------ Exercise 1: personalise
def personalise(model, x, y, steps, lr, *, optimizer=torch.optim.SGD, loss="mean", in_place=False, sign=1.0):
    personal = model if in_place else copy.deepcopy(model)
    params = list(personal.parameters())
    opt = optimizer(params, lr=lr) if optimizer is not None else None
    for _ in range(steps):
        error = (personal(x) - y) ** 2
        value = error.mean() if loss == "mean" else error.sum()
        if opt is None:
            grads = torch.autograd.grad(value, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p += sign * lr * g
        else:
            opt.zero_grad()
            value.backward()
            opt.step()
    return personal


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda m, x, y, s, lr: personalise(m, x, y, s, lr, in_place=True), "shared model changed"),
    (lambda m, x, y, s, lr: personalise(m, x, y, s, lr, optimizer=None, sign=1.0), "uphill"),
    (lambda m, x, y, s, lr: personalise(m, x, y, s + 1, lr), "took 4 step"),
    (lambda m, x, y, s, lr: personalise(m, x, y, s, lr, loss="sum"), "summed the squared errors"),
    (lambda m, x, y, s, lr: personalise(m, x, y, s, lr, optimizer=torch.optim.Adam), "Adam"),
    (lambda m, x, y, s, lr: copy.deepcopy(m), "did not learn"),
    (lambda m, x, y, s, lr: personalise(m, x, y, s, lr)(x), "not a Tensor"),
    (lambda m, x, y, s, lr: personalise(m, x, y, s, 0.5 * lr), "differ from 3 plain gradient steps"),
])
def test_personalise_diagnoses_typical_mistakes(wrong, message):
    result = lesson.check_personalise.run(wrong)
    assert result.status == "wrong" and message in result.message, result.message


# ------------------------------------------------------------------ Exercise 2: reward-to-go
def rtg(rewards, mask, discount, *, use_mask=True):
    rewards = rewards * mask if use_mask else rewards
    out, running = torch.zeros_like(rewards), torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + discount * running
        out[..., t] = running
    return out * mask if use_mask else out


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda r, m, g: rtg(r, m, g, use_mask=False), "after the episode ended"),
    (lambda r, m, g: torch.cumsum(r * m, -1) * m, "before* step t"),
    (lambda r, m, g: rtg(r, m, g)[..., :1].expand_as(r) * m, "whole episode's return"),
    (lambda r, m, g: rtg(r, m, 1.0), "left out the discount"),
    (lambda r, m, g: rtg(r * g ** torch.arange(r.shape[-1], dtype=r.dtype), m, 1.0), "start of the episode"),
    (lambda r, m, g: (rtg(r, m, g) - r * m) * m, "step t+1"),
    (lambda r, m, g: rtg(r, m, g)[..., :-1], "one value per step"),
    (lambda r, m, g: 2 * rtg(r, m, g), "not the discounted reward-to-go"),
])
def test_reward_to_go_diagnoses_typical_mistakes(wrong, message):
    result = lesson.check_reward_to_go.run(wrong)
    assert result.status == "wrong" and message in result.message, result.message


# ------------------------------------------------------------------ Exercise 3: the surrogate
def surrogate(log_probs, adv, mask):
    return -(log_probs * adv.detach() * mask).sum() / mask.sum()


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda lp, a, m: -surrogate(lp, a, m), "wrong sign"),
    (lambda lp, a, m: -(lp * a * m).sum() / m.sum(), "flows into the advantages"),
    (lambda lp, a, m: -(lp * a.detach()).mean(), "including the padding"),
    (lambda lp, a, m: -(lp * a.detach() * m).sum(), "summed over the steps"),
    (lambda lp, a, m: -(lp * a.detach() * m).sum() / m[..., 0].sum(), "number of episodes"),
    (lambda lp, a, m: surrogate(lp.detach(), a, m), "no gradient"),
    (lambda lp, a, m: -(lp * a.detach() * m).sum(-1) / m.sum(), "0-d tensor"),
    (lambda lp, a, m: 3 * surrogate(lp, a, m), "check each factor"),
])
def test_policy_gradient_loss_diagnoses_typical_mistakes(wrong, message):
    result = lesson.check_policy_gradient_loss.run(wrong)
    assert result.status == "wrong" and message in result.message, result.message


# ------------------------------------------------------------------ personalisation helpers and figures
@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"MAML": SineMLP(), "pooled": SineMLP()}


@pytest.fixture(scope="module")
def users():
    return PreferenceTasks().sample(6, 5, 12, generator=torch.Generator().manual_seed(0))


def test_choose_on_validation_picks_the_lowest_validation_error(models, users):
    candidates = {"ignores the user": [{"steps": 0}], "from scratch": [{"steps": s, "lr": 0.01} for s in (0, 5)],
                  "pooled, fine-tuned": [{"steps": 1, "lr": 0.01}, {"steps": 2, "lr": 0.01}],
                  "MAML, adapted": [{"steps": 1, "lr": 0.01}]}
    chosen, scores = lesson.choose_on_validation(models, users, candidates)
    assert set(chosen) == set(candidates)
    for learner, table in scores.items():
        best = min(table, key=table.get)
        assert (chosen[learner]["steps"], chosen[learner].get("lr", 0.01)) == best
    assert chosen["ignores the user"] == {"steps": 0}
    assert set(scores["from scratch"]) == {(0, 0.01), (5, 0.01)}
    with pytest.raises(ValueError, match="no candidate settings"):
        lesson.choose_on_validation(models, users, {"from scratch": []})


def test_score_learners_and_table(models, users):
    settings = {"ignores the user": {"steps": 0}, "from scratch": {"steps": 5, "lr": 0.01},
                "pooled, fine-tuned": {"steps": 1, "lr": 0.01}, "MAML, adapted": {"steps": 1, "lr": 0.01}}
    scores = lesson.score_learners(models, users, settings)
    for learner in settings:
        assert scores[learner]["mse"].shape == (6,) and bool((scores[learner]["regret"] >= 0).all())
    # ignoring the user is the pooled model with no step, whatever the setting says
    again = lesson.score_learners(models, users, {"ignores the user": {"steps": 7, "lr": 0.5}})
    torch.testing.assert_close(again["ignores the user"]["mse"], scores["ignores the user"]["mse"])
    table = lesson.learner_table(scores, settings)
    assert table.count("\n") == 5 and "no adaptation" in table and "5 steps, lr 0.01" in table


def test_personalisation_figures_build(models, users):
    settings = {"ignores the user": {"steps": 0}, "MAML, adapted": {"steps": 1, "lr": 0.01}}
    fig = lesson.plot_personalised(models, users, settings, n_users=2)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    fig = lesson.plot_users(users, population=models["pooled"])
    assert len(fig.axes[0].lines) == 7


# ------------------------------------------------------------------ meta-RL figures and the explorer
@pytest.fixture(scope="module")
def agents():
    torch.manual_seed(0)
    scratch = rl.ScratchAgent((1e-2,))
    scratch.validation_returns[0] = -10.0
    return {"MAML": (rl.GaussianPolicy(), {"lrs": [0.5, 0.25]}),
            "from scratch": (scratch, {"lrs": [scratch.learning_rate], "optimizer": "adam"})}


def test_return_curves_and_their_plot():
    results = {"a": {"by_steps": {"0": {"mean": -40.0, "ci95": 2.0, "episodes": 0},
                                  "1": {"mean": -10.0, "ci95": 1.0, "episodes": 40}}}}
    curves = lesson.return_curves(results)
    assert curves == {"a": {"episodes": [0, 40], "mean": [-40.0, -10.0], "ci95": [2.0, 1.0]}}
    fig = lesson.plot_return_curves(curves, oracle=-0.5, published={"paper": ([0, 40], [-40.4, -11.7])})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == "a" and "paper" in labels and any("knows the goal" in label for label in labels)


def test_robot_adaptation_figure_has_one_panel_per_agent_and_stage(agents):
    fig = lesson.robot_adaptation_figure(agents, torch.tensor([[0.3, -0.2], [-0.1, 0.4]]), stages=(0, 1), n_episodes=3)
    assert len(fig.axes) == 4
    assert "1 update(s), 3 episodes" in fig.axes[1].get_title()


def test_explorer_responds_to_every_control(agents):
    explorer = lesson.robot_widget(agents, goal=(0.3, -0.2), steps=0, n_episodes=4, max_steps=3)
    first = explorer.returns
    assert first == first and first < 0
    seen = {explorer.ax.get_title()}
    for widget, value in ((explorer.goal_x, -0.4), (explorer.goal_y, 0.45), (explorer.steps, 2),
                          (explorer.agent, "from scratch")):
        widget.value = value
        title = explorer.ax.get_title()
        assert title not in seen, f"changing {widget.description} left the figure unchanged"
        seen.add(title)
    assert "from scratch: 2 update(s) = 8 episodes" in explorer.ax.get_title()
    with pytest.raises(ValueError, match="at least one agent"):
        lesson.robot_widget({})


def test_pre_rendered_explorer_has_every_frame(agents):
    explorer = lesson.robot_tryit(agents, positions=(-0.3, 0.3), updates=(0, 2), n_episodes=3)
    assert len(explorer.frames) == 2 * 2 * 2 * 2
    assert explorer.frame(agent="MAML", goal_x=0.3, goal_y=-0.3, updates_done=2) != \
        explorer.frame(agent="MAML", goal_x=0.3, goal_y=-0.3, updates_done=0)
    assert explorer.initial == {"agent": "MAML", "goal_x": 0.3, "goal_y": -0.3, "updates_done": 2}
    assert "goal x" in explorer.html()
