"""What every lesson's pre-rendered Try-it (metalearn_lab.tryit.explorer) must satisfy, for the lesson tests."""

from __future__ import annotations

import math

from metalearn_lab.tryit import MAX_BYTES

MAX_FRAMES = 40  # the size budget of one explorer (CONTRIBUTING.md, "A lesson")


def check_explorer(explorer, sliders: dict) -> None:
    """``explorer`` offers exactly ``sliders`` (name -> values), one PNG per combination, within the
    budget, and moving any one slider from the first frame changes the figure."""
    assert explorer.sliders == {name: list(values) for name, values in sliders.items()}
    count = math.prod(len(values) for values in sliders.values())
    assert len(explorer.frames) == count <= MAX_FRAMES, f"{len(explorer.frames)} frames (budget {MAX_FRAMES})"
    assert all(png.startswith(b"\x89PNG") for png in explorer.frames.values())
    assert explorer.nbytes <= MAX_BYTES, f"{explorer.nbytes:,} bytes of frames (budget {MAX_BYTES:,})"
    for name, values in explorer.sliders.items():
        frames = [explorer.frame(**{**explorer.initial, name: value}) for value in values]
        assert len(set(frames)) == len(values), f"moving {name!r} over {values} does not change the figure every time"
    page = explorer.html()
    assert 'class="metalearn-tryit"' in page and page.count('type="range"') == len(sliders)


def record_draws(monkeypatch, cls) -> list[tuple]:
    """Record every call ``(args, kwargs)`` of ``cls.draw``: the one drawing function that a Try-it's
    live widget and its pre-rendered explorer share."""
    calls: list[tuple] = []
    original = cls.draw

    def draw(self, *args, **kwargs):
        calls.append((args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "draw", draw)
    return calls


def displayed_controls(monkeypatch, show, *args, **kwargs) -> list:
    """Run a live Try-it ``show(*args, **kwargs)`` (a function that displays an ipywidgets box) and
    return the controls of the box it displays (the children with a value: sliders, buttons)."""
    import ipywidgets as widgets

    shown: list = []
    monkeypatch.setattr("IPython.display.display", lambda *objects, **_: shown.extend(objects))
    show(*args, **kwargs)
    box = next(obj for obj in reversed(shown) if isinstance(obj, widgets.Box))
    return [child for child in box.children if hasattr(child, "value") and not isinstance(child, widgets.Output)]


def offered(control) -> list:
    """The values a live control lets the learner choose (an integer slider's range, a selection's options)."""
    if hasattr(control, "options"):
        return [value for _, value in control.options] if control.options and isinstance(control.options[0], tuple) \
            else list(control.options)
    return list(range(control.min, control.max + 1, control.step))
