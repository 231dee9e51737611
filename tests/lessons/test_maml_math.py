"""Lesson 03's exercises: the skeletons are "not attempted", the solutions pass, typical wrong answers are named.

The skeletons and solutions are read from ``notebooks/03_maml_math.md`` itself.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from metalearn_lab.autodiff import hessian_vector_product
from metalearn_lab.exercises import NOT_ATTEMPTED, PASSED, WRONG, WrongAnswer, checkers_of
from metalearn_lab.lessons import maml_math as lesson
from metalearn_lab.maml import adapt, meta_gradient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _exercise_cells as cells  # noqa: E402
from _explorers import check_explorer, record_draws  # noqa: E402  (tests/lessons/_explorers.py)

SLUG = "maml_math"
CHECKERS = ["check_hessian_vector_product", "check_meta_gradient"]


def rejected(check, answer, message):
    """``answer`` is wrong, with a diagnosis matching the regular expression ``message``."""
    result = check.run(answer)
    assert result.status == WRONG, result
    assert re.search(message, result.message), result.message
    return result


def test_checkers_are_the_lessons_two_exercises():
    assert sorted(c.name for c in checkers_of(lesson)) == sorted(CHECKERS)


@pytest.mark.parametrize("name", CHECKERS)
def test_untouched_skeleton_is_not_attempted(name, capsys):
    check = getattr(lesson, name)
    skeleton = cells.run_skeleton(SLUG, name)
    result = check.run(skeleton)
    assert result.status == NOT_ATTEMPTED, result
    assert skeleton.__name__ in result.message  # names the student's function
    check(skeleton)  # prints, does not raise: Run All goes on
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("name", CHECKERS)
def test_later_cells_never_use_the_students_answer(name):
    assert cells.later_uses_of_answer(SLUG, name) == [], "later cells must use the library, not the student's answer"


@pytest.mark.parametrize("name", CHECKERS)
def test_solution_passes(name, capsys):
    check = getattr(lesson, name)
    solution = cells.run_solution(SLUG, name)
    assert check.run(solution).status == PASSED, check.run(solution)
    check(solution)
    assert capsys.readouterr().out.startswith("✓")


# --- Exercise 1: a Hessian-vector product ---

def hvp_double_backward(f, params, v):
    grads = torch.autograd.grad(f(params), list(params.values()), create_graph=True)
    dot = sum((g * v[k]).sum() for g, k in zip(grads, params))
    return dict(zip(params, torch.autograd.grad(dot, list(params.values()))))


def test_hvp_library_and_a_list_in_parameter_order_pass():
    assert lesson.check_hessian_vector_product.run(hessian_vector_product).status == PASSED
    as_list = lambda f, params, v: list(hvp_double_backward(f, params, v).values())
    assert lesson.check_hessian_vector_product.run(as_list).status == PASSED


def forgot_create_graph(f, params, v):
    grads = torch.autograd.grad(f(params), list(params.values()))
    dot = sum((g * v[k]).sum() for g, k in zip(grads, params))
    return dict(zip(params, torch.autograd.grad(dot, list(params.values()))))


def differentiates_with_respect_to_v(f, params, v):
    grads = torch.autograd.grad(f(params), list(params.values()), create_graph=True)
    dot = sum((g * v[k]).sum() for g, k in zip(grads, params))
    return dict(zip(params, torch.autograd.grad(dot, list(v.values()))))


def gradient_only(f, params, v):
    return dict(zip(params, torch.autograd.grad(f(params), list(params.values()))))


def gradient_times_v(f, params, v):
    return {k: g * v[k] for k, g in gradient_only(f, params, v).items()}


def dot_product_only(f, params, v):
    grads = torch.autograd.grad(f(params), list(params.values()))
    return sum((g * v[k]).sum() for g, k in zip(grads, params))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (forgot_create_graph, "create_graph=True"),
        (differentiates_with_respect_to_v, "with respect to the parameters .*not v"),
        (gradient_only, "returned the gradient ∇f"),
        (lambda f, params, v: dict(v), "returned v itself"),
        (gradient_times_v, "element by element"),
        (dot_product_only, "one tensor of shape \\(\\).*scalar"),
        (lambda f, params, v: {k: -t for k, t in hvp_double_backward(f, params, v).items()}, "wrong sign"),
        (lambda f, params, v: {k: 2 * t for k, t in hvp_double_backward(f, params, v).items()}, "twice too large"),
        (lambda f, params, v: {k: t / 2 for k, t in hvp_double_backward(f, params, v).items()}, "half as large"),
        (lambda f, params, v: {k: t + 1 for k, t in hvp_double_backward(f, params, v).items()}, "relative error"),
        (lambda f, params, v: {k: t.flatten() for k, t in hvp_double_backward(f, params, v).items()}, "shape of the parameter"),
        (lambda f, params, v: {"w": torch.zeros(3)}, "missing|relative error"),
        (lambda f, params, v: 3.0, "dict name -> tensor"),
    ],
)
def test_hvp_wrong(wrong, message):
    rejected(lesson.check_hessian_vector_product, wrong, message)


def test_hvp_none_on_the_second_case_is_wrong_not_unattempted():
    def quadratic_only(f, params, v):
        return hvp_double_backward(f, params, v) if list(params) == ["w"] else None

    rejected(lesson.check_hessian_vector_product, quadratic_only, "returned None")


def test_hvp_wrong_raises_for_the_student():
    with pytest.raises(WrongAnswer, match="returned the gradient"):
        lesson.check_hessian_vector_product(gradient_only)


# --- Exercise 2: fix the source text's MAML code ---

def fixed(model, x_support, y_support, x_query, y_query, loss_fn, inner_steps, inner_lr):
    params = dict(model.named_parameters())
    adapted = params
    for _ in range(inner_steps):
        loss = loss_fn(functional_call(model, adapted, (x_support,)), y_support)
        grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=True)
        adapted = {k: p - inner_lr * g for (k, p), g in zip(adapted.items(), grads)}
    query_loss = loss_fn(functional_call(model, adapted, (x_query,)), y_query)
    return dict(zip(params, torch.autograd.grad(query_loss, list(params.values()))))


def test_meta_gradient_with_the_library_passes():
    def with_library(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
        params = dict(model.named_parameters())
        adapted = adapt(model, params, xs, ys, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr)
        loss = loss_fn(functional_call(model, adapted, (xq,)), yq)
        return torch.autograd.grad(loss, list(params.values()))  # a tuple in parameter order is accepted

    assert lesson.check_meta_gradient.run(fixed).status == PASSED
    assert lesson.check_meta_gradient.run(with_library).status == PASSED


def the_source_texts_code(model, x_support, y_support, x_query, y_query, loss_fn, inner_steps, inner_lr):
    """The buggy function of the lesson (the source text's MAML step in PyTorch)."""
    inner_optimizer = torch.optim.SGD(model.parameters(), lr=inner_lr)
    for _ in range(inner_steps):
        inner_optimizer.zero_grad()
        loss_fn(model(x_support), y_support).backward()
        inner_optimizer.step()
    query_loss = loss_fn(model(x_query), y_query)
    return dict(zip([k for k, _ in model.named_parameters()], torch.autograd.grad(query_loss, list(model.parameters()))))


def the_buggy_code_with_weights_restored(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
    saved = {k: p.detach().clone() for k, p in model.named_parameters()}
    grads = the_source_texts_code(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr)
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(saved[k])
    return grads


def first_order(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
    params = dict(model.named_parameters())
    adapted = adapt(model, params, xs, ys, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True)
    loss = loss_fn(functional_call(model, adapted, (xq,)), yq)
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))


def adapted_weights(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
    params = dict(model.named_parameters())
    return {k: t.detach() for k, t in adapt(model, params, xs, ys, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr).items()}


@pytest.mark.parametrize(
    "wrong, message",
    [
        (the_source_texts_code, "changed the model's own weights in place"),
        (the_buggy_code_with_weights_restored, "first-order gradient"),
        (first_order, "first-order gradient"),
        (lambda m, xs, ys, xq, yq, loss_fn, k, lr: fixed(m, xs, ys, xq, yq, loss_fn, k - 1, lr),
         "took 0 step.*query loss at θ itself"),
        (lambda m, xs, ys, xq, yq, loss_fn, k, lr: fixed(m, xs, ys, xq, yq, loss_fn, 1, lr), "inner_steps=3 your inner loop took 1 step"),
        (lambda m, xs, ys, xq, yq, loss_fn, k, lr: fixed(m, xs, ys, xq, yq, loss_fn, k + 1, lr), "took 2 step.*exactly inner_steps"),
        (lambda m, xs, ys, xq, yq, loss_fn, k, lr: fixed(m, xq, yq, xs, ys, loss_fn, k, lr), "adapt on the query set"),
        (lambda m, xs, ys, xq, yq, loss_fn, k, lr: fixed(m, xs, ys, xq, yq, loss_fn, k, -lr), "goes uphill"),
        (adapted_weights, "adapted weights θ'"),
        (lambda m, xs, ys, xq, yq, loss_fn, k, lr: fixed(m, xs, ys, xq, yq, loss_fn, k, 3 * lr), "relative error"),
    ],
)
def test_meta_gradient_wrong(wrong, message):
    rejected(lesson.check_meta_gradient, wrong, message)


def test_meta_gradient_of_the_library_batch_api_is_checked_like_any_answer():
    def library(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
        batch = (xs[None], ys[None], xq[None], yq[None])
        return meta_gradient(model, dict(model.named_parameters()), batch, loss_fn, inner_steps=inner_steps,
                             inner_lr=inner_lr)

    assert lesson.check_meta_gradient.run(library).status == PASSED


def test_meta_gradient_wrong_raises_for_the_student():
    with pytest.raises(WrongAnswer, match="in place"):
        lesson.check_meta_gradient(the_source_texts_code)


# --- the Try-it: first-order gap for linear regression ---

def _linear_task():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    return torch.zeros(3, dtype=torch.float64), x, x.sum(1), x, x.sum(1)


def test_gap_view_draws_the_same_with_a_precomputed_sweep():
    import matplotlib.pyplot as plt
    import numpy as np

    task, alphas = _linear_task(), np.geomspace(1e-3, 1.0, 60)
    fresh = lesson.first_order_gap_view(task, 0.1, 3, alphas=alphas)
    cached = lesson.first_order_gap_view(task, 0.1, 3, alphas=alphas, gaps=lesson._gaps(task, alphas, 3))
    for a, b in zip(fresh.axes[1].lines, cached.axes[1].lines):
        np.testing.assert_array_equal(a.get_ydata(), b.get_ydata())
    plt.close("all")


def test_gap_widget_offers_exact_step_sizes_and_redraws():
    widget = lesson.first_order_gap_widget(_linear_task())
    inner_lr, inner_steps = widget.children[:2]
    assert inner_lr.value == 0.05 and inner_lr.label == "0.05"
    assert all(float(label) == value for label, value in inner_lr.options)
    inner_lr.value, inner_steps.value = 0.2, 4  # each change redraws; nothing raises
    assert widget.kwargs == {"inner_lr": 0.2, "inner_steps": 4}


def test_book_explorer_has_every_frame_within_budget_and_each_slider_changes_it():
    import matplotlib.pyplot as plt

    explorer = lesson.first_order_gap_explorer(_linear_task())
    check_explorer(explorer, lesson.EXPLORER_VALUES)
    assert explorer.initial == {"inner_lr": 0.05, "inner_steps": 1}  # where the widget starts
    assert set(explorer.sliders["inner_lr"]) <= set(lesson.GAP_RATES), "a pre-rendered α the live slider cannot take"
    plt.close("all")


def test_widget_and_book_explorer_draw_with_one_view(monkeypatch):
    calls = record_draws(monkeypatch, lesson.FirstOrderGapView)
    widget = lesson.first_order_gap_widget(_linear_task())
    widget.children[1].value = 4
    assert calls == [((0.05, 1), {}), ((0.05, 4), {})]
    lesson.first_order_gap_explorer(_linear_task(), {"inner_lr": (0.01, 0.1), "inner_steps": (2,)})
    assert calls[2:] == [((), {"inner_lr": 0.01, "inner_steps": 2}), ((), {"inner_lr": 0.1, "inner_steps": 2})]
    with pytest.raises(ValueError, match="values must give"):
        lesson.first_order_gap_explorer(_linear_task(), {"inner_lr": (0.01,)})
