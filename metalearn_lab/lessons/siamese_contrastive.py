"""Companion of lesson ``05_siamese_contrastive``: figures of Siamese networks and the contrastive loss, the margin, threshold and one-shot trial explorers, and the checkers of its exercises.

The lesson imports this module as ``lesson``; nothing in the core library imports it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from metalearn_lab.controls import fit_labels, margins, show_png, tight_box
from metalearn_lab.drawing import show_images
from metalearn_lab.exercises import WrongAnswer, checker, require_answer


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


def plot_pair_grid(x1, x2, same, *, n=8, title="Training pairs (same = 1: same character)"):
    """Show ``n`` pairs as two rows of images with their ``same`` label on top."""

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

    x = torch.as_tensor(x, dtype=torch.float64).flatten(1)
    centred = x - x.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    share = float((s[:k] ** 2).sum() / (s**2).sum().clamp_min(1e-30))
    return (centred @ vh[:k].T).float(), share


def plot_embedding_2d(views, labels, *, class_names=None):
    """Scatter plots of 2-D projections coloured by class.

    ``views`` is a list of ``(points [n, 2], title)``; ``labels`` ``[n]`` the class of each point.
    """
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
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.4))
    d = np.asarray(d, dtype=float)
    same = np.asarray(same).astype(bool)
    bins = np.linspace(0, np.percentile(d, 99.5) * 1.05, 40)
    # one filled outline per histogram, not 40 bars: the threshold Try-it redraws in half the time
    ax.hist(d[same], bins=bins, alpha=0.6, color="tab:blue", label="same = 1", histtype="stepfilled")
    ax.hist(d[~same], bins=bins, alpha=0.6, color="tab:red", label="same = 0", histtype="stepfilled")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("distance d between embeddings")
    ax.set_ylabel("number of pairs")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return ax.figure


def plot_one_shot_trial(query, support, chosen, answer, distances=None, *, title=None, size=0.8, fig=None):
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
    fig : matplotlib Figure, optional
        Draw into this figure instead of a new (pyplot) one: into its first ``n + 1`` axes, or, when
        an earlier call drew there already, only change the images, titles and frames (what a
        Try-it does for each new trial, several times faster than a new figure).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(8.8, 2.0)); _ = fig.subplots(2, 11)
    >>> _ = plot_one_shot_trial(torch.zeros(1, 8, 8), torch.rand(20, 1, 8, 8), 3, 3, fig=fig)
    >>> _ = plot_one_shot_trial(torch.ones(1, 8, 8), torch.rand(20, 1, 8, 8), 2, 5, fig=fig)
    >>> len(fig.axes[0].images), float(fig.axes[0].images[0].get_array().mean()), fig.axes[3].spines["top"].get_edgecolor()
    (1, 1.0, (0.7764705882352941, 0.1568627450980392, 0.1568627450980392, 1.0))
    """

    n = len(support)
    images = torch.cat([query.reshape(1, 1, *query.shape[-2:]), support.reshape(n, 1, *support.shape[-2:])])
    titles = ["query"] + ([f"{i}: {float(v):.2f}" for i, v in enumerate(distances)] if distances is not None
                          else [str(i) for i in range(n)])
    frames = [None] * (n + 1)
    frames[1 + int(answer)] = "#2e7d32"
    if int(chosen) != int(answer):
        frames[1 + int(chosen)] = "#c62828"
    if fig is None:
        fig = show_images(images, titles, ncols=11, size=size, frame_colors=frames)
    elif all(ax.images for ax in fig.axes[:n + 1]):  # drawn before: change what differs
        for i, ax in enumerate(fig.axes[:n + 1]):
            ax.images[0].set_data(images[i, 0].numpy())
            ax.set_title(titles[i], fontsize=8, pad=2)
            for spine in ax.spines.values():
                spine.set_edgecolor(frames[i] or "0.8")
                spine.set_linewidth(3 if frames[i] else 0.5)
    else:
        show_images(images, titles, axes=fig.axes, frame_colors=frames)
    verdict = "right" if int(chosen) == int(answer) else "wrong"
    fig.suptitle(title or f"chosen: candidate {int(chosen)} ({verdict}); answer framed green, a wrong choice red",
                 fontsize=9, y=1.06)
    return fig


def plot_one_shot_comparison(rows, *, title="Lake's 20-way one-shot runs"):
    """Horizontal bars of accuracy (%), ``rows`` a list of ``(label, accuracy %, kind)``, kind "ours" or "published"."""

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


