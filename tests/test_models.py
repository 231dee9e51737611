"""Tests for metalearn_lab.models: shapes, functional calls, TaskBatchNorm2d, parameter counts."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from _model_zoo import MODELS, assert_unchanged, built, kinds, state
from torch import nn
from torch.func import functional_call

from metalearn_lab import models as models_module
from metalearn_lab.maml import adapt_and_predict, writes_running_statistics
from metalearn_lab.models import (
    Conv4,
    EmbeddingNet,
    SineMLP,
    TaskBatchNorm2d,
    count_parameters,
    unchanged,
    uses_batch_statistics,
)
from metalearn_lab.protonet import protonet_predict
from metalearn_lab.siamese import nearest_support, verification_accuracy


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


# ---------------------------------------------------------------------------------------------
# Evaluation never writes into a model: every model class × every evaluation entry point of the
# library, in training and in eval mode, leaves the state_dict (and the modes) as they were.


def test_the_model_table_covers_every_model_class():
    defined = {obj for _, obj in inspect.getmembers(models_module, inspect.isclass)
               if issubclass(obj, nn.Module) and obj.__module__ == models_module.__name__}
    used = {type(m) for make, _ in MODELS.values() for m in make().modules()}
    assert defined <= used, f"add a model with {sorted(c.__name__ for c in defined - used)} to MODELS"


def _sine_batch():
    from metalearn_lab.data.sinusoid import SinusoidTasks

    return SinusoidTasks().sample(3, 5, 4, generator=torch.Generator().manual_seed(0)).as_tuple()


def _image_episode():
    generator = torch.Generator().manual_seed(0)
    x_support, x_query = torch.rand(2, 5, 1, 28, 28, generator=generator), torch.rand(2, 10, 1, 28, 28, generator=generator)
    return x_support, torch.arange(5).repeat(2, 1), x_query, torch.arange(5).repeat_interleave(2).repeat(2, 1)


def _adapt(vectorize):
    def run(model, kind):
        batch, loss = (_sine_batch(), F.mse_loss) if kind == "sine" else (_image_episode(), F.cross_entropy)
        return adapt_and_predict(model, batch, loss, inner_steps=2, inner_lr=0.1, vectorize=vectorize)
    return run


def _protonet(model, kind):
    x_support, y_support, x_query, _ = _image_episode()
    return protonet_predict(model, x_support, y_support, x_query, 5)


def _nearest(model, kind):
    x_support, _, x_query, _ = _image_episode()
    return nearest_support(model, x_support[0], x_query[0])


def _verification(model, kind):
    x_support, _, x_query, _ = _image_episode()
    return verification_accuracy(model, x_support[0], x_query[0, :5], torch.tensor([1.0, 0, 1, 0, 1]), threshold=1.0)


#: entry point -> (how to call it, which kinds of model it evaluates; "logits": an image model with a head)
ENTRY_POINTS = {
    "maml.adapt_and_predict (loop)": (_adapt(False), {"sine", "logits"}),
    "maml.adapt_and_predict (vmap)": (_adapt(True), {"sine", "logits"}),
    "maml.adapt_and_predict (default)": (_adapt(None), {"sine", "logits"}),
    "protonet.protonet_predict": (_protonet, {"image", "logits"}),
    "siamese.nearest_support": (_nearest, {"image", "logits"}),
    "siamese.verification_accuracy": (_verification, {"image", "logits"}),
}


CASES = [pytest.param(entry, name, mode, id=f"{entry} | {name} | {mode}")
         for entry, (_, accepted) in ENTRY_POINTS.items() for name in MODELS for mode in ("train", "eval")
         if kinds(name) & accepted]


@pytest.mark.parametrize("entry, name, mode", CASES)
def test_evaluation_leaves_the_model_unchanged(entry, name, mode):
    model, kind = built(name, mode)
    before = state(model)
    run, _ = ENTRY_POINTS[entry]
    if entry.endswith("(vmap)") and writes_running_statistics(model):
        # vmap cannot update one set of running statistics from many tasks: a clear error, nothing written
        with pytest.raises(ValueError, match="vectorize=True cannot run this model.*batch norm updates running statistics"):
            run(model, kind)
    else:
        out = run(model, kind)
        assert out is not None
    assert_unchanged(model, before, entry)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_uses_batch_statistics_says_whether_predictions_depend_on_the_batch(name, mode):
    """Transductive means: changing one input of the batch changes the others' outputs."""
    model, kind = built(name, mode)
    x = torch.randn(6, 1) if kind == "sine" else torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[-1] = changed[-1] * 3 + 1
    with unchanged(model), torch.no_grad():
        a, b = model(x)[:-1], model(changed)[:-1]
    depends = not torch.allclose(a, b, atol=1e-6)
    assert uses_batch_statistics(model) == depends


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
