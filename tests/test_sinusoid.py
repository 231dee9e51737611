"""Tests for metalearn_lab.data.sinusoid: the task distribution of Finn et al. (2017)."""

from __future__ import annotations

import math

import pytest
import torch

from metalearn_lab.data.sinusoid import SinusoidBatch, SinusoidTasks, sinusoid


def test_sinusoid_formula():
    x = torch.tensor([0.0, math.pi / 2, math.pi])
    torch.testing.assert_close(sinusoid(x, 2.0, math.pi / 2), 2.0 * torch.sin(x - math.pi / 2))
    torch.testing.assert_close(sinusoid(x, 2.0, 0.0), torch.tensor([0.0, 2.0, 0.0]), atol=1e-6, rtol=0)


def test_sample_shapes_ranges_and_labels():
    tasks = SinusoidTasks(amplitude=(1.0, 2.0), phase=(0.5, 1.0), x_range=(-1.0, 3.0))
    batch = tasks.sample(50, k_shot=4, n_query=6, generator=torch.Generator().manual_seed(0))
    assert len(batch) == 50
    assert batch.x_support.shape == batch.y_support.shape == (50, 4, 1)
    assert batch.x_query.shape == batch.y_query.shape == (50, 6, 1)
    assert batch.amplitude.shape == batch.phase.shape == (50,)
    assert 1.0 <= float(batch.amplitude.min()) and float(batch.amplitude.max()) <= 2.0
    assert 0.5 <= float(batch.phase.min()) and float(batch.phase.max()) <= 1.0
    x = torch.cat([batch.x_support, batch.x_query], 1)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 3.0
    # every y is the task's own sine at its x
    y = torch.cat([batch.y_support, batch.y_query], 1)
    torch.testing.assert_close(y, sinusoid(x, batch.amplitude[:, None, None], batch.phase[:, None, None]))


def test_n_query_defaults_to_k_shot_and_seeding():
    tasks = SinusoidTasks()
    a = tasks.sample(3, 5, generator=torch.Generator().manual_seed(1))
    b = tasks.sample(3, 5, generator=torch.Generator().manual_seed(1))
    c = tasks.sample(3, 5, generator=torch.Generator().manual_seed(2))
    assert a.x_query.shape == (3, 5, 1)
    assert all(torch.equal(s, t) for s, t in zip(a.as_tuple(), b.as_tuple()))
    assert not torch.equal(a.x_support, c.x_support)
    assert tasks.sample(2, 3, dtype=torch.float64).x_support.dtype == torch.float64


def test_task_true_curve_and_grid():
    tasks = SinusoidTasks()
    batch = tasks.sample(4, 3, generator=torch.Generator().manual_seed(0))
    one = batch.task(2)
    assert isinstance(one, SinusoidBatch) and len(one) == 1
    assert torch.equal(one.x_query[0], batch.x_query[2]) and float(one.phase) == float(batch.phase[2])
    grid = tasks.grid(11)
    assert grid.shape == (11,) and float(grid[0]) == -5.0 and float(grid[-1]) == 5.0
    curve = batch.true_curve(grid)
    assert curve.shape == (4, 11)
    torch.testing.assert_close(curve[1], batch.amplitude[1] * torch.sin(grid - batch.phase[1]))


@pytest.mark.parametrize("field, value", [("amplitude", (5.0, 1.0)), ("phase", (0.0, float("nan"))), ("x_range", (1.0,)), ("amplitude", "ab")])
def test_bad_ranges(field, value):
    with pytest.raises(ValueError, match=field):
        SinusoidTasks(**{field: value})


@pytest.mark.parametrize("args, match", [((0, 5), "meta_batch_size"), ((2, 0), "k_shot"), ((2, 5, 0), "n_query"), ((2, 2.5), "k_shot")])
def test_bad_counts(args, match):
    with pytest.raises(ValueError, match=match):
        SinusoidTasks().sample(*args)
    with pytest.raises(ValueError, match="points"):
        SinusoidTasks().grid(1)


# --- task pools (meta-overfitting) ------------------------------------------------------------------

def test_pool_holds_n_tasks_drawn_once_and_samples_only_them():
    from metalearn_lab.data.sinusoid import SinusoidTaskPool

    pool = SinusoidTasks(amplitude=(1.0, 2.0)).pool(4, seed=3)
    assert isinstance(pool, SinusoidTaskPool) and len(pool) == 4
    assert bool(((pool.amplitude >= 1.0) & (pool.amplitude <= 2.0)).all())
    batch = pool.sample(50, k_shot=5, n_query=7, generator=torch.Generator().manual_seed(0))
    assert batch.x_support.shape == (50, 5, 1) and batch.y_query.shape == (50, 7, 1)
    assert set(batch.amplitude.tolist()) <= set(pool.amplitude.tolist()) and len(set(batch.amplitude.tolist())) == 4
    torch.testing.assert_close(batch.y_query, sinusoid(batch.x_query, batch.amplitude[:, None, None], batch.phase[:, None, None]))
    # the same seed gives the same pool; fresh inputs each call
    assert torch.equal(SinusoidTasks(amplitude=(1.0, 2.0)).pool(4, seed=3).amplitude, pool.amplitude)
    again = pool.sample(50, k_shot=5, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(again.x_support, batch.x_support)


def test_pool_of_one_task_is_always_that_task():
    pool = SinusoidTasks().pool(1, seed=0)
    batch = pool.sample(6, k_shot=3)
    assert len(set(batch.amplitude.tolist())) == 1 and len(set(batch.phase.tolist())) == 1


@pytest.mark.parametrize(("args", "message"), [
    ((0,), "n_tasks must be an integer >= 1"),
    ((2.5,), "n_tasks must be an integer"),
])
def test_bad_pool_sizes_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        SinusoidTasks().pool(*args)


def test_pool_refuses_a_distribution_that_is_not_sinusoid_tasks_and_bad_sample_arguments():
    from metalearn_lab.data.sinusoid import SinusoidTaskPool

    with pytest.raises(ValueError, match="distribution must be a SinusoidTasks"):
        SinusoidTaskPool("tasks", 3)
    with pytest.raises(ValueError, match="k_shot must be an integer >= 1"):
        SinusoidTasks().pool(2).sample(3, k_shot=0)
