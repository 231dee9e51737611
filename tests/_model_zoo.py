"""The model table shared by the tests that evaluation never writes into a model (test_models, test_experiments)."""

from __future__ import annotations

import torch
from torch import nn

from metalearn_lab.models import Conv4, EmbeddingNet, SineMLP

#: name -> (factory, what it maps: "sine" for [n, 1] -> [n, 1], "image" for [n, 1, 28, 28] -> [n, d])
MODELS = {
    "SineMLP": (lambda: SineMLP(hidden=16), "sine"),
    "MLP with BatchNorm1d": (lambda: nn.Sequential(nn.Linear(1, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1)), "sine"),
    "Conv4": (lambda: Conv4(hidden=8), "image"),
    "Conv4, batch statistics only": (lambda: Conv4(hidden=8, track_running_stats=False), "image"),
    "Conv4 with a 5-way head": (lambda: Conv4(hidden=8, out_features=5), "image"),
    "Conv4 with a 5-way head, batch statistics only": (lambda: Conv4(hidden=8, out_features=5, track_running_stats=False), "image"),
    "EmbeddingNet": (lambda: EmbeddingNet(embedding_dim=8, hidden=8), "image"),
}


def built(name, mode):
    torch.manual_seed(0)
    make, kind = MODELS[name]
    model = make()
    # BN running statistics that are not the initial ones, so that a write of any kind shows
    with torch.no_grad():
        for buffer_name, buffer in model.named_buffers():
            if buffer.is_floating_point():
                buffer.add_(torch.rand(buffer.shape, generator=torch.Generator().manual_seed(len(buffer_name))))
    return model.train(mode == "train"), kind


def kinds(name):
    _, kind = MODELS[name]
    if kind == "image":
        return {"image", "logits"} if "head" in name else {"image"}
    return {kind}


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()]


def assert_unchanged(model, before, where):
    now, modes = state(model)
    changed = sorted(k for k in before[0] if not torch.equal(before[0][k], now[k]))
    assert not changed, f"{where} wrote into the model: {changed}"
    assert modes == before[1], f"{where} changed the model's train/eval modes"