# --- the Try-its: each live widget and its pre-rendered twin for the book draw with one function ---

#: The margins the book's explorer offers (the live slider: 0.2 to 2.0 in steps of 0.1).
MARGIN_VALUES = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0)


def contrastive_margin_view(margin, *, points=None):
    """The margin Try-it's figure: :func:`plot_contrastive_loss` for ``margin`` on a fixed d axis (0 to 2.5)."""
    return plot_contrastive_loss(margin, points=points, d_max=2.5)


def contrastive_margin_widget(points=None):
    """A margin slider redrawing :func:`contrastive_margin_view` (needs a kernel).

    ``points``: optional ``(d, same)`` or ``(d, same, label)`` pairs drawn as markers (e.g. the
    hand-computed pairs). The book's twin is :func:`contrastive_margin_explorer`.
    """
    import ipywidgets as widgets

    def show(margin=1.0):
        show_png(contrastive_margin_view(margin, points=points), crop="tight")  # its x label reaches below the figure

    slider = widgets.FloatSlider(value=1.0, min=0.2, max=2.0, step=0.1, description="margin m", continuous_update=False,
                                 readout_format=".1f")
    return widgets.interactive(show, margin=fit_labels(slider)[0])


def contrastive_margin_explorer(points=None, *, margins=MARGIN_VALUES, initial=None):
    """The margin Try-it for the book: :func:`contrastive_margin_view` pre-rendered for each of ``margins``.

    The first frame is ``initial`` (default m = 1, where the widget starts, if offered, else the
    first margin). Returns a :class:`metalearn_lab.tryit.StaticExplorer` (one slider, ``margin``).

    >>> e = contrastive_margin_explorer(margins=(0.5, 1.0))
    >>> len(e.frames), e.initial
    (2, {'margin': 1.0})
    """
    from metalearn_lab.tryit import explorer

    margins = list(margins)
    if initial is None:
        initial = 1.0 if 1.0 in margins else margins[0]
    return explorer(lambda margin: contrastive_margin_view(margin, points=points), {"margin": margins},
                    initial={"margin": initial}, labels={"margin": "margin m"}, crop="first",
                    title="The contrastive loss against d (pre-rendered)")


class ThresholdView:
    """The threshold Try-it's figure: training and held-out distance histograms with a threshold.

    ``d_*`` ``[P]`` pair distances, ``same_*`` ``[P]`` labels (1 = same class). :meth:`draw` gives
    the figure for one threshold, with both verification accuracies in the panel titles; the first
    figure's margins are reused for the next (they keep their shape). :attr:`step` and
    :attr:`top` give the slider's round grid (one significant digit, so the readout shows the
    threshold in use). The live widget (:func:`threshold_widget`) and the book's explorer
    (:func:`threshold_explorer`) both draw with it.

    Examples
    --------
    >>> import torch
    >>> view = ThresholdView(torch.tensor([0.2, 1.5]), torch.tensor([1, 0]), torch.tensor([0.4, 0.9]), torch.tensor([1, 0]))
    >>> view.accuracy("test", 0.5), view.step, view.top
    (1.0, 0.01, 1.49)
    >>> view.values(3)
    [0.5, 0.99, 1.49]
    """

    def __init__(self, d_train, same_train, d_test, same_test):
        self.d = {"train": torch.as_tensor(d_train).float(), "test": torch.as_tensor(d_test).float()}
        self.same = {"train": torch.as_tensor(same_train).float(), "test": torch.as_tensor(same_test).float()}
        high = float(torch.quantile(torch.cat([self.d["train"], self.d["test"]]), 0.99))
        self.step = float(f"{high / 100:.0e}")
        self.digits = max(0, -math.floor(math.log10(self.step)))
        self.top = round(math.ceil(high / self.step) * self.step, self.digits)
        self.layout = {}

    def accuracy(self, split: str, threshold: float) -> float:
        """Verification accuracy on ``split`` ("train" or "test"): "same" when d < threshold."""
        return float(((self.d[split] < threshold).float() == self.same[split]).float().mean())

    def rounded(self, value: float) -> float:
        """``value`` on the slider's grid."""
        return round(round(value / self.step) * self.step, self.digits)

    def values(self, n: int) -> list[float]:
        """``n`` thresholds evenly spaced up to :attr:`top`, on the slider's grid."""
        return sorted({self.rounded(self.top * (i + 1) / n) for i in range(n)})

    def draw(self, threshold: float):
        """Both histograms with ``threshold``; returns a pyplot figure."""
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.3), sharex=True)
        for ax, split, name in zip(axes, ("train", "test"), ("training", "held-out")):
            plot_distance_histogram(self.d[split], self.same[split], threshold, ax=ax,
                                    title=f"{name} pairs: accuracy {100 * self.accuracy(split, threshold):.1f}%")
        if self.layout:
            fig.subplots_adjust(**self.layout)
        else:
            fig.tight_layout()
            self.layout.update(margins(fig))
        return fig


