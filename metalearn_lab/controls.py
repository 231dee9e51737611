"""Controls that the lessons' Try-it widgets share: labels that fit, step sizes shown exactly.

Two faults of plain ipywidgets sliders that a learner meets: the label is 80 px wide whatever it
says ("K (support poi…"), and a log-scale slider snaps to its own grid and shows a rounded number
(0.4 becomes 10**-0.4 = 0.398). :func:`fit_labels` and :func:`rate_slider` remove them;
``tests/test_notebooks.py`` checks every lesson's widgets for both.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    ValueError: choices must be positive numbers, got (0.1, -1.0)
    """
    import ipywidgets as widgets

    choices = tuple(choices)
    if not choices or any(not float(c) > 0 for c in choices):
        raise ValueError(f"choices must be positive numbers, got {choices!r}")
    if not float(value) > 0:
        raise ValueError(f"value must be a positive number, got {value!r}")
    values = sorted({float(c) for c in choices} | {float(value)})
    return widgets.SelectionSlider(options=[(f"{v:g}", v) for v in values], value=float(value), description=description)
