"""Tests for metalearn_lab.reptile: the update rule against an independent computation, and errors."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from metalearn_lab.data.sinusoid import SinusoidTasks
from metalearn_lab.maml import adapt, meta_gradient
from metalearn_lab.models import Conv4, SineMLP
from metalearn_lab.reptile import (
    METHODS,
    expected_update_directions,
    fine_tune,
    gradient_inner_product_terms,
    inner_minibatches,
    meta_direction_step,
    meta_directions,
    nichol_adam,
    predict_non_transductive,
    reptile_optimizer_step,
    reptile_step,
    reptile_step_cost,
    reptile_update,
    taylor_coefficients,
    train_on_task,
    update_directions,
)


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


# --- the Reptile rule on dicts, and the optimizer-based inner loop (Nichol et al.'s code) ---



def test_reptile_update_interpolates_towards_the_mean():
    theta = {"w": torch.tensor([0.0, 2.0])}
    adapted = [{"w": torch.tensor([2.0, 2.0])}, {"w": torch.tensor([4.0, 0.0])}]
    out = reptile_update(theta, adapted, 0.25)
    torch.testing.assert_close(out["w"], torch.tensor([0.75, 1.75]))
    torch.testing.assert_close(reptile_update(theta, adapted, 1.0)["w"], torch.tensor([3.0, 1.0]))


@pytest.mark.parametrize("adapted, outer_lr, match", [
    ([], 0.5, "at least one"),
    ([{"v": torch.zeros(2)}], 0.5, "keys of params"),
    ([{"w": torch.zeros(2)}], 0.0, "outer_lr"),
    ([{"w": torch.zeros(2)}], True, "outer_lr"),
])
def test_reptile_update_errors(adapted, outer_lr, match):
    with pytest.raises(ValueError, match=match):
        reptile_update({"w": torch.zeros(2)}, adapted, outer_lr)


def test_inner_minibatches_cycle_through_shuffled_passes():
    idx = inner_minibatches(6, 4, 3, generator=torch.Generator().manual_seed(1))
    assert idx.shape == (3, 4)
    flat = idx.flatten().tolist()
    assert sorted(flat[:6]) == list(range(6)) and sorted(flat[6:]) == sorted(flat[6:12])  # a full pass, then a new one
    assert len(set(flat[6:])) == 6
    again = inner_minibatches(6, 4, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(idx, again)
    with pytest.raises(ValueError, match="inner_batch_size"):
        inner_minibatches(5, 6, 1)
    with pytest.raises(ValueError, match="inner_steps"):
        inner_minibatches(5, 2, 0)


def test_train_on_task_with_sgd_is_plain_gradient_descent():
    torch.manual_seed(0)
    model = SineMLP(hidden=8)
    x, y = torch.randn(6, 1), torch.randn(6, 1)
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    expected = adapt(model, theta, x, y, F.mse_loss, inner_steps=3, inner_lr=0.05)
    train_on_task(model, torch.optim.SGD(model.parameters(), lr=0.05), x, y, F.mse_loss, inner_steps=3)
    for k, v in model.named_parameters():
        torch.testing.assert_close(v.detach(), expected[k], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one row per example"):
        train_on_task(model, torch.optim.SGD(model.parameters(), lr=0.05), x, y[:3], F.mse_loss, inner_steps=1)


def test_reptile_optimizer_step_with_sgd_matches_the_functional_reptile_step():
    torch.manual_seed(0)
    model = SineMLP()
    batch = SinusoidTasks().sample(3, 8, generator=torch.Generator().manual_seed(0))
    twin = copy.deepcopy(model)
    reptile_step(twin, batch.x_support, batch.y_support, F.mse_loss, inner_steps=3, inner_lr=0.02, outer_lr=0.4, vectorize=False)
    moved = reptile_optimizer_step(model, torch.optim.SGD(model.parameters(), lr=0.02), batch.x_support, batch.y_support,
                                   F.mse_loss, inner_steps=3, inner_batch_size=None, outer_lr=0.4)
    assert moved > 0
    for (k, v), w in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(v.detach(), w.detach(), rtol=1e-5, atol=1e-6)


def test_reptile_optimizer_step_keeps_adams_state_across_tasks_as_nichols_code_does():
    torch.manual_seed(0)
    model = Conv4(hidden=4, out_features=3, track_running_stats=False, downsample="stride")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 6, 1, 28, 28, generator=g), torch.tensor([[0, 1, 2] * 2] * 2)
    # independent computation: one Adam, task after task, weights reset to θ between tasks
    reference = copy.deepcopy(model)
    theta = {k: v.detach().clone() for k, v in reference.named_parameters()}
    adam = nichol_adam(reference.parameters())
    shuffles = torch.Generator().manual_seed(5)
    phis = []
    for xi, yi in zip(x, y):
        for idx in inner_minibatches(6, 3, 4, generator=shuffles):
            adam.zero_grad()
            F.cross_entropy(reference(xi[idx]), yi[idx]).backward()
            adam.step()
        phis.append({k: v.detach().clone() for k, v in reference.named_parameters()})
        with torch.no_grad():
            for k, v in reference.named_parameters():
                v.copy_(theta[k])
    expected = reptile_update(theta, phis, 0.5)
    optimizer = nichol_adam(model.parameters())
    reptile_optimizer_step(model, optimizer, x, y, F.cross_entropy, inner_steps=4, inner_batch_size=3, outer_lr=0.5,
                           generator=torch.Generator().manual_seed(5))
    for k, v in model.named_parameters():
        torch.testing.assert_close(v.detach(), expected[k], rtol=1e-5, atol=1e-6)
    state = optimizer.state[next(model.parameters())]
    assert int(state["step"]) == 8  # 2 tasks x 4 steps, one state
    with pytest.raises(ValueError, match="outer_lr"):
        reptile_optimizer_step(model, optimizer, x, y, F.cross_entropy, inner_steps=1, inner_batch_size=3, outer_lr=2.0)
    with pytest.raises(ValueError, match="task dimension"):
        reptile_optimizer_step(model, optimizer, x, y[:1], F.cross_entropy, inner_steps=1, inner_batch_size=3, outer_lr=1.0)


def test_fine_tune_leaves_the_model_alone_and_uses_a_fresh_optimizer():
    torch.manual_seed(0)
    model = Conv4(hidden=4, out_features=3, track_running_stats=False, downsample="stride")
    before = copy.deepcopy(model.state_dict())
    x, y = torch.randn(3, 1, 28, 28), torch.tensor([0, 1, 2])
    adapted = fine_tune(model, x, y, F.cross_entropy, inner_steps=5, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    reference = copy.deepcopy(model)
    adam = nichol_adam(reference.parameters())
    # the same batches in the same order (the conv biases before batch norm have gradients of rounding
    # size, which Adam divides by their own size: the order of a sum changes them visibly)
    for idx in inner_minibatches(3, 3, 5, generator=torch.Generator().manual_seed(2)):
        adam.zero_grad()
        F.cross_entropy(reference(x[idx]), y[idx]).backward()
        adam.step()
    for k, v in reference.named_parameters():
        torch.testing.assert_close(adapted[k], v.detach(), rtol=1e-5, atol=1e-6)


def test_non_transductive_prediction_classifies_each_query_with_the_support_set_only():
    torch.manual_seed(0)
    model = Conv4(hidden=4, out_features=3, track_running_stats=False, downsample="stride")
    params = {k: v.detach() for k, v in model.named_parameters()}
    support, queries = torch.randn(3, 1, 28, 28), torch.randn(4, 1, 28, 28)
    out = predict_non_transductive(model, params, support, queries)
    with torch.no_grad():
        loop = torch.stack([model(torch.cat([support, q[None]]))[-1] for q in queries])
        together = model(queries)
    torch.testing.assert_close(out, loop, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, together, atol=1e-3)  # batch statistics: the batch matters


def test_reptile_step_cost_memory_does_not_grow_with_the_inner_steps():
    model = SineMLP()
    before = copy.deepcopy(model.state_dict())
    batch = SinusoidTasks().sample(2, 5, generator=torch.Generator().manual_seed(0))
    costs = [reptile_step_cost(model, batch.x_support, batch.y_support, F.mse_loss, inner_steps=k, inner_lr=0.01, repeats=1)
             for k in (1, 4)]
    assert costs[0]["saved_mb"] > 0 and costs[1]["saved_mb"] == pytest.approx(costs[0]["saved_mb"], rel=0.05)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="repeats"):
        reptile_step_cost(model, batch.x_support, batch.y_support, F.mse_loss, inner_steps=1, inner_lr=0.01, repeats=0)
    with pytest.raises(ValueError, match="inner_lr"):
        reptile_step_cost(model, batch.x_support, batch.y_support, F.mse_loss, inner_steps=1, inner_lr=-1.0)


# --- Nichol et al.'s analysis: the three directions, their expectations, the Taylor coefficients ---


def _smooth_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


def _task_losses(net, n_tasks=3, n_batches=3, n=4, seed=0):
    batch = SinusoidTasks().sample(n_tasks, n_batches * n, generator=torch.Generator().manual_seed(seed))
    return [[(lambda p, x=batch.x_support[t, i * n:(i + 1) * n].double(), y=batch.y_support[t, i * n:(i + 1) * n].double():
              F.mse_loss(functional_call(net, p, (x,)), y)) for i in range(n_batches)] for t in range(n_tasks)]


def test_update_directions_with_two_batches_are_the_maml_meta_gradients():
    model = SineMLP().double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    b = SinusoidTasks().sample(1, 6, 6, generator=torch.Generator().manual_seed(2))
    b = tuple(t.double() for t in b.as_tuple())
    losses = [lambda p: F.mse_loss(functional_call(model, p, (b[0][0],)), b[1][0]),
              lambda p: F.mse_loss(functional_call(model, p, (b[2][0],)), b[3][0])]
    got = update_directions(losses, params, 0.05)
    second = meta_gradient(model, params, b, F.mse_loss, inner_steps=1, inner_lr=0.05)
    first = meta_gradient(model, params, b, F.mse_loss, inner_steps=1, inner_lr=0.05, first_order=True)
    support_grad = torch.func.grad(losses[0])(params)
    for k in params:
        torch.testing.assert_close(got["MAML"][k], second[k])
        torch.testing.assert_close(got["first-order MAML"][k], first[k])
        torch.testing.assert_close(got["Reptile"][k], first[k] + support_grad[k])  # exact for k = 2


def test_reptile_direction_is_where_the_inner_loop_went():
    net = _smooth_net()
    params = {k: v.detach() for k, v in net.named_parameters()}
    losses = _task_losses(net)[0]
    phi = dict(params)
    for f in losses:
        g = torch.func.grad(f)(phi)
        phi = {k: phi[k] - 0.1 * g[k] for k in phi}
    got = update_directions(losses, params, 0.1)["Reptile"]
    for k in params:
        torch.testing.assert_close(got[k], (params[k] - phi[k]) / 0.1)


def test_with_one_batch_all_three_directions_are_the_gradient():
    net = _smooth_net()
    params = {k: v.detach() for k, v in net.named_parameters()}
    f = _task_losses(net)[0][0]
    got = update_directions([f], params, 0.1)
    g = torch.func.grad(f)(params)
    for m in METHODS:
        for k in params:
            torch.testing.assert_close(got[m][k], g[k])


def test_gradient_inner_product_terms_against_double_backward():
    net = _smooth_net()
    params = {k: v.detach() for k, v in net.named_parameters()}
    tasks = _task_losses(net)
    terms = gradient_inner_product_terms(tasks, params)
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    inner_total = {k: torch.zeros_like(v) for k, v in params.items()}
    grad_total = {k: torch.zeros_like(v) for k, v in params.items()}
    pairs = 0
    for task in tasks:
        grads = [torch.autograd.grad(f(leaves), list(leaves.values()), create_graph=True) for f in task]
        for gi in grads:
            for k, g in zip(leaves, gi):
                grad_total[k] += g.detach() / (len(task) * len(tasks))
        for i, j in itertools.combinations(range(len(task)), 2):
            dot = sum((a * b).sum() for a, b in zip(grads[i], grads[j]))
            for k, g in zip(leaves, torch.autograd.grad(dot, list(leaves.values()), retain_graph=True)):
                inner_total[k] += 0.5 * g
            pairs += 1
    for k in params:
        torch.testing.assert_close(terms["avg_grad"][k], grad_total[k])
        torch.testing.assert_close(terms["avg_grad_inner"][k], inner_total[k] / pairs)
    with pytest.raises(ValueError, match="at least 2 mini-batches"):
        gradient_inner_product_terms([tasks[0][:1]], params)


def test_expected_update_directions_average_every_ordered_tuple():
    net = _smooth_net()
    params = {k: v.detach() for k, v in net.named_parameters()}
    tasks = _task_losses(net, n_tasks=2)
    got = expected_update_directions(tasks, params, 0.05, 2)
    total, count = {m: {k: 0 for k in params} for m in METHODS}, 0
    for task in tasks:
        for i, j in itertools.permutations(range(3), 2):
            d = update_directions([task[i], task[j]], params, 0.05)
            for m in METHODS:
                for k in params:
                    total[m][k] = total[m][k] + d[m][k]
            count += 1
    for m in METHODS:
        for k in params:
            torch.testing.assert_close(got[m][k], total[m][k] / count)
    with pytest.raises(ValueError, match="n_batches"):
        expected_update_directions(tasks, params, 0.05, 4)


@pytest.mark.parametrize("n_batches", [2, 3])
def test_taylor_coefficients_match_the_exact_expectations_for_small_steps(n_batches):
    """Nichol et al.'s expansion, checked: E[g] = a AvgGrad - b α AvgGradInner + O(α²)."""
    net = _smooth_net()
    params = {k: v.detach() for k, v in net.named_parameters()}
    tasks = _task_losses(net, n_tasks=2, n_batches=3)
    terms = gradient_inner_product_terms(tasks, params)
    flat = lambda d: torch.cat([d[k].reshape(-1) for k in sorted(d)])  # noqa: E731
    grad, inner = flat(terms["avg_grad"]), flat(terms["avg_grad_inner"])
    residuals = {m: [] for m in METHODS}
    for alpha in (1e-4, 1e-3):
        expected = expected_update_directions(tasks, params, alpha, n_batches)
        for m in METHODS:
            a, b = taylor_coefficients(m, n_batches)
            e = flat(expected[m])
            measured_b = float(-((e - a * grad) @ inner) / (alpha * inner @ inner))
            assert measured_b == pytest.approx(b, rel=0.02 if alpha == 1e-4 else 0.1), (m, alpha)
            residuals[m].append(float((e - a * grad + b * alpha * inner).norm() / e.norm()))
    for m in METHODS:  # what is left is O(α²): ten times the step, a hundred times the residual
        assert residuals[m][0] < 1e-4 and 60 < residuals[m][1] / residuals[m][0] < 140, (m, residuals[m])