def threshold_widget(d_train, same_train, d_test, same_test):
    """A threshold slider over the distance histograms (:class:`ThresholdView`), with both accuracies.

    The book's twin is :func:`threshold_explorer`.
    """
    import ipywidgets as widgets

    view = ThresholdView(d_train, same_train, d_test, same_test)

    def show(threshold):
        show_png(view.draw(threshold))

    slider = widgets.FloatSlider(value=view.rounded(view.top / 3), min=0.0, max=view.top, step=view.step,
                                 description="threshold", readout_format=f".{view.digits}f", continuous_update=False)
    return widgets.interactive(show, threshold=fit_labels(slider)[0])


def threshold_explorer(d_train, same_train, d_test, same_test, *, n_values=12):
    """The threshold Try-it for the book: :class:`ThresholdView` pre-rendered for ``n_values`` thresholds.

    The thresholds are evenly spaced up to the 99th percentile of the distances, on the live
    slider's round grid; the first frame is the one nearest a third of the way, where the widget starts.

    >>> import torch
    >>> d, same = torch.rand(40), (torch.rand(40) < 0.5).float()
    >>> e = threshold_explorer(d, same, d, same, n_values=3)
    >>> len(e.frames)
    3
    """
    from metalearn_lab.tryit import explorer

    view = ThresholdView(d_train, same_train, d_test, same_test)
    values = view.values(n_values)
    start = min(values, key=lambda t: abs(t - view.top / 3))
    return explorer(view.draw, {"threshold": values}, initial={"threshold": start}, labels={"threshold": "threshold"},
                    crop="first",
                    title="Verification accuracy against the threshold (pre-rendered)")


class OneShotTrialView:
    """The trial Try-it's figure: one trial of Lake's runs, the query, the 20 candidates and the model's pick.

    ``model`` maps images ``[B, 1, S, S]`` to embeddings; ``runs`` from
    :func:`metalearn_lab.data.load_lake_runs`. Each run's distances are computed once.
    :meth:`draw` (``run`` and ``trial`` counted from 1) returns :func:`plot_one_shot_trial`'s
    figure, one figure (:attr:`fig`) redrawn in place. The live widget (:func:`one_shot_trial_widget`)
    and the book's explorer (:func:`one_shot_trial_explorer`) both draw with it.
    """

    def __init__(self, model, runs, *, size=0.8):
        from matplotlib.figure import Figure

        self.model, self.runs = model, runs
        self.cache = {}
        self.fig = Figure(figsize=(11 * size, 2 * size * 1.15))  # the layout of drawing.show_images
        self.fig.subplots(2, 11)

    def distances(self, run: int):
        """``[queries, candidates]`` embedding distances of run ``run`` (from 1)."""
        if run not in self.cache:
            r = self.runs[run - 1]
            self.model.eval()
            with torch.no_grad():
                self.cache[run] = torch.cdist(self.model(r.query), self.model(r.support))
        return self.cache[run]

    def draw(self, run: int, trial: int):
        if not 1 <= run <= len(self.runs) or not 1 <= trial <= len(self.runs[run - 1].query):
            raise ValueError(f"run must be in 1..{len(self.runs)} and trial in 1..{len(self.runs[0].query)}, "
                             f"got run={run!r}, trial={trial!r}")
        r = self.runs[run - 1]
        d = self.distances(run)[trial - 1]
        return plot_one_shot_trial(r.query[trial - 1], r.support, int(d.argmin()), int(r.labels[trial - 1]), d, fig=self.fig,
                                   title=f"{r.name}, trial {trial}: the model picks the candidate at the smallest distance")


def one_shot_trial_widget(model, runs):
    """Browse Lake's runs: sliders for a run and a trial redraw :class:`OneShotTrialView`.

    The book's twin is :func:`one_shot_trial_explorer`.
    """
    import ipywidgets as widgets

    view, crop = OneShotTrialView(model, runs), []

    def show(run=1, trial=1):
        fig = view.draw(run, trial)
        if not crop:  # its title sits above the figure: measure the crop once, every trial has the same shape
            crop.append(tight_box(fig))
        show_png(fig, crop=crop[0], close=False)

    run, trial = fit_labels(
        widgets.IntSlider(value=1, min=1, max=len(runs), description="run", continuous_update=False),
        widgets.IntSlider(value=1, min=1, max=len(runs[0].query), description="trial", continuous_update=False),
    )
    return widgets.interactive(show, run=run, trial=trial)


