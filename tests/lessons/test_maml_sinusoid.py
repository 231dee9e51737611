"""Lesson 04's exercise checkers, figures and Try-it explorer.

For each exercise: the skeleton as the lesson ships it is "not attempted", the lesson's solution
passes, and each typical wrong answer the checker knows is rejected with its diagnosis.
"""

from __future__ import annotations

import re

import _exercise_cells as cells  # tests/lessons/_exercise_cells.py
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _explorers import check_explorer, record_draws  # tests/lessons/_explorers.py
from torch.func import functional_call

from metalearn_lab import drawing
from metalearn_lab.data.sinusoid import SinusoidTasks
from metalearn_lab.exercises import WrongAnswer
from metalearn_lab.lessons import maml_sinusoid as lesson
from metalearn_lab.maml import adapt_and_predict, query_mse
from metalearn_lab.models import SineMLP


def make_inner_loop(*, sign=1.0, create_graph=True, extra_steps=0, detach=False, in_place=False, lr_scale=1.0,
                    on_query=False, reduction="mean", own_weights=False):
    def inner_loop(model, params, x_support, y_support, inner_steps, inner_lr):
        adapted = dict(params)
        if on_query:  # the checker's tasks have 5 support and 20 query points: find its query set
            batch = lesson._setup()[1]
            x_support, y_support = batch.x_query[0], batch.y_query[0]
        for _ in range(inner_steps + extra_steps if inner_steps else 0):
            prediction = model(x_support) if own_weights else functional_call(model, adapted, (x_support,))
            loss = F.mse_loss(prediction, y_support, reduction=reduction)
            grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=create_graph)
            if in_place:
                with torch.no_grad():
                    for p, g in zip(adapted.values(), grads):
                        p.sub_(inner_lr * g)
                continue
            adapted = {k: p - sign * lr_scale * inner_lr * g for (k, p), g in zip(adapted.items(), grads)}
            if detach:
                adapted = {k: v.detach().requires_grad_() for k, v in adapted.items()}
        return adapted

    return inner_loop


@pytest.mark.parametrize("checker", ["check_sine_adapt", "check_query_mse"])
def test_nothing_after_the_exercise_uses_the_students_answer(checker):
    assert cells.later_uses_of_answer("maml_sinusoid", checker) == [], "later cells must use the library, not the student's answer"


def test_untouched_inner_loop_skeleton_is_not_attempted():
    skeleton = cells.run_skeleton("maml_sinusoid", "check_sine_adapt")
    result = lesson.check_sine_adapt.run(skeleton)
    assert result.status == "not attempted", result
    assert "returned None" in result.message


def test_untouched_skeleton_prints_not_attempted_and_does_not_raise(capsys):
    lesson.check_sine_adapt(cells.run_skeleton("maml_sinusoid", "check_sine_adapt"))
    assert "not attempted" in capsys.readouterr().out


def test_lesson_inner_loop_solution_passes():
    result = lesson.check_sine_adapt.run(cells.run_solution("maml_sinusoid", "check_sine_adapt"))
    assert result.status == "passed", result
    assert "matches metalearn_lab.maml.adapt" in result.message


def test_right_inner_loop_prints_success(capsys):
    lesson.check_sine_adapt(make_inner_loop())
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (make_inner_loop(sign=-1.0), "uphill"),
        (make_inner_loop(create_graph=False), "create_graph=True"),
        (make_inner_loop(extra_steps=1), "took 2 step(s)"),
        (make_inner_loop(detach=True), "detached"),
        (make_inner_loop(in_place=True), "in place"),
        (make_inner_loop(lr_scale=2.0), "twice too long"),
        (make_inner_loop(lr_scale=0.5), "half as long"),
        (make_inner_loop(reduction="sum"), "MEAN squared error"),
        (make_inner_loop(on_query=True), "used the query set"),
        (make_inner_loop(own_weights=True), "functional_call(model, adapted"),
        (lambda model, params, *rest: dict(params), "did not move"),
        (lambda model, params, *rest: list(params.values()), "should return a dict"),
    ],
)
def test_wrong_inner_loops_are_rejected_with_their_diagnosis(wrong, message):
    result = lesson.check_sine_adapt.run(wrong)
    assert result.status == "wrong", result
    assert message in result.message
    with pytest.raises(WrongAnswer, match=re.escape(message)):  # in the lesson, the diagnosis is raised
        lesson.check_sine_adapt(wrong)


