"""Lesson 04's exercise checkers: the right answer passes, typical wrong answers fail with a helpful message."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from metalearn_lab import checks
from metalearn_lab.maml import adapt_and_predict


def make_inner_loop(*, sign=1.0, create_graph=True, extra_steps=0, detach=False, in_place=False, lr_scale=1.0):
    def inner_loop(model, params, x_support, y_support, inner_steps, inner_lr):
        adapted = dict(params)
        for _ in range(inner_steps + extra_steps if inner_steps else 0):
            loss = F.mse_loss(functional_call(model, adapted, (x_support,)), y_support)
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


def test_right_inner_loop_passes(capsys):
    checks.check_sine_adapt(make_inner_loop())
    assert "matches metalearn_lab.maml.adapt" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda *args: None, "returned None"),
        (make_inner_loop(sign=-1.0), "uphill"),
        (make_inner_loop(create_graph=False), "create_graph=True"),
        (make_inner_loop(extra_steps=1), "took 2 step(s)"),
        (make_inner_loop(detach=True), "detached"),
        (make_inner_loop(in_place=True), "in place"),
        (make_inner_loop(lr_scale=2.0), "twice too long"),
        (lambda model, params, *rest: dict(params), "did not move"),
    ],
)
def test_wrong_inner_loops_fail_with_a_message(wrong, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        checks.check_sine_adapt(wrong)


def right_query_mse(model, batch, inner_steps, inner_lr):
    pred = adapt_and_predict(model, batch.as_tuple(), F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr)
    return ((pred - batch.y_query) ** 2).mean(dim=(1, 2))


def test_right_query_mse_passes(capsys):
    checks.check_query_mse(right_query_mse)
    assert "right per-task MSE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda *args: None, "returned None"),
        (lambda m, b, s, lr: right_query_mse(m, b, s, lr).mean(), "one MSE per task"),
        (lambda m, b, s, lr: right_query_mse(m, b, 0, lr), "before adaptation"),
        (lambda m, b, s, lr: right_query_mse(m, b, s, lr).sqrt(), "root-mean-square"),
        (lambda m, b, s, lr: ((adapt_and_predict(m, b.as_tuple()[:2] * 2, F.mse_loss, inner_steps=s, inner_lr=lr)
                               - b.y_support) ** 2).mean(dim=(1, 2)), "support points"),
        (lambda m, b, s, lr: right_query_mse(m, b, s, lr)[:3], "one MSE per task"),
    ],
)
def test_wrong_query_mse_fails_with_a_message(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_query_mse(wrong)
