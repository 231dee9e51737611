"""Companion of lesson ``03_maml_math``: how far first-order MAML's gradient is from the true meta-gradient, the cost of the second-order term, and the checkers of its exercises (a Hessian-vector product, the fixed source-text MAML code).

The lesson imports this module as ``lesson``; nothing in the core library imports it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from metalearn_lab.controls import RATES_1_2_5, fit_labels, margins, rate_slider, show_png
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer


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
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
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

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(9.5, 3.9))
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


def _gaps(task, alphas, inner_steps):
    import numpy as np

    from metalearn_lab.autodiff import compare_gradients
    from metalearn_lab.maml import linear_regression_meta_gradient

    cos, rel = [], []
    for alpha in alphas:
        true = linear_regression_meta_gradient(*task, inner_lr=float(alpha), inner_steps=inner_steps)
        first = linear_regression_meta_gradient(*task, inner_lr=float(alpha), inner_steps=inner_steps, first_order=True)
        c, r = compare_gradients(true, first)
        cos.append(c)
        rel.append(r if np.isfinite(r) else np.nan)
    return np.asarray(cos), np.asarray(rel)


def first_order_gap_view(task, inner_lr: float = 0.05, inner_steps: int = 1, *, alphas=None, gaps=None, layout=None):
    r"""One view of the first-order gap for linear regression: the two gradients, and the error against α.

    Left: the components of the true meta-gradient :math:`((I-\alpha A_s)^K)^\top g` and of the
    first-order one :math:`g = \nabla\mathcal{L}_q(\theta_K)`. Right: their relative error for every α
    (this ``inner_steps``), with a dot at ``inner_lr``. Everything is closed form
    (:func:`metalearn_lab.maml.linear_regression_meta_gradient`), so it redraws instantly.

    Parameters
    ----------
    task : (theta [d], x_support [n, d], y_support [n], x_query [m, d], y_query [m]), float64
    inner_lr, inner_steps : α and K
    alphas : the α grid of the right panel (default 60 values from 1e-3 to 1)
    gaps : ``(cosines, relative errors)`` over ``alphas`` for this ``inner_steps``, if already
        computed (the widget keeps them per K: a change of α then redraws without the sweep)
    layout : subplot margins to use instead of ``tight_layout`` (:func:`metalearn_lab.controls.margins`)

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    >>> task = (torch.zeros(3, dtype=torch.float64), x, x.sum(1), x, x.sum(1))
    >>> len(first_order_gap_view(task, 0.05, 2).axes)
    2
    """
    import numpy as np

    from metalearn_lab.autodiff import compare_gradients
    from metalearn_lab.maml import linear_regression_meta_gradient

    theta, x_support = task[0], task[1]
    alphas = np.geomspace(1e-3, 1.0, 60) if alphas is None else np.asarray(alphas, dtype=float)
    a_support = 2.0 / x_support.shape[0] * x_support.T @ x_support
    limit = 2.0 / float(torch.linalg.eigvalsh(a_support).max())
    true = linear_regression_meta_gradient(*task, inner_lr=inner_lr, inner_steps=inner_steps)
    first = linear_regression_meta_gradient(*task, inner_lr=inner_lr, inner_steps=inner_steps, first_order=True)
    cos, rel = compare_gradients(true, first)
    fig, (ax_bar, ax_rel) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    index = np.arange(theta.numel())
    ax_bar.bar(index - 0.2, true.numpy(), width=0.4, label="true (second-order)", color="C0")
    ax_bar.bar(index + 0.2, first.numpy(), width=0.4, label="first-order", color="C1")
    ax_bar.axhline(0, color="0.3", lw=0.8)
    ax_bar.set_xticks(index)
    ax_bar.set_xticklabels([f"θ{i}" for i in index])
    ax_bar.set_ylabel("meta-gradient component")
    ax_bar.set_title(f"α = {inner_lr:.3g}, K = {inner_steps}:  cos = {cos:.3f},  rel. error = {rel:.2g}", fontsize=10)
    ax_bar.legend(fontsize=8)
    _, rels = _gaps(task, alphas, inner_steps) if gaps is None else gaps
    ax_rel.plot(alphas, rels, color="C2", label=f"K = {inner_steps}")
    ax_rel.plot([inner_lr], [rel], "o", color="C3", ms=7)
    if limit < alphas.max():
        ax_rel.axvspan(limit, alphas.max(), color="0.85", zorder=0)
        ax_rel.annotate("inner loop\ndiverges →", (limit, 0.05), xycoords=("data", "axes fraction"), xytext=(-3, 0),
                        textcoords="offset points", fontsize=8, color="0.3", ha="right")
    ax_rel.set_xscale("log")
    ax_rel.set_yscale("log")
    ax_rel.set_xlabel("inner learning rate α")
    ax_rel.set_ylabel("relative error of first-order")
    ax_rel.set_title("error against α (dot: the slider's α)", fontsize=10)
    ax_rel.grid(alpha=0.3, which="both")
    if layout is None:
        fig.tight_layout()
    else:
        fig.subplots_adjust(**layout)
    return fig


class FirstOrderGapView:
    """The Try-it's figure: :func:`first_order_gap_view` for one task, with what does not change kept.

    The α sweep of the right panel depends only on K, so it is computed once per K; the first
    figure's margins are reused for the next (they keep their shape). The live widget
    (:func:`first_order_gap_widget`) and the book's explorer (:func:`first_order_gap_explorer`)
    both draw with :meth:`draw`.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    >>> view = FirstOrderGapView((torch.zeros(3, dtype=torch.float64), x, x.sum(1), x, x.sum(1)))
    >>> fig = view.draw(0.05, 2); fig = view.draw(0.1, 2)
    >>> sorted(view.sweeps), len(fig.axes)
    ([2], 2)
    """

    def __init__(self, task):
        import numpy as np

        self.task = task
        self.alphas = np.geomspace(1e-3, 1.0, 60)
        self.sweeps = {}  # inner_steps -> the α sweep of the right panel
        self.layout = {}

    def draw(self, inner_lr: float, inner_steps: int):
        """The view for α = ``inner_lr`` and K = ``inner_steps``; returns a pyplot figure."""
        if inner_steps not in self.sweeps:
            self.sweeps[inner_steps] = _gaps(self.task, self.alphas, inner_steps)
        fig = first_order_gap_view(self.task, inner_lr, inner_steps, alphas=self.alphas, gaps=self.sweeps[inner_steps],
                                   layout=self.layout or None)
        if not self.layout:
            self.layout.update(margins(fig))
        return fig


#: The live slider's α: 1, 2 and 5 per decade from 0.001 to 1.
GAP_RATES = tuple(r for r in RATES_1_2_5 if r >= 1e-3)


def first_order_gap_widget(task):
    """Sliders for α (1, 2, 5 per decade, 0.001 to 1) and K; redraws :class:`FirstOrderGapView`."""
    import ipywidgets as widgets

    view = FirstOrderGapView(task)

    def update(inner_lr, inner_steps):
        show_png(view.draw(inner_lr, inner_steps))

    inner_lr, inner_steps = fit_labels(
        rate_slider(0.05, GAP_RATES, description="inner lr α"),
        widgets.IntSlider(value=1, min=1, max=16, description="inner steps K"),
    )
    return widgets.interactive(update, inner_lr=inner_lr, inner_steps=inner_steps)


#: The book's slider values: α across three decades and past the inner loop's divergence, K doubling.
EXPLORER_VALUES = {"inner_lr": (0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0), "inner_steps": (1, 2, 4, 8)}


def first_order_gap_explorer(task, values=None):
    """The Try-it for the book: :class:`FirstOrderGapView` pre-rendered for every combination of values.

    ``values``: the ``inner_lr`` and ``inner_steps`` values (default :data:`EXPLORER_VALUES`, 7 × 4
    = 28 frames); the first frame is where the widget starts (α = 0.05, K = 1) when offered.

    Returns
    -------
    metalearn_lab.tryit.StaticExplorer
    """
    from metalearn_lab.tryit import explorer

    values = {name: list(v) for name, v in (values or EXPLORER_VALUES).items()}
    if set(values) != set(EXPLORER_VALUES):
        raise ValueError(f"values must give {sorted(EXPLORER_VALUES)}, got {sorted(values)}")
    start = {"inner_lr": 0.05, "inner_steps": 1}
    initial = {name: start[name] if start[name] in v else v[0] for name, v in values.items()}
    view = FirstOrderGapView(task)
    return explorer(view.draw, values, initial=initial, crop="first",
                    labels={"inner_lr": "inner lr α", "inner_steps": "inner steps K"},
                    title="First-order against true meta-gradient, linear regression (pre-rendered)")


def first_order_gap_figure(task, steps=(1, 2, 4, 8), *, alphas=None):
    """Every K at once: cosine and relative error of the first-order meta-gradient against α, one line per K.

    Returns
    -------
    matplotlib Figure (from :func:`plot_gradient_agreement`)
    """
    import numpy as np

    alphas = np.geomspace(1e-3, 1.0, 40) if alphas is None else np.asarray(alphas, dtype=float)
    curves = {f"K = {k}": _gaps(task, alphas, k) for k in steps}
    a_support = 2.0 / task[1].shape[0] * task[1].T @ task[1]
    limit = 2.0 / float(torch.linalg.eigvalsh(a_support).max())
    fig = plot_gradient_agreement(alphas, curves,
                                  title="Linear regression: first-order vs true meta-gradient (closed form)")
    if limit < alphas.max():
        for ax in fig.axes:
            ax.axvspan(limit, alphas.max(), color="0.85", zorder=0)
        fig.axes[1].annotate("inner loop\ndiverges →", (limit, 0.05), xycoords=("data", "axes fraction"),
                             xytext=(-3, 0), textcoords="offset points", fontsize=8, color="0.3", ha="right")
    return fig


def _tiny_task(seed: int = 0, hidden: int = 8):
    """A float64 SineMLP(hidden) and one sinusoid task: (model, x_support, y_support, x_query, y_query)."""
    import torch

    from metalearn_lab.models import SineMLP

    torch.manual_seed(seed)
    model = SineMLP(hidden=hidden).double()
    g = torch.Generator().manual_seed(seed)
    x_support = torch.rand(6, 1, generator=g, dtype=torch.float64) * 10 - 5
    x_query = torch.rand(8, 1, generator=g, dtype=torch.float64) * 10 - 5
    amplitude, phase = 1 + 3 * torch.rand(1, generator=g, dtype=torch.float64), torch.rand(1, generator=g, dtype=torch.float64)
    return model, x_support, amplitude * torch.sin(x_support - phase), x_query, amplitude * torch.sin(x_query - phase)


def _as_dict(out, names, what):
    from collections.abc import Mapping

    import torch

    expect(out is not None, f"{what} returned None: every call must return the result")
    if isinstance(out, Mapping):
        expect(set(out) == set(names), f"{what} must return a dict with one entry per parameter; missing "
                                       f"{sorted(set(names) - set(out))}, unexpected {sorted(set(out) - set(names))}")
        out = dict(out)
    elif isinstance(out, (tuple, list)) and len(out) == len(names) and all(isinstance(t, torch.Tensor) for t in out):
        out = dict(zip(names, out))
    elif isinstance(out, torch.Tensor):
        hint = " (a scalar: the dot product or a loss, not yet differentiated?)" if out.dim() == 0 else ""
        raise WrongAnswer(f"{what} returned one tensor of shape {tuple(out.shape)}{hint}; return a dict name -> tensor "
                          f"with one entry per parameter, like dict(model.named_parameters())")
    else:
        raise WrongAnswer(f"{what} should return a dict name -> tensor (like dict(model.named_parameters())), "
                          f"got {type(out).__name__}")
    for k, v in out.items():
        expect(isinstance(v, torch.Tensor), f"entry {k!r} should be a tensor, got {type(v).__name__}")
    return out


def _rel(a, b) -> float:
    from metalearn_lab.autodiff import compare_gradients

    return compare_gradients(b, {k: a[k].to(b[k].dtype) for k in b})[1]


def _name(function, default: str) -> str:
    """The name to use for the student's function in messages (a lambda has none)."""
    name = getattr(function, "__name__", "")
    return name if name.isidentifier() else default


