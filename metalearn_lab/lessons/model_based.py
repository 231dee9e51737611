"""Companion of lesson ``09_model_based``: diagrams, adaptation-cost timing, prediction figures, the in-context explorer, and the checkers of its exercises (the CNP forward pass, the attention mask, the Gaussian negative log-likelihood).

The lesson imports this module as ``lesson``; nothing in the core library imports it.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch

from metalearn_lab import drawing
from metalearn_lab.controls import fit_labels, show_png
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer

#: A predictor for the explorer and figures: (x_support [K, 1], y_support [K, 1], x_grid [P, 1]) -> (mean [P], std [P] or None).
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


# ---------------------------------------------------------------- diagrams
def draw_blackbox_diagram(ax=None):
    """MAML's adaptation (gradient steps on the weights) beside a black-box learner's (one forward pass)."""
    ax = drawing.diagram_axes(ax, (10, 3.6), 3.6)
    drawing.diagram_box(ax, (0.1, 2.3), 1.7, 0.8, "support set S\n(x₁, y₁) … (x_K, y_K)", "#eeeeee", fontsize=8)
    drawing.diagram_box(ax, (2.4, 2.3), 1.8, 0.8, "θ (meta-learned\ninitialisation)", "#d9ead3", fontsize=8)
    drawing.diagram_box(ax, (5.0, 2.3), 2.0, 0.8, "θ' = θ − α∇L_S(θ)\n(k gradient steps)", "#d9ead3", fontsize=8)
    drawing.diagram_box(ax, (7.8, 2.3), 2.0, 0.8, "f_θ'(x*)", "#d9ead3", fontsize=9)
    drawing.diagram_arrow(ax, (1.8, 2.7), (5.0, 2.7), rad=-0.35)
    drawing.diagram_arrow(ax, (4.2, 2.7), (5.0, 2.7))
    drawing.diagram_arrow(ax, (7.0, 2.7), (7.8, 2.7))
    ax.text(5.0, 3.35, "optimisation-based (MAML): adapt the weights", ha="center", fontsize=9, weight="bold")
    drawing.diagram_box(ax, (0.1, 0.3), 1.7, 0.8, "support set S", "#eeeeee", fontsize=8)
    drawing.diagram_box(ax, (2.4, 0.3), 1.8, 0.8, "query x*", "#eeeeee", fontsize=8)
    drawing.diagram_box(ax, (5.0, 0.3), 2.0, 0.8, "g_θ(x*, S)\none forward pass", "#cfe2f3", fontsize=8)
    drawing.diagram_box(ax, (7.8, 0.3), 2.0, 0.8, "p(y* | x*, S)\nmean and std", "#cfe2f3", fontsize=8)
    drawing.diagram_arrow(ax, (1.8, 0.7), (5.0, 0.7), rad=-0.35)
    drawing.diagram_arrow(ax, (4.2, 0.7), (5.0, 0.7))
    drawing.diagram_arrow(ax, (7.0, 0.7), (7.8, 0.7))
    ax.text(5.0, 1.45, "model-based (black-box): the network reads S; θ stays fixed", ha="center", fontsize=9, weight="bold")
    return ax


def plot_attention_mask(mask: torch.Tensor, k_shot: int, *, ax=None):
    """The transformer's attention mask as a picture: rows attend to columns; dark = blocked."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.4))
    mask = torch.as_tensor(mask)
    ax.imshow(mask.numpy().astype(float), cmap="Greys", vmin=0, vmax=1.6)
    labels = [f"s{i + 1}" for i in range(k_shot)] + [f"q{i + 1}" for i in range(mask.shape[0] - k_shot)]
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.axhline(k_shot - 0.5, color="tab:red", lw=1)
    ax.axvline(k_shot - 0.5, color="tab:red", lw=1)
    ax.set(xlabel="key (attended to)", ylabel="query token (attending)")
    ax.set_title("attention mask (dark = blocked)", fontsize=9)
    return ax.figure


