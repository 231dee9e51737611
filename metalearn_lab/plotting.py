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
        fig.suptitle(suptitle, y=1.0 + 0.12 / max(1, len(flat) // max(1, int(ncols))))
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
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['label 0', 'label 1', 'label 2']
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
    width, height = size * (k + q) + 1.6, size * n + 0.8
    fig, (ax_s, ax_q) = _plt.subplots(1, 2, figsize=(width, height), gridspec_kw={"width_ratios": [k, q], "wspace": 0.05})
    for ax, rows, cols, name in ((ax_s, rows_s, k, "support set"), (ax_q, rows_q, q, "query set")):
        mosaic, centres = _mosaic(rows, cols)
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


def _mosaic(rows, cols, pad=2, gap_value=0.12):
    """Images ``rows[r][j]`` (each ``[1, H, W]`` or ``[H, W]``) tiled on a light-grey grid; returns (array, row centres)."""
    first = next(img for row in rows for img in row)
    h, w = first.shape[-2:]
    mosaic = _torch.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad), gap_value)
    for r, row in enumerate(rows):
        for j, img in enumerate(row):
            top, left = pad + r * (h + pad), pad + j * (w + pad)
            mosaic[top: top + h, left: left + w] = img.reshape(h, w)
    centres = [pad + r * (h + pad) + h / 2 for r in range(len(rows))]
    return mosaic.numpy(), centres


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


def _diagram_axes(ax, figsize, height, width=10):
    """Axes for a box-and-arrow diagram: a ``width`` × ``height`` canvas with no frame or ticks."""
    if ax is None:
        _, ax = _plt.subplots(figsize=figsize)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return ax


def draw_meta_learning_loops(ax=None):
    """A diagram of meta-learning's two loops: tasks from p(T), support/query, inner and outer loop.

    The meta-learner holds what is shared across tasks (``θ``); for each task the base learner
    adapts on the support set (inner loop) and is scored on the query set; the query losses
    update ``θ`` (outer loop). Meta-testing repeats the inner loop on new tasks, with ``θ`` frozen.

    Returns
    -------
    matplotlib Axes
    """
    ax = _diagram_axes(ax, (10, 4.2), 4.7)
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
    ax = _diagram_axes(ax, (10, 5), 6.4)
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


# --- lesson 04 ---
# Sinusoid regression: adapted curves (Finn et al. 2017, Fig. 2), learning curves, MSE sweeps.


def adapted_sine_predictions(model, x_support, y_support, x_grid, *, steps=(0, 1, 10), inner_lr=0.01):
    """Predictions of ``model`` on ``x_grid`` after each number of inner steps in ``steps``.

    The model is adapted once, step by step, with plain gradient descent on the MSE of the
    support set (:func:`metalearn_lab.maml.adapt`, one step at a time), and its prediction is
    recorded whenever the step count is in ``steps``. The model's own weights are not changed.

    Parameters
    ----------
    model : nn.Module
        A regressor ``[P, 1] -> [P, 1]`` (e.g. :class:`~metalearn_lab.models.SineMLP`).
    x_support, y_support : Tensor ``[k_shot, 1]``
    x_grid : Tensor ``[P]``
    steps : iterable of int >= 0
    inner_lr : float > 0

    Returns
    -------
    dict int -> Tensor ``[P]``

    Examples
    --------
    >>> import torch
    >>> from metalearn_lab.models import SineMLP
    >>> x = torch.linspace(-5, 5, 5)[:, None]
    >>> out = adapted_sine_predictions(SineMLP(), x, torch.sin(x), torch.linspace(-5, 5, 7), steps=(0, 2))
    >>> sorted(out), tuple(out[2].shape)
    ([0, 2], (7,))
    """
    import torch
    import torch.nn.functional as F

    from metalearn_lab.maml import adapt

    wanted = sorted({int(s) for s in steps})
    if not wanted or wanted[0] < 0:
        raise ValueError(f"steps must be a non-empty collection of integers >= 0, got {steps!r}")
    grid = torch.as_tensor(x_grid, dtype=torch.float32).reshape(-1, 1)
    params = {k: v.detach() for k, v in model.named_parameters()}
    out, done = {}, 0
    with torch.no_grad():
        for target in wanted:
            if target > done:
                params = adapt(model, params, x_support, y_support, F.mse_loss, inner_steps=target - done, inner_lr=inner_lr)
                done = target
            out[target] = torch.func.functional_call(model, params, (grid,)).reshape(-1)
    return out