@checker("Exercise 1: a Hessian-vector product by double backward")
def check_hessian_vector_product(hvp) -> str:
    r"""Check ``hvp(f, params, v) -> dict``: :math:`\nabla^2 f(\theta)\,v` for a scalar ``f(params)``.

    Tested on a quadratic whose Hessian is known and on the support loss of a small float64 sine
    MLP (``params`` are leaves with ``requires_grad=True``), against
    :func:`metalearn_lab.autodiff.hessian_vector_product`. A skeleton that returns None is
    reported as not attempted; the usual slips are named: no ``create_graph=True``, differentiating
    with respect to ``v``, returning the gradient, ``v``, the gradient times ``v`` element by
    element, the dot product itself, or H·v with the wrong sign or scale.

    >>> from metalearn_lab.autodiff import hessian_vector_product
    >>> check_hessian_vector_product(hessian_vector_product)
    ✓ Exercise 1: a Hessian-vector product by double backward: H·v matches the library on a quadratic and on a sine MLP's support loss (never forming H).
    >>> def my_hvp(f, params, v):
    ...     return None
    >>> check_hessian_vector_product(my_hvp)
    … Exercise 1: a Hessian-vector product by double backward: not attempted. my_hvp(f, params, v) returned None: fill in the skeleton (or, if you did, end it with a return statement)
    """
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    from metalearn_lab.autodiff import hessian_vector_product

    name = _name(hvp, "hvp")
    model, x_support, y_support, _, _ = _tiny_task(1)
    matrix = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    cases = [
        ("the quadratic f(w) = ½ wᵀAw + bᵀw (Hessian A)",
         lambda p: 0.5 * p["w"] @ matrix @ p["w"] + p["w"].sum(),
         {"w": torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)}),
        ("a sine MLP's support loss",
         lambda p: F.mse_loss(functional_call(model, p, (x_support,)), y_support),
         {k: v.detach().clone() for k, v in model.named_parameters()}),
    ]
    for number, (what, f, point) in enumerate(cases):
        g = torch.Generator().manual_seed(7)
        v = {k: torch.randn(t.shape, generator=g, dtype=torch.float64) for k, t in point.items()}
        params = {k: t.clone().requires_grad_() for k, t in point.items()}
        try:
            out = hvp(f, params, v)
        except RuntimeError as error:
            hint = ""
            if "One of the differentiated Tensors does not require grad" in str(error):
                hint = (" The second torch.autograd.grad differentiates with respect to the parameters "
                        "(list(params.values())), not v.")
            elif "does not require grad" in str(error):
                hint = (" The first torch.autograd.grad needs create_graph=True, so that the gradient can be "
                        "differentiated once more.")
            raise WrongAnswer(f"{name} raised RuntimeError on {what}: {error}.{hint}") from error
        if number == 0:
            out = require_answer(out, f"{name}(f, params, v)")
        got = _as_dict(out, list(params), name)
        want = hessian_vector_product(f, point, v)
        for k in want:
            expect(tuple(got[k].shape) == tuple(want[k].shape),
                   f"entry {k!r} has shape {tuple(got[k].shape)}, expected {tuple(want[k].shape)} (the shape of the parameter)")
        rel = _rel(got, want)
        if rel < 1e-8:
            continue
        gradient = dict(zip(params, torch.autograd.grad(f(params), list(params.values()))))
        expect(_rel(got, gradient) >= 1e-8, f"on {what} {name} returned the gradient ∇f, not H·v: differentiate the "
                                             "dot product ⟨∇f, v⟩ once more (a second torch.autograd.grad)")
        expect(_rel(got, v) >= 1e-8, f"on {what} {name} returned v itself: the result is the gradient of "
                                      "⟨∇f(θ), v⟩ with respect to θ")
        expect(_rel(got, {k: gradient[k] * v[k] for k in v}) >= 1e-8,
               f"on {what} {name} returned ∇f · v element by element: H·v needs a second differentiation, the "
               "gradient of the scalar Σ_k ⟨g_k, v_k⟩ with respect to θ")
        for factor, text in ((-1.0, "has the wrong sign"), (2.0, "is twice too large"), (0.5, "is half as large as it should be")):
            expect(_rel(got, {k: factor * t for k, t in want.items()}) >= 1e-8, f"on {what} your H·v {text}")
        raise WrongAnswer(f"on {what} your H·v differs from the library's by a relative error of {rel:.2e}: "
                          "compute g = ∇f(θ) with create_graph=True, then the gradient of Σ_k ⟨g_k, v_k⟩ w.r.t. θ")
    return "H·v matches the library on a quadratic and on a sine MLP's support loss (never forming H)."


