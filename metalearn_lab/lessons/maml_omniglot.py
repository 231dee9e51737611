"""Companion of lesson ``06_maml_omniglot``: learning curves, one adapted episode with its predictions, the adaptation explorer, and the checkers of its exercises (ProtoNets by hand, the evaluation loop).

The lesson imports this module as ``lesson``; nothing in the core library imports it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib import patches

from metalearn_lab.controls import fit_labels, rate_slider, show_png
from metalearn_lab.drawing import image_mosaic
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer
from metalearn_lab.metrics import moving_average

_RIGHT, _WRONG = "#2e7d32", "#c62828"


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

    fig, (ax_train, ax_test) = plt.subplots(1, 2, figsize=(10, 3.6))
    any_eval = False
    for i, (label, h) in enumerate(histories.items()):
        steps = np.asarray(h.get("step", []), dtype=float)
        metric = np.asarray(h.get("metric", []), dtype=float)
        if len(metric) and np.isfinite(metric).any():
            ax_train.plot(steps, 100 * moving_average(metric, smooth), color=f"C{i}", lw=1.6, label=label)
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


def _support_panel(ax, x_support, y_support, labels, names, pad=2):
    rows = [x_support[y_support == c] for c in labels]
    mosaic, centres = image_mosaic(rows, max(len(r) for r in rows), pad=pad)
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks(centres, names, fontsize=8)
    ax.tick_params(length=0)
    ax.set_title("support set", fontsize=9)


def _query_panel(ax, x_query, y_query, predicted, labels, pad=2):

    order = [torch.nonzero(y_query == c).flatten() for c in labels]
    h, w = x_query.shape[-2:]
    mosaic, _ = image_mosaic([x_query[idx] for idx in order], max(len(i) for i in order), pad=pad)
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for r, idx in enumerate(order):
        for j, i in enumerate(idx.tolist()):
            color = _RIGHT if int(predicted[i]) == int(y_query[i]) else _WRONG
            top, left = pad + r * (h + pad), pad + j * (w + pad)
            ax.add_patch(patches.Rectangle((left - 1, top - 1), w + 1, h + 1, fill=False, ec=color, lw=2))
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


def _layout(fig):
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.95 / width, right=1 - 0.1 / width, bottom=0.1 / height, top=1 - 0.75 / height)


def _episode_tensors(x_support, y_support, x_query, y_query):

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

    xs, ys, xq, yq, labels, k, q = _episode_tensors(x_support, y_support, x_query, y_query)
    pred = torch.as_tensor(predicted).detach().cpu().reshape(-1)
    names = class_names or [f"label {c}" for c in labels]
    if fig is None:
        fig = plt.figure(figsize=episode_figsize(k, q, len(labels)))
    else:
        fig.clf()
    ax_s, ax_q = fig.subplots(1, 2, gridspec_kw={"width_ratios": [k, q], "wspace": 0.35 * 1 / (k + q) * 2})
    _layout(fig)
    _support_panel(ax_s, xs, ys, labels, names)
    _query_panel(ax_q, xq, yq, pred, labels)
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

    xs, ys, xq, yq, labels, k, q = _episode_tensors(x_support, y_support, x_query, y_query)
    m = len(predictions)
    fig, axes = plt.subplots(1, m + 1, figsize=episode_figsize(k, q, len(labels), m),
                              gridspec_kw={"width_ratios": [k] + [q] * m, "wspace": 0.35 * (m + 1) / (k + m * q)})
    _layout(fig)
    _support_panel(axes[0], xs, ys, labels, [f"label {c}" for c in labels])
    for ax, (name, pred) in zip(axes[1:], predictions.items()):
        pred = torch.as_tensor(pred).detach().cpu().reshape(-1)
        _query_panel(ax, xq, yq, pred, labels)
        ax.set_title(f"{name}: {100 * float((pred == yq).float().mean()):.0f}% right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def adapt_episode(model, episode, *, inner_steps: int, inner_lr: float):
    """Adapt ``model`` to one episode's support set and predict its queries.

    Parameters
    ----------
    model : nn.Module
        A MAML-style classifier (e.g. ``Conv4(out_features=5, track_running_stats=False)``).
    episode : :class:`metalearn_lab.samplers.Episode`
        One task (``len(episode) == 1``); only its first task is used otherwise.
    inner_steps : int >= 0
    inner_lr : float > 0

    Returns
    -------
    dict
        ``predicted`` ``[N*Q]`` labels, ``logits`` ``[N*Q, N]``, ``accuracy`` (float in [0, 1]) and
        ``seconds`` (the time the adaptation and prediction took).

    Examples
    --------
    >>> import torch
    >>> from metalearn_lab.models import Conv4
    >>> from metalearn_lab.samplers import EpisodeSampler
    >>> episode = EpisodeSampler(torch.rand(8, 20, 1, 28, 28), 5, 1, 2).sample(1, generator=torch.Generator().manual_seed(0))
    >>> out = adapt_episode(Conv4(out_features=5, track_running_stats=False), episode, inner_steps=1, inner_lr=0.4)
    >>> tuple(out["predicted"].shape), 0 <= out["accuracy"] <= 1
    ((10,), True)
    """
    import time

    import torch.nn.functional as F

    from metalearn_lab.maml import adapt_and_predict

    one = episode.task(0)
    start = time.perf_counter()
    logits = adapt_and_predict(model, one.as_tuple(), F.cross_entropy, inner_steps=int(inner_steps),
                               inner_lr=float(inner_lr))[0]
    seconds = time.perf_counter() - start
    predicted = logits.argmax(-1)
    return {"predicted": predicted, "logits": logits, "accuracy": float((predicted == one.y_query[0]).float().mean()),
            "seconds": seconds}


class OmniglotAdaptationView:
    """The Try-it's figure: one episode after adapting a chosen model, redrawn by :meth:`draw`.

    :meth:`draw` adapts the model to the episode's support set (:func:`adapt_episode`) and draws
    :func:`plot_episode_predictions` into one figure: the support images with their labels and
    every query with its predicted label, green when right and red when wrong. The live widget
    (:class:`OmniglotAdaptationExplorer`) and the book's pre-rendered explorer
    (:func:`omniglot_adaptation_explorer`) both draw with it.

    Parameters
    ----------
    models : dict name -> nn.Module
    classes : Tensor ``[n_classes, 20, 1, 28, 28]``
        Where episodes come from (the test characters).
    n_way, k_shot, n_query : int
        Episode shape.
    seed : int
        Which episode (:meth:`set_episode` changes it).

    Attributes
    ----------
    fig : matplotlib Figure (not managed by pyplot);  episode;  result : the last :func:`adapt_episode` output

    Examples
    --------
    >>> import torch
    >>> from metalearn_lab.models import Conv4
    >>> view = OmniglotAdaptationView({"net": Conv4(out_features=5, track_running_stats=False)}, torch.rand(6, 20, 1, 28, 28))
    >>> fig = view.draw(model="net", inner_steps=1, inner_lr=0.4)
    >>> fig is view.fig, fig._suptitle.get_text().split(":")[0]
    (True, 'net, 1 inner step, α = 0.4')
    """

    def __init__(self, models, classes, *, n_way=5, k_shot=1, n_query=5, seed=0):
        from matplotlib.figure import Figure

        from metalearn_lab.samplers import EpisodeSampler

        if not models:
            raise ValueError("models must hold at least one model, e.g. {'MAML': maml_model}")
        self.models = dict(models)
        self.sampler = EpisodeSampler(classes, n_way, k_shot, n_query)
        self.set_episode(seed)
        self.fig = Figure(figsize=episode_figsize(k_shot, n_query, n_way))
        self.result = None

    def set_episode(self, seed: int) -> None:
        """Use the episode drawn from ``seed`` (the next :meth:`draw` shows it)."""
        self.seed = int(seed)
        self.episode = self.sampler.sample(1, generator=torch.Generator().manual_seed(self.seed))

    def draw(self, *, model: str, inner_steps: int, inner_lr: float):
        """Adapt ``models[model]`` and redraw; returns :attr:`fig`."""
        if model not in self.models:
            raise ValueError(f"model must be one of {list(self.models)}, got {model!r}")
        steps, lr = int(inner_steps), float(inner_lr)
        self.result = adapt_episode(self.models[model], self.episode, inner_steps=steps, inner_lr=lr)
        e = self.episode
        plot_episode_predictions(e.x_support[0], e.y_support[0], e.x_query[0], e.y_query[0], self.result["predicted"],
                                 fig=self.fig, title=f"{model}, {steps} inner step{'s' if steps != 1 else ''}, α = {lr:.3g}: "
                                                     f"accuracy {100 * self.result['accuracy']:.0f}%")
        return self.fig


class OmniglotAdaptationExplorer:
    """Sliders for inner steps (0-10) and inner learning rate, a model menu, a "new episode" button.

    Each change redraws the :class:`OmniglotAdaptationView` (its ``draw``). One 5-way 1-shot
    adaptation of Conv4 takes milliseconds on a CPU.

    Parameters
    ----------
    models : dict name -> nn.Module
        e.g. ``{"MAML": maml_model, "first-order MAML": fomaml_model}``.
    classes : Tensor ``[n_classes, 20, 1, 28, 28]``
        Where new episodes come from (the test characters).
    n_way, k_shot, n_query : int
        Episode shape (``n_query`` queries per class are shown).
    inner_steps, inner_lr, seed : starting values.

    Attributes
    ----------
    steps, inner_lr : sliders;  model : dropdown;  new_episode : button;  view : the figure;
    fig, result, episode, seed : the view's;  ui : the widget to display
    """

    def __init__(self, models, classes, *, n_way=5, k_shot=1, n_query=5, inner_steps=3, inner_lr=0.4, seed=0):
        import ipywidgets as widgets

        self.view = OmniglotAdaptationView(models, classes, n_way=n_way, k_shot=k_shot, n_query=n_query, seed=seed)
        self.models, self.fig = self.view.models, self.view.fig
        self.steps = widgets.IntSlider(value=inner_steps, min=0, max=10, description="inner steps")
        # Finn et al.'s α = 0.4, and halvings and doublings of it.
        self.inner_lr = rate_slider(inner_lr, INNER_LRS, description="inner lr α")
        self.model = widgets.Dropdown(options=list(self.models), description="model")
        fit_labels(self.steps, self.inner_lr, self.model)
        self.new_episode = widgets.Button(description="new episode", icon="refresh")
        self.status = widgets.HTML()
        self.output = widgets.Output()
        for control in (self.steps, self.inner_lr, self.model):
            control.observe(self.update, names="value")
        self.new_episode.on_click(self.next_episode)
        self.ui = widgets.VBox([widgets.HBox([self.model, self.new_episode]), widgets.HBox([self.steps, self.inner_lr]),
                                self.status, self.output])
        self.update()

    @property
    def seed(self) -> int:
        return self.view.seed

    @property
    def episode(self):
        return self.view.episode

    @property
    def result(self):
        return self.view.result

    def next_episode(self, _button=None) -> None:
        """Draw a fresh episode (seed + 1) and redraw."""
        self.view.set_episode(self.view.seed + 1)
        self.update()

    def update(self, _change=None) -> None:
        """Redraw the view for the current controls and show it."""
        from IPython.display import clear_output

        self.view.draw(model=self.model.value, inner_steps=int(self.steps.value), inner_lr=float(self.inner_lr.value))
        self.status.value = f"episode {self.seed}: adapted and predicted in {1000 * self.result['seconds']:.0f} ms"
        with self.output:
            clear_output(wait=True)
            show_png(self.fig, close=False)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)


#: The live slider's step sizes: Finn et al.'s α = 0.4, and halvings and doublings of it.
INNER_LRS = (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


def omniglot_adaptation_widget(models, classes, **kwargs) -> OmniglotAdaptationExplorer:
    """Build the "Try it" explorer for MAML on Omniglot; display it by leaving it last in a cell.

    ``kwargs`` go to :class:`OmniglotAdaptationExplorer` (``n_way``, ``k_shot``, ``n_query``,
    ``inner_steps``, ``inner_lr``, ``seed``).
    """
    return OmniglotAdaptationExplorer(models, classes, **kwargs)


def omniglot_adaptation_explorer(models, classes, *, inner_steps=(0, 1, 3, 10), inner_lrs=(0.05, 0.4, 3.2), seed=0,
                                 n_way=5, k_shot=1, n_query=5, dpi=80):
    """The Try-it for the book: :class:`OmniglotAdaptationView` pre-rendered for every model and slider value.

    Default: each model × 0, 1, 3 and 10 steps × α = 0.05, 0.4 (the paper's) and 3.2 (for two
    models, 24 frames). The first frame is the first model, 3 steps (or the middle value), α = 0.4
    (or the middle value). ``dpi`` 80 keeps the predicted labels legible (about 36 kB a frame).
    Returns a :class:`metalearn_lab.tryit.StaticExplorer`.

    Examples
    --------
    >>> import torch
    >>> from metalearn_lab.models import Conv4
    >>> e = omniglot_adaptation_explorer({"net": Conv4(out_features=5, track_running_stats=False)},
    ...                                  torch.rand(6, 20, 1, 28, 28), inner_steps=(0, 1), inner_lrs=(0.4,))
    >>> len(e.frames), e.initial
    (2, {'model': 'net', 'inner_steps': 1, 'inner_lr': 0.4})
    """
    from metalearn_lab.tryit import explorer

    view = OmniglotAdaptationView(models, classes, n_way=n_way, k_shot=k_shot, n_query=n_query, seed=seed)
    values = {"model": list(view.models), "inner_steps": list(inner_steps), "inner_lr": list(inner_lrs)}
    initial = {name: (v[len(v) // 2] if name != "model" else v[0]) for name, v in values.items()}
    if 3 in values["inner_steps"]:
        initial["inner_steps"] = 3
    if 0.4 in values["inner_lr"]:
        initial["inner_lr"] = 0.4
    return explorer(view.draw, values, initial=initial, dpi=dpi, crop="first",
                    labels={"model": "model", "inner_steps": "inner steps", "inner_lr": "inner lr α"},
                    title="Adapting a meta-trained model to one new episode (pre-rendered)")


def _close(a, b, tol=1e-5):

    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol, atol=tol))


@checker("Exercise 1: prototypes and logits by hand")
def check_protonet_by_hand(protonet_by_hand) -> str:
    """Check ``protonet_by_hand(z_support, y_support, z_query, n_way) -> (prototypes, logits)`` for one task.

    ``z_support`` ``[N*K, D]`` support embeddings in any order, ``y_support`` ``[N*K]``, ``z_query``
    ``[Q, D]``. Expected: ``prototypes`` ``[N, D]``, row ``c`` the mean embedding of class ``c``; ``logits``
    ``[Q, N]`` = minus the squared Euclidean distance from each query to each prototype, compared with
    :func:`metalearn_lab.protonet.prototypes` and :func:`metalearn_lab.protonet.squared_distances`.
    The untouched skeleton is "not attempted"; a wrong answer raises
    :class:`~metalearn_lab.exercises.WrongAnswer` naming the mistake (first example instead of the
    mean, rows in the wrong order, one global mean, +d², d instead of d², log-softmax or softmax,
    the pair returned the wrong way round).
    """

    from metalearn_lab.protonet import prototypes, squared_distances

    for seed, (n_way, k_shot, dim, n_query) in enumerate([(3, 2, 4, 5), (5, 3, 6, 7)]):
        g = torch.Generator().manual_seed(100 + seed)
        y_support = torch.arange(n_way).repeat(k_shot)[torch.randperm(n_way * k_shot, generator=g)]
        y_support[: n_way] = torch.arange(n_way).flip(0)  # the first label seen is not 0
        z_support = torch.randn(n_way * k_shot, dim, generator=g)
        z_query = torch.randn(n_query, dim, generator=g)
        want_p = prototypes(z_support[None], y_support[None], n_way)[0]
        want_l = -squared_distances(z_query[None], want_p[None])[0]
        out = require_answer(protonet_by_hand(z_support.clone(), y_support.clone(), z_query.clone(), n_way),
                             "protonet_by_hand(z_support, y_support, z_query, n_way)")
        expect(isinstance(out, (tuple, list)) and len(out) == 2,
               f"protonet_by_hand should return a pair (prototypes, logits), got {type(out).__name__}")
        got_p, got_l = (torch.as_tensor(require_answer(t, "prototypes or logits")).detach().double() for t in out)
        if tuple(got_p.shape) == (n_query, n_way) and tuple(got_l.shape) == (n_way, dim):
            raise WrongAnswer("you returned (logits, prototypes); return them the other way round, (prototypes, logits)")
        expect(tuple(got_p.shape) == (n_way, dim),
               f"prototypes should have shape [n_way, dim] = {(n_way, dim)}, got {tuple(got_p.shape)}")
        expect(tuple(got_l.shape) == (n_query, n_way),
               f"logits should have shape [n_query, n_way] = {(n_query, n_way)} (one row per query, one column per "
               f"class), got {tuple(got_l.shape)}")
        if not _close(got_p, want_p):
            first = torch.stack([z_support[y_support == c][0] for c in range(n_way)])
            seen = list(dict.fromkeys(y_support.tolist()))
            if _close(got_p, first):
                raise WrongAnswer(f"with k_shot={k_shot} your prototypes are the first support example of each class; "
                                     "a prototype is the MEAN of the class's K support embeddings")
            if _close(got_p, want_p[seen]):
                raise WrongAnswer("your prototypes are in the order the labels first appear in y_support; row c must "
                                     "be the prototype of label c (the support set here is shuffled)")
            if _close(got_p, z_support.double().mean(0).expand(n_way, dim)):
                raise WrongAnswer("every prototype is the mean of the whole support set; average only the embeddings "
                                     "whose label is c (z_support[y_support == c])")
            raise WrongAnswer(f"prototypes differ from the class means (max error "
                                 f"{float((got_p - want_p.double()).abs().max()):.3g}); row c = z_support[y_support == c].mean(0)")
        want_l = want_l.double()
        if not _close(got_l, want_l, 1e-4):
            if _close(got_l, -want_l, 1e-4):
                raise WrongAnswer("your logits are +squared distances: the nearest prototype would get the SMALLEST "
                                     "logit. ProtoNets use minus the squared distance")
            if _close(got_l, -(-want_l).clamp_min(0).sqrt(), 1e-4) or _close(got_l, (-want_l).sqrt(), 1e-4):
                raise WrongAnswer("your logits use the Euclidean distance, not its square; Snell et al. (2017) use "
                                     "the squared distance, -||z_query - c||^2")
            if _close(got_l, torch.softmax(want_l, -1), 1e-4):
                raise WrongAnswer("your logits are probabilities (softmax of -d^2); return the raw logits -d^2: "
                                  "cross_entropy applies the softmax itself")
            shift = got_l - want_l
            if _close(shift - shift[:, :1], torch.zeros_like(shift), 1e-4):
                raise WrongAnswer("your logits differ from -d^2 by a constant per query: that is log-softmax (or "
                                     "another normalisation). Return the raw logits -d^2; cross_entropy normalises them")
            raise WrongAnswer(f"logits differ from -squared distance to the prototypes (max error "
                                 f"{float((got_l - want_l).abs().max()):.3g}); logits[q, c] = -((z_query[q] - prototypes[c])**2).sum()")
    return ("prototypes are class means and logits are minus squared distances: matches metalearn_lab.protonet.")


def _fake_tasks(n_tasks=23):
    """A FixedEpisodes set on tiny random 'images' and a predictor (1-NN on pixels plus noise) with varied accuracy."""

    from metalearn_lab.samplers import EpisodeSampler, FixedEpisodes

    g = torch.Generator().manual_seed(6)
    centres = torch.randn(12, 1, 1, 3, 3, generator=g)
    classes = centres + 0.9 * torch.randn(12, 20, 1, 3, 3, generator=g)
    tasks = FixedEpisodes(EpisodeSampler(classes, 4, 1, 3), n_tasks=n_tasks, seed=6)

    def predict(episode):
        xs = episode.x_support.flatten(2)
        xq = episode.x_query.flatten(2)
        return -torch.cdist(xq, xs) ** 2  # [B, N*Q, N]: one support image per class, ordered by label

    return tasks, predict


def _reference_values(tasks, predict, batch_size):

    per_task, per_batch, pooled = [], [], []
    for episode in tasks.batches(batch_size):
        right = (predict(episode).argmax(-1) == episode.y_query).float()  # [B, N*Q]
        per_task.extend(right.mean(-1).tolist())
        per_batch.append(float(right.mean()))
        pooled.extend(right.flatten().tolist())
    return torch.tensor(per_task, dtype=torch.float64), per_batch, torch.tensor(pooled, dtype=torch.float64)


@checker("Exercise 2: the evaluation loop")
def check_evaluation_loop(evaluate_tasks) -> str:
    """Check ``evaluate_tasks(predict, tasks, batch_size) -> (mean, ci95)``.

    ``predict(episode)`` returns logits ``[B, N*Q, N]`` for a batch of episodes; ``tasks`` is a
    :class:`~metalearn_lab.samplers.FixedEpisodes`. Expected: the accuracy of each task (fraction
    of its queries classified right), then their mean and the half-width of the 95% interval,
    ``t * std / sqrt(n_tasks)`` with the sample standard deviation and Student's t quantile
    ``t = t_quantile(0.95, n_tasks)``, as :func:`metalearn_lab.metrics.mean_confidence_interval` computes it. Checked on 23 toy tasks
    with ``batch_size=5``, so the last batch is short. The untouched skeleton is "not attempted"; a
    wrong answer raises :class:`~metalearn_lab.exercises.WrongAnswer` naming the mistake (percent,
    mean of batch means, first batch only, standard error, 1.96, no square root, population std,
    queries pooled, the pair (low, high)).
    """

    from metalearn_lab.metrics import mean_confidence_interval, t_quantile

    tasks, predict = _fake_tasks()
    batch_size = 5
    per_task, per_batch, pooled = _reference_values(tasks, predict, batch_size)
    want_mean, want_ci = mean_confidence_interval(per_task)
    out = require_answer(evaluate_tasks(predict, tasks, batch_size), "evaluate_tasks(predict, tasks, batch_size)")
    expect(isinstance(out, (tuple, list)) and len(out) == 2, f"evaluate_tasks should return a pair (mean, ci95), got {out!r:.80}")
    mean, ci = out
    expect(not isinstance(ci, (tuple, list)),
           "the second value should be the half-width of the interval (one number, mean ± ci95), not the pair (low, high)")
    mean, ci = float(mean), float(ci)

    def near(a, b):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)

    if not near(mean, want_mean):
        if near(mean, 100 * want_mean):
            raise WrongAnswer("your mean is a percentage; return a fraction in [0, 1] (the lesson prints percentages)")
        if near(mean, sum(per_batch) / len(per_batch)):
            raise WrongAnswer(f"your mean averages the batch means; with {len(tasks)} tasks in batches of {batch_size} "
                                 "the last batch is shorter and gets too much weight. Collect one accuracy per TASK, "
                                 "then average those")
        first = per_task[:batch_size].mean().item()
        if near(mean, first):
            raise WrongAnswer("your mean uses only the first batch: loop over all of tasks.batches(batch_size)")
        raise WrongAnswer(f"mean accuracy is {mean:.4f}, expected {want_mean:.4f}: per task, the fraction of queries "
                             "whose argmax logit equals y_query; then the mean over all tasks")
    n = len(per_task)
    std = float(per_task.std(unbiased=True))
    t = t_quantile(0.95, n)
    if not near(ci, want_ci):
        if near(ci, std / math.sqrt(n)):
            raise WrongAnswer("your interval is the standard error std/sqrt(n); the 95% half-width is t = t_quantile(0.95, n) times it")
        if near(ci, 1.96 * std / math.sqrt(n)):
            raise WrongAnswer("your interval uses 1.96, the normal approximation; with n tasks the 95% quantile is "
                              "Student's t, t_quantile(0.95, n) (2.07 for 23 tasks, 1.96 only for hundreds)")
        if near(ci, t * std):
            raise WrongAnswer("your interval is t * std; divide by sqrt(number of tasks) for the interval of the MEAN")
        if near(ci, t * float(per_task.std(unbiased=False)) / math.sqrt(n)):
            raise WrongAnswer("use the sample standard deviation (divide by n - 1: torch's std default, or "
                                 "unbiased=True), as mean_confidence_interval does")
        if near(ci, t_quantile(0.95, len(pooled)) * float(pooled.std(unbiased=True)) / math.sqrt(len(pooled))) or near(
                ci, 1.96 * float(pooled.std(unbiased=False)) / math.sqrt(len(pooled))):
            raise WrongAnswer("your interval treats every query as independent; the papers' interval is over "
                                 "TASKS (one accuracy per task), which is wider because queries of a task share its classes")
        if near(ci, 100 * want_ci):
            raise WrongAnswer("your interval is in percent; return a fraction like the mean")
        raise WrongAnswer(f"ci95 is {ci:.4f}, expected {want_ci:.4f} = t * std(per-task accuracies) / sqrt({n}) with t = {t:.3f}")
    return (f"mean {100 * want_mean:.1f}% ± {100 * want_ci:.1f}% over {n} tasks, batch by batch: matches "
          "mean_confidence_interval.")
