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
    with pytest.raises(ValueError, match="value must be a positive number, got -0.1"):
        rate_slider(-0.1, (0.1,), description="α")


def test_fit_labels_gives_every_control_room_for_the_longest_description():
    controls = fit_labels(widgets.IntSlider(description="inner steps"), rate_slider(0.4, (0.4,), description="α"),
                          widgets.Dropdown(options=["MAML"], description="model"))
    assert {c.style.description_width for c in controls} == {f"{len('inner steps') + 2}ch"}
    with pytest.raises(ValueError, match="at least one control"):
        fit_labels()
