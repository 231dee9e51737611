"""Pure figure functions for the lessons: each draws into matplotlib and returns the figure or axes."""


# --- lessons 01 and 02 (general helpers: sinusoid fits, image grids, episodes) ---
import math as _math

import matplotlib.pyplot as _plt
import torch as _torch
from matplotlib import patches as _patches


def _as_numpy(values):
    """A tensor or array-like as a flat float NumPy array (detached, on the CPU)."""
    if isinstance(values, _torch.Tensor):
        values = values.detach().cpu()
    return _torch.as_tensor(values, dtype=_torch.float64).flatten().numpy()


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


def show_images(images, titles=None, ncols=10, *, axes=None, cmap="gray_r", size=1.0,
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
    images = _torch.as_tensor(images).detach().cpu()
    if images.dim() == 4:
        images = images[:, 0]
    if images.dim() != 3:
        raise ValueError(f"images must be [N, 1, H, W] or [N, H, W], got shape {tuple(images.shape)}")
    n = images.shape[0]
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries for {n} images")
    if axes is None:
        ncols = max(1, min(int(ncols), n))
        nrows = max(1, _math.ceil(n / ncols))
        fig, axes = _plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
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
        fig.suptitle(suptitle)
    return fig


def _np_flat(axes):
    import numpy as np

    return list(np.asarray(axes, dtype=object).flatten())


def show_episode(episode, task=0, *, max_per_class=10, size=0.7, suptitle=None):
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
    >>> fig.axes[0].get_ylabel()
    'label 0'
    """
    parts = episode.as_tuple() if hasattr(episode, "as_tuple") else tuple(episode)
    if len(parts) != 4:
        raise ValueError("episode must be an Episode or a tuple (x_support, y_support, x_query, y_query)")
    x_support, y_support, x_query, y_query = (_torch.as_tensor(p).detach().cpu() for p in parts)
    if y_support.dim() == 2:
        x_support, y_support, x_query, y_query = x_support[task], y_support[task], x_query[task], y_query[task]
    labels = sorted(set(y_support.tolist()) | set(y_query.tolist()))
    rows_s = [x_support[y_support == c][:max_per_class] for c in labels]
    rows_q = [x_query[y_query == c][:max_per_class] for c in labels]
    k = max(len(r) for r in rows_s)
    q = max(len(r) for r in rows_q)
    n = len(labels)
    fig = _plt.figure(figsize=(size * (k + q) + 1.2, size * n * 1.05 + 0.8))
    left, right = fig.subfigures(1, 2, width_ratios=[k + 0.6, q + 0.3], wspace=0.02)
    for sub, rows, width, name in ((left, rows_s, k, "support"), (right, rows_q, q, "query")):
        axes = sub.subplots(n, width, squeeze=False)
        for r, (c, row) in enumerate(zip(labels, rows)):
            for j in range(width):
                ax = axes[r, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(row):
                    img = row[j]
                    ax.imshow((img[0] if img.dim() == 3 else img).numpy(), cmap="gray_r", vmin=0, vmax=1)
                else:
                    ax.axis("off")
            if name == "support":
                axes[r, 0].set_ylabel(f"label {c}", rotation=0, ha="right", va="center", fontsize=8)
        sub.suptitle(f"{name} set", fontsize=10)
    k_shot = int((y_support == labels[0]).sum()) if labels else 0
    q_shot = int((y_query == labels[0]).sum()) if labels else 0
    fig.suptitle(suptitle or f"{n}-way {k_shot}-shot episode, {q_shot} queries per class", y=1.07)
    return fig


def _box(ax, xy, width, height, text, color, *, fontsize=9, weight="normal"):
    ax.add_patch(_patches.FancyBboxPatch(xy, width, height, boxstyle="round,pad=0.02,rounding_size=0.03",
                                         fc=color, ec="0.3", lw=1))
    ax.text(xy[0] + width / 2, xy[1] + height / 2, text, ha="center", va="center", fontsize=fontsize,
            weight=weight, wrap=True)


def _arrow(ax, start, end, text=None, *, color="0.2", rad=0.0, fontsize=8, offset=(0, 0)):
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color=color, lw=1.5, connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text,
                ha="center", va="center", fontsize=fontsize, color=color)


def draw_meta_learning_loops(ax=None):
    """A diagram of meta-learning's two loops: tasks from p(T), support/query, inner and outer loop.

    The meta-learner holds what is shared across tasks (``θ``); for each task the base learner
    adapts on the support set (inner loop) and is scored on the query set; the query losses
    update ``θ`` (outer loop). Meta-testing repeats the inner loop on new tasks, with ``θ`` frozen.

    Returns
    -------
    matplotlib Axes
    """
    if ax is None:
        _, ax = _plt.subplots(figsize=(10, 4.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.7)
    ax.axis("off")
    _box(ax, (0.1, 2.9), 1.9, 1.0, "task distribution\np(T)", "#e8e8e8")
    _box(ax, (2.7, 2.9), 2.1, 1.0, "task $T_i$\nsupport $S_i$ (labelled)\nquery $Q_i$", "#fff2cc")
    _box(ax, (5.6, 2.9), 2.0, 1.0, "base learner\nadapts: $\\phi_i = A(\\theta, S_i)$", "#d9ead3")
    _box(ax, (8.1, 2.9), 1.8, 1.0, "query loss\n$L(\\phi_i, Q_i)$", "#f4cccc")
    _box(ax, (4.2, 0.6), 2.6, 1.0, "meta-learner\nshared knowledge $\\theta$", "#cfe2f3", weight="bold")
    _arrow(ax, (2.0, 3.4), (2.7, 3.4), "sample", offset=(0, 0.15))
    _arrow(ax, (4.8, 3.55), (5.6, 3.55), "$S_i$", offset=(0, 0.15))
    _arrow(ax, (7.6, 3.4), (8.1, 3.4))
    _arrow(ax, (9.0, 2.9), (6.8, 1.1), "outer loop: update $\\theta$\nto lower the query loss", color="#990000",
           rad=-0.25, offset=(0.9, -0.1))
    _arrow(ax, (5.5, 1.6), (6.3, 2.9), "start from $\\theta$", color="#1f4e79", offset=(-0.9, 0.1))
    ax.annotate("", xy=(6.9, 3.95), xytext=(6.3, 3.95),
                arrowprops=dict(arrowstyle="-|>", color="#38761d", lw=1.5, connectionstyle="arc3,rad=-1.2"))
    ax.text(6.6, 4.45, "inner loop (a few steps on $S_i$)", ha="center", fontsize=8, color="#38761d")
    ax.text(0.1, 1.6, "meta-training: many tasks,\nboth loops run.\n\nmeta-testing: new tasks,\n"
            "θ frozen, only the inner loop\nruns; score on $Q_i$.", fontsize=8, va="center")
    ax.set_title("Meta-learning: an inner loop per task, an outer loop across tasks")
    return ax


#: The map of meta-learning families drawn by :func:`draw_family_map` (Hospedales et al. 2021).
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
        "methods": ["Siamese nets (2015)", "Matching nets (2016)", "ProtoNets (2017)"],
    },
}


def draw_family_map(ax=None):
    """The three families of meta-learning with their methods, and the fast-learning view beside them.

    Columns: optimisation-based, model-based (black-box), metric-based (the taxonomy of
    Hospedales et al. 2021). Bottom row: the source text's three approaches to fast learning
    (Bayesian, non-parametric, meta-learning) and how they relate to the columns.

    Returns
    -------
    matplotlib Axes
    """
    if ax is None:
        _, ax = _plt.subplots(figsize=(10, 5))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6.4)
    ax.axis("off")
    colors = ["#d9ead3", "#cfe2f3", "#fff2cc"]
    for col, ((family, info), color) in enumerate(zip(FAMILY_MAP.items(), colors)):
        x = 0.15 + col * 3.3
        _box(ax, (x, 5.3), 3.0, 0.8, family, color, fontsize=10, weight="bold")
        ax.text(x + 1.5, 4.85, "learns " + info["learns"], ha="center", va="center", fontsize=7.5, style="italic")
        for row, method in enumerate(info["methods"]):
            _box(ax, (x + 0.25, 3.75 - row * 0.55), 2.5, 0.42, method, "white", fontsize=8.5)
    ax.plot([0.1, 9.9], [1.75, 1.75], color="0.6", lw=0.8, ls=":")
    ax.text(5.0, 1.5, "fast learning (learning a new concept from one or a few examples): three approaches",
            ha="center", fontsize=8.5, weight="bold")
    fast = [("Bayesian", "prior + a few points → posterior\n(neural processes are a learned version)"),
            ("non-parametric", "keep the examples, compare with them\n(nearest neighbour; metric-based nets)"),
            ("meta-learning", "learn the prior / learner from many tasks\n(all three columns above)")]
    for i, (name, note) in enumerate(fast):
        _box(ax, (0.15 + i * 3.3, 0.15), 3.0, 1.05, f"{name}\n{note}", "#eeeeee", fontsize=7.5)
    ax.set_title("A map of meta-learning (families after Hospedales et al. 2021)")
    return ax


def plot_lake_trial(run, query_index=0, predicted=None, *, size=0.75):
    """One trial of a Lake one-shot run: the query, then the 20 candidates, the answer framed green.

    Parameters
    ----------
    run : :class:`metalearn_lab.data.LakeRun`
    query_index : int
        Which of the 20 queries (0..19).
    predicted : int, optional
        A classifier's choice; framed red when wrong.

    Returns
    -------
    matplotlib Figure
    """
    n = len(run.support)
    if not 0 <= query_index < len(run.query):
        raise ValueError(f"query_index must be in 0..{len(run.query) - 1}, got {query_index}")
    answer = int(run.labels[query_index])
    images = _torch.cat([run.query[query_index: query_index + 1], run.support])
    titles = ["query"] + [str(i) for i in range(n)]
    frames = [None] + [None] * n
    frames[1 + answer] = "#2e7d32"
    if predicted is not None and int(predicted) != answer:
        frames[1 + int(predicted)] = "#c62828"
    ncols = 11
    fig, axes = _plt.subplots(2, ncols, figsize=(size * ncols, size * 2.6), squeeze=False)
    layout = [axes[0, 0]] + list(axes[0, 1:]) + [axes[1, 0]] + list(axes[1, 1:])
    # query in the first cell of row 0; candidates fill the rest; first cell of row 1 stays blank
    order = [layout[0]] + layout[1:11] + layout[12:22]
    show_images(images, titles, axes=order + [layout[11]], frame_colors=frames)
    layout[11].axis("off")
    verdict = ""
    if predicted is not None:
        verdict = " — pixel 1-NN " + ("right" if int(predicted) == answer else f"wrong (chose {int(predicted)})")
    fig.suptitle(f"Lake {run.name}, query {query_index + 1}: which candidate is the same character? "
                 f"(answer framed green{verdict})", fontsize=9)
    return fig
