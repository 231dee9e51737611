"""Drawings that two or more lessons share: sinusoid fits, image grids, episodes, diagrams, curves.

Each function draws into matplotlib and returns the figure or axes; none of them computes
anything a lesson's argument depends on. A figure that serves one lesson lives in that lesson's
companion module (``metalearn_lab/lessons/<slug>.py``) and moves here when a second lesson needs it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib import patches

from metalearn_lab.validation import check_float, check_int


def _as_numpy(values):
    """A tensor or array-like as a flat float NumPy array (detached, on the CPU)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
    return torch.as_tensor(values, dtype=torch.float64).flatten().numpy()


def plot_sinusoid_fit(ax, x_grid, y_true, x_support, y_support, predictions=None, *,
                      x_query=None, y_query=None, title=None):
    """Draw a regression task: the true curve, the support points and any number of fits.

    Parameters
    ----------
    ax : matplotlib Axes
    x_grid, y_true : array-like ``[P]``
        Inputs on a grid and the task's true function there.
    x_support, y_support : array-like ``[K]`` (or ``[K, 1]``)
        The labelled points the learner sees (drawn as black dots).
    predictions : dict ``{label: y [P]}``, optional
        Predictions on ``x_grid``, one line each (e.g. ``{"after 300 steps": y}``).
    x_query, y_query : array-like, optional
        Held-out points (drawn as small open circles).
    title : str, optional

    Returns
    -------
    matplotlib Axes
        ``ax``, with labelled axes and a legend.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt, torch
    >>> fig, ax = plt.subplots()
    >>> x = torch.linspace(-5, 5, 50)
    >>> _ = plot_sinusoid_fit(ax, x, torch.sin(x), x[:5], torch.sin(x[:5]), {"zero": 0 * x})
    >>> len(ax.lines)
    3
    """
    x_grid = _as_numpy(x_grid)
    ax.plot(x_grid, _as_numpy(y_true), color="0.3", lw=2, ls="--", label="true function")
    for i, (label, y) in enumerate((predictions or {}).items()):
        ax.plot(x_grid, _as_numpy(y), lw=2, color=f"C{i}", label=label)
    if x_query is not None and y_query is not None:
        ax.plot(_as_numpy(x_query), _as_numpy(y_query), "o", mfc="none", mec="0.5", ms=5,
                label="query points (held out)")
    ax.plot(_as_numpy(x_support), _as_numpy(y_support), "o", color="k", ms=7, zorder=5,
            label=f"support points (K = {len(_as_numpy(x_support))})")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    return ax