def _maml_by_hand(model, point, xs, ys, xq, yq, inner_steps, step_size):
    """The meta-gradient of the MSE query loss after ``inner_steps`` steps ``θ - step_size · ∇L_support``
    (any sign of ``step_size``, which :func:`metalearn_lab.maml.meta_gradient` rightly refuses)."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    start = {k: v.detach().clone().requires_grad_() for k, v in point.items()}
    theta = start
    for _ in range(inner_steps):
        loss = F.mse_loss(functional_call(model, theta, (xs,)), ys)
        grads = torch.autograd.grad(loss, list(theta.values()), create_graph=True)
        theta = {k: t - step_size * g for (k, t), g in zip(theta.items(), grads)}
    query_loss = F.mse_loss(functional_call(model, theta, (xq,)), yq)
    return dict(zip(start, torch.autograd.grad(query_loss, list(start.values()))))


@checker("Exercise 2: fix the source text's MAML code")
def check_meta_gradient(meta_gradient_fn) -> str:
    r"""Check a fixed "find the bug" function against :func:`metalearn_lab.maml.meta_gradient`.

    ``meta_gradient_fn(model, x_support, y_support, x_query, y_query, loss_fn, inner_steps, inner_lr)``
    must return the MAML meta-gradient of one task, :math:`\nabla_\theta \mathcal{L}_{\text{query}}(\theta')`
    with :math:`\theta'` after ``inner_steps`` steps of gradient descent on the support loss, as a
    dict name → Tensor, and leave the model's weights :math:`\theta` unchanged. A skeleton that
    returns None is reported as not attempted; the usual slips are named: weights changed in place
    (the source text's bug), the first-order gradient, too few inner steps, support and query
    swapped, an inner step that goes uphill, the adapted weights returned instead of a gradient.

    >>> import torch
    >>> from metalearn_lab.maml import meta_gradient
    >>> def fixed(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
    ...     batch = (xs[None], ys[None], xq[None], yq[None])
    ...     return meta_gradient(model, dict(model.named_parameters()), batch, loss_fn,
    ...                          inner_steps=inner_steps, inner_lr=inner_lr)
    >>> check_meta_gradient(fixed)
    ✓ Exercise 2: fix the source text's MAML code: second-order meta-gradient through 1 and 3 inner steps, and θ is left untouched.
    >>> def fixed_meta_gradient(model, x_support, y_support, x_query, y_query, loss_fn, inner_steps, inner_lr):
    ...     return None
    >>> check_meta_gradient(fixed_meta_gradient)
    … Exercise 2: fix the source text's MAML code: not attempted. fixed_meta_gradient(model, ...) returned None: fill in the skeleton (or, if you did, end it with a return statement)
    """
    import torch
    import torch.nn.functional as F

    from metalearn_lab.maml import adapt, meta_gradient

    name = _name(meta_gradient_fn, "your meta-gradient function")
    inner_lr = 0.05
    for inner_steps in (1, 3):
        model, xs, ys, xq, yq = _tiny_task(2)
        names = [k for k, _ in model.named_parameters()]
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        batch = (xs[None], ys[None], xq[None], yq[None])

        def reference(first_order=False, steps=inner_steps, lr=inner_lr, data=batch):
            return meta_gradient(model, before, data, F.mse_loss, inner_steps=steps, inner_lr=lr, first_order=first_order)

        out = meta_gradient_fn(model, xs, ys, xq, yq, F.mse_loss, inner_steps, inner_lr)
        if inner_steps == 1:
            out = require_answer(out, f"{name}(model, ...)")
        after = {k: v.detach().clone() for k, v in model.named_parameters()}
        changed = [k for k in names if not torch.equal(after[k], before[k])]
        got = _as_dict(out, names, name)
        want = reference()
        for k in want:
            expect(tuple(got[k].shape) == tuple(want[k].shape),
                   f"gradient {k!r} has shape {tuple(got[k].shape)}, expected {tuple(want[k].shape)}")
        expect(not changed,
               f"your function changed the model's own weights in place ({changed[0] if changed else ''}, ...): the "
               "initialisation θ that MAML learns is lost after one task. Adapt a parameter dict instead "
               "(θ' = {k: p - inner_lr * g}) and evaluate it with torch.func.functional_call")
        rel = _rel(got, want)
        if rel < 1e-8:
            continue
        where = f"with inner_steps={inner_steps}"
        expect(_rel(got, reference(first_order=True)) >= 1e-8,
               f"{where} you return the first-order gradient ∇L_query(θ'): the inner gradients were treated as "
               "constants. Compute them with torch.autograd.grad(..., create_graph=True) so the meta-gradient "
               "includes the (I - α∇²L_support) factors")
        for steps in [*range(inner_steps), inner_steps + 1]:
            expect(_rel(got, reference(steps=steps)) >= 1e-8,
                   f"{where} your inner loop took {steps} step(s)"
                   + (": that is the gradient of the query loss at θ itself, before any adaptation" if steps == 0 else
                      ": loop exactly inner_steps times"))
        expect(_rel(got, reference(data=(xq[None], yq[None], xs[None], ys[None]))) >= 1e-8,
               f"{where} you adapt on the query set and score on the support set: the inner loop uses "
               "(x_support, y_support), the loss you differentiate uses (x_query, y_query)")
        expect(_rel(got, _maml_by_hand(model, before, xs, ys, xq, yq, inner_steps, -inner_lr)) >= 1e-8,
               f"{where} your inner step goes uphill (θ + α∇L): gradient descent is θ' = θ - inner_lr * ∇L_support(θ)")
        adapted = adapt(model, before, xs, ys, F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr)
        expect(_rel(got, {k: t.detach() for k, t in adapted.items()}) >= 1e-8,
               f"{where} you return the adapted weights θ', not a gradient: differentiate the query loss at θ' "
               "with respect to the original parameters")
        raise WrongAnswer(f"{where}, inner_lr={inner_lr} your meta-gradient differs from "
                          f"metalearn_lab.maml.meta_gradient by a relative error of {rel:.2e}: query loss at θ', "
                          "differentiated with respect to the model's original parameters")
    return "second-order meta-gradient through 1 and 3 inner steps, and θ is left untouched."