def right_query_mse(model, batch, inner_steps, inner_lr):
    pred = adapt_and_predict(model, batch.as_tuple(), F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr)
    return ((pred - batch.y_query) ** 2).mean(dim=(1, 2))


def test_untouched_query_mse_skeleton_is_not_attempted(capsys):
    skeleton = cells.run_skeleton("maml_sinusoid", "check_query_mse")
    assert lesson.check_query_mse.run(skeleton).status == "not attempted"
    lesson.check_query_mse(skeleton)
    assert "not attempted" in capsys.readouterr().out


def test_lesson_query_mse_solution_and_library_pass():
    for answer in (cells.run_solution("maml_sinusoid", "check_query_mse"), right_query_mse, query_mse):
        result = lesson.check_query_mse.run(answer)
        assert result.status == "passed", result
        assert "right per-task MSE" in result.message


def test_library_query_mse_is_the_recipes_measure():
    batch = SinusoidTasks().sample(4, 5, 7, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = SineMLP()
    torch.testing.assert_close(query_mse(model, batch, 2, 0.01), right_query_mse(model, batch, 2, 0.01))
    torch.testing.assert_close(query_mse(model, batch.as_tuple(), 2, 0.01), query_mse(model, batch, 2, 0.01))
    with pytest.raises(ValueError, match="tasks must be"):
        query_mse(model, batch.as_tuple()[:2], 1, 0.01)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda m, b, s, lr: right_query_mse(m, b, s, lr).mean(), "one MSE per task"),
        (lambda m, b, s, lr: right_query_mse(m, b, 0, lr), "before adaptation"),
        (lambda m, b, s, lr: right_query_mse(m, b, s, lr).sqrt(), "root-mean-square"),
        (lambda m, b, s, lr: right_query_mse(m, b, s, lr) * b.x_query.shape[1], "sums of squared errors"),
        (lambda m, b, s, lr: right_query_mse(m, b, s, 2 * lr), "twice inner_lr"),
        (lambda m, b, s, lr: right_query_mse(m, b, s, lr)[:, None], "mean(dim=(1, 2))"),
        (lambda m, b, s, lr: ((adapt_and_predict(m, b.as_tuple()[:2] * 2, F.mse_loss, inner_steps=s, inner_lr=lr)
                               - b.y_support) ** 2).mean(dim=(1, 2)), "support points"),
        (lambda m, b, s, lr: right_query_mse(m, type(b)(b.x_query, b.y_query, b.x_support, b.y_support,
                                                         b.amplitude, b.phase), s, lr), "swapped"),
        (lambda m, b, s, lr: right_query_mse(m, b, s, lr)[:3], "one MSE per task"),
    ],
)
def test_wrong_query_mse_is_rejected_with_its_diagnosis(wrong, message):
    result = lesson.check_query_mse.run(wrong)
    assert result.status == "wrong", result
    assert message in result.message


# ---------------------------------------------------------------- figures and widgets
@pytest.fixture
def models():
    torch.manual_seed(0)
    return {"MAML": SineMLP(), "pretrained": SineMLP()}


@pytest.fixture
def explorer(models):
    return lesson.sine_adaptation_widget(models, inner_steps=1, inner_lr=0.01, k_shot=5, seed=0)


def ydata(explorer, name="MAML", line="adapted"):
    return np.asarray(explorer.lines[name][line].get_ydata(), dtype=float).copy()


def test_explorer_builds_with_one_panel_per_model(explorer):
    assert len(explorer.fig.axes) == 2
    assert len(ydata(explorer)) == 200
    assert explorer.steps.max == 20 and explorer.k_shot.min == 1 and explorer.k_shot.max == 20


@pytest.mark.parametrize(("slider", "value"), [("steps", 10), ("inner_lr", 0.1), ("k_shot", 12)])
def test_changing_a_slider_changes_the_adapted_curve(explorer, slider, value):
    before = ydata(explorer)
    getattr(explorer, slider).value = value
    assert not np.allclose(before, ydata(explorer)), f"moving {slider} to {value} left the adapted curve unchanged"