def test_taylor_coefficients_values_and_errors():
    assert taylor_coefficients("Reptile", 4) == (4.0, 6.0)
    assert taylor_coefficients("MAML", 3) == (1.0, 4.0)
    assert taylor_coefficients("first-order MAML", 1) == (1.0, 0.0)
    with pytest.raises(ValueError, match="method"):
        taylor_coefficients("iMAML", 2)
    with pytest.raises(ValueError, match="n_batches"):
        taylor_coefficients("MAML", 0)


def test_update_directions_errors():
    with pytest.raises(ValueError, match="batch_losses"):
        update_directions([], {"w": torch.zeros(1)}, 0.1)
    with pytest.raises(ValueError, match="inner_lr"):
        update_directions([lambda p: p["w"].sum()], {"w": torch.zeros(1)}, 0.0)


@pytest.mark.parametrize("n_batches", [1, 2, 4])
def test_meta_directions_average_the_per_task_directions(n_batches):
    torch.manual_seed(0)
    model = SineMLP(hidden=10)
    params = {k: v.detach() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(3)
    xs, ys = torch.randn(3, n_batches, 5, 1, generator=g), torch.randn(3, n_batches, 5, 1, generator=g)
    for m in METHODS:
        got, loss = meta_directions(model, params, xs, ys, F.mse_loss, method=m, inner_lr=0.03)
        per_task = [update_directions([lambda p, x=x, y=y: F.mse_loss(functional_call(model, p, (x,)), y)
                                       for x, y in zip(xs[t], ys[t])], params, 0.03)[m] for t in range(3)]
        for k in params:
            torch.testing.assert_close(got[k], torch.stack([d[k] for d in per_task]).mean(0), rtol=1e-4, atol=1e-6)
        # the loss: the last batch after k - 1 steps, averaged over tasks
        losses = []
        for t in range(3):
            phi = adapt(model, params, xs[t, 0], ys[t, 0], F.mse_loss, inner_steps=0, inner_lr=0.03)
            for i in range(n_batches - 1):
                phi = adapt(model, phi, xs[t, i], ys[t, i], F.mse_loss, inner_steps=1, inner_lr=0.03)
            losses.append(F.mse_loss(functional_call(model, phi, (xs[t, -1],)), ys[t, -1]))
        assert float(loss) == pytest.approx(float(torch.stack(losses).mean()), rel=1e-4)


def test_meta_direction_step_feeds_the_direction_to_the_optimizer():
    torch.manual_seed(0)
    model = SineMLP(hidden=10)
    twin = copy.deepcopy(model)
    g = torch.Generator().manual_seed(3)
    xs, ys = torch.randn(2, 2, 5, 1, generator=g), torch.randn(2, 2, 5, 1, generator=g)
    direction, _ = meta_directions(twin, dict(twin.named_parameters()), xs, ys, F.mse_loss, method="Reptile", inner_lr=0.03)
    with torch.no_grad():
        for k, p in twin.named_parameters():
            p.sub_(0.1 * direction[k])
    meta_direction_step(model, torch.optim.SGD(model.parameters(), lr=0.1), xs, ys, F.mse_loss, method="Reptile",
                        inner_lr=0.03)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p.detach(), q.detach())
    with pytest.raises(ValueError, match="method"):
        meta_directions(model, dict(model.named_parameters()), xs, ys, F.mse_loss, method="Reptiles", inner_lr=0.03)
    with pytest.raises(ValueError, match="x_batches"):
        meta_directions(model, dict(model.named_parameters()), xs, ys[:1], F.mse_loss, method="MAML", inner_lr=0.03)
