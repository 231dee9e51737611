"""metalearn_lab.diagnostics: each check fails on the bug it is for and passes on the library's own code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metalearn_lab import diagnostics
from metalearn_lab.data.sinusoid import SinusoidTasks
from metalearn_lab.maml import adapt_and_predict, meta_gradient, meta_loss
from metalearn_lab.models import Conv4, SineMLP


def episode(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(5, 1, 16, 16, generator=gen, dtype=torch.float64), torch.arange(5),
            torch.rand(10, 1, 16, 16, generator=gen, dtype=torch.float64), torch.arange(5).repeat(2))


def test_library_meta_gradient_passes_the_gradient_check_and_its_first_order_version_fails():
    model = SineMLP().double()
    params = dict(model.named_parameters())
    batch = SinusoidTasks().sample(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64).as_tuple()

    def full():
        loss, _ = meta_loss(model, params, batch, F.mse_loss, inner_steps=2, inner_lr=0.05)
        return loss, meta_gradient(model, params, batch, F.mse_loss, inner_steps=2, inner_lr=0.05)

    def first_order():
        loss, _ = meta_loss(model, params, batch, F.mse_loss, inner_steps=2, inner_lr=0.05)
        return loss, meta_gradient(model, params, batch, F.mse_loss, inner_steps=2, inner_lr=0.05, first_order=True)

    before = {k: v.clone() for k, v in params.items()}
    assert diagnostics.check_gradient(full, params).passed
    assert not diagnostics.check_gradient(first_order, params).passed
    assert all(torch.equal(before[k], v) for k, v in params.items())  # the check restores the weights


def test_check_gradient_refuses_a_gradient_without_every_parameter():
    w = torch.ones(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="no entry for"):
        diagnostics.check_gradient(lambda: (w.sum(), {}), {"w": w})
    with pytest.raises(ValueError, match="eps must be"):
        diagnostics.check_gradient(lambda: (w.sum(), {"w": w}), {"w": w}, eps=0.0)


def test_library_evaluation_in_eval_mode_passes_checks_three_to_five():
    model = Conv4(hidden=8, out_features=5).double().eval()

    def predict(m, xs, ys, xq, yq):
        return adapt_and_predict(m, (xs[None], ys[None], xq[None], yq[None]), F.cross_entropy,
                                 inner_steps=2, inner_lr=0.4)[0]

    for check in (diagnostics.check_leaves_model_unchanged(lambda m: predict(m, *episode()), model),
                  diagnostics.check_queries_independent(predict, model, *episode()),
                  diagnostics.check_no_label_leak(predict, model, *episode())):
        assert check.passed, check.line


def test_batch_statistics_make_maml_evaluation_transductive():
    """MAML's Conv4 (batch statistics only, as in Finn et al.'s code) is transductive: check 4 says so."""
    model = Conv4(hidden=8, out_features=5, track_running_stats=False).double()

    def predict(m, xs, ys, xq, yq):
        return adapt_and_predict(m, (xs[None], ys[None], xq[None], yq[None]), F.cross_entropy,
                                 inner_steps=1, inner_lr=0.4)[0]

    result = diagnostics.check_queries_independent(predict, model, *episode())
    assert not result.passed and "transductive" in result.detail
    assert diagnostics.check_leaves_model_unchanged(lambda m: predict(m, *episode()), model).passed


def test_training_mode_evaluation_writes_running_statistics():
    model = Conv4(hidden=8, out_features=5).double().train()
    result = diagnostics.check_leaves_model_unchanged(lambda m: m(episode()[2]), model)
    assert not result.passed and "running_mean" in result.detail and "buffers" in result.detail
    weights_only = diagnostics.check_leaves_model_unchanged(lambda m: m(episode()[2]), model, buffers=False)
    assert weights_only.passed and weights_only.detail == "every weight as before"


def test_mode_changes_are_reported():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
    result = diagnostics.check_leaves_model_unchanged(lambda m: m.eval(), model)
    assert not result.passed and "train/eval mode" in result.detail


def test_regression_label_leak_is_found_by_negating_the_targets():
    xs, ys = torch.randn(5, 1), torch.randn(5, 1)
    xq, yq = torch.randn(4, 1), torch.randn(4, 1)
    leak = diagnostics.check_no_label_leak(lambda m, a, b, c, d: d * 2, None, xs, ys, xq, yq)
    assert not leak.passed and leak.line.startswith("✗ query labels unused")


def test_independence_needs_two_queries():
    xs, ys, xq, yq = episode()
    with pytest.raises(ValueError, match="at least 2 queries"):
        diagnostics.check_queries_independent(lambda *a: torch.zeros(1, 5), None, xs, ys, xq[:1], yq[:1])