def test_zero_steps_shows_the_pre_update_curve(explorer):
    explorer.steps.value = 0
    np.testing.assert_allclose(ydata(explorer), ydata(explorer, line="pre"))


def test_k_shot_changes_the_support_points(explorer):
    assert len(explorer.lines["MAML"]["support"].get_offsets()) == 5
    explorer.k_shot.value = 9
    assert len(explorer.lines["MAML"]["support"].get_offsets()) == 9


def test_new_task_button_changes_the_true_curve(explorer):
    before = ydata(explorer, line="true")
    explorer.new_task.click()
    assert not np.allclose(before, ydata(explorer, line="true"))


def test_the_explorer_reuses_one_figure(explorer):
    fig, artist = explorer.fig, explorer.lines["MAML"]["adapted"]
    explorer.steps.value = 3
    explorer.k_shot.value = 7
    assert explorer.fig is fig and explorer.lines["MAML"]["adapted"] is artist


def test_model_weights_do_not_change(explorer, models):
    before = {k: v.clone() for k, v in models["MAML"].state_dict().items()}
    explorer.steps.value = 15
    for k, v in models["MAML"].state_dict().items():
        assert torch.equal(v, before[k])


def test_book_explorer_has_every_frame_within_budget_and_each_slider_changes_it(models):
    explorer = lesson.sine_adaptation_explorer(models, seed=4)
    check_explorer(explorer, lesson.EXPLORER_VALUES)
    assert explorer.initial == {"inner_steps": 1, "inner_lr": 0.01, "k_shot": 5}  # where the widget starts
    plt.close("all")


def test_widget_and_book_explorer_draw_with_one_view(models, monkeypatch):
    calls = record_draws(monkeypatch, lesson.SineAdaptationView)
    widget = lesson.sine_adaptation_widget(models, inner_steps=3, inner_lr=0.02, k_shot=7)
    widget.steps.value = 4
    assert [kw for _, kw in calls] == [{"inner_steps": 3, "inner_lr": 0.02, "k_shot": 7},
                                       {"inner_steps": 4, "inner_lr": 0.02, "k_shot": 7}]
    values = {"inner_steps": (0, 2), "inner_lr": (0.01,), "k_shot": (3, 5)}
    explorer = lesson.sine_adaptation_explorer(models, values=values)
    assert [kw for _, kw in calls[2:]] == [{"inner_steps": s, "inner_lr": 0.01, "k_shot": k} for s in (0, 2) for k in (3, 5)]
    assert len(explorer.frames) == 4
    with pytest.raises(ValueError, match="values must give"):
        lesson.sine_adaptation_explorer(models, values={"inner_steps": (0,)})
    with pytest.raises(ValueError, match="k_shot must be between 1 and max_k=20, got 0"):
        lesson.SineAdaptationView(models).draw(inner_steps=1, inner_lr=0.01, k_shot=0)


def test_adapted_predictions_step_by_step_match_one_call(models):
    batch = SinusoidTasks().sample(1, 5, generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(-5, 5, 11)
    xs, ys = batch.x_support[0], batch.y_support[0]
    stepwise = lesson.adapted_sine_predictions(models["MAML"], xs, ys, grid, steps=(0, 1, 4))
    direct = lesson.adapted_sine_predictions(models["MAML"], xs, ys, grid, steps=(4,))
    torch.testing.assert_close(stepwise[4], direct[4])
    assert not torch.allclose(stepwise[0], stepwise[4])


def test_figures_build(models):
    batch = SinusoidTasks().sample(3, 10, generator=torch.Generator().manual_seed(0))
    figs = [
        lesson.plot_sine_tasks(batch),
        lesson.plot_adapted_sines(models, batch, steps=(0, 1, 3)),
        drawing.plot_loss_curve([3.0, 2.0, 1.5] * 10, smooth=5),
        drawing.plot_mse_sweep([1, 2, 3], {"a": ([1.0, 2.0, 3.0], [0.1, 0.1, 0.1])}, xlabel="x", train_range=(1, 2)),
    ]
    assert len(figs[1].axes) == 6
    for fig in figs:
        plt.close(fig)
    with pytest.raises(ValueError, match="curve 'a'"):
        drawing.plot_mse_sweep([1, 2], {"a": ([1.0], [0.1])}, xlabel="x")
