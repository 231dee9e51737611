"""Tests for metalearn_lab.functional_models: the hand-written Conv4 forward equals the module, and
the vectorised meta-gradient through it equals the per-task loop's (float64 and float32, first and
second order, 1 and 5 inner steps), for MAML, Reptile and evaluation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metalearn_lab.functional_models import conv4_forward, functional_forward, has_fast_forward, task_batch_norm
from metalearn_lab.maml import adapt_and_predict, meta_loss
from metalearn_lab.models import Conv4, SineMLP, TaskBatchNorm2d
from metalearn_lab.reptile import reptile_step


def omniglot_like_batch(tasks=3, n_way=5, k_shot=1, n_query=2, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(tasks, n_way * k_shot, 1, 28, 28, generator=g, dtype=dtype)
    xq = torch.randn(tasks, n_way * n_query, 1, 28, 28, generator=g, dtype=dtype)
    ys = torch.arange(n_way).repeat_interleave(k_shot).repeat(tasks, 1)
    yq = torch.arange(n_way).repeat_interleave(n_query).repeat(tasks, 1)
    return xs, ys, xq, yq


def maml_conv4(hidden=8, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    model = Conv4(hidden=hidden, out_features=5, track_running_stats=False).to(dtype)
    with torch.no_grad():  # batch-norm scales and shifts away from 1 and 0, so their gradients are exercised
        for block in model.features:
            block[1].weight.uniform_(0.5, 1.5)
            block[1].bias.uniform_(-0.5, 0.5)
    return model


class ModuleConv4(Conv4):
    """Not recognised by functional_forward: the vmap path falls back to functional_call."""


def twin(model):
    other = ModuleConv4(hidden=model.features[0][0].out_channels, out_features=5, track_running_stats=False)
    other.to(next(model.parameters()).dtype).load_state_dict(model.state_dict())
    return other


def gradient_gap(a, b):
    return float(torch.sqrt(sum(((x - y) ** 2).sum() for x, y in zip(a, b))) / torch.sqrt(sum((y ** 2).sum() for y in b)))


# ------------------------------------------------------------------------------ the forward pass


def test_task_batch_norm_matches_module_and_its_gradients():
    torch.manual_seed(0)
    bn = TaskBatchNorm2d(4).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(6, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    expected, got = bn(x), task_batch_norm(x, bn.weight, bn.bias, bn.eps)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    v = torch.randn_like(expected)
    g_expected = torch.autograd.grad((expected * v).sum(), [x, bn.weight], create_graph=True)
    g_got = torch.autograd.grad((got * v).sum(), [x, bn.weight], create_graph=True)
    for a, b in zip(g_got, g_expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # second derivatives, which MAML needs
    h_expected = torch.autograd.grad(g_expected[0].pow(2).sum(), [x, bn.weight])
    h_got = torch.autograd.grad(g_got[0].pow(2).sum(), [x, bn.weight])
    for a, b in zip(h_got, h_expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_task_batch_norm_rejects_non_image_input():
    with pytest.raises(ValueError, match=r"\[batch, channels, height, width\].*\(4, 3\)"):
        task_batch_norm(torch.zeros(4, 3), torch.ones(3), torch.zeros(3))


@pytest.mark.parametrize("hidden,in_channels,head", [(8, 1, True), (64, 1, True), (16, 3, False)])
def test_conv4_forward_equals_module(hidden, in_channels, head):
    torch.manual_seed(0)
    model = Conv4(in_channels=in_channels, hidden=hidden, out_features=5 if head else None,
                  track_running_stats=False).double()
    x = torch.randn(7, in_channels, 28, 28, dtype=torch.float64)
    params = dict(model.named_parameters())
    torch.testing.assert_close(conv4_forward(params, x, head=head), model(x), rtol=1e-12, atol=1e-12)
    forward = functional_forward(model)
    torch.testing.assert_close(forward(params, {}, x), model(x), rtol=1e-12, atol=1e-12)


def test_functional_forward_takes_missing_parameters_from_the_model():
    model = maml_conv4()
    x = torch.randn(3, 1, 28, 28)
    new_head = {"head.weight": torch.zeros(5, 8), "head.bias": torch.arange(5.0)}
    expected = functional_call(model, new_head, (x,))
    torch.testing.assert_close(functional_forward(model)(new_head, {}, x), expected)
    torch.testing.assert_close(expected, torch.arange(5.0).expand(3, 5))


def test_conv4_forward_rejects_non_image_input():
    with pytest.raises(ValueError, match="Conv4 expects images"):
        conv4_forward(dict(maml_conv4().named_parameters()), torch.zeros(3, 28, 28))


def test_only_the_exact_maml_conv4_gets_the_fast_form():
    """Every model that conv4_forward would compute differently keeps functional_call."""
    assert has_fast_forward(Conv4(out_features=5, track_running_stats=False))
    assert has_fast_forward(Conv4(hidden=16, track_running_stats=False))  # no head: embeddings
    not_fast = {
        "running-stats batch norm": Conv4(out_features=5),
        "subclass": ModuleConv4(out_features=5, track_running_stats=False),
        "MLP": SineMLP(),
    }
    hooked = Conv4(out_features=5, track_running_stats=False)
    hooked.features[1][0].register_forward_hook(lambda *args: None)
    not_fast["forward hook"] = hooked
    strided = Conv4(out_features=5, track_running_stats=False)
    strided.features[2][0].stride = (2, 2)
    not_fast["strided conv"] = strided
    no_bias = Conv4(out_features=5, track_running_stats=False)
    no_bias.features[0][0].bias = None
    not_fast["conv without bias"] = no_bias
    swapped = Conv4(out_features=5, track_running_stats=False)
    swapped.features[3][2] = nn.Tanh()
    not_fast["other activation"] = swapped
    avg = Conv4(out_features=5, track_running_stats=False)
    avg.features[0][3] = nn.AvgPool2d(2)
    not_fast["average pool"] = avg
    for label, model in not_fast.items():
        assert not has_fast_forward(model), label
        assert functional_forward(model).__name__ == "module_forward", label
    # and the fallback computes what the modified module computes
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(functional_forward(swapped)(dict(swapped.named_parameters()), {}, x), swapped(x))


# ------------------------------------------------------------------------------ meta-gradients: vmap = loop


def loss_and_grads(model, batch, *, vectorize, first_order, inner_steps, inner_lr=0.4):
    params = dict(model.named_parameters())
    loss, predictions = meta_loss(model, params, batch, F.cross_entropy, inner_steps=inner_steps, inner_lr=inner_lr,
                                  first_order=first_order, vectorize=vectorize)
    return loss, predictions, torch.autograd.grad(loss, list(params.values()))


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("inner_steps", [1, 5])
def test_vectorised_meta_gradient_equals_loop_float64(first_order, inner_steps):
    """The exact check: in float64 the fast vmap path, the old vmap path and the loop agree to 1e-10."""
    model = maml_conv4(dtype=torch.float64)
    batch = omniglot_like_batch(dtype=torch.float64)
    kwargs = dict(first_order=first_order, inner_steps=inner_steps, inner_lr=0.1)
    loop = loss_and_grads(model, batch, vectorize=False, **kwargs)
    fast = loss_and_grads(model, batch, vectorize=True, **kwargs)
    module = loss_and_grads(twin(model), batch, vectorize=True, **kwargs)
    for other in (fast, module):
        torch.testing.assert_close(other[0], loop[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(other[1], loop[1], rtol=1e-10, atol=1e-10)
        assert gradient_gap(other[2], loop[2]) < 1e-10
    assert max(float(g.abs().max()) for g in loop[2]) > 1e-2  # not trivially zero


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("inner_steps", [1, 5])
def test_vectorised_meta_gradient_equals_loop_float32(first_order, inner_steps):
    """In float32 (what training uses) the two paths agree to about 1e-5 relative."""
    model = maml_conv4()
    batch = omniglot_like_batch()
    kwargs = dict(first_order=first_order, inner_steps=inner_steps, inner_lr=0.1)
    loop = loss_and_grads(model, batch, vectorize=False, **kwargs)
    fast = loss_and_grads(model, batch, vectorize=True, **kwargs)
    torch.testing.assert_close(fast[0], loop[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast[1], loop[1], rtol=1e-4, atol=1e-4)
    assert gradient_gap(fast[2], loop[2]) < 2e-5


def test_adapt_and_predict_and_reptile_use_the_same_numbers():
    model = maml_conv4(dtype=torch.float64)
    batch = omniglot_like_batch(dtype=torch.float64)
    by_path = [adapt_and_predict(m, batch, F.cross_entropy, inner_steps=3, inner_lr=0.4, vectorize=v)
               for m, v in ((model, True), (model, False), (twin(model), True))]
    for other in by_path[1:]:
        torch.testing.assert_close(by_path[0], other, rtol=1e-10, atol=1e-10)
    moved = {}
    for label, m, v in (("fast", maml_conv4(dtype=torch.float64), True), ("loop", maml_conv4(dtype=torch.float64), False)):
        distance = reptile_step(m, batch[0], batch[1], F.cross_entropy, inner_steps=3, inner_lr=0.1, outer_lr=0.5, vectorize=v)
        moved[label] = (distance, [p.detach() for p in m.parameters()])
    assert moved["fast"][0] == pytest.approx(moved["loop"][0], rel=1e-10)
    assert gradient_gap(moved["fast"][1], moved["loop"][1]) < 1e-12
