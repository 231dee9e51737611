"""metalearn_lab.cuda_graphs on a machine without a GPU: the eager step it falls back to is
meta_train_step, the switch is read from the environment, and asking for graphs off CUDA is a clear
error. (The graphed step itself is checked against the eager one on a GPU by scripts/gpu_session.py.)"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from metalearn_lab.cuda_graphs import GraphedMetaTrainStep, cuda_graphs_requested, make_meta_train_step
from metalearn_lab.maml import meta_train_step
from metalearn_lab.models import Conv4


def test_cpu_step_is_meta_train_step():
    torch.manual_seed(0)
    model = Conv4(hidden=4, out_features=5, track_running_stats=False)
    twin = copy.deepcopy(model)
    initial = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(3, 5, 1, 28, 28, generator=g), torch.arange(5).repeat(3, 1),
                torch.randn(3, 5, 1, 28, 28, generator=g), torch.arange(5).repeat(3, 1)) for _ in range(3)]
    kwargs = dict(inner_steps=1, inner_lr=0.4, first_order=False)
    opt_a, opt_b = torch.optim.Adam(model.parameters()), torch.optim.Adam(twin.parameters())
    step = make_meta_train_step(model, opt_a, F.cross_entropy, **kwargs)
    for batch in batches:
        loss_a, pred_a = step(batch)
        loss_b, pred_b = meta_train_step(twin, opt_b, batch, F.cross_entropy, **kwargs)
        assert loss_a == loss_b
        torch.testing.assert_close(pred_a, pred_b, rtol=0, atol=0)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(float((a.detach() - b).abs().max()) > 0 for a, b in zip(model.head.parameters(), initial[-2:]))  # it trained


@pytest.mark.parametrize("value,expected", [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("", False), ("no", False)])
def test_environment_switch(monkeypatch, value, expected):
    monkeypatch.setenv("METALEARN_LAB_CUDA_GRAPHS", value)
    assert cuda_graphs_requested() is expected


def test_graphs_off_cuda_are_refused_even_when_the_environment_asks(monkeypatch):
    model = Conv4(hidden=4, out_features=5, track_running_stats=False)
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="needs a model on a CUDA device, got parameters on \\['cpu'\\]"):
        GraphedMetaTrainStep(model, optimizer, F.cross_entropy, inner_steps=1, inner_lr=0.4)
    with pytest.raises(ValueError, match="CUDA device"):
        make_meta_train_step(model, optimizer, F.cross_entropy, inner_steps=1, inner_lr=0.4, cuda_graph=True)
    monkeypatch.setenv("METALEARN_LAB_CUDA_GRAPHS", "1")  # on the CPU the switch is ignored: eager steps
    step = make_meta_train_step(model, optimizer, F.cross_entropy, inner_steps=1, inner_lr=0.4)
    assert not isinstance(step, GraphedMetaTrainStep)


def test_bad_inner_loop_arguments_fail_when_the_step_is_made():
    model = Conv4(hidden=4, out_features=5, track_running_stats=False)
    with pytest.raises(ValueError, match="inner_lr must be a finite number > 0"):
        make_meta_train_step(model, torch.optim.Adam(model.parameters()), F.cross_entropy, inner_steps=1, inner_lr=-1.0)
