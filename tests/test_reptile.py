"""Tests for metalearn_lab.reptile: the update rule against an independent computation, and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metalearn_lab.data.sinusoid import SinusoidTasks
from metalearn_lab.maml import adapt
from metalearn_lab.models import Conv4, SineMLP
from metalearn_lab.reptile import reptile_step



@pytest.mark.parametrize("vectorize", [True, False])
def test_reptile_step_moves_towards_adapted_weights(vectorize):
    torch.manual_seed(0)
    model = SineMLP()
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    batch = SinusoidTasks().sample(4, 10, generator=torch.Generator().manual_seed(0))
    epsilon, inner_steps, inner_lr = 0.3, 3, 0.02

    # independent computation: adapt each task separately with maml.adapt, no graph
    with torch.no_grad():
        phis = [adapt(model, theta, batch.x_support[i], batch.y_support[i], F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr)
                for i in range(4)]
    expected = {k: theta[k] + epsilon * (torch.stack([phi[k] for phi in phis]).mean(0) - theta[k]) for k in theta}
    expected_moved = sum(float(((phi[k] - theta[k]) ** 2).sum()) for phi in phis for k in theta) / 4

    moved = reptile_step(model, batch.x_support, batch.y_support, F.mse_loss, inner_steps=inner_steps,
                         inner_lr=inner_lr, outer_lr=epsilon, vectorize=vectorize)
    for k, v in model.named_parameters():
        torch.testing.assert_close(v.detach(), expected[k], rtol=1e-5, atol=1e-6)
        assert not torch.equal(v.detach(), theta[k])
    assert moved == pytest.approx(expected_moved, rel=1e-4)


def test_reptile_with_outer_lr_one_lands_on_the_adapted_weights_for_one_task():
    torch.manual_seed(0)
    model = Conv4(hidden=4, out_features=3, track_running_stats=False)
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(1, 6, 1, 28, 28, generator=g), torch.tensor([[0, 1, 2, 0, 1, 2]])
    with torch.no_grad():
        phi = adapt(model, theta, x[0], y[0], F.cross_entropy, inner_steps=2, inner_lr=0.1)
    reptile_step(model, x, y, F.cross_entropy, inner_steps=2, inner_lr=0.1, outer_lr=1.0)
    for k, v in model.named_parameters():
        torch.testing.assert_close(v.detach(), phi[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(outer_lr=0.0), "outer_lr"),
    (dict(outer_lr=1.5), "outer_lr"),
    (dict(outer_lr=-0.1), "outer_lr"),
    (dict(outer_lr=float("nan")), "outer_lr"),
    (dict(inner_steps=0), "inner_steps"),
    (dict(inner_steps=-2), "inner_steps"),
    (dict(inner_lr=0.0), "inner_lr"),
])
def test_reptile_errors(kwargs, match):
    model = SineMLP()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.zeros(2, 5, 1)
    args = {"inner_steps": 1, "inner_lr": 0.01, "outer_lr": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        reptile_step(model, x, x, F.mse_loss, **args)
    with pytest.raises(ValueError, match="task dimension"):
        reptile_step(model, x, x[:1], F.mse_loss, inner_steps=1, inner_lr=0.01, outer_lr=0.5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
