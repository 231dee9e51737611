"""Lesson 03's exercise checkers: right answers pass, typical wrong answers fail with a helpful message."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from metalearn_lab.autodiff import hessian_vector_product
from metalearn_lab.lessons import maml_math as lesson
from metalearn_lab.maml import adapt, meta_gradient

# --- check_hessian_vector_product ---

def hvp_double_backward(f, params, v):
    loss = f(params)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    dot = sum((g * v[k]).sum() for g, k in zip(grads, params))
    return dict(zip(params, torch.autograd.grad(dot, list(params.values()))))


def test_hvp_right_answers_pass(capsys):
    lesson.check_hessian_vector_product(hvp_double_backward)
    lesson.check_hessian_vector_product(hessian_vector_product)
    assert "✓" in capsys.readouterr().out


def test_hvp_placeholder():
    with pytest.raises(AssertionError, match="returned None"):
        lesson.check_hessian_vector_product(lambda f, params, v: None)


def test_hvp_forgot_create_graph():
    def wrong(f, params, v):
        grads = torch.autograd.grad(f(params), list(params.values()))
        dot = sum((g * v[k]).sum() for g, k in zip(grads, params))
        return dict(zip(params, torch.autograd.grad(dot, list(params.values()))))

    with pytest.raises(AssertionError, match="create_graph=True"):
        lesson.check_hessian_vector_product(wrong)


def test_hvp_returns_gradient():
    def wrong(f, params, v):
        return dict(zip(params, torch.autograd.grad(f(params), list(params.values()))))

    with pytest.raises(AssertionError, match="returned the gradient"):
        lesson.check_hessian_vector_product(wrong)


def test_hvp_wrong_sign():
    def wrong(f, params, v):
        return {k: -t for k, t in hvp_double_backward(f, params, v).items()}

    with pytest.raises(AssertionError, match="wrong sign"):
        lesson.check_hessian_vector_product(wrong)


def test_hvp_returns_list_is_accepted_but_wrong_type_is_not():
    lesson.check_hessian_vector_product(lambda f, params, v: list(hvp_double_backward(f, params, v).values()))
    with pytest.raises(AssertionError, match="dict name -> tensor"):
        lesson.check_hessian_vector_product(lambda f, params, v: 3.0)


# --- check_meta_gradient ---

def fixed(model, x_support, y_support, x_query, y_query, loss_fn, inner_steps, inner_lr):
    params = dict(model.named_parameters())
    adapted = params
    for _ in range(inner_steps):
        loss = loss_fn(functional_call(model, adapted, (x_support,)), y_support)
        grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=True)
        adapted = {k: p - inner_lr * g for (k, p), g in zip(adapted.items(), grads)}
    query_loss = loss_fn(functional_call(model, adapted, (x_query,)), y_query)
    return dict(zip(params, torch.autograd.grad(query_loss, list(params.values()))))


def buggy(model, x_support, y_support, x_query, y_query, loss_fn, inner_steps, inner_lr):
    inner_optimizer = torch.optim.SGD(model.parameters(), lr=inner_lr)
    for _ in range(inner_steps):
        inner_optimizer.zero_grad()
        loss_fn(model(x_support), y_support).backward()
        inner_optimizer.step()
    query_loss = loss_fn(model(x_query), y_query)
    return dict(zip([k for k, _ in model.named_parameters()], torch.autograd.grad(query_loss, list(model.parameters()))))


def test_meta_gradient_right_answers_pass(capsys):
    lesson.check_meta_gradient(fixed)

    def with_library(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
        params = dict(model.named_parameters())
        adapted = adapt(model, params, xs, ys, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr)
        loss = loss_fn(functional_call(model, adapted, (xq,)), yq)
        return torch.autograd.grad(loss, list(params.values()))  # a tuple in parameter order is accepted

    lesson.check_meta_gradient(with_library)
    assert "✓" in capsys.readouterr().out


def test_meta_gradient_placeholder():
    with pytest.raises(AssertionError, match="returned None"):
        lesson.check_meta_gradient(lambda *args: None)


def test_meta_gradient_buggy_source_code_is_caught():
    with pytest.raises(AssertionError, match="changed the model's own weights in place"):
        lesson.check_meta_gradient(buggy)


def test_meta_gradient_first_order_is_caught():
    def first_order(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
        params = dict(model.named_parameters())
        adapted = adapt(model, params, xs, ys, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True)
        loss = loss_fn(functional_call(model, adapted, (xq,)), yq)
        return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))

    with pytest.raises(AssertionError, match="first-order gradient"):
        lesson.check_meta_gradient(first_order)


def test_meta_gradient_one_step_too_few():
    def short(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
        return fixed(model, xs, ys, xq, yq, loss_fn, inner_steps - 1, inner_lr)

    with pytest.raises(AssertionError, match="took 0 step"):
        lesson.check_meta_gradient(short)


def test_meta_gradient_wrong_point():
    def query_at_theta(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
        params = dict(model.named_parameters())
        batch = (xs[None], ys[None], xq[None], yq[None])
        g = meta_gradient(model, params, batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr * 3)
        return g

    with pytest.raises(AssertionError, match="relative error"):
        lesson.check_meta_gradient(query_at_theta)


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
