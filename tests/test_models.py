"""Tests for metalearn_lab.models: shapes, functional calls, TaskBatchNorm2d, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from metalearn_lab.models import Conv4, EmbeddingNet, SineMLP, TaskBatchNorm2d, count_parameters



def test_shapes():
    assert SineMLP()(torch.zeros(7, 1)).shape == (7, 1)
    assert SineMLP()(torch.zeros(3, 7, 1)).shape == (3, 7, 1)
    images = torch.randn(6, 1, 28, 28)
    assert Conv4()(images).shape == (6, 64)
    assert Conv4(out_features=5, track_running_stats=False)(images).shape == (6, 5)
    assert Conv4(in_channels=3, hidden=16)(torch.randn(2, 3, 28, 28)).shape == (2, 16)
    assert EmbeddingNet(embedding_dim=10)(images).shape == (6, 10)
    with pytest.raises(ValueError, match="batch, channels, height, width"):
        Conv4()(torch.zeros(1, 28, 28))
    with pytest.raises(ValueError, match="hidden"):
        SineMLP(hidden=0)


@pytest.mark.parametrize("make, x", [
    (lambda: SineMLP(), torch.randn(5, 1)),
    (lambda: Conv4(hidden=8, out_features=5, track_running_stats=False), torch.randn(4, 1, 28, 28)),
    (lambda: EmbeddingNet(embedding_dim=8, hidden=8), torch.randn(4, 1, 28, 28)),
])
def test_functional_call_equals_module_call(make, x):
    torch.manual_seed(0)
    model = make()
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    torch.testing.assert_close(functional_call(model, (params, buffers), (x,)), model(x))
    # other weights really are used
    shifted = {k: v + 0.1 for k, v in params.items()}
    assert not torch.allclose(functional_call(model, (shifted, buffers), (x,)), model(x))


def test_task_batchnorm_equals_torch_batchnorm_without_running_stats():
    torch.manual_seed(0)
    ours, theirs = TaskBatchNorm2d(3), nn.BatchNorm2d(3, track_running_stats=False)
    with torch.no_grad():
        for module in (ours, theirs):
            module.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
            module.bias.copy_(torch.tensor([0.1, 0.0, 3.0]))
    assert sorted(dict(ours.named_parameters())) == sorted(dict(theirs.named_parameters()))
    x = 3 * torch.randn(6, 3, 5, 4, dtype=torch.float64) + 1
    ours.double(), theirs.double()
    torch.testing.assert_close(ours(x), theirs(x))
    theirs.eval()  # without running stats torch keeps using batch statistics in eval mode, like ours
    torch.testing.assert_close(ours(x), theirs(x))
    gx_ours = torch.autograd.grad(ours(x.requires_grad_()).pow(3).sum(), x)[0]
    gx_theirs = torch.autograd.grad(theirs(x).pow(3).sum(), x)[0]
    torch.testing.assert_close(gx_ours, gx_theirs)
    assert not list(ours.buffers())


def test_conv4_for_maml_has_no_buffers():
    maml_net = Conv4(out_features=5, track_running_stats=False)
    assert not list(maml_net.buffers())
    assert len(list(Conv4().buffers())) == 12  # running mean, var, count in 4 BatchNorms


def test_count_parameters():
    assert count_parameters(SineMLP()) == (1 * 40 + 40) + (40 * 40 + 40) + (40 + 1)
    conv = 4 * 64 * 2 + (1 * 9 * 64 + 64) + 3 * (64 * 9 * 64 + 64)  # BN scale+shift, then the convs
    assert count_parameters(Conv4()) == conv
    assert count_parameters(Conv4(out_features=5, track_running_stats=False)) == conv + 64 * 5 + 5
    frozen = SineMLP()
    frozen.net[0].weight.requires_grad_(False)
    assert count_parameters(frozen) == 1761 - 40


def test_conv4_with_stride_two_convolutions_is_nichols_omniglot_model():
    from metalearn_lab.models import conv4_side

    model = Conv4(out_features=5, track_running_stats=False, downsample="stride")
    assert model.embed(torch.zeros(2, 1, 28, 28)).shape == (2, 256)  # 2 x 2 x 64, flattened
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 5)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert all(m.stride == (2, 2) for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert [conv4_side(n, "stride") for n in (28, 84)] == [2, 6] and conv4_side(28) == 1
    # the default is unchanged: max-pooling, 64 features
    assert Conv4(out_features=5).head.in_features == 64
    with pytest.raises(ValueError, match="downsample"):
        Conv4(downsample="avgpool")