def show_images(images, titles=None, ncols: int = 10, *, axes=None, cmap="gray_r", size: float = 1.0,
                suptitle=None, frame_colors=None):
    """Show a batch of images in a grid (ink = 1 is drawn dark on white).

    Parameters
    ----------
    images : Tensor ``[N, 1, H, W]`` or ``[N, H, W]``
    titles : list of str, optional
        One per image.
    ncols : int
        Images per row.
    axes : array of Axes, optional
        Draw into these (at least ``N``) instead of a new figure; the rest are blanked.
    cmap : str
        Colour map; ``"gray_r"`` shows ink = 1 as black.
    size : float
        Inches per image in a new figure.
    suptitle : str, optional
    frame_colors : list of str or None, optional
        A coloured frame around image ``i`` when ``frame_colors[i]`` is not None.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import torch
    >>> fig = show_images(torch.rand(7, 1, 8, 8), titles=list("abcdefg"), ncols=4)
    >>> len(fig.axes)
    8
    """
    ncols = check_int("ncols", ncols, minimum=1)
    size = check_float("size", size, low=0, low_open=True)
    images = torch.as_tensor(images).detach().cpu()
    if images.dim() == 4:
        images = images[:, 0]
    if images.dim() != 3:
        raise ValueError(f"images must be [N, 1, H, W] or [N, H, W], got shape {tuple(images.shape)}")
    n = images.shape[0]
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries for {n} images")
    if axes is None:
        ncols = max(1, min(ncols, n))
        nrows = max(1, math.ceil(n / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
    else:
        fig = _np_flat(axes)[0].figure
    flat = _np_flat(axes)
    if len(flat) < n:
        raise ValueError(f"got {len(flat)} axes for {n} images")
    for i, ax in enumerate(flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(images[i].numpy(), cmap=cmap, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8, pad=2)
        color = frame_colors[i] if frame_colors is not None else None
        for spine in ax.spines.values():
            spine.set_edgecolor(color or "0.8")
            spine.set_linewidth(3 if color else 0.5)
    if suptitle:
        fig.suptitle(suptitle, y=1.0 + 0.12 / max(1, len(flat) // max(1, int(ncols))))
    return fig


def _np_flat(axes):
    import numpy as np

    return list(np.asarray(axes, dtype=object).flatten())


def show_episode(episode, task: int = 0, *, max_per_class: int = 10, size: float = 0.7, suptitle=None):
    """Show one task of an episode: support images (left) and query images (right), one row per label.

    Parameters
    ----------
    episode : :class:`metalearn_lab.samplers.Episode` or tuple
        ``(x_support, y_support, x_query, y_query)`` with or without the leading task dimension
        (``[B, N*K, C, H, W]`` or ``[N*K, C, H, W]``).
    task : int
        Which task of the batch to show.
    max_per_class : int
        At most this many images per row (support and query each).
    size : float
        Inches per image.
    suptitle : str, optional
        Default: ``"N-way K-shot episode, Q queries per class"``.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import torch
    >>> from metalearn_lab.samplers import EpisodeSampler
    >>> sampler = EpisodeSampler(torch.rand(10, 20, 1, 8, 8), n_way=3, k_shot=2, n_query=1)
    >>> fig = show_episode(sampler.sample(1, generator=torch.Generator().manual_seed(0)))
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['label 0', 'label 1', 'label 2']
    """
    task = check_int("task", task, minimum=0)
    max_per_class = check_int("max_per_class", max_per_class, minimum=1)
    size = check_float("size", size, low=0, low_open=True)
    parts = episode.as_tuple() if hasattr(episode, "as_tuple") else tuple(episode)
    if len(parts) != 4:
        raise ValueError("episode must be an Episode or a tuple (x_support, y_support, x_query, y_query)")
    x_support, y_support, x_query, y_query = (torch.as_tensor(p).detach().cpu() for p in parts)
    if y_support.dim() == 2:
        x_support, y_support, x_query, y_query = x_support[task], y_support[task], x_query[task], y_query[task]
    labels = sorted(set(y_support.tolist()) | set(y_query.tolist()))
    rows_s = [x_support[y_support == c][:max_per_class] for c in labels]
    rows_q = [x_query[y_query == c][:max_per_class] for c in labels]
    k = max(len(r) for r in rows_s)
    q = max(len(r) for r in rows_q)
    n = len(labels)
    width, height = size * (k + q) + 1.6, size * n + 0.8
    fig, (ax_s, ax_q) = plt.subplots(1, 2, figsize=(width, height), gridspec_kw={"width_ratios": [k, q], "wspace": 0.05})
    for ax, rows, cols, name in ((ax_s, rows_s, k, "support set"), (ax_q, rows_q, q, "query set")):
        mosaic, centres = image_mosaic(rows, cols)
        ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks(centres, [f"label {c}" for c in labels] if ax is ax_s else [], fontsize=8)
        ax.tick_params(length=0)
        ax.set_title(name, fontsize=9)
    k_shot = int((y_support == labels[0]).sum())
    q_shot = int((y_query == labels[0]).sum())
    fig.suptitle(suptitle or f"{n}-way {k_shot}-shot episode, {q_shot} queries per class",
                 y=1 - 0.02 / height, va="top", fontsize=10)
    return fig


def image_mosaic(rows, cols: int, pad: int = 2, gap_value: float = 0.12):
    """Images ``rows[r][j]`` (each ``[1, H, W]`` or ``[H, W]``) tiled on a light-grey grid; returns (array, row centres).

    ``cols`` images per row at most, ``pad`` pixels between them, gaps of grey level ``gap_value`` in [0, 1].
    """
    cols, pad = check_int("cols", cols, minimum=1), check_int("pad", pad, minimum=0)
    gap_value = check_float("gap_value", gap_value, low=0, high=1)
    first = next(img for row in rows for img in row)
    h, w = first.shape[-2:]
    mosaic = torch.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad), gap_value)
    for r, row in enumerate(rows):
        for j, img in enumerate(row):
            top, left = pad + r * (h + pad), pad + j * (w + pad)
            mosaic[top: top + h, left: left + w] = img.reshape(h, w)
    centres = [pad + r * (h + pad) + h / 2 for r in range(len(rows))]
    return mosaic.numpy(), centres


def diagram_box(ax, xy, width: float, height: float, text, color, *, fontsize: float = 9, weight="normal",
                edgecolor="0.3", linewidth: float = 1.0, alpha: float = 1.0):
    """A rounded box of ``width`` × ``height`` (data units) at ``xy`` with centred text."""
    width = check_float("width", width, low=0, low_open=True)
    height = check_float("height", height, low=0, low_open=True)
    fontsize = check_float("fontsize", fontsize, low=0, low_open=True)
    linewidth = check_float("linewidth", linewidth, low=0)
    alpha = check_float("alpha", alpha, low=0, high=1)
    ax.add_patch(patches.FancyBboxPatch(xy, width, height, boxstyle="round,pad=0.02,rounding_size=0.03",
                                         fc=color, ec=edgecolor, lw=linewidth, alpha=alpha))
    ax.text(xy[0] + width / 2, xy[1] + height / 2, text, ha="center", va="center", fontsize=fontsize,
            weight=weight, wrap=True, alpha=alpha)


def diagram_arrow(ax, start, end, text=None, *, color="0.2", rad: float = 0.0, fontsize: float = 8, offset=(0, 0)):
    """An arrow from ``start`` to ``end``, bent by ``rad`` (0: straight), with an optional label."""
    rad = check_float("rad", rad)
    fontsize = check_float("fontsize", fontsize, low=0, low_open=True)
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color=color, lw=1.5, connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text,
                ha="center", va="center", fontsize=fontsize, color=color)


def diagram_axes(ax, figsize, height: float, width: float = 10):
    """Axes for a box-and-arrow diagram: a ``width`` × ``height`` canvas with no frame or ticks."""
    height = check_float("height", height, low=0, low_open=True)
    width = check_float("width", width, low=0, low_open=True)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return ax


#: The map of meta-learning families drawn by :func:`draw_family_map`: the usual three-way taxonomy, as
#: Hospedales et al. (2021, §3.1 "Previous taxonomies") describe it. Years are of the first paper;
#: Siamese networks date from Bromley et al. (1993), their one-shot use from Koch et al. (2015).
FAMILY_MAP = {
    "optimisation-based": {
        "learns": "how a gradient-descent learner starts\n(and steps): initialisation, learning rates",
        "methods": ["MAML (2017)", "first-order MAML (2017)", "Reptile (2018)", "Meta-SGD (2017)"],
    },
    "model-based (black-box)": {
        "learns": "a network that reads the support set\nand predicts directly (no gradient steps)",
        "methods": ["MANN (2016)", "SNAIL (2018)", "neural processes (2018)"],
    },
    "metric-based": {
        "learns": "an embedding in which a query is\ncompared with the support examples",
        "methods": ["Siamese nets (1993; 2015)", "Matching nets (2016)", "ProtoNets (2017)"],
    },
}


#: The source text's three approaches to fast learning (its §2.2), the bottom row of the map.
FAST_LEARNING = {
    "Bayesian": "prior + a few points → posterior\n(neural processes are a learned version)",
    "non-parametric": "keep the examples, compare with them\n(nearest neighbour; metric-based nets)",
    "meta-learning": "learn the prior / learner from many tasks\n(all three columns above)",
}
HIGHLIGHT_COLOR = "#c0392b"


def family_map_names() -> list[str]:
    """Every name :func:`draw_family_map` can highlight: families, methods and fast-learning approaches.

    >>> "MAML (2017)" in family_map_names() and "Bayesian" in family_map_names()
    True
    """
    names = []
    for family, info in FAMILY_MAP.items():
        names += [family, *info["methods"]]
    return names + list(FAST_LEARNING)


def draw_family_map(ax=None, *, highlight=None, title=None, note=None):
    """The three families of meta-learning with their methods, and the fast-learning view beside them.

    Columns: optimisation-based, model-based (black-box), metric-based (the usual taxonomy, as
    described by Hospedales et al. 2021, §3.1). Bottom row: the source text's three approaches to fast learning
    (Bayesian, non-parametric, meta-learning) and how they relate to the columns.

    Parameters
    ----------
    ax : matplotlib Axes, optional
    highlight : iterable of str, optional
        Boxes to mark (a thick red frame), the others drawn faded: family names, method names or
        fast-learning approaches (:func:`family_map_names`). Lessons use it to show where what they
        taught sits on the map. ``None`` draws the plain map.
    title : str, optional
        Replaces the default title.
    note : str, optional
        A line under the map saying what the marks mean.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    ValueError
        A name in ``highlight`` that is not on the map.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> ax = draw_family_map(highlight=["metric-based", "ProtoNets (2017)"])
    >>> sum(p.get_linewidth() > 2 for p in ax.patches)
    2
    """
    marked = set(highlight or ())
    unknown = sorted(marked - set(family_map_names()))
    if unknown:
        raise ValueError(f"highlight names {unknown} that are not on the map; choose from {family_map_names()}")

    def style(name):
        if not marked:
            return {}
        if name in marked:
            return {"edgecolor": HIGHLIGHT_COLOR, "linewidth": 2.5}
        return {"alpha": 0.35}

    ax = diagram_axes(ax, (10, 5.4 if note else 5), 6.4)
    colors = ["#d9ead3", "#cfe2f3", "#fff2cc"]
    for col, ((family, info), color) in enumerate(zip(FAMILY_MAP.items(), colors)):
        x = 0.15 + col * 3.3
        diagram_box(ax, (x, 5.3), 3.0, 0.8, family, color, fontsize=10, weight="bold", **style(family))
        ax.text(x + 1.5, 4.85, "learns " + info["learns"], ha="center", va="center", fontsize=7.5, style="italic")
        for row, method in enumerate(info["methods"]):
            diagram_box(ax, (x + 0.25, 3.75 - row * 0.55), 2.5, 0.42, method, "white", fontsize=8.5, **style(method))
    ax.plot([0.1, 9.9], [1.75, 1.75], color="0.6", lw=0.8, ls=":")
    ax.text(5.0, 1.5, "fast learning (learning a new concept from one or a few examples): three approaches",
            ha="center", fontsize=8.5, weight="bold")
    for i, (name, description) in enumerate(FAST_LEARNING.items()):
        diagram_box(ax, (0.15 + i * 3.3, 0.15), 3.0, 1.05, f"{name}\n{description}", "#eeeeee", fontsize=7.5,
                    **style(name))
    ax.set_title(title or "A map of meta-learning (the usual three families; Hospedales et al. 2021, §3.1)")
    if note:
        ax.text(5.0, -0.25, note, ha="center", va="top", fontsize=8.5, color=HIGHLIGHT_COLOR, wrap=True)
    return ax


def plot_loss_curve(losses, *, smooth: int = 20, ax=None, title="Meta-training loss", ylabel="query MSE after adaptation"):
    """Plot a per-step loss (thin) and its running mean over ``smooth`` steps (thick). Returns the figure."""
    smooth = check_int("smooth", smooth, minimum=1)
    import matplotlib.pyplot as plt
    import torch

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3))
    else:
        fig = ax.figure
    values = torch.as_tensor(list(losses), dtype=torch.float64)
    ax.plot(values, lw=0.6, alpha=0.4, color="tab:blue", label="each step")
    if smooth > 1 and len(values) >= smooth:
        running = torch.nn.functional.avg_pool1d(values[None, None], smooth, stride=1)[0, 0]
        ax.plot(torch.arange(smooth - 1, len(values)), running, lw=2, color="tab:blue", label=f"mean of {smooth}")
    ax.set(xlabel="meta-training step", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return fig


def plot_mse_sweep(x_values, curves, *, xlabel, train_range=None, logx=False, logy=True, ax=None, title=None,
                   ylabel="query MSE"):
    """MSE (mean with a 95% band) against a swept quantity, one curve per model or setting.

    Parameters
    ----------
    x_values : sequence of float
    curves : dict label -> (means, ci95_half_widths), each a sequence as long as ``x_values``
    train_range : (low, high) or None
        Shaded: the range that training saw (everything outside is out of distribution).

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.4))
    else:
        fig = ax.figure
    x = np.asarray(list(x_values), dtype=float)
    for label, (means, half) in curves.items():
        means, half = np.asarray(means, dtype=float), np.asarray(half, dtype=float)
        if len(means) != len(x) or len(half) != len(x):
            raise ValueError(f"curve {label!r} has {len(means)} means and {len(half)} intervals for {len(x)} x values")
        (line,) = ax.plot(x, means, marker="o", ms=3, label=label)
        low = np.maximum(means - half, means * 0.05) if logy else means - half
        ax.fill_between(x, low, means + half, color=line.get_color(), alpha=0.2)
    if train_range is not None:
        ax.axvspan(*train_range, color="0.9", zorder=0, label="training range")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "")
    ax.legend(fontsize=8)
    return fig


def plot_adaptation_curve(steps, curves, *, references=None, ax=None, chance: float | None = None,
                          title="Fast adaptation: accuracy after k inner steps"):
    """Accuracy (mean ± 95% CI band) against the number of test-time inner steps, one line per model.

    Parameters
    ----------
    steps : sequence of int ``[S]``
        Numbers of inner gradient steps (e.g. ``range(11)``).
    curves : dict ``{label: (mean [S], half_width [S])}``
        Accuracies as fractions in [0, 1] and their 95% half-widths.
    references : dict ``{label: (mean, half_width)}``, optional
        Models without inner steps (e.g. ProtoNets), drawn as horizontal bands.
    ax : matplotlib Axes, optional
    chance : float, optional
        Chance accuracy (``1 / n_way``), drawn dotted.
    title : str

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> ax = plot_adaptation_curve([0, 1, 2], {"MAML": ([0.2, 0.8, 0.9], [0.05, 0.03, 0.02])},
    ...                            references={"ProtoNet": (0.95, 0.01)}, chance=0.2)
    >>> ax.get_xlabel()
    'inner steps k at test time'
    """
    import numpy as np

    chance = None if chance is None else check_float("chance", chance, low=0, high=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8))
    x = np.asarray(list(steps), dtype=float)
    for i, (label, (mean, half)) in enumerate(curves.items()):
        m, h = 100 * np.asarray(mean, dtype=float), 100 * np.asarray(half, dtype=float)
        if len(m) != len(x):
            raise ValueError(f"curve {label!r} has {len(m)} points for {len(x)} step counts")
        ax.plot(x, m, "o-", color=f"C{i}", lw=1.8, ms=4, label=label)
        ax.fill_between(x, m - h, m + h, color=f"C{i}", alpha=0.18)
    for j, (label, (mean, half)) in enumerate((references or {}).items()):
        color = f"C{len(curves) + j}"
        ax.axhline(100 * mean, color=color, ls="--", lw=1.5, label=f"{label} (no inner steps)")
        ax.axhspan(100 * (mean - half), 100 * (mean + half), color=color, alpha=0.12)
    if chance is not None:
        ax.axhline(100 * chance, color="0.5", ls=":", lw=1, label=f"chance ({100 * chance:.0f}%)")
    ax.set_xticks(x)
    ax.set_xlabel("inner steps k at test time")
    ax.set_ylabel("query accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_mse_by_k(rows, k_shots=(1, 2, 5, 10), *, ax=None, train_range=None, title="Query MSE on the same test tasks",
                  floor=1e-4):
    """Mean query MSE (95% band) against the number of support points K, one line per learner, log axes.

    Parameters
    ----------
    rows : dict ``{learner: {K: per-task MSE [tasks]}}``
        Non-finite values (a diverged task) and values above 1e3 count as 1e3.
    k_shots : sequence of int
    train_range : (low, high) or None
        Shaded: the K that training saw.
    floor : float > 0
        Means below it (an exact learner's 1e-10) are drawn at it, so that the log axis shows the
        differences that matter; the axis label says so.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = plot_mse_by_k({"a": {1: torch.tensor([1.0, 2.0]), 5: torch.tensor([0.1, float("nan")])}}, k_shots=(1, 5))
    >>> len(fig.axes[0].lines)
    1
    """
    import numpy as np

    from metalearn_lab.metrics import mean_confidence_interval

    floor = check_float("floor", floor, low=0, low_open=True)  # a log axis starts above 0
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.8))
    for i, (name, by_k) in enumerate(rows.items()):
        stats = [mean_confidence_interval(torch.nan_to_num(torch.as_tensor(by_k[k], dtype=torch.float64), nan=1e3,
                                                           posinf=1e3).clamp(max=1e3)) for k in k_shots]
        means, halves = (np.asarray(v) for v in zip(*stats))
        shown = np.maximum(means, floor)
        style = "--" if "MAML" in name else "-"
        ax.plot(k_shots, shown, style, marker="o", ms=4, color=f"C{i}", label=name)
        ax.fill_between(k_shots, np.maximum(means - halves, floor), np.maximum(means + halves, floor), color=f"C{i}", alpha=0.15)
    if train_range is not None:
        ax.axvspan(*train_range, color="0.9", zorder=0, label="K seen in training")
    ax.set(xscale="log", yscale="log", xlabel="K (support points)", ylabel=f"query MSE (drawn ≥ {floor:g})", title=title)
    ax.set_xticks(list(k_shots), [str(k) for k in k_shots])
    ax.legend(fontsize=7, ncol=2)
    return ax.figure
