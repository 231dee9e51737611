"""Controls that the lessons' Try-it widgets share: labels that fit, step sizes shown exactly.

Two faults of plain ipywidgets sliders that a learner meets: the label is 80 px wide whatever it
says ("K (support poi…"), and a log-scale slider snaps to its own grid and shows a rounded number
(0.4 becomes 10**-0.4 = 0.398). :func:`fit_labels` and :func:`rate_slider` remove them;
``tests/test_notebooks.py`` checks every lesson's widgets for both.
"""

from __future__ import annotations

from collections.abc import Sequence

from metalearn_lab.validation import check_float

# Step sizes for a learning-rate slider: 1, 2 and 5 per decade, from 1e-4 to 1.
RATES_1_2_5 = tuple(float(f"{m}e{e}") for e in range(-4, 1) for m in (1, 2, 5) if e < 0 or m == 1)


def fit_labels(*controls):
    """Give ``controls`` one label width that holds the longest description, so no label is cut off.

    The width is in ``ch`` (the width of a digit in the label's font): two more than the longest
    description, the same for all, so the sliders still line up.

    Parameters
    ----------
    *controls : ipywidgets with a ``description`` and a ``style`` (sliders, dropdowns)

    Returns
    -------
    tuple
        The same controls.

    Examples
    --------
    >>> import ipywidgets as widgets
    >>> k, n = fit_labels(widgets.IntSlider(description="K (support points)"), widgets.IntSlider(description="n"))
    >>> k.style.description_width, n.style.description_width
    ('20ch', '20ch')
    """
    if not controls:
        raise ValueError("fit_labels needs at least one control")
    width = f"{max(len(control.description) for control in controls) + 2}ch"
    for control in controls:
        control.style.description_width = width
    return controls


def rate_slider(value: float, choices: Sequence[float], *, description: str):
    """A slider over fixed step sizes (learning rates) that shows exactly the value it sets.

    Every position is one of ``choices`` (``value`` is added if missing) and reads as that number,
    where a log-scale slider would snap to its grid and show a rounded value.

    Parameters
    ----------
    value : float > 0
        Starting value.
    choices : sequence of float > 0
        The values offered, e.g. :data:`RATES_1_2_5`.
    description : str

    Returns
    -------
    ipywidgets.SelectionSlider
        ``.value`` is the float in use, ``.label`` its readout (``f"{value:g}"``).

    Raises
    ------
    ValueError
        If ``choices`` is empty or holds a number <= 0, or ``value`` <= 0.

    Examples
    --------
    >>> slider = rate_slider(0.4, (0.1, 0.2, 0.8), description="inner lr α")
    >>> slider.options, slider.value, slider.label
    ((('0.1', 0.1), ('0.2', 0.2), ('0.4', 0.4), ('0.8', 0.8)), 0.4, '0.4')
    >>> rate_slider(0.4, (0.1, -1.0), description="α")
    Traceback (most recent call last):
    ...
    ValueError: choices[1] must be a finite number > 0, got -1.0
    """
    import ipywidgets as widgets

    value = check_float("value", value, low=0, low_open=True)
    choices = tuple(choices)
    if not choices:
        raise ValueError(f"choices must be positive numbers, got {choices!r}")
    choices = tuple(check_float(f"choices[{i}]", c, low=0, low_open=True) for i, c in enumerate(choices))
    values = sorted(set(choices) | {value})
    return widgets.SelectionSlider(options=[(f"{v:g}", v) for v in values], value=value, description=description)


def show_png(fig, *, close: bool = True, crop=None) -> None:
    """Display ``fig`` as one PNG: what a Try-it shows after each change.

    Jupyter's inline backend crops every figure to its tight bounding box, which costs a third
    of a redraw more (lesson 04's explorer: 0.13 against 0.10 s of CPU). A Try-it figure is laid
    out already, so it is saved as it is, unless ``crop`` says otherwise (for a figure that draws
    outside its own box, such as a title above it). Outside IPython this only closes the figure.

    Parameters
    ----------
    fig : matplotlib Figure
    close : bool
        Close the figure afterwards (a figure made with pyplot would otherwise be shown twice
        and kept in memory); explorers that redraw one figure pass ``False``.
    crop : None, "tight" or matplotlib Bbox (inches)
        None: the whole figure. "tight": its tight bounding box, as the inline backend does.
        A box: that region, e.g. :func:`tight_box` of the first figure of a Try-it whose
        figures keep their shape, which saves measuring it again.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig = plt.figure()
    >>> show_png(fig)
    >>> plt.fignum_exists(fig.number)
    False
    """
    import io

    import matplotlib.pyplot as plt

    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # pragma: no cover - IPython comes with the lab extras
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches=crop)
        display(Image(data=buffer.getvalue(), format="png"))
    if close:
        plt.close(fig)


def margins(fig) -> dict:
    """The subplot margins of ``fig`` (after ``tight_layout``), to give the next figure of a Try-it.

    ``tight_layout`` measures every label, which costs about a quarter of a redraw; a Try-it
    whose figures keep their shape lays out the first one and passes its margins to
    ``fig.subplots_adjust(**margins)`` for the others.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, _ = plt.subplots(1, 2)
    >>> fig.subplots_adjust(left=0.1, wspace=0.3)
    >>> margins(fig)["left"], margins(fig)["wspace"]
    (0.1, 0.3)
    >>> plt.close(fig)
    """
    pars = fig.subplotpars
    return {name: getattr(pars, name) for name in ("left", "right", "bottom", "top", "wspace", "hspace")}


def tight_box(fig, pad: float = 0.1):
    """The region ``savefig(bbox_inches="tight")`` would keep: ``fig``'s tight bounding box plus ``pad`` inches.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig = plt.figure(figsize=(4, 3))
    >>> _ = fig.suptitle("a title above the figure", y=1.1)
    >>> bool(tight_box(fig).y1 > 3)
    True
    >>> plt.close(fig)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    pad = check_float("pad", pad, low=0)  # inches
    canvas = fig.canvas if hasattr(fig.canvas, "get_renderer") else FigureCanvasAgg(fig)
    return fig.get_tightbbox(canvas.get_renderer()).padded(pad)
