"""metalearn_lab.drawing: the family map with and without highlights."""

from __future__ import annotations

import matplotlib
import pytest

from metalearn_lab import drawing

matplotlib.use("Agg")


def _boxes(ax):
    return {t.get_text(): t for t in ax.texts}


def test_plain_family_map_is_unchanged_by_the_highlight_parameter():
    ax = drawing.draw_family_map()
    texts = _boxes(ax)
    for family, info in drawing.FAMILY_MAP.items():
        assert family in texts and all(m in texts for m in info["methods"])
    assert all(t.get_alpha() in (None, 1.0) for t in ax.texts)
    assert all(p.get_edgecolor()[:3] != matplotlib.colors.to_rgb("tab:red") for p in ax.patches)


def test_highlighted_methods_and_families_stand_out_and_the_rest_fades():
    ax = drawing.draw_family_map(highlight=["MAML (2017)", "metric-based"], note="what this lesson taught")
    texts = _boxes(ax)
    assert texts["MAML (2017)"].get_fontweight() == "bold" and texts["MAML (2017)"].get_alpha() in (None, 1.0)
    assert texts["Reptile (2018)"].get_alpha() == pytest.approx(0.35)
    for method in drawing.FAMILY_MAP["metric-based"]["methods"]:  # a family marks its methods too
        assert texts[method].get_alpha() in (None, 1.0)
    assert "what this lesson taught" in texts
    red = matplotlib.colors.to_rgba("tab:red")
    assert sum(tuple(p.get_edgecolor()) == red for p in ax.patches) == 1 + 1 + len(drawing.FAMILY_MAP["metric-based"]["methods"])


def test_unknown_highlight_names_are_refused_with_the_valid_names():
    with pytest.raises(ValueError, match=r"highlight names \['MAML'\] are not on the map; valid names: .*'MAML \(2017\)'"):
        drawing.draw_family_map(highlight=["MAML"])
