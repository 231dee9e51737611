"""Tests for metalearn_lab.baselines: the pooled-training ("pretrained") baseline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metalearn_lab.baselines import kernel_regression, knn_regression, pretrain
from metalearn_lab.data.sinusoid import SinusoidTasks
from metalearn_lab.models import SineMLP


def test_pretrain_fits_a_fixed_function():
    torch.manual_seed(0)
    model = SineMLP()
    x = torch.linspace(-5, 5, 50)[:, None]
    y = 0.5 * x
    losses = pretrain(model, lambda: (x, y), F.mse_loss, iterations=150, lr=1e-2, progress=False)
    assert len(losses) == 150
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])
    with torch.no_grad():
        assert float(F.mse_loss(model(x), y)) == pytest.approx(losses[-1], rel=0.5, abs=1e-2)


def test_pretrain_on_pooled_sines_learns_the_mean_near_zero():
    torch.manual_seed(0)
    model = SineMLP()
    tasks, generator = SinusoidTasks(), torch.Generator().manual_seed(0)

    def sample():
        b = tasks.sample(25, 10, generator=generator)
        return b.x_support.reshape(-1, 1), b.y_support.reshape(-1, 1)

    pretrain(model, sample, F.mse_loss, iterations=100, progress=False)
    # averaged over random phases the best pooled fit is small everywhere: far below the sines' spread
    x = torch.linspace(-5, 5, 100)[:, None]
    with torch.no_grad():
        assert float(model(x).abs().max()) < 1.5


@pytest.mark.parametrize("kwargs, match", [(dict(iterations=0), "iterations"), (dict(iterations=2.0), "iterations"),
                                           (dict(iterations=2, lr=0.0), "lr"), (dict(iterations=2, lr="1"), "lr")])
def test_pretrain_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pretrain(SineMLP(), lambda: (torch.zeros(2, 1), torch.zeros(2, 1)), F.mse_loss, progress=False, **kwargs)


def _regression_sets():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 6, 1, generator=g) * 10 - 5, torch.randn(3, 6, 1, generator=g), torch.rand(3, 4, 1, generator=g) * 10 - 5


def test_one_nearest_neighbour_copies_the_nearest_label():
    xs, ys, xq = _regression_sets()
    got = knn_regression(xs, ys, xq, 1)
    nearest = torch.cdist(xq, xs).argmin(-1)
    torch.testing.assert_close(got[..., 0], ys[..., 0].gather(1, nearest))


def test_k_at_least_the_support_size_predicts_the_mean_label():
    xs, ys, xq = _regression_sets()
    torch.testing.assert_close(knn_regression(xs, ys, xq, 50), ys.mean(1, keepdim=True).expand(-1, 4, -1))


def test_kernel_regression_between_nearest_neighbour_and_the_mean():
    xs, ys, xq = _regression_sets()
    torch.testing.assert_close(kernel_regression(xs, ys, xq, 1e-3), knn_regression(xs, ys, xq, 1))
    torch.testing.assert_close(kernel_regression(xs, ys, xq, 1e4), ys.mean(1, keepdim=True).expand(-1, 4, -1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda xs, ys, xq: knn_regression(xs, ys, xq, 0), "k must be"),
        (lambda xs, ys, xq: kernel_regression(xs, ys, xq, 0.0), "bandwidth"),
        (lambda xs, ys, xq: knn_regression(xs[:, :0], ys[:, :0], xq, 1), "at least one support point"),
        (lambda xs, ys, xq: kernel_regression(xs, ys[:, :3], xq, 1.0), "must agree"),
    ],
)
def test_bad_regression_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call(*_regression_sets())


# ---------------------------------------------------------------- fit_from_scratch_batch
def test_fit_from_scratch_batch_equals_one_run_per_task():
    from metalearn_lab.baselines import fit_from_scratch, fit_from_scratch_batch

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4, 5, 1, generator=generator) * 6 - 3
    y = torch.sin(x) + 0.1 * torch.randn(x.shape, generator=generator)
    grid = torch.linspace(-3, 3, 9)[:, None]
    batched = fit_from_scratch_batch(x, y, grid.expand(4, -1, -1), steps=40, lr=1e-2, seed=3)
    for i in range(4):
        single = fit_from_scratch(x[i], y[i], grid, steps=40, lr=1e-2, seed=3 + i, record_every=40)
        torch.testing.assert_close(batched[i, :, 0], single["predictions"][-1], atol=1e-5, rtol=1e-4)


def test_fit_from_scratch_batch_records_every_requested_step_count():
    from metalearn_lab.baselines import fit_from_scratch_batch

    x = torch.linspace(-2, 2, 5).expand(2, 5)[..., None]
    y = x**2
    recorded = fit_from_scratch_batch(x, y, x, record_at=(0, 10, 30))
    assert sorted(recorded) == [0, 10, 30]
    torch.testing.assert_close(recorded[30], fit_from_scratch_batch(x, y, x, steps=30))
    errors = {s: float(((p - y) ** 2).mean()) for s, p in recorded.items()}
    assert errors[30] < errors[0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": -1}, "steps must be an integer >= 0"), ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"record_at": ()}, "record_at must name at least one"), ({"record_at": (-2,)}, "record_at must be an integer >= 0"),
])
def test_fit_from_scratch_batch_refuses_bad_arguments(kwargs, message):
    from metalearn_lab.baselines import fit_from_scratch_batch

    x = torch.zeros(2, 3, 1)
    with pytest.raises(ValueError, match=message):
        fit_from_scratch_batch(x, x, x, **kwargs)


def test_fit_from_scratch_batch_refuses_mismatched_shapes():
    from metalearn_lab.baselines import fit_from_scratch_batch

    with pytest.raises(ValueError, match=r"x_support and y_support must be \[n_tasks, K, 1\]"):
        fit_from_scratch_batch(torch.zeros(2, 3, 1), torch.zeros(2, 4, 1), torch.zeros(2, 3, 1))
