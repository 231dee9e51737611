"""Tests for metalearn_lab.drawing: the family map and its highlights."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from metalearn_lab import drawing


def thick(ax):
    return [p for p in ax.patches if p.get_linewidth() > 2]


def test_the_plain_map_marks_nothing():
    ax = drawing.draw_family_map()
    assert ax.patches and not thick(ax)
    assert all(p.get_alpha() in (None, 1.0) for p in ax.patches)
    plt.close(ax.figure)


@pytest.mark.parametrize("names", [["model-based (black-box)"], ["Bayesian", "non-parametric", "ProtoNets (2017)"]])
def test_highlighted_boxes_are_framed_and_the_rest_faded(names):
    ax = drawing.draw_family_map(highlight=names, title="where this lesson sits")
    assert len(thick(ax)) == len(names)
    faded = [p for p in ax.patches if p.get_alpha() is not None and p.get_alpha() < 1]
    assert len(faded) == len(ax.patches) - len(names)
    assert ax.get_title() == "where this lesson sits"
    plt.close(ax.figure)


def test_every_name_on_the_map_can_be_highlighted_and_unknown_ones_are_refused():
    for name in drawing.family_map_names():
        plt.close(drawing.draw_family_map(highlight=[name]).figure)
    with pytest.raises(ValueError, match="not on the map"):
        drawing.draw_family_map(highlight=["MAML"])


def test_a_note_under_the_map_says_what_the_marks_mean():
    ax = drawing.draw_family_map(highlight=["MAML (2017)"], note="this lesson: MAML")
    red = [t.get_text() for t in ax.texts if t.get_color() == drawing.HIGHLIGHT_COLOR]
    assert red == ["this lesson: MAML"], red  # the given note, once, and not a box's description
    plt.close(ax.figure)
    ax = drawing.draw_family_map()  # no note: nothing under the map
    assert not [t.get_text() for t in ax.texts if t.get_color() == drawing.HIGHLIGHT_COLOR]
    assert ax.figure.get_size_inches()[1] == 5
    plt.close(ax.figure)
