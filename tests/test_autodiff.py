"""metalearn_lab.autodiff (HVPs, finite differences, gradient comparison, the saved-tensor memory meter)
and the meta-gradient tools of metalearn_lab.maml (closed form for linear regression, cost)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metalearn_lab.autodiff import (
    compare_gradients,
    finite_difference_gradient,
    hessian_vector_product,
    peak_saved_tensor_bytes,
)
from metalearn_lab.maml import (
    adapt,
    linear_regression_meta_gradient,
    meta_gradient,
    meta_gradient_cost,
)
from metalearn_lab.models import SineMLP


def tiny_setup(seed=0):
    torch.manual_seed(seed)
    model = SineMLP(hidden=6).double()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(seed)
    x_s = torch.rand(2, 5, 1, generator=g, dtype=torch.float64) * 10 - 5
    x_q = torch.rand(2, 7, 1, generator=g, dtype=torch.float64) * 10 - 5
    return model, params, (x_s, torch.sin(x_s), x_q, torch.sin(x_q))


def test_hvp_matches_full_hessian():
    model, params, (x_s, y_s, _, _) = tiny_setup()

    def f(p):
        return F.mse_loss(functional_call(model, p, (x_s[0],)), y_s[0])

    names = list(params)
    shapes = [params[k].shape for k in names]
    sizes = [params[k].numel() for k in names]

    def f_flat(flat):
        chunks = torch.split(flat, sizes)
        return f({k: c.reshape(s) for k, c, s in zip(names, chunks, shapes)})

    flat = torch.cat([params[k].reshape(-1) for k in names])
    hessian = torch.func.hessian(f_flat)(flat)
    v = torch.randn(flat.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    v_dict = {k: c.reshape(s) for k, c, s in zip(names, torch.split(v, sizes), shapes)}
    hv = hessian_vector_product(f, params, v_dict)
    hv_flat = torch.cat([hv[k].reshape(-1) for k in names])
    torch.testing.assert_close(hv_flat, hessian @ v, rtol=1e-10, atol=1e-12)


def test_hvp_rejects_mismatched_keys():
    with pytest.raises(ValueError, match="missing"):
        hessian_vector_product(lambda p: p["w"].sum(), {"w": torch.zeros(2)}, {"u": torch.zeros(2)})


def test_finite_differences_match_autograd_meta_gradient():
    model, params, batch = tiny_setup()
    auto = meta_gradient(model, params, batch, F.mse_loss, inner_steps=2, inner_lr=0.05)

    def f(p):
        return meta_gradient_loss(model, p, batch)

    numeric = finite_difference_gradient(f, params)
    for k in params:
        torch.testing.assert_close(auto[k], numeric[k], rtol=1e-6, atol=1e-8)


def meta_gradient_loss(model, params, batch):
    from metalearn_lab.maml import meta_loss

    with torch.enable_grad():
        p = {k: v.detach().requires_grad_() for k, v in params.items()}
        return meta_loss(model, p, batch, F.mse_loss, inner_steps=2, inner_lr=0.05)[0].detach()


def test_finite_difference_bad_eps():
    with pytest.raises(ValueError, match="eps"):
        finite_difference_gradient(lambda p: p["w"].sum(), {"w": torch.zeros(1)}, eps=0)


@pytest.mark.parametrize("inner_steps", [0, 1, 3])
@pytest.mark.parametrize("first_order", [False, True])
def test_linear_regression_closed_form_matches_autograd(inner_steps, first_order):
    g = torch.Generator().manual_seed(0)
    d, n, m = 4, 10, 8
    x_s, x_q = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(m, d, generator=g, dtype=torch.float64)
    y_s, y_q = torch.randn(n, generator=g, dtype=torch.float64), torch.randn(m, generator=g, dtype=torch.float64)
    theta = torch.randn(d, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    params = {"weight": theta[None, :].clone()}
    batch = (x_s[None], y_s[None, :, None], x_q[None], y_q[None, :, None])
    auto = meta_gradient(model, params, batch, F.mse_loss, inner_steps=inner_steps, inner_lr=0.1,
                         first_order=first_order, vectorize=False)["weight"][0]
    closed = linear_regression_meta_gradient(theta, x_s, y_s, x_q, y_q, inner_lr=0.1, inner_steps=inner_steps,
                                             first_order=first_order)
    torch.testing.assert_close(auto, closed, rtol=1e-12, atol=1e-12)


def test_linear_regression_closed_form_bad_shapes():
    with pytest.raises(ValueError, match="theta must be"):
        linear_regression_meta_gradient(torch.zeros(2, 1), torch.zeros(3, 2), torch.zeros(3), torch.zeros(3, 2),
                                        torch.zeros(3), inner_lr=0.1)


def test_first_order_meta_gradient_is_gradient_at_adapted_point():
    model, params, batch = tiny_setup()
    fo = meta_gradient(model, params, batch, F.mse_loss, inner_steps=2, inner_lr=0.05, first_order=True)
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for x_s, y_s, x_q, y_q in zip(*batch):
        adapted = adapt(model, params, x_s, y_s, F.mse_loss, inner_steps=2, inner_lr=0.05, first_order=True)
        adapted = {k: v.detach().requires_grad_() for k, v in adapted.items()}
        loss = F.mse_loss(functional_call(model, adapted, (x_q,)), y_q)
        for k, gk in zip(adapted, torch.autograd.grad(loss, list(adapted.values()))):
            total[k] += gk / len(batch[0])
    for k in params:
        torch.testing.assert_close(fo[k], total[k], rtol=1e-12, atol=1e-14)


def test_meta_gradient_vmap_equals_loop():
    model, params, batch = tiny_setup()
    a = meta_gradient(model, params, batch, F.mse_loss, inner_steps=3, inner_lr=0.05, vectorize=True)
    b = meta_gradient(model, params, batch, F.mse_loss, inner_steps=3, inner_lr=0.05, vectorize=False)
    cos, rel = compare_gradients(a, b)
    assert rel < 1e-12 and cos == pytest.approx(1.0, abs=1e-12)


def test_compare_gradients():
    cos, rel = compare_gradients(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 4.0]))
    assert cos == pytest.approx(1.0) and rel == 0.0
    cos, rel = compare_gradients(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]))
    assert cos == pytest.approx(-1.0) and rel == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same keys"):
        compare_gradients({"a": torch.zeros(1)}, {"b": torch.zeros(1)})
    with pytest.raises(ValueError, match="number of entries"):
        compare_gradients(torch.zeros(2), torch.zeros(3))


def test_peak_saved_bytes_counts_shared_storage_once_and_releases():
    x = torch.ones(1000, requires_grad=True)
    # x * x saves x twice (same storage, counted once: 4000 bytes)
    _, peak = peak_saved_tensor_bytes(lambda: (x * x).sum())
    assert peak == 4000

    def inner_loop_freed():
        # two sequential graphs, each freed by autograd.grad before the next: the peak stays one graph's
        for _ in range(2):
            y = (x.exp()).sum()
            torch.autograd.grad(y, x)
        return None

    _, peak = peak_saved_tensor_bytes(inner_loop_freed)
    assert peak == 4000


def test_second_order_graph_grows_with_inner_steps_first_order_does_not():
    model, params, batch = tiny_setup()
    batch = tuple(t.float() for t in batch)
    model = model.float()
    mem = {}
    for first_order in (False, True):
        for steps in (1, 4):
            mem[first_order, steps] = meta_gradient_cost(model, batch, F.mse_loss, inner_steps=steps, inner_lr=0.05,
                                                         first_order=first_order, repeats=1)["saved_mb"]
    assert mem[False, 4] > 2 * mem[False, 1]
    assert mem[True, 4] == pytest.approx(mem[True, 1], rel=0.05)
    assert mem[False, 4] > mem[True, 4]


def test_meta_gradient_cost_bad_repeats():
    model, _, batch = tiny_setup()
    with pytest.raises(ValueError, match="repeats"):
        meta_gradient_cost(model, batch, F.mse_loss, inner_steps=1, inner_lr=0.1, first_order=True, repeats=0)


def test_meta_gradient_cost_restores_threads():
    model, _, batch = tiny_setup()
    before = torch.get_num_threads()
    meta_gradient_cost(model, batch, F.mse_loss, inner_steps=1, inner_lr=0.1, first_order=True, repeats=1, threads=1)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        meta_gradient_cost(model, batch, F.mse_loss, inner_steps=1, inner_lr=0.1, first_order=True, threads=0)