def one_shot_trial_explorer(model, runs, *, run_values=(1, 2, 3, 4), trial_values=(1, 2, 3, 4, 5, 6)):
    """The trial Try-it for the book: :class:`OneShotTrialView` pre-rendered for a few runs and trials.

    Default: runs 1-4 and trials 1-6 (24 frames). Returns a :class:`metalearn_lab.tryit.StaticExplorer`.
    """
    from metalearn_lab.tryit import explorer

    view = OneShotTrialView(model, runs)
    return explorer(view.draw, {"run": list(run_values), "trial": list(trial_values)}, crop="first",
                    labels={"run": "run", "trial": "trial"}, title="Lake's one-shot trials (pre-rendered)")


def _as_float(value, what):
    """The student's scalar as a float, or a :class:`WrongAnswer` saying why it is not one."""
    if value is None:
        raise WrongAnswer(f"{what} returned None for some inputs but not for others: return the number in every case")
    try:
        t = torch.as_tensor(value, dtype=torch.float64)
    except Exception as err:  # noqa: BLE001 - any non-number is the learner's to fix
        raise WrongAnswer(f"{what} must return a number (a 0-d tensor or float), got {type(value).__name__}") from err
    if t.numel() != 1:
        raise WrongAnswer(f"{what} must return one number (a scalar), got shape {tuple(t.shape)}; "
                             "did you forget to average over the pairs?")
    return float(t)