def plot_sine_tasks(batch, *, n_tasks=4, ax=None, title="Sinusoid tasks and their support points"):
    """Draw the true curves of the first ``n_tasks`` tasks of a :class:`SinusoidBatch` and their support points.

    Returns the figure.
    """
    import matplotlib.pyplot as plt
    import torch

    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.2))
    else:
        fig = ax.figure
    x_grid = torch.linspace(-5, 5, 200)
    true = batch.true_curve(x_grid)
    for i in range(min(n_tasks, len(batch))):
        (line,) = ax.plot(x_grid, true[i], lw=1.5, label=f"A={float(batch.amplitude[i]):.1f}, φ={float(batch.phase[i]):.1f}")
        ax.scatter(batch.x_support[i, :, 0], batch.y_support[i, :, 0], color=line.get_color(), s=25, zorder=3)
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    return fig


def plot_adapted_sines(models, batch, *, steps=(0, 1, 10), inner_lr=0.01, n_tasks=3, x_grid=None, title=None):
    """A grid like Finn et al. (2017), Fig. 2: one row per model, one column per task.

    Each panel shows the true curve, the support points, and the model's prediction before
    adaptation (step 0, dashed) and after each number of gradient steps in ``steps``.

    Parameters
    ----------
    models : dict name -> nn.Module
        E.g. ``{"MAML": maml_model, "pretrained": pretrained_model}``.
    batch : SinusoidBatch
        Its support sets are the fine-tuning data.
    steps, inner_lr : see :func:`adapted_sine_predictions`.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt
    import torch

    x_grid = torch.linspace(-5, 5, 200) if x_grid is None else torch.as_tensor(x_grid)
    n_tasks = min(n_tasks, len(batch))
    fig, axes = plt.subplots(len(models), n_tasks, figsize=(3.3 * n_tasks, 2.6 * len(models)),
                             sharex=True, squeeze=False)
    true = batch.true_curve(x_grid)
    colours = plt.cm.viridis_r(torch.linspace(0.15, 0.85, len(steps)).tolist())
    for row, (name, model) in enumerate(models.items()):
        for col in range(n_tasks):
            ax = axes[row, col]
            preds = adapted_sine_predictions(model, batch.x_support[col], batch.y_support[col], x_grid,
                                             steps=steps, inner_lr=inner_lr)
            ax.plot(x_grid, true[col], color="tab:red", lw=2, label="true")
            for colour, s in zip(colours, sorted(preds)):
                style = "--" if s == 0 else "-"
                label = "pre-update" if s == 0 else f"{s} step{'s' if s > 1 else ''}"
                ax.plot(x_grid, preds[s], style, color=colour, lw=1.5, label=label)
            ax.scatter(batch.x_support[col, :, 0], batch.y_support[col, :, 0], marker="^", color="k", s=30,
                       zorder=4, label=f"{batch.x_support.shape[1]} support points")
            ax.set_title(f"{name}, task {col + 1}", fontsize=10)
            if col == 0:
                ax.set_ylabel("y")
            if row == len(models) - 1:
                ax.set_xlabel("x")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_loss_curve(losses, *, smooth=20, ax=None, title="Meta-training loss", ylabel="query MSE after adaptation"):
    """Plot a per-step loss (thin) and its running mean over ``smooth`` steps (thick). Returns the figure."""
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


# --- lesson 05 ---
# Siamese networks and the contrastive loss: pure figure functions (each returns the figure).


def plot_siamese_diagram(x1, x2, *, same=None, title="A Siamese network: two inputs, one set of weights"):
    """Draw the twin network: two images → the same embedding net f_θ → z1, z2 → distance → loss.

    Parameters
    ----------
    x1, x2 : Tensor ``[1, H, W]`` or ``[H, W]``
        The two images of a pair (ink = 1).
    same : int or None
        1 (same class) or 0 (different classes), written on the figure when given.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4)
    ax.axis("off")
    for row, (img, name) in enumerate(((x1, "$x_1$"), (x2, "$x_2$"))):
        y = 3.0 - 2.0 * row
        inset = ax.inset_axes((0.1, y - 0.6, 1.2, 1.2), transform=ax.transData)
        inset.imshow(img.detach().reshape(img.shape[-2], img.shape[-1]).cpu().numpy(), cmap="gray_r")
        inset.set_xticks([])
        inset.set_yticks([])
        ax.text(0.7, y + 0.72, name, ha="center", fontsize=12)
        box = FancyBboxPatch((2.2, y - 0.45), 2.0, 0.9, boxstyle="round,pad=0.05", fc="#cfe2f3", ec="#1f4e79")
        ax.add_patch(box)
        ax.text(3.2, y, r"$f_\theta$ (EmbeddingNet)", ha="center", va="center", fontsize=10)
        ax.annotate("", xy=(2.15, y), xytext=(1.4, y), arrowprops=dict(arrowstyle="->"))
        ax.annotate("", xy=(5.2, y), xytext=(4.3, y), arrowprops=dict(arrowstyle="->"))
        ax.text(5.6, y, f"$z_{row + 1}$", ha="center", va="center", fontsize=12)
        ax.annotate("", xy=(6.6, 2.0 + 0.15 * (1 - 2 * row)), xytext=(5.9, y), arrowprops=dict(arrowstyle="->"))
    ax.annotate("", xy=(3.2, 1.55), xytext=(3.2, 2.45), arrowprops=dict(arrowstyle="<->", ls="--", color="#b45f06"))
    ax.text(3.35, 2.0, "shared weights θ", color="#b45f06", va="center", fontsize=10)
    ax.text(7.4, 2.0, r"$d=\|z_1-z_2\|$", ha="center", va="center", fontsize=12,
            bbox=dict(boxstyle="round", fc="#fff2cc", ec="#bf9000"))
    ax.annotate("", xy=(8.7, 2.0), xytext=(8.25, 2.0), arrowprops=dict(arrowstyle="->"))
    label = "" if same is None else f"\nsame = {int(same)}"
    ax.text(9.35, 2.0, f"loss$(d, y)${label}", ha="center", va="center", fontsize=11)
    ax.set_title(title)
    return fig


