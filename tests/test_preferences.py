"""metalearn_lab.data.preferences: the simulated users' preference curves (personalised learning)."""

from __future__ import annotations

import pytest
import torch

from metalearn_lab.data.preferences import PreferenceTasks, preference_curve


def test_shapes_ranges_and_reproducibility():
    users = PreferenceTasks()
    a = users.sample(50, 5, 20, generator=torch.Generator().manual_seed(0))
    b = users.sample(50, 5, 20, generator=torch.Generator().manual_seed(0))
    assert a.x_support.shape == (50, 5, 1) and a.y_query.shape == (50, 20, 1) and len(a) == 50
    assert torch.equal(a.y_support, b.y_support)
    assert float(a.x_support.min()) >= 0 and float(a.x_query.max()) <= 10
    for name, (low, high) in (("sweet_spot", (2, 8)), ("width", (0.8, 2.5)), ("height", (1, 4)), ("baseline", (-1, 1))):
        values = getattr(a, name)
        assert float(values.min()) >= low and float(values.max()) <= high, name
    assert users.sample(3, 4).x_query.shape == (3, 4, 1)  # n_query defaults to k_shot


def test_ratings_are_the_curve_plus_noise_of_the_stated_size():
    users = PreferenceTasks(noise=0.5)
    batch = users.sample(400, 10, 10, generator=torch.Generator().manual_seed(1))
    residual = batch.y_query - batch.true_query
    assert float(residual.std()) == pytest.approx(0.5, rel=0.05)
    assert users.noise_floor() == pytest.approx(0.25)
    clean = PreferenceTasks(noise=0.0).sample(5, 3, 3)
    torch.testing.assert_close(clean.y_query, clean.true_query)


def test_true_curve_peaks_at_the_sweet_spot_and_regret_is_zero_there():
    batch = PreferenceTasks().sample(20, 5, 5, generator=torch.Generator().manual_seed(2))
    grid = torch.linspace(0, 10, 2001)
    curves = batch.true_curve(grid)
    torch.testing.assert_close(grid[curves.argmax(1)], batch.sweet_spot, atol=0.006, rtol=0)
    assert float(batch.regret(batch.sweet_spot).abs().max()) < 1e-6
    far = batch.regret(batch.sweet_spot + 10)
    torch.testing.assert_close(far, batch.height, atol=1e-3, rtol=0)
    one = batch.task(3)
    assert len(one) == 1 and float(one.sweet_spot) == float(batch.sweet_spot[3])
    with pytest.raises(ValueError, match="one difficulty per user"):
        batch.regret(torch.zeros(3))


def test_preference_curve_by_hand():
    assert float(preference_curve(torch.tensor(5.0), 4.0, 1.0, 2.0, 0.5)) == pytest.approx(0.5 + 2.0 * 0.6065307)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": (0.0, 1.0)}, "width must be a range of positive numbers"),
    ({"sweet_spot": (5.0, 1.0)}, r"sweet_spot must be a pair \(low, high\) of finite numbers with low <= high"),
    ({"noise": -0.1}, "noise must be a finite number >= 0"),
    ({"x_range": (0.0,)}, "x_range must be a pair"),
])
def test_bad_populations_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreferenceTasks(**kwargs)


@pytest.mark.parametrize(("args", "message"), [((0, 5), "n_users"), ((3, 0), "k_shot"), ((3, 5, 0), "n_query")])
def test_bad_sample_sizes_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        PreferenceTasks().sample(*args)
