"""Companion of lesson ``08_fast_learning``: posterior figures, the posterior explorer, comparison tables, and the checkers of its exercises (the weight posterior, the log evidence, the nearest prototype).

The lesson imports this module as ``lesson``; nothing in the core library imports it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from metalearn_lab.bayes import FeaturePrior, GaussianPrior, posterior_predictive, sine_weights, weight_posterior
from metalearn_lab.controls import fit_labels, rate_slider, show_png
from metalearn_lab.data.sinusoid import SinusoidBatch, SinusoidTasks
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer

K_SHOTS = (1, 2, 5, 10)
#: The factors the explorer's "prior scale" slider offers (each shown exactly).
PRIOR_SCALES = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


# ---------------------------------------------------------------- tasks
def one_task(seed: int, max_k: int = 10, n_query: int = 100, tasks: SinusoidTasks | None = None) -> SinusoidBatch:
    """One sinusoid task with ``max_k`` support points (lessons take the first K of them) and ``n_query`` queries.

    >>> tuple(one_task(0).x_support.shape)
    (1, 10, 1)
    """
    tasks = tasks if tasks is not None else SinusoidTasks()
    return tasks.sample(1, max_k, n_query, generator=torch.Generator().manual_seed(int(seed)))


def first_k(batch: SinusoidBatch, k_shot: int) -> SinusoidBatch:
    """The same tasks with only their first ``k_shot`` support points (the queries unchanged)."""
    return SinusoidBatch(batch.x_support[:, :k_shot], batch.y_support[:, :k_shot], batch.x_query, batch.y_query,
                         batch.amplitude, batch.phase)


def frequency_tasks(n_tasks: int, k_shot: int, n_query: int, frequency: float, *, seed: int = 0) -> SinusoidBatch:
    """Tasks ``A sin(frequency * x - phase)`` with Finn et al.'s amplitude, phase and input ranges.

    With ``frequency = 1`` these are the usual tasks; any other value leaves the family the sine
    features describe (``true_curve`` of the result still draws frequency 1: plot ``y`` instead).

    >>> b = frequency_tasks(3, 5, 7, 2.0)
    >>> bool(torch.allclose(b.y_support, b.amplitude[:, None, None] * torch.sin(2.0 * b.x_support - b.phase[:, None, None])))
    True
    """
    generator = torch.Generator().manual_seed(seed)
    base = SinusoidTasks().sample(n_tasks, k_shot, n_query, generator=generator)
    a, p = base.amplitude[:, None, None], base.phase[:, None, None]
    return SinusoidBatch(base.x_support, a * torch.sin(frequency * base.x_support - p), base.x_query,
                         a * torch.sin(frequency * base.x_query - p), base.amplitude, base.phase)


def per_task_mse(prediction: torch.Tensor, batch: SinusoidBatch) -> torch.Tensor:
    """``[T, Q, 1]`` predictions against ``batch.y_query`` → one MSE per task ``[T]`` (:func:`metalearn_lab.metrics.per_task_mse`)."""
    from metalearn_lab.metrics import per_task_mse as mse

    return mse(prediction, batch.y_query)


def choose_on_tasks(predict: Callable[[SinusoidBatch, Any], torch.Tensor], grid: Sequence[Any], batch: SinusoidBatch) -> Any:
    """The value of ``grid`` whose predictions have the lowest mean query MSE on ``batch`` (training tasks).

    Choosing a bandwidth or a number of neighbours on many training tasks is the smallest
    meta-learning there is: one number learned from tasks.

    >>> batch = one_task(0)
    >>> choose_on_tasks(lambda b, c: torch.full_like(b.y_query, c), [-5.0, 0.0, 5.0], batch)
    0.0
    """
    scores = [float(per_task_mse(predict(batch, value), batch).mean()) for value in grid]
    return grid[int(np.argmin(scores))]


# ---------------------------------------------------------------- posterior figures
def _draw_posterior(ax, prior: GaussianPrior, task: SinusoidBatch, k_shot: int, x_grid: torch.Tensor, *,
                    samples: int = 0, seed: int = 0) -> dict[str, Any]:
    """Posterior mean, ±2σ band and the truth for one task with its first ``k_shot`` support points."""
    xs, ys = task.x_support[:, :k_shot], task.y_support[:, :k_shot]
    grid = x_grid.reshape(1, -1, 1)
    with torch.no_grad():
        mean, var = posterior_predictive(prior, xs, ys, grid)
    mean, std = mean[0, :, 0].numpy(), var[0, :, 0].sqrt().numpy()
    x = x_grid.numpy()
    ax.fill_between(x, mean - 2 * std, mean + 2 * std, color="tab:blue", alpha=0.18, label="±2σ")
    if samples:
        draws = _posterior_samples(prior, xs, ys, grid, samples, seed)
        for draw in draws:
            ax.plot(x, draw, color="tab:blue", lw=0.6, alpha=0.6)
    ax.plot(x, task.true_curve(x_grid)[0].numpy(), "--", color="0.3", lw=1.5, label="true")
    ax.plot(x, mean, color="tab:blue", lw=2, label="posterior mean")
    ax.scatter(xs[0, :, 0], ys[0, :, 0], color="k", s=25, zorder=5, label="support")
    mse = float(((torch.as_tensor(mean) - task.true_curve(x_grid)[0]) ** 2).mean())
    return {"mean": mean, "std": std, "mse": mse}


def _posterior_samples(prior, xs, ys, grid, n, seed):
    """``n`` functions from the posterior on ``grid`` (joint Gaussian, via the prior's kernel)."""
    from metalearn_lab.bayes import _cholesky

    with torch.no_grad():
        k_gg = prior.kernel(grid, grid)
        mean = prior.mean(grid)
        if xs.shape[1]:
            k_ss = prior.kernel(xs, xs) + prior.noise_var * torch.eye(xs.shape[1], dtype=torch.float64)
            k_sg = prior.kernel(xs, grid)
            chol = _cholesky(k_ss, "k(X, X) + σ²I")
            mean = mean + (k_sg.transpose(-1, -2) @ torch.cholesky_solve((ys.double()[..., 0] - prior.mean(xs))[..., None], chol))[..., 0]
            v = torch.linalg.solve_triangular(chol, k_sg, upper=False)
            k_gg = k_gg - v.transpose(-1, -2) @ v
        k_gg = 0.5 * (k_gg + k_gg.transpose(-1, -2)) + 1e-6 * torch.eye(k_gg.shape[-1], dtype=torch.float64)
        eigval, eigvec = torch.linalg.eigh(k_gg[0])
        root = eigvec * eigval.clamp_min(0).sqrt()
        eps = torch.randn(k_gg.shape[-1], n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return (mean[0][:, None] + root @ eps).T.numpy()


def plot_posterior_sharpening(priors: Mapping[str, GaussianPrior], task: SinusoidBatch, k_shots: Sequence[int] = (0, 1, 2, 5, 10)):
    """One row per prior, one column per K: the posterior mean and ±2σ band as support points arrive.

    Returns the figure.
    """
    x_grid = torch.linspace(-5, 5, 200)
    fig, axes = plt.subplots(len(priors), len(k_shots), figsize=(2.6 * len(k_shots), 2.3 * len(priors)),
                             sharex=True, sharey=True, squeeze=False)
    top = 1.4 * float(task.amplitude.max()) + 1
    for row, (name, prior) in enumerate(priors.items()):
        for col, k in enumerate(k_shots):
            ax = axes[row, col]
            out = _draw_posterior(ax, prior, task, k, x_grid)
            ax.set_title(f"K = {k}: MSE {out['mse']:.2f}", fontsize=9)
            ax.set_ylim(-top, top)
        axes[row, 0].set_ylabel(name, fontsize=9)
    axes[0, -1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def _ellipse(ax, mean, cov, **kwargs):
    from matplotlib.patches import Ellipse

    values, vectors = np.linalg.eigh(np.asarray(cov, dtype=float))
    angle = math.degrees(math.atan2(vectors[1, -1], vectors[0, -1]))
    width, height = 2 * 2 * np.sqrt(np.maximum(values[::-1], 1e-12))  # ±2σ along each axis
    ax.add_patch(Ellipse(tuple(np.asarray(mean, dtype=float)), width, height, angle=angle, fill=False, **kwargs))


def plot_weight_posterior(prior: FeaturePrior, task: SinusoidBatch, k_shots: Sequence[int] = (0, 1, 2), *, ax=None):
    """The sine-feature weights ``w = (A cos φ, -A sin φ)``: the task family (grey), the prior and posteriors (2σ ellipses).

    Every task of the family is one point of the grey half-disc; the prior's ellipse covers it;
    each support point shrinks the ellipse towards the task's true ``w`` (the star).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.2))
    family = SinusoidTasks().sample(1500, 1, 1, generator=torch.Generator().manual_seed(0))
    cloud = sine_weights(family.amplitude, family.phase)
    ax.scatter(cloud[:, 0], cloud[:, 1], s=2, color="0.75", label="tasks of p(T)")
    colours = plt.cm.viridis(np.linspace(0.1, 0.85, len(k_shots)))
    for colour, k in zip(colours, k_shots):
        with torch.no_grad():
            mean, cov = weight_posterior(prior, task.x_support[:, :k], task.y_support[:, :k])
        _ellipse(ax, mean[0].numpy(), cov[0].numpy(), color=colour, lw=2)
        ax.plot(*mean[0].numpy(), "o", color=colour, ms=5, label=f"{'prior' if k == 0 else f'posterior, K = {k}'}")
    truth = sine_weights(task.amplitude[0], task.phase[0]).numpy()
    ax.plot(*truth, "*", color="tab:red", ms=14, label="this task's w")
    ax.set(xlabel="w₁ = A cos φ  (weight of sin x)", ylabel="w₂ = −A sin φ  (weight of cos x)", aspect="equal",
           xlim=(-7, 7), ylim=(-7, 4))
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Weight space: prior and posteriors (2σ)", fontsize=10)
    return ax.figure


# ---------------------------------------------------------------- Try it
class PosteriorExplorer:
    """Sliders for K and the prior's scale, a prior chooser and a "new task" button over one posterior plot.

    The hand-chosen priors are rescaled by the slider (their covariance times ``scale²``); fitted
    priors are shown as fitted. One matplotlib figure is made once; each change recomputes the
    posterior on 200 grid points (a few milliseconds) and redraws it into an ``Output`` widget.

    Parameters
    ----------
    priors : dict name -> GaussianPrior
    scalable : iterable of names
        The priors the scale slider applies to.
    k_shot, seed : starting values.

    Attributes
    ----------
    k_shot, scale : sliders;  prior : dropdown;  new_task : button;  fig, ax;  last : dict with the drawn curves.
    """

    def __init__(self, priors: Mapping[str, GaussianPrior], *, scalable: Sequence[str] = (), k_shot: int = 2, seed: int = 0,
                 max_k: int = 10) -> None:
        import ipywidgets as widgets
        from matplotlib.figure import Figure

        if not priors:
            raise ValueError("priors must hold at least one prior, e.g. {'sine features': FeaturePrior(sine_features, 2)}")
        self.priors, self.scalable, self.max_k, self.seed = dict(priors), set(scalable), max_k, seed
        self.task = one_task(seed, max_k)
        self.x_grid = torch.linspace(-5, 5, 200)
        self.k_shot = widgets.IntSlider(value=k_shot, min=0, max=max_k, description="K (points)")
        self.scale = rate_slider(1.0, PRIOR_SCALES, description="prior scale ×")
        self.prior = widgets.Dropdown(options=list(self.priors), description="prior")
        fit_labels(self.k_shot, self.scale, self.prior)
        self.new_task = widgets.Button(description="new task", icon="refresh")
        self.output = widgets.Output()
        self.fig = Figure(figsize=(7, 3.4))
        self.ax = self.fig.subplots()
        for w in (self.k_shot, self.scale, self.prior):
            w.observe(self.update, names="value")
        self.new_task.on_click(self.next_task)
        self.ui = widgets.VBox([widgets.HBox([self.prior, self.new_task]), widgets.HBox([self.k_shot, self.scale]), self.output])
        self.last: dict[str, Any] = {}
        self._laid_out = False
        self.update()

    def current_prior(self) -> GaussianPrior:
        """The chosen prior, scaled by the slider if it is a hand-chosen one."""
        import copy

        prior = self.priors[self.prior.value]
        if self.prior.value not in self.scalable or self.scale.value == 1.0:
            return prior
        scaled = copy.deepcopy(prior)
        with torch.no_grad():
            if isinstance(scaled, FeaturePrior):
                scaled.log_chol_diag += math.log(self.scale.value)
                scaled.chol_lower *= self.scale.value
            else:
                scaled.log_signal_var += 2 * math.log(self.scale.value)
        return scaled

    def next_task(self, _button=None) -> None:
        self.seed += 1
        self.task = one_task(self.seed, self.max_k)
        self.update()

    def update(self, _change=None) -> None:
        from IPython.display import clear_output

        self.ax.clear()
        k = int(self.k_shot.value)
        self.last = _draw_posterior(self.ax, self.current_prior(), self.task, k, self.x_grid, samples=3, seed=self.seed)
        top = 1.4 * float(self.task.amplitude[0]) + 1
        self.ax.set(ylim=(-max(top, 3), max(top, 3)), xlabel="x", ylabel="y")
        scaled = f", scale × {self.scale.value:.2g}" if self.prior.value in self.scalable else ""
        self.ax.set_title(f"{self.prior.value}{scaled}: K = {k}, MSE on the curve {self.last['mse']:.3f}", fontsize=10)
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


def posterior_widget(priors: Mapping[str, GaussianPrior], **kwargs) -> PosteriorExplorer:
    """The "Try it" explorer (see :class:`PosteriorExplorer`); leave it last in a cell to display it."""
    return PosteriorExplorer(priors, **kwargs)


def posterior_figure(priors: Mapping[str, GaussianPrior], settings: Sequence[Mapping[str, Any]], *, seed: int = 0):
    """The explorer's view as a static figure for the book: one panel per setting ``{"prior", "k_shot"}``.

    >>> from metalearn_lab.bayes import RBFPrior
    >>> fig = posterior_figure({"rbf": RBFPrior()}, [{"prior": "rbf", "k_shot": 2}])
    >>> len(fig.axes)
    1
    """
    settings = list(settings)
    if not settings:
        raise ValueError("settings must hold at least one dict with 'prior' and 'k_shot'")
    task = one_task(seed)
    x_grid = torch.linspace(-5, 5, 200)
    width = 5.0 if len(settings) == 1 else 3.6
    fig, axes = plt.subplots(1, len(settings), figsize=(width * len(settings), 3.0), squeeze=False, sharey=True)
    for ax, setting in zip(axes[0], settings):
        if setting["prior"] not in priors:
            raise ValueError(f"unknown prior {setting['prior']!r}; choose one of {list(priors)}")
        out = _draw_posterior(ax, priors[setting["prior"]], task, int(setting["k_shot"]), x_grid, samples=3, seed=seed)
        ax.set_title(f"{setting['prior']}, K = {setting['k_shot']}\nMSE {out['mse']:.3f}", fontsize=9)
        ax.set_xlabel("x")
    axes[0, 0].set_ylabel("y")
    axes[0, -1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def posterior_explorer(priors: Mapping[str, GaussianPrior], *, k_shots: Sequence[int] = (0, 1, 2, 5, 10), seed: int = 0,
                       initial_k: int = 1):
    """The Try-it pre-rendered for the book (:func:`metalearn_lab.tryit.explorer`): every prior at every K.

    One frame per (prior, K), each drawn by :func:`posterior_figure` on the same task; the book
    shows them behind two HTML sliders, no kernel needed.
    """
    from metalearn_lab import tryit

    names = list(priors)
    if not names:
        raise ValueError("priors must hold at least one prior")

    def draw(prior, k_shot):
        return posterior_figure(priors, [{"prior": prior, "k_shot": k_shot}], seed=seed)

    return tryit.explorer(draw, {"prior": names, "k_shot": list(k_shots)},
                          initial={"prior": names[0], "k_shot": initial_k if initial_k in k_shots else k_shots[0]},
                          labels={"prior": "prior", "k_shot": "K (points)"},
                          title="The posterior as points arrive, for each prior")


# ---------------------------------------------------------------- exercise 1: the weight posterior
def _weight_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(4, 3, generator=g, dtype=torch.float64)
    y = torch.randn(4, generator=g, dtype=torch.float64)
    prior_mean = torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    prior_cov = a @ a.T + 0.5 * torch.eye(3, dtype=torch.float64)
    return phi, y, prior_mean, prior_cov, 0.3


def _reference_weight_posterior(phi, y, prior_mean, prior_cov, noise_var):
    precision = torch.linalg.inv(prior_cov) + phi.T @ phi / noise_var
    cov = torch.linalg.inv(precision)
    return cov @ (torch.linalg.solve(prior_cov, prior_mean) + phi.T @ y / noise_var), cov


@checker("Exercise 1: the posterior over the weights")
def check_weight_posterior(posterior) -> str:
    """Check ``posterior(phi, y, prior_mean, prior_cov, noise_var) -> (mean [d], cov [d, d])`` against Bishop (2006, §3.3.1)."""
    phi, y, m0, s0, noise = _weight_problem()
    got = require_answer(posterior(phi, y, m0, s0, noise), "posterior(...)")
    expect(isinstance(got, (tuple, list)) and len(got) == 2, "return a pair (mean, cov)")
    mean, cov = (torch.as_tensor(t, dtype=torch.float64) for t in got)
    expect(mean.shape == (3,) and cov.shape == (3, 3),
           f"with 3 features the mean has shape (3,) and the covariance (3, 3); got {tuple(mean.shape)} and {tuple(cov.shape)}")
    want_mean, want_cov = _reference_weight_posterior(phi, y, m0, s0, noise)

    def close(a, b):
        return torch.allclose(a, b, rtol=1e-5, atol=1e-7)

    if not close(cov, want_cov):
        expect(not close(cov, torch.linalg.inv(want_cov)),
               "that is the posterior *precision* Σ⁻¹ + ΦᵀΦ/σ²; the covariance is its inverse")
        expect(not close(cov, torch.linalg.inv(torch.linalg.inv(s0) + phi.T @ phi * noise)),
               "the data term is ΦᵀΦ / σ² (divide by the noise variance): less noise must mean more certainty")
        expect(not close(cov, torch.linalg.inv(s0 + phi.T @ phi / noise)),
               "add *precisions*, not covariances: Σ_N⁻¹ = Σ⁻¹ + ΦᵀΦ/σ², with Σ⁻¹ the inverse of prior_cov")
        raise WrongAnswer("the covariance differs from (Σ⁻¹ + ΦᵀΦ/σ²)⁻¹")
    if not close(mean, want_mean):
        ridge = want_cov @ (phi.T @ y / noise)
        expect(not close(mean, ridge), "the prior mean is missing: μ_N = Σ_N (Σ⁻¹ μ + Φᵀy/σ²)")
        expect(not close(mean, want_cov @ (m0 + phi.T @ y / noise)),
               "the prior mean enters through the prior precision: Σ⁻¹ μ, not μ")
        raise WrongAnswer("the mean differs from Σ_N (Σ⁻¹ μ + Φᵀ y / σ²)")
    # one point on the sine features: the posterior is not yet a point (1 equation, 2 unknowns)
    return "mean and covariance match Bishop's formulas (and metalearn_lab.bayes.weight_posterior)"


# ---------------------------------------------------------------- exercise 2: the log evidence
def _evidence_problem():
    x = torch.tensor([-3.0, -0.5, 1.0, 2.5], dtype=torch.float64)
    y = torch.tensor([0.4, -1.2, 0.8, 1.9], dtype=torch.float64)
    k = 2.0 * torch.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / 1.5 ** 2)
    return k, y, 0.1


def _reference_evidence(k, y, noise_var, *, with_noise=True, half_logdet=True, constant=True):
    n = len(y)
    c = k + (noise_var * torch.eye(n, dtype=k.dtype) if with_noise else 0)
    quad = y @ torch.linalg.solve(c, y)
    logdet = torch.linalg.slogdet(c)[1]
    return float(-0.5 * quad - (0.5 if half_logdet else 1.0) * logdet - (0.5 * n * math.log(2 * math.pi) if constant else 0.0))


@checker("Exercise 2: the log evidence of one task")
def check_log_evidence(log_evidence) -> str:
    """Check ``log_evidence(k, y, noise_var) -> float`` (zero prior mean) against Rasmussen & Williams (2006, eq. 2.30)."""
    k, y, noise = _evidence_problem()
    got = require_answer(log_evidence(k, y, noise), "log_evidence(...)")
    got = float(torch.as_tensor(got).detach().reshape(-1)[0]) if torch.as_tensor(got).numel() == 1 else None
    expect(got is not None, "return one number, the log marginal likelihood of the whole task")
    want = _reference_evidence(k, y, noise)
    if abs(got - want) > 1e-6 * max(1.0, abs(want)):
        expect(abs(got + want) > 1e-6, "the sign is flipped: you returned the negative log evidence (the loss), return log p(y)")
        expect(abs(got - _reference_evidence(k, y, noise, with_noise=False)) > 1e-6,
               "the noise is missing: the covariance of y is k(X, X) + σ²I")
        expect(abs(got - _reference_evidence(k, y, noise, half_logdet=False)) > 1e-6,
               "the log-determinant term is −½ log|K + σ²I| (one half, like the quadratic term)")
        expect(abs(got - _reference_evidence(k, y, noise, constant=False)) > 1e-6,
               "the constant −(n/2) log 2π is missing (it does not change which prior wins, but it is part of log p(y))")
        raise WrongAnswer(f"log p(y) should be {want:.4f}, got {got:.4f}: −½ yᵀ(K+σ²I)⁻¹y − ½ log|K+σ²I| − (n/2) log 2π")
    return f"log p(y) = {want:.4f}, as metalearn_lab.bayes.log_marginal_likelihood computes it"


# ---------------------------------------------------------------- exercise 3: the nearest prototype
def _prototype_problem():
    """Four classes in the plane; class 1 has a stray example near class 0, so the nearest example and
    the nearest prototype disagree on the first query."""
    z_support = torch.tensor([[0.0, 0.0], [0.4, 0.0],                # class 0
                              [4.0, 0.0], [4.4, 0.0], [1.2, 0.0],    # class 1, with a stray example
                              [0.0, 4.0],                            # class 2
                              [4.0, 4.0], [4.0, 4.4], [3.6, 4.0]])   # class 3
    y_support = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 3])
    z_query = torch.tensor([[1.0, 0.0], [3.9, 4.1], [0.1, 3.8], [4.2, 0.1], [0.3, 0.2]])
    return z_support, y_support, z_query, 4


@checker("Exercise 3: the nearest prototype")
def check_nearest_prototype(nearest_prototype) -> str:
    """Check ``nearest_prototype(z_support [S, D], y_support [S], z_query [Q, D], n_way) -> labels [Q]``."""
    from metalearn_lab.protonet import prototypes, squared_distances

    z_support, y_support, z_query, n_way = _prototype_problem()
    got = require_answer(nearest_prototype(z_support, y_support, z_query, n_way), "nearest_prototype(...)")
    got = torch.as_tensor(got)
    expect(got.shape == (len(z_query),), f"return one label per query, shape ({len(z_query)},); got {tuple(got.shape)}")
    centres = prototypes(z_support[None], y_support[None], n_way)[0]
    want = squared_distances(z_query[None], centres[None])[0].argmin(-1)
    if not torch.equal(got.long(), want):
        nn_label = y_support[torch.cdist(z_query, z_support).argmin(-1)]
        expect(not torch.equal(got.long(), squared_distances(z_query[None], centres[None])[0].argmax(-1)),
               "you picked the *farthest* prototype: take the argmin of the distances")
        expect(not torch.equal(got.long(), torch.cdist(z_query, z_support).argmin(-1)),
               "these are indices of support examples, not class labels: average each class first, then compare")
        expect(not torch.equal(got.long(), nn_label) or torch.equal(nn_label, want),
               "that is the nearest *example* (1-nearest-neighbour); a prototype is the mean of a class's examples")
        raise WrongAnswer("some labels differ: prototype c = mean of the support embeddings with label c; "
                          "label = argmin_c ‖z − prototype_c‖²")
    return "nearest_prototype classifies like metalearn_lab.protonet (class means, squared Euclidean distance)"


# ---------------------------------------------------------------- Omniglot episodes
def episode_accuracies(tasks, classify: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                       batch_size: int = 50) -> torch.Tensor:
    """Accuracy of ``classify`` on every task of a :class:`~metalearn_lab.samplers.FixedEpisodes`: ``[tasks]``.

    ``classify(x_support [B, N*K, C, H, W], y_support [B, N*K], x_query [B, N*Q, C, H, W]) -> labels [B, N*Q]``.
    """
    values = []
    with torch.no_grad():
        for episode in tasks.batches(batch_size):
            labels = classify(episode.x_support, episode.y_support, episode.x_query)
            values.append((labels == episode.y_query).float().mean(-1))
    return torch.cat(values)