def plot_contrastive_loss(margin=1.0, *, ax=None, points=None, d_max=None):
    """The contrastive loss of one pair against its distance d, for both labels.

    ``same = 1``: ``d²`` (pull together); ``same = 0``: ``max(0, margin − d)²`` (push apart until
    the margin). ``points`` is an optional list of ``(d, same)`` or ``(d, same, label)`` drawn as markers.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import torch

    from metalearn_lab.siamese import contrastive_loss

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    d_max = d_max or max(2.5, 1.5 * margin)
    d = torch.linspace(0, d_max, 301)
    z1 = torch.zeros(len(d), 1)
    z2 = d[:, None]
    per_pair = {s: torch.stack([contrastive_loss(z1[i:i + 1], z2[i:i + 1], torch.tensor([float(s)]), margin) for i in range(0, len(d))])
                for s in (1, 0)}
    ax.plot(d.numpy(), per_pair[1].numpy(), color="tab:blue", label=r"same = 1: $d^2$")
    ax.plot(d.numpy(), per_pair[0].numpy(), color="tab:red", label=r"same = 0: $\max(0, m-d)^2$")
    ax.axvline(margin, color="gray", ls=":", lw=1)
    ax.text(margin, 0.95 * max(margin**2, 1.0), f" m = {margin:g}", color="gray", va="top")
    for point in points or []:
        d_i, s = point[0], point[1]
        value = d_i**2 if s else max(0.0, margin - d_i) ** 2
        ax.plot([d_i], [value], "o", color="tab:blue" if s else "tab:red", mfc="white", ms=8)
        if len(point) > 2:
            ax.annotate(str(point[2]), (d_i, value), xytext=(4, 6), textcoords="offset points", fontsize=10)
    ax.set_xlim(0, d_max)
    ax.set_ylim(0, max(margin**2, 1.0) * 1.15)
    ax.set_xlabel("distance d between the two embeddings")
    ax.set_ylabel("loss of the pair")
    ax.set_title(f"Contrastive loss, margin m = {margin:g}")
    ax.legend(loc="center right", fontsize=9)
    return ax.figure


def plot_contrastive_margins(margins=(0.5, 1.0, 2.0)):
    """Static version of the margin widget: the loss against d for a few margins, side by side."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(margins), figsize=(3.4 * len(margins), 3.2), sharey=False)
    for ax, margin in zip(axes, margins):
        plot_contrastive_loss(margin, ax=ax, d_max=2.5)
        ax.legend().remove() if ax is not axes[0] else ax.legend(loc="center right", fontsize=7)
    fig.tight_layout()
    return fig