@checker("Exercise 1: write the contrastive loss")
def check_contrastive_loss(fn):
    """Check ``fn(z1, z2, same, margin)`` against :func:`metalearn_lab.siamese.contrastive_loss`.

    Tries random embeddings with all-same, all-different and mixed labels and two margins, then
    identical embeddings, whose gradient must be finite. The untouched skeleton (returning ``None``)
    is "not attempted"; a wrong answer raises :class:`~metalearn_lab.exercises.WrongAnswer` saying
    what differs (labels swapped, d instead of d², a sum instead of a mean, a missing hinge, the
    hinge on d², d² used as the distance, a NaN gradient at d = 0, ...).
    """

    from metalearn_lab.siamese import contrastive_loss, pair_distance

    def variants(z1, z2, same, margin):
        d = pair_distance(z1, z2)
        s = ((z1 - z2) ** 2).sum(-1)
        hinge = torch.clamp(margin - d, min=0)
        return {
            "the labels are swapped: same = 1 must pull the pair together (loss d²), same = 0 must push it apart "
            "(loss max(0, m − d)²); Hadsell et al. (2006) use the opposite convention, this course uses the source's":
                (1 - same) * d**2 + same * hinge**2,
            "you used d instead of d²: square the distance for same pairs and square the hinge max(0, m − d) for different pairs":
                same * d + (1 - same) * hinge,
            "the same-class term is d, not d²: square it": same * d + (1 - same) * hinge**2,
            "the different-class term is max(0, m − d), not its square: square the hinge": same * d**2 + (1 - same) * hinge,
            "the hinge is missing: use max(0, m − d)², so pairs already farther apart than the margin cost nothing":
                same * d**2 + (1 - same) * (margin - d) ** 2,
            "you used the squared distance d² where the formula has d (take the square root of the sum of squares)":
                same * s**2 + (1 - same) * torch.clamp(margin - s, min=0) ** 2,
            "the margin is ignored: the hinge must be max(0, m − d) with the given margin m":
                same * d**2 + (1 - same) * torch.clamp(1.0 - d, min=0) ** 2,
            "the hinge compares the margin with d², not d: use max(0, m − d)² with d = ‖z1 − z2‖ (the square root "
            "of the sum of squares)":
                same * d**2 + (1 - same) * torch.clamp(margin - s, min=0) ** 2,
        }

    gen = torch.Generator().manual_seed(5)
    z1 = torch.randn(24, 6, generator=gen, dtype=torch.float64) * 0.35
    z2 = torch.randn(24, 6, generator=gen, dtype=torch.float64) * 0.35
    mixed = (torch.rand(24, generator=gen) < 0.5).double()
    cases = [("all pairs same = 1", torch.ones(24, dtype=torch.float64), 1.0),
             ("all pairs same = 0", torch.zeros(24, dtype=torch.float64), 1.0),
             ("mixed labels", mixed, 1.0),
             ("mixed labels, margin 2", mixed, 2.0)]

    def close(a, b):
        return abs(a - b) <= 1e-4 * max(1.0, abs(b))

    first = require_answer(fn(z1.clone(), z2.clone(), cases[0][1].clone(), cases[0][2]),
                           "my_contrastive_loss(z1, z2, same, margin)")
    got = [_as_float(first, "your contrastive loss")]
    got += [_as_float(fn(z1.clone(), z2.clone(), same.clone(), margin), "your contrastive loss") for _, same, margin in cases[1:]]
    want = [float(contrastive_loss(z1, z2, same, margin)) for _, same, margin in cases]
    if not all(close(g, w) for g, w in zip(got, want)):
        first = next(i for i, (g, w) in enumerate(zip(got, want)) if not close(g, w))
        name, _, margin = cases[first]
        where = f"On random embeddings ({name}, margin {margin:g}) you return {got[first]:.5f}, expected {want[first]:.5f}"
        if all(close(g, w * 24) for g, w in zip(got, want)):
            raise WrongAnswer(f"{where}: that is the sum over the 24 pairs; return the mean (the source writes a sum, the "
                                 "library averages, which keeps the learning rate independent of the number of pairs).")
        per_case = [variants(z1, z2, same, margin) for _, same, margin in cases]
        for message in per_case[0]:
            for reduce in ("mean", "sum"):
                values = [float(v[message].mean() if reduce == "mean" else v[message].sum()) for v in per_case]
                if all(close(g, v) for g, v in zip(got, values)):
                    extra = "" if reduce == "mean" else " (and you summed over pairs: take the mean)"
                    raise WrongAnswer(f"{where}: {message}{extra}.")
        raise WrongAnswer(f"{where}. Check the formula: mean over pairs of same·d² + (1 − same)·max(0, m − d)², "
                             "with d = ‖z1 − z2‖.")

    z = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    same = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    loss = fn(a, b, same, 1.0)
    value = _as_float(loss.detach() if hasattr(loss, "detach") else loss, "your contrastive loss")
    if abs(value - 0.5) > 1e-3:
        raise WrongAnswer(f"For identical embeddings (d = 0) with labels [1, 0, 1, 0] and margin 1 the loss is "
                             f"(0 + 1 + 0 + 1) / 4 = 0.5, you return {value:.5f}.")
    if not getattr(loss, "requires_grad", False):
        raise WrongAnswer("your loss carries no gradient: compute it with torch operations on z1 and z2 "
                             "(no .item(), .detach() or NumPy), so that training can backpropagate through it")
    loss.backward()
    for name, t in (("z1", a), ("z2", b)):
        if t.grad is None or not bool(torch.isfinite(t.grad).all()):
            raise WrongAnswer(
                f"For identical embeddings (d = 0) the gradient with respect to {name} is {t.grad if t.grad is None else 'NaN or inf'}: "
                "the derivative of sqrt at 0 is infinite, and 0·∞ gives NaN. Keep it finite, e.g. take "
                "sqrt(clamp(d², min=1e-12)) as metalearn_lab.siamese.pair_distance does.")
    return ("contrastive loss: matches the library for same = 1, same = 0 and mixed labels, and identical "
          "embeddings give a finite gradient")


def _best_accuracy(d, same):
    """The best threshold (:func:`metalearn_lab.siamese.best_threshold`) and its accuracy on ``(d, same)``."""
    from metalearn_lab.siamese import best_threshold

    threshold = best_threshold(d, same)
    return threshold, float(((d < threshold).double() == same).double().mean())


