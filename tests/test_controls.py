"""metalearn_lab.controls: labels that fit, step-size sliders that show the value in use."""

import ipywidgets as widgets
import pytest

from metalearn_lab.controls import RATES_1_2_5, fit_labels, rate_slider


def test_rates_are_one_two_five_per_decade_and_read_as_themselves():
    assert RATES_1_2_5[0] == 1e-4 and RATES_1_2_5[-1] == 1.0 and len(RATES_1_2_5) == 13
    assert all(float(f"{r:g}") == r for r in RATES_1_2_5)


@pytest.mark.parametrize("value", [0.4, 0.01, 0.05, 0.3])
def test_every_position_of_a_rate_slider_reads_as_the_value_it_sets(value):
    slider = rate_slider(value, RATES_1_2_5, description="inner lr α")
    assert slider.value == value and slider.label == f"{value:g}"
    for label, number in slider.options:  # what the readout shows at each position is the number used
        slider.value = number
        assert float(slider.label) == slider.value == number and label == slider.label


@pytest.mark.parametrize("bad", [(), (0.1, 0.0), (0.1, float("nan"))])
def test_rate_slider_rejects_choices_that_are_not_positive(bad):
    with pytest.raises(ValueError, match="choices"):
        rate_slider(0.1, bad, description="α")


def test_rate_slider_rejects_a_value_that_is_not_positive():
    with pytest.raises(ValueError, match="value must be a finite number > 0, got -0.1"):
        rate_slider(-0.1, (0.1,), description="α")


def test_fit_labels_gives_every_control_room_for_the_longest_description():
    controls = fit_labels(widgets.IntSlider(description="inner steps"), rate_slider(0.4, (0.4,), description="α"),
                          widgets.Dropdown(options=["MAML"], description="model"))
    assert {c.style.description_width for c in controls} == {f"{len('inner steps') + 2}ch"}
    with pytest.raises(ValueError, match="at least one control"):
        fit_labels()


# --- every Try-it figure that show_png saves untrimmed fits inside its own box ---

def _agg(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    return fig


def _outside(fig) -> bool:
    """Whether something is drawn outside ``fig`` (it would be cut off without a tight crop)."""
    fig = _agg(fig)
    box, inside = fig.get_tightbbox(fig.canvas.get_renderer()), fig.bbox_inches
    return box.x0 < -0.01 or box.y0 < -0.01 or box.x1 > inside.x1 + 0.01 or box.y1 > inside.y1 + 0.01


def _try_it_figures(monkeypatch):
    """The figures each Try-it shows with ``show_png(fig)`` (untrimmed), on small stand-in data."""
    import torch

    from metalearn_lab import rl
    from metalearn_lab.lessons import (
        applications,
        maml_math,
        maml_omniglot,
        maml_sinusoid,
        siamese_contrastive,
        tasks_and_episodes,
        why_meta_learning,
    )
    from metalearn_lab.models import Conv4, SineMLP

    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 4, generator=g, dtype=torch.float64)
    classes = torch.rand(12, 20, 1, 28, 28, generator=g)
    d, same = torch.rand(400, generator=g) * 2, (torch.rand(400, generator=g) < 0.5).float()
    yield "why_meta_learning", why_meta_learning.sine_overfit_view(5, 50, max_steps=50, record_every=25)
    yield "tasks_and_episodes", tasks_and_episodes.episode_view(classes, 5, 1, 2, 0)
    yield "maml_math", maml_math.first_order_gap_view((torch.zeros(4, dtype=torch.float64), x, x.sum(1), x, x.sum(1)))
    yield "maml_sinusoid", maml_sinusoid.sine_adaptation_widget({"MAML": SineMLP(), "pretrained": SineMLP()}).fig
    shown = []  # the threshold explorer draws its figure inside the widget: catch it on its way to show_png
    monkeypatch.setattr(siamese_contrastive, "show_png", lambda fig, **options: shown.append(fig))
    siamese_contrastive.threshold_widget(d, same, d, same)
    yield "siamese_contrastive threshold", shown[-1]
    model = Conv4(out_features=5, track_running_stats=False)
    yield "maml_omniglot", maml_omniglot.omniglot_adaptation_widget({"MAML": model}, classes).fig
    agents = {"MAML (meta-trained)": (rl.GaussianPolicy(), {"lrs": [0.5]})}
    yield "applications", applications.robot_widget(agents, steps=0, n_episodes=2).fig


def test_try_it_figures_shown_untrimmed_fit_in_their_box(monkeypatch):
    import matplotlib.pyplot as plt

    outside = [name for name, fig in _try_it_figures(monkeypatch) if _outside(fig)]
    plt.close("all")
    assert not outside, f"Try-it figures draw outside their box (show them with show_png(fig, crop='tight')): {outside}"
