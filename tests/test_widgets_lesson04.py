"""Lesson 04's figures and "Try it" explorer: they build, and a slider change changes the plotted data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from metalearn_lab import plotting, widgets  # noqa: E402
from metalearn_lab.data.sinusoid import SinusoidTasks  # noqa: E402
from metalearn_lab.models import SineMLP  # noqa: E402


@pytest.fixture
def models():
    torch.manual_seed(0)
    return {"MAML": SineMLP(), "pretrained": SineMLP()}


@pytest.fixture
def explorer(models):
    return widgets.sine_adaptation_widget(models, inner_steps=1, inner_lr=0.01, k_shot=5, seed=0)


def ydata(explorer, name="MAML", line="adapted"):
    return np.asarray(explorer.lines[name][line].get_ydata(), dtype=float).copy()


def test_explorer_builds_with_one_panel_per_model(explorer):
    assert len(explorer.fig.axes) == 2
    assert len(ydata(explorer)) == 200
    assert explorer.steps.max == 20 and explorer.k_shot.min == 1 and explorer.k_shot.max == 20


@pytest.mark.parametrize(("slider", "value"), [("steps", 10), ("inner_lr", 0.1), ("k_shot", 12)])
def test_changing_a_slider_changes_the_adapted_curve(explorer, slider, value):
    before = ydata(explorer)
    getattr(explorer, slider).value = value
    assert not np.allclose(before, ydata(explorer)), f"moving {slider} to {value} left the adapted curve unchanged"


def test_zero_steps_shows_the_pre_update_curve(explorer):
    explorer.steps.value = 0
    np.testing.assert_allclose(ydata(explorer), ydata(explorer, line="pre"))


def test_k_shot_changes_the_support_points(explorer):
    assert len(explorer.lines["MAML"]["support"].get_offsets()) == 5
    explorer.k_shot.value = 9
    assert len(explorer.lines["MAML"]["support"].get_offsets()) == 9


def test_new_task_button_changes_the_true_curve(explorer):
    before = ydata(explorer, line="true")
    explorer.new_task.click()
    assert not np.allclose(before, ydata(explorer, line="true"))


def test_the_explorer_reuses_one_figure(explorer):
    fig, artist = explorer.fig, explorer.lines["MAML"]["adapted"]
    explorer.steps.value = 3
    explorer.k_shot.value = 7
    assert explorer.fig is fig and explorer.lines["MAML"]["adapted"] is artist


def test_model_weights_do_not_change(explorer, models):
    before = {k: v.clone() for k, v in models["MAML"].state_dict().items()}
    explorer.steps.value = 15
    for k, v in models["MAML"].state_dict().items():
        assert torch.equal(v, before[k])


def test_static_figure_has_a_panel_per_setting_and_model(models):
    fig = widgets.sine_adaptation_figure(models, [{"inner_steps": 1, "inner_lr": 0.01, "k_shot": 5},
                                                  {"inner_steps": 5, "inner_lr": 0.01, "k_shot": 10}])
    assert len(fig.axes) == 4
    plt.close(fig)
    with pytest.raises(ValueError, match="settings"):
        widgets.sine_adaptation_figure(models, [])


def test_adapted_predictions_step_by_step_match_one_call(models):
    batch = SinusoidTasks().sample(1, 5, generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(-5, 5, 11)
    xs, ys = batch.x_support[0], batch.y_support[0]
    stepwise = plotting.adapted_sine_predictions(models["MAML"], xs, ys, grid, steps=(0, 1, 4))
    direct = plotting.adapted_sine_predictions(models["MAML"], xs, ys, grid, steps=(4,))
    torch.testing.assert_close(stepwise[4], direct[4])
    assert not torch.allclose(stepwise[0], stepwise[4])


def test_figures_build(models):
    batch = SinusoidTasks().sample(3, 10, generator=torch.Generator().manual_seed(0))
    figs = [
        plotting.plot_sine_tasks(batch),
        plotting.plot_adapted_sines(models, batch, steps=(0, 1, 3)),
        plotting.plot_loss_curve([3.0, 2.0, 1.5] * 10, smooth=5),
        plotting.plot_mse_sweep([1, 2, 3], {"a": ([1.0, 2.0, 3.0], [0.1, 0.1, 0.1])}, xlabel="x", train_range=(1, 2)),
    ]
    assert len(figs[1].axes) == 6
    for fig in figs:
        plt.close(fig)
    with pytest.raises(ValueError, match="curve 'a'"):
        plotting.plot_mse_sweep([1, 2], {"a": ([1.0], [0.1])}, xlabel="x")