@checker("Exercise 2: choose the threshold")
def check_threshold(fn):
    """Check ``fn(d, same) -> threshold``: "same if d < threshold" must reach the best accuracy on ``(d, same)``.

    Tested on made-up distances where the two histograms have different spreads, so that the midpoint
    between the two mean distances is *not* the best threshold. The untouched skeleton is "not
    attempted"; a wrong threshold raises :class:`~metalearn_lab.exercises.WrongAnswer` naming the
    likely cause (the midpoint of the two means, which here is also the mean of all distances; the
    median of all distances; the rule turned around).
    """

    gen = torch.Generator().manual_seed(3)
    n = 400
    same = torch.cat([torch.ones(n), torch.zeros(n)]).double()
    d = torch.cat([(0.35 + 0.12 * torch.randn(n, generator=gen, dtype=torch.float64)).abs(),
                   (1.25 + 0.45 * torch.randn(n, generator=gen, dtype=torch.float64)).abs()])
    threshold = _as_float(require_answer(fn(d.clone(), same.clone()), "choose_threshold(d, same)"), "choose_threshold")
    _, best = _best_accuracy(d, same)
    got = float(((d < threshold).double() == same).double().mean())
    if got >= best - 1e-9:
        return (f"threshold {threshold:.3f} reaches the best accuracy on these pairs, {100 * best:.2f}%")
    inverted = float(((d > threshold).double() == same).double().mean())
    midpoint = float((d[same == 1].mean() + d[same == 0].mean()) / 2)
    if abs(threshold - midpoint) < 1e-6:
        hint = ("it is the midpoint between the two mean distances, which is best only when both histograms have the "
                "same spread; try every candidate threshold (e.g. every distance in d) and keep the most accurate")
    elif abs(threshold - float(d.median())) < 1e-6:
        hint = ("it is the median of all distances, which ignores the labels; try every candidate threshold "
                "(e.g. every distance in d) and keep the one that is right on the most pairs")
    elif inverted > got or not 0.05 < float((d < threshold).double().mean()) < 0.95:
        hint = ("it puts nearly every pair on one side, or suits the rule 'same if d > threshold'; same pairs have the "
                "*small* distances, so the rule is 'same if d < threshold'")
    else:
        hint = "try every candidate threshold (e.g. every distance in d, or midpoints between sorted distances) and keep the most accurate"
    raise WrongAnswer(f"With threshold {threshold:.3f} the rule 'same if d < threshold' is right on {100 * got:.2f}% of "
                         f"the pairs; the best threshold reaches {100 * best:.2f}%: {hint}.")


@checker("Exercise 3: nearest neighbour in embedding space")
def check_one_shot_predict(fn):
    """Check ``fn(model, x_support, x_query) -> [Q]`` against :func:`metalearn_lab.siamese.nearest_support`.

    The untouched skeleton is "not attempted"; a wrong answer raises
    :class:`~metalearn_lab.exercises.WrongAnswer` naming the likely cause (the distance matrix
    returned or transposed, distances instead of indices, argmax, raw pixels).
    """

    from metalearn_lab.siamese import nearest_support

    torch.manual_seed(11)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()
    gen = torch.Generator().manual_seed(11)
    x_support = torch.randn(6, 1, 4, 4, generator=gen)
    x_query = torch.cat([x_support + 0.4 * torch.randn(6, 1, 4, 4, generator=gen),
                         torch.randn(6, 1, 4, 4, generator=gen)])
    with torch.no_grad():
        want = nearest_support(model, x_support, x_query)
        got = require_answer(fn(model, x_support.clone(), x_query.clone()), "one_shot_predict(model, x_support, x_query)")
    got = torch.as_tensor(got)
    if got.shape != want.shape:
        hint = {(len(x_support),): " — one per support image: is your distance matrix transposed? Rows must be queries, "
                                   "columns support images",
                (len(x_query), len(x_support)): " — that is the whole [queries, support] distance matrix: take the "
                                                "argmin of each row"}.get(tuple(got.shape), "")
        raise WrongAnswer(f"one_shot_predict must return one support index per query, shape [{len(x_query)}]; "
                             f"got shape {tuple(got.shape)}{hint} (take argmin over the support axis of a "
                             "[queries, support] distance matrix)")
    if got.dtype.is_floating_point:
        raise WrongAnswer("one_shot_predict must return integer indices (e.g. from argmin), not distances")
    if torch.equal(got, want):
        return (f"one-shot prediction: the nearest support embedding for all {len(want)} queries")
    with torch.no_grad():
        z_s, z_q = model(x_support), model(x_query)
        farthest = torch.cdist(z_q, z_s).argmax(-1)
        pixels = torch.cdist(x_query.flatten(1), x_support.flatten(1)).argmin(-1)
    if torch.equal(got, farthest):
        hint = "you picked the *farthest* support image (argmax); the prediction is the nearest one (argmin)"
    elif torch.equal(got, pixels):
        hint = "you compared raw pixels; embed support and query with model(...) first and compare the embeddings"
    else:
        hint = "embed both sets with model(...), compute the [queries, support] Euclidean distances and take argmin per query"
    wrong = int((got != want).sum())
    raise WrongAnswer(f"one_shot_predict differs from the nearest support embedding on {wrong} of {len(want)} queries: {hint}.")