def plot_pair_grid(x1, x2, same, *, n=8, title="Training pairs (same = 1: same character)"):
    """Show ``n`` pairs as two rows of images with their ``same`` label on top."""
    import matplotlib.pyplot as plt

    n = min(n, len(x1))
    fig, axes = plt.subplots(2, n, figsize=(1.1 * n, 2.6))
    for j in range(n):
        for i, x in enumerate((x1, x2)):
            axes[i, j].imshow(x[j].detach().reshape(x.shape[-2], x.shape[-1]).cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[0, j].set_title(f"same={int(same[j])}", fontsize=9, color="tab:blue" if same[j] else "tab:red")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_siamese_training(steps, losses, *, reference=None, smooth=20, title="Contrastive loss during training"):
    """Loss against training step (log axis; raw and a running mean of ``smooth`` steps).

    ``reference=(steps, losses, label)`` adds a second, usually longer, run (e.g. the full
    experiment), drawn as given.
    Returns the figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3.4))
    runs = [(steps, losses, "this lesson's run", "tab:blue", smooth)]
    if reference is not None:  # drawn as given (shipped histories are already averaged in bins)
        runs.append((*reference, "tab:orange", 1))
    for run_steps, run_losses, label, color, run_smooth in runs:
        x = np.asarray(run_steps, dtype=float) + 1
        y = np.asarray(run_losses, dtype=float)
        k = max(1, min(run_smooth, len(y) // 5))
        if k > 1:
            ax.plot(x, y, color=color, alpha=0.25, lw=0.8)
            ax.plot(x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid"), color=color, label=f"{label} (mean of {k} steps)")
        else:
            ax.plot(x, y, "o-" if len(y) < 30 else "-", color=color, ms=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training step (log scale)")
    ax.set_ylabel("contrastive loss (mean over pairs)")
    ax.set_title(title)
    ax.legend(fontsize=9)
    return fig


def pca_project(x, k=2):
    """Project rows of ``x`` ``[n, D]`` on their top ``k`` principal components (``torch.linalg.svd``).

    Returns ``(points [n, k], explained)`` where ``explained`` is the share of variance kept.

    >>> import torch
    >>> p, share = pca_project(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), k=1)
    >>> round(share, 3)
    1.0
    """
    import torch

    x = torch.as_tensor(x, dtype=torch.float64).flatten(1)
    centred = x - x.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    share = float((s[:k] ** 2).sum() / (s**2).sum().clamp_min(1e-30))
    return (centred @ vh[:k].T).float(), share


def plot_embedding_2d(views, labels, *, class_names=None):
    """Scatter plots of 2-D projections coloured by class.

    ``views`` is a list of ``(points [n, 2], title)``; ``labels`` ``[n]`` the class of each point.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(views), figsize=(4.6 * len(views), 4))
    axes = [axes] if len(views) == 1 else list(axes)
    cmap = plt.get_cmap("tab10")
    labels = np.asarray(labels)
    classes = sorted(set(int(c) for c in labels))
    for ax, (points, title) in zip(axes, views):
        points = np.asarray(points)
        for c in classes:
            mask = labels == c
            name = class_names[c] if class_names is not None else f"class {c}"
            ax.scatter(points[mask, 0], points[mask, 1], s=18, color=cmap(c % 10), label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("component 1")
        ax.set_ylabel("component 2")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def plot_distance_histogram(d, same, threshold=None, *, ax=None, title="Distances of same and different pairs"):
    """Histograms of the pair distances for ``same = 1`` and ``same = 0``, with the threshold."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.4))
    d = np.asarray(d, dtype=float)
    same = np.asarray(same).astype(bool)
    bins = np.linspace(0, np.percentile(d, 99.5) * 1.05, 40)
    ax.hist(d[same], bins=bins, alpha=0.6, color="tab:blue", label="same = 1")
    ax.hist(d[~same], bins=bins, alpha=0.6, color="tab:red", label="same = 0")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("distance d between embeddings")
    ax.set_ylabel("number of pairs")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return ax.figure


def plot_one_shot_trial(query, support, chosen, answer, distances=None, *, title=None, size=0.8):
    """One 20-way one-shot trial: the query, then the candidates with their distances to it.

    The right answer is framed green; the chosen candidate, when wrong, red.

    Parameters
    ----------
    query : Tensor ``[1, S, S]``
    support : Tensor ``[n, 1, S, S]`` the candidates
    chosen, answer : int
        The classifier's choice and the right candidate.
    distances : Tensor ``[n]``, optional
        Embedding distance of each candidate to the query, written above it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import torch

    n = len(support)
    images = torch.cat([query.reshape(1, 1, *query.shape[-2:]), support.reshape(n, 1, *support.shape[-2:])])
    titles = ["query"] + ([f"{i}: {float(v):.2f}" for i, v in enumerate(distances)] if distances is not None
                          else [str(i) for i in range(n)])
    frames = [None] * (n + 1)
    frames[1 + int(answer)] = "#2e7d32"
    if int(chosen) != int(answer):
        frames[1 + int(chosen)] = "#c62828"
    fig = show_images(images, titles, ncols=11, size=size, frame_colors=frames)
    verdict = "right" if int(chosen) == int(answer) else "wrong"
    fig.suptitle(title or f"chosen: candidate {int(chosen)} ({verdict}); answer framed green, a wrong choice red",
                 fontsize=9, y=1.06)
    return fig


def plot_one_shot_comparison(rows, *, title="Lake's 20-way one-shot runs"):
    """Horizontal bars of accuracy (%), ``rows`` a list of ``(label, accuracy %, kind)``, kind "ours" or "published"."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    labels = [r[0] for r in rows]
    values = [r[1] for r in rows]
    colors = ["tab:blue" if r[2] == "ours" else "lightgray" for r in rows]
    ax.barh(range(len(rows)), values, color=colors, edgecolor="black")
    for i, v in enumerate(values):
        ax.text(v + 1, i, f"{v:.1f}%", va="center", fontsize=9)
    ax.axvline(5, color="gray", ls=":", lw=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_ylim(len(rows) - 0.5, -1.0)
    ax.text(5.8, -0.72, "chance 5%", color="gray", fontsize=8, va="center")
    ax.set_xlim(0, 110)
    ax.set_xlabel("accuracy (%)")
    ax.set_title(title + " (blue: measured here, grey: published)", fontsize=10)
    fig.tight_layout()
    return fig


# --- lesson 06 ---
# Omniglot MAML vs first-order MAML vs ProtoNets: learning curves, the fast-adaptation curve,
# and one adapted episode with its predictions marked right (green) or wrong (red).

_L06_RIGHT, _L06_WRONG = "#2e7d32", "#c62828"


def _l06_smooth(values, window):
    """Moving average over ``window`` points (NaNs ignored); returns a NumPy array of the same length."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    window = min(int(window), len(v))
    if window <= 1:
        return v
    ok = np.isfinite(v)
    kernel = np.ones(window)
    sums = np.convolve(np.where(ok, v, 0.0), kernel, mode="same")
    counts = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_training_histories(histories, *, smooth=50, title="Meta-training on Omniglot"):
    """Two panels from training histories: smoothed training-query accuracy, and test accuracy during training.

    Parameters
    ----------
    histories : dict ``{label: history}``
        Each history a dict with lists ``step``, ``metric`` (accuracy on the training tasks'
        queries after adaptation, NaN where not recorded), ``eval_step``, ``eval_metric`` (accuracy on
        held-out test tasks), as stored in a checkpoint's ``"history"``.
    smooth : int
        Moving-average window (in recorded points) for the noisy per-step accuracy.
    title : str

    Returns
    -------
    matplotlib Figure
        Left: training-query accuracy (%); right: test accuracy (%) at the evaluation steps.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> h = {"step": [0, 1, 2], "metric": [0.2, 0.4, 0.6], "eval_step": [3], "eval_metric": [0.5]}
    >>> fig = plot_training_histories({"MAML": h}, smooth=2)
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['accuracy on training queries (%)', 'accuracy on test tasks (%)']
    """
    import numpy as np

    fig, (ax_train, ax_test) = _plt.subplots(1, 2, figsize=(10, 3.6))
    any_eval = False
    for i, (label, h) in enumerate(histories.items()):
        steps = np.asarray(h.get("step", []), dtype=float)
        metric = np.asarray(h.get("metric", []), dtype=float)
        if len(metric) and np.isfinite(metric).any():
            ax_train.plot(steps, 100 * _l06_smooth(metric, smooth), color=f"C{i}", lw=1.6, label=label)
        if h.get("eval_step"):
            any_eval = True
            ax_test.plot(h["eval_step"], 100 * np.asarray(h["eval_metric"], dtype=float), "o-", color=f"C{i}",
                         lw=1.6, ms=4, label=label)
    ax_train.set_xlabel("meta-training step")
    ax_train.set_ylabel("accuracy on training queries (%)")
    ax_train.set_title(f"training tasks (moving average of {smooth})", fontsize=10)
    ax_test.set_xlabel("meta-training step")
    ax_test.set_ylabel("accuracy on test tasks (%)")
    ax_test.set_title("held-out test tasks, evaluated during training", fontsize=10)
    if not any_eval:
        ax_test.text(0.5, 0.5, "no evaluations recorded\n(quick-mode runs skip them)", ha="center", va="center",
                     transform=ax_test.transAxes, color="0.4")
    for ax in (ax_train, ax_test):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_adaptation_curve(steps, curves, *, references=None, ax=None, chance=None,
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

    if ax is None:
        _, ax = _plt.subplots(figsize=(7, 3.8))
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


def _l06_support_panel(ax, x_support, y_support, labels, names, pad=2):
    rows = [x_support[y_support == c] for c in labels]
    mosaic, centres = _mosaic(rows, max(len(r) for r in rows), pad=pad)
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks(centres, names, fontsize=8)
    ax.tick_params(length=0)
    ax.set_title("support set", fontsize=9)


def _l06_query_panel(ax, x_query, y_query, predicted, labels, pad=2):
    import torch

    order = [torch.nonzero(y_query == c).flatten() for c in labels]
    h, w = x_query.shape[-2:]
    mosaic, _ = _mosaic([x_query[idx] for idx in order], max(len(i) for i in order), pad=pad)
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for r, idx in enumerate(order):
        for j, i in enumerate(idx.tolist()):
            color = _L06_RIGHT if int(predicted[i]) == int(y_query[i]) else _L06_WRONG
            top, left = pad + r * (h + pad), pad + j * (w + pad)
            ax.add_patch(_patches.Rectangle((left - 1, top - 1), w + 1, h + 1, fill=False, ec=color, lw=2))
            ax.text(left + w - 2, top + 3, str(int(predicted[i])), color="white", fontsize=7, ha="center",
                    va="center", weight="bold", bbox=dict(boxstyle="square,pad=0.1", fc=color, ec="none"))


def episode_figsize(k_shot, n_query, n_way, panels=1, *, image=0.6, max_width=10.0):
    """Figure size (inches) for a support column of ``k_shot`` and ``panels`` query grids of ``n_query`` columns.

    Images get ``image`` inches each, less if the figure would be wider than ``max_width``.

    >>> episode_figsize(1, 5, 5)
    (5.11, 4.0)
    """
    columns = k_shot + panels * n_query + 0.35 * panels
    side = min(image, (max_width - 1.3) / columns)
    return round(side * columns + 1.3, 2), round(side * n_way + 1.0, 2)


def _l06_layout(fig):
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.95 / width, right=1 - 0.1 / width, bottom=0.1 / height, top=1 - 0.75 / height)


def _l06_episode_tensors(x_support, y_support, x_query, y_query):
    import torch

    xs, ys, xq, yq = (torch.as_tensor(t).detach().cpu() for t in (x_support, y_support, x_query, y_query))
    if ys.dim() == 2:  # a one-task batch
        xs, ys, xq, yq = xs[0], ys[0], xq[0], yq[0]
    labels = sorted(set(ys.tolist()))
    k = max(int((ys == c).sum()) for c in labels)  # shots and queries per class: the panel widths
    q = max(int((yq == c).sum()) for c in labels)
    return xs, ys, xq, yq, labels, k, q


def plot_episode_predictions(x_support, y_support, x_query, y_query, predicted, *, fig=None, title=None,
                             class_names=None):
    """One few-shot episode after adaptation: the support images, and every query with its predicted label.

    Queries sit in rows by their true label; each has a frame and a small tag with its predicted
    label, green when it is right and red when it is wrong.

    Parameters
    ----------
    x_support : Tensor ``[N*K, 1, H, W]``;  y_support : Tensor ``[N*K]``
    x_query : Tensor ``[N*Q, 1, H, W]``;  y_query : Tensor ``[N*Q]``
        (a leading task dimension of size 1 is dropped).
    predicted : Tensor ``[N*Q]``
        Predicted labels of the queries.
    fig : matplotlib Figure, optional
        Draw into this figure (cleared first), as the "Try it" widget does; default a new one.
    title : str, optional
        Default: the accuracy.
    class_names : list of str, optional
        Names of labels ``0..N-1`` (default ``"label c"``).

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import torch
    >>> y = torch.arange(3)
    >>> fig = plot_episode_predictions(torch.rand(3, 1, 8, 8), y, torch.rand(6, 1, 8, 8), y.repeat_interleave(2),
    ...                                torch.tensor([0, 0, 1, 2, 2, 2]))
    >>> fig.axes[1].get_title()
    'queries: predicted label (green right, red wrong)'
    """
    import torch

    xs, ys, xq, yq, labels, k, q = _l06_episode_tensors(x_support, y_support, x_query, y_query)
    pred = torch.as_tensor(predicted).detach().cpu().reshape(-1)
    names = class_names or [f"label {c}" for c in labels]
    if fig is None:
        fig = _plt.figure(figsize=episode_figsize(k, q, len(labels)))
    else:
        fig.clf()
    ax_s, ax_q = fig.subplots(1, 2, gridspec_kw={"width_ratios": [k, q], "wspace": 0.35 * 1 / (k + q) * 2})
    _l06_layout(fig)
    _l06_support_panel(ax_s, xs, ys, labels, names)
    _l06_query_panel(ax_q, xq, yq, pred, labels)
    ax_q.set_title("queries: predicted label (green right, red wrong)", fontsize=9)
    right = int((pred == yq).sum())
    fig.suptitle(title or f"accuracy {100 * right / len(yq):.0f}% ({right}/{len(yq)})", fontsize=10)
    return fig


def plot_adaptation_panels(x_support, y_support, x_query, y_query, predictions, *, title=None):
    """The same episode under several settings: the support set once, then one query panel per setting.

    Parameters
    ----------
    x_support, y_support, x_query, y_query : Tensors, as in :func:`plot_episode_predictions`
    predictions : dict ``{panel title: predicted labels [N*Q]}``
        e.g. ``{"0 inner steps": ..., "3 inner steps": ...}``; each title gets the accuracy appended.
    title : str, optional

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import torch
    >>> y = torch.arange(2)
    >>> fig = plot_adaptation_panels(torch.rand(2, 1, 8, 8), y, torch.rand(2, 1, 8, 8), y,
    ...                              {"before": torch.tensor([1, 1]), "after": torch.tensor([0, 1])})
    >>> [ax.get_title() for ax in fig.axes[1:]]
    ['before: 50% right', 'after: 100% right']
    """
    import torch

    xs, ys, xq, yq, labels, k, q = _l06_episode_tensors(x_support, y_support, x_query, y_query)
    m = len(predictions)
    fig, axes = _plt.subplots(1, m + 1, figsize=episode_figsize(k, q, len(labels), m),
                              gridspec_kw={"width_ratios": [k] + [q] * m, "wspace": 0.35 * (m + 1) / (k + m * q)})
    _l06_layout(fig)
    _l06_support_panel(axes[0], xs, ys, labels, [f"label {c}" for c in labels])
    for ax, (name, pred) in zip(axes[1:], predictions.items()):
        pred = torch.as_tensor(pred).detach().cpu().reshape(-1)
        _l06_query_panel(ax, xq, yq, pred, labels)
        ax.set_title(f"{name}: {100 * float((pred == yq).float().mean()):.0f}% right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# --- lesson 03 ---
# The meta-gradient: first-order vs second-order agreement, and the measured cost of both.


def plot_gradient_agreement(alphas, curves, *, axes=None, title=None, marker=None):
    """Cosine similarity and relative error of first-order vs true meta-gradients against α.

    Parameters
    ----------
    alphas : sequence of float, the inner learning rates (x axis, log scale)
    curves : dict label -> (cosines, relative_errors), each a sequence as long as ``alphas``
        (e.g. ``{"1 inner step": (cos, rel), ...}``); NaN/inf values (a diverged inner loop) are not drawn.
    axes : two matplotlib Axes or None (a new 1×2 figure)
    marker : (alpha, label) or None, a vertical line at one α (e.g. the one used in training)

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> fig = plot_gradient_agreement([0.01, 0.1], {"K = 1": ([0.99, 0.7], [0.1, 0.8])})
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['cosine similarity', 'relative error']
    """
    import numpy as np

    if axes is None:
        fig, axes = _plt.subplots(1, 2, figsize=(9, 3.3))
    else:
        fig = axes[0].figure
    alphas = np.asarray(alphas, dtype=float)
    for label, (cos, rel) in curves.items():
        cos, rel = np.asarray(cos, dtype=float), np.asarray(rel, dtype=float)
        rel = np.where(np.isfinite(rel), rel, np.nan)
        (line,) = axes[0].plot(alphas, np.where(np.isfinite(cos), cos, np.nan), "o-", ms=3, label=label)
        axes[1].plot(alphas, rel, "o-", ms=3, color=line.get_color(), label=label)
    axes[0].set_ylabel("cosine similarity")
    axes[0].set_title("direction: cos(first-order, true)", fontsize=10)
    axes[1].set_ylabel("relative error")
    axes[1].set_yscale("log")
    axes[1].set_title("size: ‖first-order − true‖ / ‖true‖", fontsize=10)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("inner learning rate α")
        ax.grid(alpha=0.3, which="both")
        if marker is not None:
            ax.axvline(marker[0], color="0.4", ls=":", lw=1)
    if marker is not None:
        axes[0].annotate(marker[1], (marker[0], axes[0].get_ylim()[0]), xytext=(3, 3), textcoords="offset points",
                         fontsize=8, color="0.3")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_meta_gradient_cost(steps, costs, *, title="Cost of one meta-gradient as the inner loop grows"):
    """Wall time and graph memory of one meta-gradient against the number of inner steps.

    Parameters
    ----------
    steps : sequence of int, the inner steps measured (x axis, log 2)
    costs : dict label -> list of dicts ``{"seconds": float, "saved_mb": float}`` (one per step count),
        as returned by :func:`metalearn_lab.maml.meta_gradient_cost`. Labels that contain
        "first-order" are drawn dashed, so each model's pair of lines shares a colour.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> fig = plot_meta_gradient_cost([1, 2], {"MLP, second-order": [{"seconds": 0.1, "saved_mb": 1.0},
    ...                                                              {"seconds": 0.2, "saved_mb": 2.0}]})
    >>> len(fig.axes)
    2
    """
    from matplotlib.ticker import LogFormatter

    fig, (ax_time, ax_mem) = _plt.subplots(1, 2, figsize=(9.5, 3.9))
    colours = {}
    for label, rows in costs.items():
        model = label.split(",")[0]
        colour = colours.setdefault(model, f"C{len(colours)}")
        style = "--" if "first-order" in label else "-"
        ax_time.plot(steps, [1000 * r["seconds"] for r in rows], style, marker="o", ms=4, color=colour, label=label)
        ax_mem.plot(steps, [r["saved_mb"] for r in rows], style, marker="o", ms=4, color=colour, label=label)
    for ax, ylabel in ((ax_time, "wall time (ms, fastest run)"), (ax_mem, "autograd graph (MB saved for backward)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(list(steps))
        ax.set_xticklabels([str(s) for s in steps])
        ax.set_xlabel("inner steps K")
        ax.set_ylabel(ylabel)
        ax.yaxis.set_major_formatter(LogFormatter())  # plain numbers (60, 200), not 6×10¹
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(1.2, 0.5)))
        ax.grid(alpha=0.3, which="both")
    ax_time.set_title("time", fontsize=10)
    ax_mem.set_title("memory", fontsize=10)
    handles, labels = ax_time.get_legend_handles_labels()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, handlelength=3, frameon=False)
    return fig
