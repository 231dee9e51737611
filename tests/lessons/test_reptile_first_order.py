"""Lesson 07's companion: the exercises (skeletons "not attempted", solutions pass, typical wrong answers
named), the toy landscape against the library, the Try-it explorer and every figure and table.

The skeletons and solutions are read from ``notebooks/07_reptile_first_order.md`` itself.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

matplotlib.use("Agg")

from metalearn_lab.exercises import NOT_ATTEMPTED, PASSED, WRONG, checkers_of  # noqa: E402
from metalearn_lab.experiments import get_config, published  # noqa: E402
from metalearn_lab.lessons import reptile_first_order as lesson  # noqa: E402
from metalearn_lab.maml import adapt  # noqa: E402
from metalearn_lab.reptile import (  # noqa: E402
    METHODS,
    expected_update_directions,
    gradient_inner_product_terms,
    taylor_coefficients,
    update_directions,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _exercise_cells as cells  # noqa: E402
from _explorers import check_explorer, record_draws  # noqa: E402  (tests/lessons/_explorers.py)

SLUG = "reptile_first_order"
CHECKERS = ["check_first_order_gradient", "check_reptile_meta_step", "check_taylor_coefficients"]


def rejected(check, answer, message):
    """``answer`` is wrong, with a diagnosis matching the regular expression ``message``."""
    result = check.run(answer)
    assert result.status == WRONG, result
    assert re.search(message, result.message), result.message
    return result


def test_checkers_are_the_lessons_three_exercises():
    assert sorted(c.name for c in checkers_of(lesson)) == sorted(CHECKERS)


@pytest.mark.parametrize("name", CHECKERS)
def test_untouched_skeleton_is_not_attempted(name, capsys):
    check = getattr(lesson, name)
    skeleton = cells.run_skeleton(SLUG, name)
    result = check.run(skeleton)
    assert result.status == NOT_ATTEMPTED, result
    assert skeleton.__name__ in result.message
    check(skeleton)  # prints, does not raise: Run All goes on
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("name", CHECKERS)
def test_solution_passes(name, capsys):
    check = getattr(lesson, name)
    solution = cells.run_solution(SLUG, name)
    assert check.run(solution).status == PASSED, check.run(solution)
    check(solution)
    assert capsys.readouterr().out.startswith("✓")


# --- Exercise 1: the first-order MAML gradient ---


def gradient_at(model, params, x, y):
    leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
    loss = F.mse_loss(functional_call(model, leaves, (x,)), y)
    return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))


def second_order(model, params, xs, ys, xq, yq, steps, lr):
    adapted = adapt(model, params, xs, ys, F.mse_loss, inner_steps=steps, inner_lr=lr)
    loss = F.mse_loss(functional_call(model, adapted, (xq,)), yq)
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))


def first_order(model, params, xs, ys, xq, yq, steps, lr):
    return gradient_at(model, adapt(model, params, xs, ys, F.mse_loss, inner_steps=steps, inner_lr=lr, first_order=True), xq, yq)


def test_first_order_gradient_as_a_list_passes():
    as_list = lambda *args: list(first_order(*args).values())  # noqa: E731
    assert lesson.check_first_order_gradient.run(as_list).status == PASSED


@pytest.mark.parametrize(("wrong", "message"), [
    (second_order, "second-order MAML"),
    (lambda *a: {k: -v for k, v in first_order(*a).items()}, "wrong sign"),
    (lambda m, p, xs, ys, xq, yq, s, lr: gradient_at(m, p, xq, yq), "before adaptation"),
    (lambda m, p, xs, ys, xq, yq, s, lr: gradient_at(m, adapt(m, p, xs, ys, F.mse_loss, inner_steps=s, inner_lr=lr), xs, ys),
     "support"),
    (lambda m, p, xs, ys, xq, yq, s, lr: first_order(m, p, xs, ys, xq, yq, 1, lr), "one inner step"),
    (lambda *a: {k: v[:1] for k, v in first_order(*a).items()}, "shape"),
    (lambda *a: {"net.0.weight": torch.zeros(1)}, "misses the parameters"),
    (lambda *a: 3.0, "dict"),
    (lambda *a: {k: 1.1 * v for k, v in first_order(*a).items()}, "not the query gradient"),
])
def test_wrong_first_order_gradients_are_named(wrong, message):
    rejected(lesson.check_first_order_gradient, wrong, message)


# --- Exercise 2: a Reptile meta-step ---


def theta_of(model):
    return {k: v.detach() for k, v in model.named_parameters()}


def adapted_all(model, x, y, steps, lr):
    return [adapt(model, theta_of(model), xi, yi, F.mse_loss, inner_steps=steps, inner_lr=lr) for xi, yi in zip(x, y)]


def interpolate(theta, target, eps):
    return {k: theta[k] + eps * (target[k] - theta[k]) for k in theta}


def mean_of(phis):
    return {k: torch.stack([p[k] for p in phis]).mean(0) for k in phis[0]}


def in_place(model, x, y, steps, lr, eps):
    new = interpolate(theta_of(model), mean_of(adapted_all(model, x, y, steps, lr)), eps)
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(new[k])
    return theta_of(model)


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda m, x, y, s, lr, eps: theta_of(m), "did not move"),
    (lambda m, x, y, s, lr, eps: interpolate(theta_of(m), mean_of(adapted_all(m, x, y, s, lr)), -eps), "wrong sign"),
    (lambda m, x, y, s, lr, eps: mean_of(adapted_all(m, x, y, s, lr)), "all the way"),
    (lambda m, x, y, s, lr, eps: interpolate(theta_of(m), adapted_all(m, x, y, s, lr)[-1], eps), "last task"),
    (lambda m, x, y, s, lr, eps: {k: v + eps * sum(p[k] - v for p in adapted_all(m, x, y, s, lr))
                                  for k, v in theta_of(m).items()}, "summed"),
    (lambda m, x, y, s, lr, eps: interpolate(theta_of(m), mean_of(adapted_all(m, x, y, 1, lr)), eps), "one inner step"),
    (in_place, "own weights changed"),
    (lambda m, x, y, s, lr, eps: interpolate(theta_of(m), mean_of(adapted_all(m, x, y, s, 2 * lr)), eps), "not θ"),
])
def test_wrong_reptile_meta_steps_are_named(wrong, message):
    rejected(lesson.check_reptile_meta_step, wrong, message)


# --- Exercise 3: the coefficients ---


def coefficients_with(**changes):
    def coefficients(method, k):
        if method in changes:
            return changes[method](k)
        return taylor_coefficients(method, k)

    return coefficients


@pytest.mark.parametrize(("wrong", "message"), [
    (coefficients_with(MAML=lambda k: (1, k - 1)), "Jacobian"),
    (coefficients_with(Reptile=lambda k: (1, k * (k - 1) / 2)), "a = k"),
    (coefficients_with(Reptile=lambda k: (k, k * (k - 1))), "twice"),
    (coefficients_with(**{"first-order MAML": lambda k: (1, -(k - 1))}), "wrong sign"),
    (coefficients_with(**{"first-order MAML": lambda k: (k, k - 1)}), "a = 1"),
    (coefficients_with(MAML=lambda k: (1, 3 * k)), "not right"),
    (coefficients_with(MAML=lambda k: 2), "pair"),
])
def test_wrong_coefficients_are_named(wrong, message):
    rejected(lesson.check_taylor_coefficients, wrong, message)


# --- the toy landscape in closed form, against the library ---


def test_toy_directions_and_expectations_agree_with_the_library():
    family = lesson.QuadraticTasks(n_tasks=3, n_batches=4, seed=1)
    zero = {"w": torch.zeros(2, dtype=torch.float64)}
    order = [2, 0, 3]
    closed = lesson.toy_directions(family.curvatures[1][order], family.centers[1][order], np.zeros(2), 0.07)
    losses = family.batch_losses(1)
    library = update_directions([losses[i] for i in order], zero, 0.07)
    for m in METHODS:
        np.testing.assert_allclose(closed[m], library[m]["w"].numpy(), rtol=1e-10)
    assert closed["path"].shape == (4, 2)
    tasks = [family.batch_losses(t) for t in range(3)]
    expected = lesson.toy_expectations(family, np.zeros(2), 0.05, 3)
    library = expected_update_directions(tasks, zero, 0.05, 3)
    terms = gradient_inner_product_terms(tasks, zero)
    for m in METHODS:
        np.testing.assert_allclose(expected[m], library[m]["w"].numpy(), rtol=1e-10)
    np.testing.assert_allclose(expected["avg_grad"], terms["avg_grad"]["w"].numpy(), rtol=1e-10)
    np.testing.assert_allclose(expected["avg_grad_inner"], terms["avg_grad_inner"]["w"].numpy(), rtol=1e-10)


def test_toy_task_loss_is_the_mean_of_its_batch_losses():
    family = lesson.QuadraticTasks(n_tasks=2, n_batches=3)
    w = np.array([0.3, -1.2])
    losses = family.batch_losses(1)
    direct = np.mean([float(f({"w": torch.tensor(w)})) for f in losses])
    assert family.task_loss(1, w) == pytest.approx(direct)
    with pytest.raises(ValueError, match="n_batches"):
        lesson.QuadraticTasks(n_batches=1)


def test_measured_coefficient_tends_to_the_prediction_on_the_toy_family():
    family = lesson.QuadraticTasks()
    for k in (2, 3, 4):
        e = lesson.toy_expectations(family, np.zeros(2), 1e-4, k)
        for m in METHODS:
            a, b = taylor_coefficients(m, k)
            assert lesson.measured_inner_coefficient(e[m], e["avg_grad"], e["avg_grad_inner"], 1e-4, a) == pytest.approx(b, rel=0.01)


def test_as_minibatches_alternates_support_and_query():
    from metalearn_lab.data.sinusoid import SinusoidTasks

    batch = SinusoidTasks().sample(2, 5, 5, generator=torch.Generator().manual_seed(0))
    xs, ys = lesson.as_minibatches(batch, 3)
    assert xs.shape == (2, 3, 5, 1)
    assert torch.equal(xs[:, 0], batch.x_support) and torch.equal(ys[:, 1], batch.y_query) and torch.equal(xs[:, 2], batch.x_support)
    with pytest.raises(ValueError, match="n_batches"):
        lesson.as_minibatches(batch, 0)
    uneven = SinusoidTasks().sample(2, 5, 7, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="same shape"):
        lesson.as_minibatches(uneven, 2)


# --- the Try-it explorer, its static twin, and the other figures and tables ---


def test_explorer_builds_and_responds_to_every_slider():
    explorer = lesson.update_directions_widget(inner_lr=0.01, n_batches=2, task=0)
    first = explorer.ax_map.get_title()
    assert "k = 2" in first and "α = 0.010" in first
    explorer.inner_lr.value = 0.2
    assert "α = 0.200" in explorer.ax_map.get_title()
    explorer.n_batches.value = 4
    assert "k = 4" in explorer.ax_map.get_title()
    assert len(explorer.ax_coef.get_lines()) >= 2 * len(METHODS)
    explorer.task.value = 3
    assert explorer.ax_map.get_title().startswith("task 3")
    assert set(explorer._curves) == {2, 3, 4}  # the coefficient curves are computed once per k, up front


def test_static_twin_is_a_pre_rendered_explorer_of_the_same_view(monkeypatch):
    calls = record_draws(monkeypatch, lesson.UpdateDirectionsView)
    widget = lesson.update_directions_widget()
    start = {"inner_lr": widget.inner_lr.value, "n_batches": widget.n_batches.value, "task": widget.task.value}
    assert calls == [((), start)]  # the live widget draws with the view
    explorer = lesson.update_directions_explorer(inner_lrs=(0.01, 0.2), n_batches=(2, 3), tasks=(0,))
    check_explorer(explorer, {"inner_lr": [0.01, 0.2], "n_batches": [2, 3], "task": [0]})
    assert explorer.initial == {"inner_lr": 0.2, "n_batches": 3, "task": 0}
    assert len(calls) == 1 + 4  # and so does every pre-rendered frame
    full = lesson.update_directions_explorer.__kwdefaults__
    offered = {"inner_lr": [v for _, v in widget.inner_lr.options],
               "n_batches": list(range(widget.n_batches.min, widget.n_batches.max + 1)),
               "task": list(range(widget.task.min, widget.task.max + 1))}
    for name, values in zip(("inner_lr", "n_batches", "task"), (full["inner_lrs"], full["n_batches"], full["tasks"])):
        assert set(values) <= set(offered[name]), (name, values)  # the book offers values the widget offers
        assert values[len(values) // 2 if name != "task" else 0] == start[name]  # and starts where the widget does
    with pytest.raises(ValueError, match="not offered by the live widget"):
        lesson.update_directions_explorer(inner_lrs=(0.04,))


def test_taylor_check_figure_and_training_curves_and_costs_build():
    family = lesson.QuadraticTasks(n_tasks=2, n_batches=3)
    tasks = [family.batch_losses(t) for t in range(2)]
    check = lesson.taylor_check(tasks, {"w": torch.zeros(2, dtype=torch.float64)}, [1e-4, 1e-3], [2])
    for m in METHODS:
        assert check[2, m]["coefficient"][0] == pytest.approx(taylor_coefficients(m, 2)[1], rel=0.01)
        assert check[2, m]["rel_taylor"][0] < check[2, m]["rel_leading"][0]
    assert len(lesson.plot_taylor_check(check, [2]).axes) == 2
    fig = lesson.plot_training_curves({"MAML, k = 2": [1.0, 0.5, 0.4, 0.3], "Reptile, k = 8": [1.0, 0.9, 0.8, 0.7]}, smooth=2)
    assert len(fig.axes[0].get_lines()) == 2
    cost = {m: [{"seconds": 0.01 * k, "saved_mb": 1.0 * k}] for k, m in enumerate(METHODS, 1)}
    assert len(lesson.plot_costs([1], cost).axes) == 2


def fake_result(name, mean=0.9):
    config = get_config(name, quick=False)
    return {"mean": mean, "ci95": 0.01, "n_tasks": 600, "train_wall_s": 7200.0, "train_cpu_s": 3600.0, "device": "cpu",
            "threads": 1, "config": config.to_dict(), "transductive": False,
            "transductive_result": {"mean": 0.95, "ci95": 0.01, "transductive": True},
            "unrotated_test_1_query": {"mean": 0.93, "ci95": 0.02, "n_tasks": 200},
            "history": {"eval_step": [1000, 2000], "eval_metric": [0.8, 0.85]}}


def test_omniglot_tables_and_summary():
    names = {"Reptile, first run": "omniglot-reptile-5w1s", "Reptile, Nichol et al.'s protocol": "omniglot-reptile-5w1s-nichol"}
    papers = {label: "reptile-omniglot-5w1s" for label in names}
    table = lesson.omniglot_table(names, papers, {"omniglot-reptile-5w1s": fake_result("omniglot-reptile-5w1s")},
                                  {"Reptile, first run": {"mean": 0.8, "n_tasks": 10}})
    lines = table.splitlines()
    assert len(lines) == 4 and "90.0 ± 1.0%" in lines[2] and "80.0% (10 tasks)" in lines[2]
    assert "not shipped yet" in lines[3] and "Adam" in lines[3] and "each query alone" in lines[3]
    assert "95.4" in lines[2]
    protocol = lesson.reptile_protocol_table({label: get_config(name, quick=False) for label, name in names.items()})
    assert len(protocol.splitlines()) == 2 + len(lesson.NICHOL_PROTOCOL)
    assert "plain SGD" in protocol and "100,000 (500,000)" in protocol
    summary = lesson.nichol_run_summary(fake_result("omniglot-reptile-5w1s-nichol"), published("reptile-omniglot-5w1s"),
                                        published("reptile-transductive-omniglot-5w1s"))
    assert "90.0 ± 1.0%" in summary and "95.0 ± 1.0%" in summary and "93.0 ± 2.0%" in summary
    assert "85.0% at step 2,000" in summary and "4,000 meta-steps" in summary and "2.0 h" in summary
    assert "still rising" in summary and "What remains" in summary and "1.8 s a meta-step" in summary


@pytest.mark.parametrize("name", CHECKERS)
def test_later_cells_do_not_use_the_students_answer(name):
    assert cells.later_uses_of_answer(SLUG, name) == [], "later cells must use the library, not the student's answer"
