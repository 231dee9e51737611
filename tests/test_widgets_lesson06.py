"""Lesson 06's figures and "Try it" explorer: they build, respond to the controls, and stay fast."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import time  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from metalearn_lab import plotting, widgets  # noqa: E402
from metalearn_lab.models import Conv4  # noqa: E402
from metalearn_lab.samplers import EpisodeSampler  # noqa: E402


@pytest.fixture(scope="module")
def classes():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(12, 20, 1, 28, 28, generator=g) > 0.8).float()


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"MAML": Conv4(out_features=5, track_running_stats=False),
            "first-order MAML": Conv4(out_features=5, track_running_stats=False)}


def test_adapt_episode_matches_library_and_leaves_model_alone(models, classes):
    from torch.nn import functional as F

    from metalearn_lab.maml import adapt_and_predict

    model = models["MAML"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    episode = EpisodeSampler(classes, 5, 1, 3).sample(1, generator=torch.Generator().manual_seed(1))
    out = widgets.adapt_episode(model, episode, inner_steps=2, inner_lr=0.4)
    want = adapt_and_predict(model, episode.as_tuple(), F.cross_entropy, inner_steps=2, inner_lr=0.4)[0]
    assert torch.allclose(out["logits"], want)
    assert out["accuracy"] == float((want.argmax(-1) == episode.y_query[0]).float().mean())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_explorer_responds_to_controls(models, classes):
    explorer = widgets.omniglot_adaptation_widget(models, classes, inner_steps=0, seed=3)
    first = explorer.result["predicted"].clone()
    explorer.steps.value = 5
    assert explorer.fig.axes, "the figure was not drawn"
    assert "5 inner steps" in explorer.fig._suptitle.get_text()
    assert explorer.result["logits"].shape == (25, 5)
    explorer.model.value = "first-order MAML"
    assert explorer.fig._suptitle.get_text().startswith("first-order MAML")
    old = explorer.episode.x_support.clone()
    explorer.next_episode()
    assert explorer.seed == 4 and not torch.equal(old, explorer.episode.x_support)
    assert first.shape == explorer.result["predicted"].shape


def test_explorer_is_fast(models, classes):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the lesson does
    try:
        explorer = widgets.omniglot_adaptation_widget(models, classes, inner_steps=0)
        start = time.perf_counter()
        explorer.steps.value = 10
        total = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    # ten inner steps and a redraw: a few hundred ms on a laptop; slack for a busy shared machine
    assert explorer.result["seconds"] < 1.5, f"adaptation took {explorer.result['seconds']:.2f} s"
    assert total < 3.0, f"a slider change took {total:.2f} s"


def test_explorer_needs_a_model(classes):
    with pytest.raises(ValueError, match="at least one model"):
        widgets.omniglot_adaptation_widget({}, classes)


def test_static_figure(models, classes):
    fig, accuracy = widgets.omniglot_adaptation_figure(models["MAML"], classes, steps=(0, 3), seed=2)
    assert set(accuracy) == {0, 3} and all(0 <= a <= 1 for a in accuracy.values())
    assert [ax.get_title().split(":")[0] for ax in fig.axes[1:]] == ["0 steps", "3 steps"]
    plt.close(fig)


def test_episode_predictions_colours():
    y = torch.arange(2)
    fig = plotting.plot_episode_predictions(torch.rand(2, 1, 8, 8), y, torch.rand(4, 1, 8, 8), y.repeat_interleave(2),
                                            torch.tensor([0, 1, 1, 1]))
    frames = [p.get_edgecolor() for p in fig.axes[1].patches]
    green, red = matplotlib.colors.to_rgba("#2e7d32"), matplotlib.colors.to_rgba("#c62828")
    assert frames.count(green) == 3 and frames.count(red) == 1
    assert "75%" in fig._suptitle.get_text()
    plt.close(fig)


def test_training_histories_and_adaptation_curve():
    h = {"step": list(range(100)), "metric": [i / 100 for i in range(100)], "eval_step": [50, 100],
         "eval_metric": [0.6, 0.9], "loss": [1.0] * 100}
    fig = plotting.plot_training_histories({"MAML": h, "Reptile": {"step": [0, 1], "metric": [float("nan")] * 2}})
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[1].lines) == 1
    plt.close(fig)
    ax = plotting.plot_adaptation_curve(range(3), {"MAML": ([0.2, 0.5, 0.9], [0.1, 0.1, 0.1])},
                                        references={"ProtoNet": (0.95, 0.01)}, chance=0.2)
    assert list(ax.lines[0].get_ydata()) == pytest.approx([20, 50, 90])
    with pytest.raises(ValueError, match="2 points for 3"):
        plotting.plot_adaptation_curve(range(3), {"bad": ([0.1, 0.2], [0.0, 0.0])})
    plt.close("all")
