"""Try-it figures that work without a kernel: every slider position drawn in advance.

A lesson's "Try it" is an ipywidgets explorer that redraws a figure when a slider moves; it needs a
running kernel. Its twin for the book is :func:`explorer`: the same drawing function called once
for every combination of a few slider values, each figure kept as a small PNG, and a page element
with plain HTML range sliders that shows the frame for the chosen values. No kernel, no server:
it works in the built book and in any browser.

In JupyterLab the explorer shows its first frame as an ordinary image. Its interactive HTML is
stored under a mimetype of its own (:data:`MIMETYPE`), which JupyterLab ignores; the book's build
(``book/build.py``) turns it into the page's HTML and drops the live widgets' outputs, so the book
shows no slider that does nothing.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import uuid
from typing import Any, Callable, Mapping, Sequence

from metalearn_lab.validation import check_int

#: The mimetype that carries the pre-rendered explorer's HTML in a notebook output.
MIMETYPE = "application/vnd.metalearn-lab.tryit+html"
#: Default limit on the PNG bytes of one explorer (the page budget is stated in the book's README).
MAX_BYTES = 2_500_000


class StaticExplorer:
    """Pre-rendered frames of a figure over a grid of slider values (see :func:`explorer`).

    Attributes
    ----------
    sliders : dict name -> list of values
    frames : dict ``"i,j,..."`` (value indices) -> PNG bytes
    initial : dict name -> value
    """

    def __init__(self, sliders: dict[str, list[Any]], frames: dict[str, bytes], initial: dict[str, Any],
                 labels: dict[str, str], title: str | None) -> None:
        self.sliders, self.frames, self.initial, self.labels, self.title = sliders, frames, initial, labels, title
        self.id = f"tryit-{uuid.uuid4().hex[:10]}"

    @property
    def nbytes(self) -> int:
        """Total size of the frames' PNG data."""
        return sum(len(b) for b in self.frames.values())

    def _key(self, values: Mapping[str, Any]) -> str:
        return ",".join(str(self.sliders[name].index(values[name])) for name in self.sliders)

    def frame(self, **values: Any) -> bytes:
        """The PNG drawn for these slider values (every slider must be given one of its values)."""
        missing = [n for n in self.sliders if n not in values]
        if missing:
            raise ValueError(f"give a value for every slider; missing {missing}")
        for name, value in values.items():
            if name not in self.sliders or value not in self.sliders[name]:
                raise ValueError(f"{name}={value!r} is not a slider value; valid: {self.sliders.get(name)}")
        return self.frames[self._key(values)]

    def html(self) -> str:
        """The stand-alone HTML element: the image and one range slider per parameter, with a little JS."""
        frames = {k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in self.frames.items()}
        start = [self.sliders[n].index(self.initial[n]) for n in self.sliders]
        rows = []
        for i, (name, values) in enumerate(self.sliders.items()):
            label = html.escape(self.labels.get(name, name))
            shown = html.escape(_fmt(values[start[i]]))
            rows.append(
                f'<label style="display:flex;align-items:center;gap:0.6em;margin:0.2em 0">'
                f'<span style="min-width:12em">{label}</span>'
                f'<input type="range" min="0" max="{len(values) - 1}" step="1" value="{start[i]}" data-slider="{i}" '
                f'aria-label="{label}" style="flex:1;max-width:22em">'
                f'<output data-value="{i}" style="min-width:4em">{shown}</output></label>'
            )
        values_js = json.dumps([[_fmt(v) for v in values] for values in self.sliders.values()])
        title = f'<div style="font-weight:bold;margin-bottom:0.3em">{html.escape(self.title)}</div>' if self.title else ""
        return (
            f'<div class="metalearn-tryit" id="{self.id}" style="border:1px solid #ddd;border-radius:6px;padding:0.6em">'
            f'{title}{"".join(rows)}'
            f'<img alt="pre-rendered figure" style="max-width:100%;display:block;margin-top:0.4em" src="{frames[",".join(map(str, start))]}">'
            f'<div style="font-size:0.8em;color:#666">Pre-rendered: every combination of these values was drawn '
            f'when the book was built ({len(self.frames)} figures). In JupyterLab the live widget above '
            f'takes any value.</div></div>'
            f'<script>(function(){{var root=document.getElementById("{self.id}");var frames={json.dumps(frames)};'
            f'var labels={values_js};var inputs=root.querySelectorAll("input[data-slider]");'
            f'function show(){{var key=[];inputs.forEach(function(el,i){{key.push(el.value);'
            f'root.querySelector("output[data-value=\\""+i+"\\"]").textContent=labels[i][+el.value];}});'
            f'root.querySelector("img").src=frames[key.join(",")];}}'
            f'inputs.forEach(function(el){{el.addEventListener("input",show);}});}})();</script>'
        )

    def _repr_mimebundle_(self, include=None, exclude=None):
        first = self.frame(**self.initial)
        return {"image/png": base64.b64encode(first).decode(), MIMETYPE: self.html()}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def explorer(draw: Callable[..., Any], sliders: Mapping[str, Sequence[Any]], *, initial: Mapping[str, Any] | None = None,
             labels: Mapping[str, str] | None = None, title: str | None = None, dpi: int = 60,
             max_bytes: int = MAX_BYTES, crop: str = "tight") -> StaticExplorer:
    """Draw ``draw(**values)`` for every combination of slider values and return the explorer.

    Parameters
    ----------
    draw : callable ``(**values) -> matplotlib Figure``
        Called once per combination; the figure is saved as PNG and closed.
    sliders : dict name -> sequence of values
        The values each slider may take (a few each: the number of frames is their product).
    initial : dict name -> value, optional
        The frame shown first (default: the first value of each slider).
    labels : dict name -> str, optional
        Slider labels (default: the names).
    title : str, optional
    dpi : int
        Resolution of the frames (60 keeps a typical figure near 20-40 kB).
    max_bytes : int
        Refuse (``ValueError``) an explorer whose frames take more than this, naming the size: use
        fewer values or a lower ``dpi``.
    crop : "tight" or "first"
        "tight": each frame is cropped to its own tight bounding box. "first": the first frame's
        box (plus 0.1 inch) is measured once and used for every frame, which saves a drawing pass
        per frame (a third to a half of the time) for figures that keep their shape and layout.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> def draw(a, b):
    ...     fig, ax = plt.subplots(figsize=(2, 1.5)); ax.plot([0, 1], [a, b]); return fig
    >>> e = explorer(draw, {"a": [0, 1], "b": [0.5, 2.0]}, initial={"a": 1, "b": 2.0})
    >>> len(e.frames), e.frame(a=1, b=2.0) == e.frames["1,1"]
    (4, True)
    """
    import matplotlib.pyplot as plt

    dpi, max_bytes = check_int("dpi", dpi, minimum=1), check_int("max_bytes", max_bytes, minimum=1)
    sliders = {name: list(values) for name, values in sliders.items()}
    if not sliders or any(len(v) == 0 for v in sliders.values()):
        raise ValueError(f"sliders must map each name to at least one value, got {sliders}")
    initial = {name: values[0] for name, values in sliders.items()} | dict(initial or {})
    for name, value in initial.items():
        if name not in sliders or value not in sliders[name]:
            raise ValueError(f"initial {name}={value!r} is not one of the slider values {sliders.get(name)}")
    if crop not in ("tight", "first"):
        raise ValueError(f"crop must be 'tight' or 'first', got {crop!r}")
    frames: dict[str, bytes] = {}
    total = 0
    box = "tight"
    for indices in itertools.product(*(range(len(v)) for v in sliders.values())):
        values = {name: sliders[name][i] for name, i in zip(sliders, indices)}
        fig = draw(**values)
        buffer = io.BytesIO()
        if crop == "first" and box == "tight":
            from metalearn_lab.controls import tight_box

            box = tight_box(fig)
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches=box)
        plt.close(fig)
        frames[",".join(map(str, indices))] = buffer.getvalue()
        total += len(frames[",".join(map(str, indices))])
        if total > max_bytes:
            raise ValueError(f"the explorer's frames exceed max_bytes={max_bytes:,} bytes after {len(frames)} of "
                             f"{_count(sliders)} figures: give fewer slider values or a lower dpi")
    return StaticExplorer(sliders, frames, initial, dict(labels or {}), title)


def _count(sliders: Mapping[str, Sequence[Any]]) -> int:
    n = 1
    for values in sliders.values():
        n *= len(values)
    return n