# ---------------------------------------------------------------- adaptation cost
def cpu_seconds(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median CPU time of ``fn()`` in seconds (``time.process_time``), after ``warmup`` untimed calls.

    CPU time rather than wall time, because the machines this course runs on are shared: another
    process slows the wall clock but not the work done. Run with one thread for a fair count.

    >>> cpu_seconds(lambda: sum(range(1000)), repeats=3) >= 0
    True
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def plot_costs(costs: Mapping[str, float], *, ax=None, title="Adaptation cost per task"):
    """Horizontal bars of per-task adaptation cost (milliseconds of CPU), log scale. Returns the figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.45 * len(costs) + 1.2))
    names = list(costs)
    values = [1000 * costs[n] for n in names]
    bars = ax.barh(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("CPU milliseconds per task (one thread)")
    for bar, v in zip(bars, values):
        ax.text(bar.get_width() * 1.1, bar.get_y() + bar.get_height() / 2, f"{v:.3g} ms", va="center", fontsize=7)
    ax.set_xlim(min(values) / 2, max(values) * 5)  # room for the labels
    ax.set_title(title, fontsize=10)
    ax.figure.tight_layout()
    return ax.figure


# ---------------------------------------------------------------- predictions on one task
def _draw_predictions(ax, predictors: Mapping[str, Predictor], x_support, y_support, x_grid, y_true) -> dict[str, float]:
    grid = x_grid.reshape(-1, 1)
    ax.plot(x_grid, y_true, "--", color="0.3", lw=1.5, label="true")
    errors = {}
    for i, (name, predict) in enumerate(predictors.items()):
        mean, std = predict(x_support, y_support, grid)
        mean = torch.as_tensor(mean).detach().reshape(-1)
        errors[name] = float(((mean - y_true) ** 2).mean())
        shown = f"{errors[name]:.3f}" if math.isfinite(errors[name]) and errors[name] < 1e4 else "diverged"
        ax.plot(x_grid, mean.clamp(-50, 50), color=f"C{i}", lw=1.8, label=f"{name} (MSE {shown})")
        if std is not None:
            std = torch.as_tensor(std).detach().reshape(-1)
            ax.fill_between(x_grid, mean - 2 * std, mean + 2 * std, color=f"C{i}", alpha=0.15)
    ax.scatter(x_support[:, 0], y_support[:, 0], color="k", s=20, zorder=5, label=f"K = {len(x_support)}")
    return errors


def plot_predictions(predictors: Mapping[str, Predictor], batch, *, k_shot: int, n_tasks: int = 3, title: str | None = None):
    """One panel per task: each predictor's mean (and ±2σ band when it has one) from the first ``k_shot`` support points."""
    x_grid = torch.linspace(-5, 5, 200)
    fig, axes = plt.subplots(1, n_tasks, figsize=(4.2 * n_tasks, 3.2), squeeze=False)
    truth = batch.true_curve(x_grid)
    for col in range(n_tasks):
        ax = axes[0, col]
        _draw_predictions(ax, predictors, batch.x_support[col, :k_shot], batch.y_support[col, :k_shot], x_grid, truth[col])
        top = 1.4 * float(batch.amplitude[col]) + 1
        ax.set(ylim=(-top, top), xlabel="x", title=f"task {col + 1}: A = {float(batch.amplitude[col]):.1f}")
        ax.legend(fontsize=6, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


class InContextExplorer:
    """Sliders for K, the amplitude and the phase of one sine task, and a "new points" button.

    Every predictor (a black-box learner reading the support set, or MAML adapting to it) is drawn
    on the same task; the legend gives each one's MSE against the true curve. One matplotlib figure
    is made once and redrawn into an ``Output`` widget.

    Parameters
    ----------
    predictors : dict name -> Predictor
    k_shot, amplitude, phase, seed : starting values;  max_k : the largest K the slider offers.
    """

    def __init__(self, predictors: Mapping[str, Predictor], *, k_shot: int = 5, amplitude: float = 3.0,
                 phase: float = 1.0, seed: int = 0, max_k: int = 40) -> None:
        import ipywidgets as widgets
        from matplotlib.figure import Figure

        if not predictors:
            raise ValueError("predictors must hold at least one predictor, e.g. {'CNP': ...}")
        self.predictors, self.seed, self.max_k = dict(predictors), seed, max_k
        self.k_shot = widgets.IntSlider(value=k_shot, min=1, max=max_k, description="K (points)")
        self.amplitude = widgets.FloatSlider(value=amplitude, min=0.5, max=10.0, step=0.5, description="amplitude A")
        self.phase = widgets.FloatSlider(value=phase, min=-3.0, max=6.0, step=0.25, description="phase φ")
        fit_labels(self.k_shot, self.amplitude, self.phase)
        self.new_points = widgets.Button(description="new points", icon="refresh")
        self.output = widgets.Output()
        self.fig = Figure(figsize=(7.5, 3.6))
        self.ax = self.fig.subplots()
        for w in (self.k_shot, self.amplitude, self.phase):
            w.observe(self.update, names="value")
        self.new_points.on_click(self.redraw_points)
        self.ui = widgets.VBox([widgets.HBox([self.k_shot, self.new_points]), widgets.HBox([self.amplitude, self.phase]),
                                self.output])
        self.errors: dict[str, float] = {}
        self._laid_out = False
        self._points()
        self.update()

    def _points(self) -> None:
        self.x_all = torch.rand(self.max_k, 1, generator=torch.Generator().manual_seed(self.seed)) * 10 - 5

    def redraw_points(self, _button=None) -> None:
        self.seed += 1
        self._points()
        self.update()

    def update(self, _change=None) -> None:
        from IPython.display import clear_output

        a, p, k = float(self.amplitude.value), float(self.phase.value), int(self.k_shot.value)
        x_support = self.x_all[:k]
        y_support = a * torch.sin(x_support - p)
        x_grid = torch.linspace(-5, 5, 200)
        self.ax.clear()
        self.errors = _draw_predictions(self.ax, self.predictors, x_support, y_support, x_grid, a * torch.sin(x_grid - p))
        top = 1.4 * a + 1
        self.ax.set(ylim=(-top, top), xlabel="x", ylabel="y",
                    title=f"A = {a:.1f}{' (beyond training: A ≤ 5)' if a > 5 else ''}, φ = {p:.1f}, K = {k}")
        self.ax.legend(fontsize=7, loc="lower right")
        if not self._laid_out:  # once: the panel keeps its shape
            self.fig.tight_layout()
            self._laid_out = True
        with self.output:
            clear_output(wait=True)
            show_png(self.fig, close=False)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)


def in_context_widget(predictors: Mapping[str, Predictor], **kwargs) -> InContextExplorer:
    """The "Try it" explorer (see :class:`InContextExplorer`); leave it last in a cell to display it."""
    return InContextExplorer(predictors, **kwargs)


def in_context_figure(predictors: Mapping[str, Predictor], settings: Sequence[Mapping[str, Any]], *, seed: int = 0):
    """The explorer's view for the book: one panel per setting ``{"k_shot", "amplitude", "phase"}``.

    >>> fig = in_context_figure({"zero": lambda xs, ys, xg: (torch.zeros(len(xg)), None)},
    ...                         [{"k_shot": 3, "amplitude": 2.0, "phase": 0.0}])
    >>> len(fig.axes)
    1
    """
    settings = list(settings)
    if not settings:
        raise ValueError("settings must hold at least one dict with k_shot, amplitude and phase")
    x_all = torch.rand(max(int(s["k_shot"]) for s in settings), 1, generator=torch.Generator().manual_seed(seed)) * 10 - 5
    x_grid = torch.linspace(-5, 5, 200)
    width = 6.0 if len(settings) == 1 else 4.4
    fig, axes = plt.subplots(1, len(settings), figsize=(width * len(settings), 3.3), squeeze=False)
    for ax, s in zip(axes[0], settings):
        a, p, k = float(s["amplitude"]), float(s["phase"]), int(s["k_shot"])
        _draw_predictions(ax, predictors, x_all[:k], a * torch.sin(x_all[:k] - p), x_grid, a * torch.sin(x_grid - p))
        top = 1.4 * a + 1
        ax.set(ylim=(-top, top), xlabel="x", title=f"A = {a:.1f}, φ = {p:.1f}, K = {k}")
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def in_context_explorer(predictors: Mapping[str, Predictor], *, k_shots: Sequence[int] = (1, 5, 10, 40),
                        amplitudes: Sequence[float] = (1.0, 3.0, 5.0, 8.0), phase: float = 1.0, seed: int = 0):
    """The Try-it pre-rendered for the book (:func:`metalearn_lab.tryit.explorer`): every K at every amplitude.

    One frame per (K, amplitude), drawn by :func:`in_context_figure` on the same inputs.
    """
    from metalearn_lab import tryit

    def draw(k_shot, amplitude):
        return in_context_figure(predictors, [{"k_shot": k_shot, "amplitude": amplitude, "phase": phase}], seed=seed)

    k_shots, amplitudes = list(k_shots), [float(a) for a in amplitudes]
    return tryit.explorer(draw, {"k_shot": k_shots, "amplitude": amplitudes},
                          initial={"k_shot": k_shots[min(1, len(k_shots) - 1)], "amplitude": amplitudes[min(1, len(amplitudes) - 1)]},
                          labels={"k_shot": "K (points)", "amplitude": "amplitude A (training: ≤ 5)"},
                          title="Black-box learners and MAML on one wave")


# ---------------------------------------------------------------- exercise 1: the CNP forward pass
def _cnp_problem():
    from metalearn_lab.blackbox import ConditionalNeuralProcess

    torch.manual_seed(0)
    cnp = ConditionalNeuralProcess(hidden=16, encoder_layers=2, decoder_layers=2, min_std=0.1)
    g = torch.Generator().manual_seed(1)
    data = [(torch.rand(2, k, 1, generator=g) * 10 - 5, torch.randn(2, k, 1, generator=g), torch.rand(2, 3, 1, generator=g) * 10 - 5)
            for k in (4, 7)]
    return cnp, data


@checker("Exercise 1: the CNP forward pass")
def check_cnp_forward(cnp_forward) -> str:
    """Check ``cnp_forward(encoder, decoder, x_support, y_support, x_query, min_std) -> (mean, std)`` against
    :class:`metalearn_lab.blackbox.ConditionalNeuralProcess`."""
    import torch.nn.functional as F

    cnp, data = _cnp_problem()
    for x_support, y_support, x_query in data:
        with torch.no_grad():
            got = require_answer(cnp_forward(cnp.encoder, cnp.decoder, x_support, y_support, x_query, cnp.min_std),
                                 "cnp_forward(...)")
            expect(isinstance(got, (tuple, list)) and len(got) == 2, "return a pair (mean, std)")
            mean, std = (torch.as_tensor(t) for t in got)
            want_mean, want_std = cnp(x_support, y_support, x_query)
        expect(mean.shape == want_mean.shape and std.shape == want_std.shape,
               f"mean and std must each have shape [tasks, queries, 1] = {tuple(want_mean.shape)}; got "
               f"{tuple(mean.shape)} and {tuple(std.shape)}")
        if torch.allclose(mean, want_mean, atol=1e-5) and torch.allclose(std, want_std, atol=1e-5):
            continue
        with torch.no_grad():
            encoded = cnp.encoder(torch.cat([x_support, y_support], -1))
            for aggregate, what in [(encoded.sum(1), "the sum"), (encoded.max(1).values, "the maximum")]:
                r = aggregate[:, None].expand(-1, x_query.shape[1], -1)
                m, _ = cnp.decoder(torch.cat([r, x_query], -1)).chunk(2, -1)
                expect(not torch.allclose(mean, m, atol=1e-5),
                       f"you aggregated with {what}; a CNP takes the *mean* of the encoded pairs, so r does not grow with K")
            raw_mean, raw = cnp.decoder(torch.cat([cnp.represent(x_support, y_support)[:, None].expand(-1, x_query.shape[1], -1),
                                                   x_query], -1)).chunk(2, -1)
        expect(not torch.allclose(mean, raw, atol=1e-5), "mean and std are swapped: the first output is the mean")
        if torch.allclose(mean, want_mean, atol=1e-5):
            expect(not torch.allclose(std, F.softplus(raw), atol=1e-5),
                   "the std has no floor: std = min_std + (1 - min_std) * softplus(raw)")
            expect(not torch.allclose(std, raw.exp(), atol=1e-5), "use softplus, not exp, and the floor min_std")
            expect(not torch.allclose(std, raw, atol=1e-5), "the second output is a raw scale: map it to a positive std "
                   "with min_std + (1 - min_std) * softplus(raw)")
            raise WrongAnswer("the mean is right but the std is not: std = min_std + (1 - min_std) * softplus(raw)")
        raise WrongAnswer("the mean differs from the CNP's: encode torch.cat([x, y], -1), average over the K pairs, "
                          "repeat r for every query and decode torch.cat([r, x_query], -1) (r first)")
    return "cnp_forward matches metalearn_lab.blackbox.ConditionalNeuralProcess for K = 4 and K = 7"


# ---------------------------------------------------------------- exercise 2: the attention mask
@checker("Exercise 2: who may attend to whom")
def check_attention_mask(attention_mask) -> str:
    """Check ``attention_mask(k_shot, n_query) -> bool [K + Q, K + Q]`` (True = blocked) against the transformer's."""
    from metalearn_lab.blackbox import InContextTransformer

    for k_shot, n_query in [(3, 2), (1, 4), (5, 1)]:
        got = require_answer(attention_mask(k_shot, n_query), "attention_mask(...)")
        got = torch.as_tensor(got)
        n = k_shot + n_query
        expect(got.shape == (n, n), f"the mask is [K + Q, K + Q] = ({n}, {n}) for K = {k_shot}, Q = {n_query}; got {tuple(got.shape)}")
        expect(got.dtype == torch.bool, f"use a boolean mask (True = blocked), got dtype {got.dtype}")
        want = InContextTransformer.attention_mask(k_shot, n_query)
        if torch.equal(got, want):
            continue
        expect(not torch.equal(got, ~want), "the convention is inverted: in PyTorch's boolean masks True means *blocked*")
        expect(not torch.equal(got, torch.triu(torch.ones(n, n, dtype=torch.bool), 1)),
               "that is a causal (GPT-style) mask; here every token may see all support pairs, whatever their order")
        expect(not got[:, :k_shot].any(), "some token cannot see a support pair: every token attends to all K support tokens")
        expect(got[:k_shot, k_shot:].all(), "support tokens attend to query tokens: then the task representation "
               "would change with the queries you ask")
        expect(not (got[k_shot:, k_shot:] == torch.eye(n_query, dtype=torch.bool).logical_not()).all() or n_query == 1,
               "queries still attend to themselves; a query token has no y, it should read only the support set")
        raise WrongAnswer("queries attend to other queries: block every column that belongs to a query (mask[:, K:] = True)")
    return "the mask lets every token read the support set and nothing else, like InContextTransformer.attention_mask"


# ---------------------------------------------------------------- exercise 3: the Gaussian NLL
def _nll_problem():
    g = torch.Generator().manual_seed(5)
    mean = torch.randn(3, 4, 1, generator=g)
    std = 0.2 + torch.rand(3, 4, 1, generator=g)
    y = mean + std * torch.randn(3, 4, 1, generator=g) * 1.5
    return mean, std, y


@checker("Exercise 3: the Gaussian negative log-likelihood")
def check_gaussian_nll(gaussian_nll) -> str:
    """Check ``gaussian_nll(mean, std, y) -> scalar`` (mean over all points) against :func:`metalearn_lab.blackbox.gaussian_nll`."""
    from metalearn_lab.blackbox import gaussian_nll as reference

    mean, std, y = _nll_problem()
    got = require_answer(gaussian_nll(mean, std, y), "gaussian_nll(...)")
    got = torch.as_tensor(got)
    expect(got.numel() == 1, f"return one number, the mean over all points; got shape {tuple(got.shape)}")
    got = float(got)
    want = float(reference(mean, std, y))
    if abs(got - want) < 1e-5:
        return f"gaussian_nll = {want:.4f}, as metalearn_lab.blackbox.gaussian_nll"
    sq = (y - mean) ** 2
    const = 0.5 * math.log(2 * math.pi)
    candidates = [
        (float((sq / (2 * std ** 2)).mean()) + const, "the log σ term is missing: without it a larger σ is always "
                                                      "better, and the model would claim infinite uncertainty"),
        (-want, "the sign is flipped: the loss is the *negative* log-likelihood"),
        (float((const + std.log() + sq / (2 * std)).mean()), "divide the squared error by 2σ², not 2σ (std is σ, not σ²)"),
        (float((const + (std ** 2).log() + sq / (2 * std ** 2)).mean()), "the log term is log σ (or ½ log σ²), not log σ²"),
        (float((std.log() + sq / (2 * std ** 2)).mean()), "the constant ½ log 2π is missing (it does not change the "
                                                          "gradient, but it is part of the negative log-likelihood)"),
        (float((const + std.log() + sq / (2 * std ** 2)).sum()), "average over the points, do not sum"),
    ]
    for value, message in candidates:
        expect(abs(got - value) > 1e-5, message)
    raise WrongAnswer(f"expected {want:.4f}, got {got:.4f}: mean of ½ log 2π + log σ + (y − μ)² / (2σ²)")
