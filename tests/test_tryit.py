"""metalearn_lab.tryit: pre-rendered Try-it explorers, and how the book build shows them."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import pytest

from metalearn_lab.tryit import MIMETYPE, explorer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _notebook_utils as nbu  # noqa: E402


def draw(slope, offset):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [offset, offset + slope])
    ax.set_ylim(-3, 3)
    return fig


def test_every_combination_is_drawn_once_and_differs():
    e = explorer(draw, {"slope": [-1.0, 0.0, 1.0], "offset": [0, 1]}, initial={"slope": 0.0, "offset": 1},
                 labels={"slope": "slope a"}, title="a line")
    assert len(e.frames) == 6 and len(set(e.frames.values())) == 6
    assert all(frame.startswith(b"\x89PNG") for frame in e.frames.values())
    assert e.frame(slope=1.0, offset=0) == e.frames["2,0"]
    bundle = e._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]) == e.frame(slope=0.0, offset=1)
    page = bundle[MIMETYPE]
    assert page.count('type="range"') == 2 and "slope a" in page and "a line" in page
    assert len(re.findall(r"data:image/png;base64,", page)) == 6 + 1  # every frame, and the first shown
    assert f'id="{e.id}"' in page and "<script>" in page


@pytest.mark.parametrize("kwargs, match", [
    ({"sliders": {}}, "at least one value"),
    ({"sliders": {"slope": []}}, "at least one value"),
    ({"sliders": {"slope": [1.0], "offset": [0]}, "initial": {"slope": 2.0}}, "not one of the slider values"),
    ({"sliders": {"slope": [1.0, 2.0], "offset": [0, 1]}, "max_bytes": 100}, "exceed max_bytes=100"),
])
def test_bad_explorers_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        explorer(draw, **kwargs)


def test_frame_needs_valid_values():
    e = explorer(draw, {"slope": [0.0, 1.0], "offset": [0]})
    with pytest.raises(ValueError, match="missing"):
        e.frame(slope=0.0)
    with pytest.raises(ValueError, match="not a slider value"):
        e.frame(slope=0.5, offset=0)


def test_book_build_drops_live_widgets_and_shows_explorers():
    build = nbu.load_build()
    e = explorer(draw, {"slope": [0.0, 1.0], "offset": [0]})
    bundle = e._repr_mimebundle_()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("widget", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/plain": "interactive(...)", build.WIDGET_VIEW: {"model_id": "x"}})]),
        nbformat.v4.new_code_cell("explorer", outputs=[nbformat.v4.new_output(
            "display_data", data={"image/png": bundle["image/png"], MIMETYPE: bundle[MIMETYPE], "text/plain": "<explorer>"})]),
    ])
    nb.metadata["widgets"] = {"state": {}}
    assert build.TRYIT_MIMETYPE == MIMETYPE
    counts = build.prepare_for_book(nb)
    assert counts == {"live widgets dropped": 1, "pre-rendered explorers": 1, "lesson links": 0}
    assert nb.cells[0].outputs == [] and "widgets" not in nb.metadata
    assert set(nb.cells[1].outputs[0]["data"]) == {"text/html", "text/plain"}
    assert 'type="range"' in nb.cells[1].outputs[0]["data"]["text/html"]


def _png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_crop_first_measures_the_first_frames_box_once_and_keeps_it():
    tight = explorer(draw, {"slope": [-1.0, 1.0], "offset": [0, 1]})
    first = explorer(draw, {"slope": [-1.0, 1.0], "offset": [0, 1]}, crop="first")
    assert first.frames.keys() == tight.frames.keys() and len(set(first.frames.values())) == 4
    sizes = {_png_size(png) for png in first.frames.values()}
    assert sizes == {_png_size(tight.frames["0,0"])}, sizes  # every frame cut to the first one's tight box
    with pytest.raises(ValueError, match="crop must be 'tight' or 'first', got 'loose'"):
        explorer(draw, {"slope": [1.0]}, crop="loose")
