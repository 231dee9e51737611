r"""Bayesian regression for few-shot tasks: a Gaussian prior over functions, its posterior, and empirical Bayes.

The Bayesian answer to "learn a function from five points" is to start from a *prior* over
functions and condition it on the points. With a Gaussian process prior
:math:`f \sim \mathcal{GP}(m, k)` and observations :math:`y_i = f(x_i) + \varepsilon_i`,
:math:`\varepsilon_i \sim \mathcal N(0, \sigma^2)`, everything is closed-form (Rasmussen &
Williams 2006, §2.2 and Algorithm 2.1). With :math:`K = k(X, X) + \sigma^2 I`,
:math:`\mathbf{k}_* = k(X, x_*)` and :math:`\mathbf r = \mathbf y - m(X)`:

.. math::

    \mathbb E[f(x_*) \mid \mathcal D] = m(x_*) + \mathbf k_*^\top K^{-1} \mathbf r, \qquad
    \operatorname{Var}[f(x_*) \mid \mathcal D] = k(x_*, x_*) - \mathbf k_*^\top K^{-1} \mathbf k_*,

    \log p(\mathbf y \mid X) = -\tfrac12 \mathbf r^\top K^{-1} \mathbf r - \tfrac12 \log |K| - \tfrac n2 \log 2\pi .

Bayesian linear regression on features, :math:`f(x) = \phi(x)^\top w` with
:math:`w \sim \mathcal N(\mu, \Sigma)`, is the special case :math:`m(x) = \phi(x)^\top \mu`,
:math:`k(x, x') = \phi(x)^\top \Sigma\, \phi(x')` (Rasmussen & Williams 2006, §2.1; Bishop 2006, §3.3).

The last formula, the *marginal likelihood*, scores a prior by how well it predicted the data
before seeing it. Maximising it over the prior's hyper-parameters is *empirical Bayes* (type-II
maximum likelihood; Rasmussen & Williams 2006, §5.4); maximising its sum over many training
tasks learns a prior from tasks, which is meta-learning in Bayesian form. With a neural network as
the feature map :math:`\phi` this is ALPaCA (Harrison, Sharma & Pavone 2018, arXiv:1807.08912),
whose training maximises a closely related predictive likelihood.

Priors are :class:`torch.nn.Module` s (:class:`RBFPrior`, :class:`FeaturePrior`) whose
hyper-parameters are ordinary parameters, so :func:`fit_empirical_bayes` fits them with Adam.
Shapes follow :class:`metalearn_lab.data.sinusoid.SinusoidBatch`: inputs ``[T, n, x_dim]`` and
outputs ``[T, n, 1]`` for ``T`` tasks; linear algebra runs in float64.
"""

from __future__ import annotations

import abc
import math
from typing import Callable

import torch
from torch import nn

from metalearn_lab.validation import check_float, check_int


def sine_features(x: torch.Tensor) -> torch.Tensor:
    r"""``[..., n, 1]`` → ``[..., n, 2]``: :math:`(\sin x, \cos x)`.

    Every sinusoid task is linear in them: :math:`A \sin(x - \varphi) = (A\cos\varphi) \sin x - (A \sin\varphi) \cos x`,
    so Bayesian linear regression on these two features is the right model family for Finn et al.'s tasks.

    >>> sine_features(torch.zeros(1, 2, 1)).tolist()
    [[[0.0, 1.0], [0.0, 1.0]]]
    """
    if x.shape[-1] != 1:
        raise ValueError(f"sine_features takes scalar inputs shaped [..., n, 1], got {tuple(x.shape)}")
    return torch.cat([torch.sin(x), torch.cos(x)], dim=-1)


def sine_weights(amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    r"""The weights of :func:`sine_features` that give ``amplitude * sin(x - phase)``: ``[..., 2]``.

    >>> sine_weights(torch.tensor(2.0, dtype=torch.float64), torch.tensor(math.pi / 3, dtype=torch.float64)).round(decimals=4).tolist()
    [1.0, -1.7321]
    """
    amplitude, phase = torch.as_tensor(amplitude), torch.as_tensor(phase)
    return torch.stack([amplitude * torch.cos(phase), -amplitude * torch.sin(phase)], dim=-1)


class GaussianPrior(nn.Module, abc.ABC):
    """A Gaussian process prior with Gaussian observation noise; subclasses give the mean and kernel.

    Subclasses implement :meth:`mean` (``[T, n, x_dim]`` → ``[T, n]``) and :meth:`kernel`
    (``[T, n1, x_dim]``, ``[T, n2, x_dim]`` → ``[T, n1, n2]``), both in float64. The noise variance
    is ``exp(log_noise_var)`` floored at ``min_noise_var``.
    """

    def __init__(self, noise_var: float = 1e-4, min_noise_var: float = 1e-6) -> None:
        super().__init__()
        self.min_noise_var = check_float("min_noise_var", min_noise_var, low=0, low_open=True)
        noise_var = check_float("noise_var", noise_var, low=self.min_noise_var)
        self.log_noise_var = nn.Parameter(torch.tensor(math.log(noise_var), dtype=torch.float64))

    @property
    def noise_var(self) -> torch.Tensor:
        """The observation noise variance σ² (a 0-d float64 tensor)."""
        return self.log_noise_var.exp().clamp_min(self.min_noise_var)

    @abc.abstractmethod
    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The prior mean at ``x``: ``[T, n, x_dim]`` → ``[T, n]``."""

    @abc.abstractmethod
    def kernel(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """The prior covariance between ``x1`` ``[T, n, x_dim]`` and ``x2`` ``[T, m, x_dim]``: ``[T, n, m]``."""

    def kernel_diag(self, x: torch.Tensor) -> torch.Tensor:
        """``k(x_i, x_i)`` for every point: ``[T, n]`` (subclasses may do it without the full matrix)."""
        return self.kernel(x, x).diagonal(dim1=-2, dim2=-1)

    def sample(self, x: torch.Tensor, n_samples: int = 1, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Functions drawn from the prior at inputs ``x`` ``[T, n, x_dim]``: ``[n_samples, T, n]`` (no noise)."""
        n_samples = check_int("n_samples", n_samples)
        with torch.no_grad():
            cov = self.kernel(x, x)
            jitter = 1e-8 * cov.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)[..., None, None]
            chol = _cholesky(cov + jitter * torch.eye(cov.shape[-1], dtype=cov.dtype), "the prior covariance")
            eps = torch.randn((n_samples, *cov.shape[:-1], 1), generator=generator, dtype=cov.dtype)
            return self.mean(x) + (chol @ eps)[..., 0]


class RBFPrior(GaussianPrior):
    r"""A squared-exponential (RBF) Gaussian process with a constant mean: the generic "smooth function" prior.

    :math:`m(x) = c`, :math:`k(x, x') = s^2 \exp\!\big(-\lVert x - x' \rVert^2 / (2\ell^2)\big)`
    (Rasmussen & Williams 2006, eq. 2.31). It knows nothing about sine waves, only that nearby
    inputs have similar outputs, on the scale ``length_scale``.

    Parameters
    ----------
    length_scale, signal_var : float > 0
        ℓ and s².
    mean : float
        The constant c.
    noise_var, min_noise_var : float > 0
        σ² and its floor.

    >>> prior = RBFPrior(length_scale=1.0, signal_var=2.0)
    >>> x = torch.tensor([[[0.0], [1.0]]])
    >>> prior.kernel(x, x).round(decimals=4).tolist()
    [[[2.0, 1.2131], [1.2131, 2.0]]]
    """

    def __init__(self, length_scale: float = 1.0, signal_var: float = 1.0, mean: float = 0.0,
                 noise_var: float = 1e-4, min_noise_var: float = 1e-6) -> None:
        super().__init__(noise_var, min_noise_var)
        length_scale = check_float("length_scale", length_scale, low=0, low_open=True)
        signal_var = check_float("signal_var", signal_var, low=0, low_open=True)
        self.log_length_scale = nn.Parameter(torch.tensor(math.log(length_scale), dtype=torch.float64))
        self.log_signal_var = nn.Parameter(torch.tensor(math.log(signal_var), dtype=torch.float64))
        self.constant = nn.Parameter(torch.tensor(check_float("mean", mean), dtype=torch.float64))

    @property
    def length_scale(self) -> torch.Tensor:
        return self.log_length_scale.exp()

    @property
    def signal_var(self) -> torch.Tensor:
        return self.log_signal_var.exp()

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.constant.expand(x.shape[:-1])

    def kernel(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(x1.double(), x2.double()) ** 2
        return self.signal_var * torch.exp(-0.5 * d2 / self.length_scale ** 2)

    def kernel_diag(self, x: torch.Tensor) -> torch.Tensor:
        return self.signal_var.expand(x.shape[:-1])


class FeaturePrior(GaussianPrior):
    r"""Bayesian linear regression on features: :math:`f(x) = \phi(x)^\top w`, :math:`w \sim \mathcal N(\mu, \Sigma)`.

    As a Gaussian process: :math:`m(x) = \phi(x)^\top\mu`, :math:`k(x, x') = \phi(x)^\top \Sigma \phi(x')`.
    The covariance is stored as a Cholesky factor :math:`\Sigma = L L^\top` (lower triangular, positive
    diagonal), so any value the optimiser reaches is a valid covariance.

    Parameters
    ----------
    features : callable or nn.Module
        ``[T, n, x_dim]`` → ``[T, n, n_features]``. A function (e.g. :func:`sine_features`) is
        fixed; an ``nn.Module`` (a neural network) is trained along with the prior by
        :func:`fit_empirical_bayes` (ALPaCA, Harrison et al. 2018).
    n_features : int
        The feature dimension d.
    weight_mean : Tensor ``[d]`` or None
        μ (default zeros).
    weight_cov : Tensor ``[d, d]`` or float or None
        Σ, symmetric positive definite; a number means that many times the identity (default 1).
    noise_var, min_noise_var : float > 0

    Examples
    --------
    >>> prior = FeaturePrior(sine_features, 2, weight_cov=4.0)
    >>> x = torch.tensor([[[0.0], [math.pi / 3]]])
    >>> prior.kernel(x, x).round(decimals=4).tolist()  # 4 cos(x - x'): sin² + cos² = 1 on the diagonal
    [[[4.0, 2.0], [2.0, 4.0]]]
    """

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor] | nn.Module, n_features: int, *,
                 weight_mean: torch.Tensor | None = None, weight_cov: torch.Tensor | float | None = None,
                 noise_var: float = 1e-4, min_noise_var: float = 1e-6) -> None:
        super().__init__(noise_var, min_noise_var)
        d = check_int("n_features", n_features)
        self.features = features  # an nn.Module is registered (and trained); a function is not
        mean = torch.zeros(d, dtype=torch.float64) if weight_mean is None else torch.as_tensor(weight_mean, dtype=torch.float64)
        if mean.shape != (d,):
            raise ValueError(f"weight_mean must have shape ({d},) for n_features={d}, got {tuple(mean.shape)}")
        if weight_cov is None or not (isinstance(weight_cov, (list, tuple)) or len(getattr(weight_cov, "shape", ()))):
            # one number (Python, NumPy or a 0-d tensor): that variance for every weight, no correlations
            scale = 1.0 if weight_cov is None else check_float("weight_cov", weight_cov, low=0, low_open=True)
            cov = scale * torch.eye(d, dtype=torch.float64)
        else:
            cov = torch.as_tensor(weight_cov, dtype=torch.float64)
            if cov.shape != (d, d):
                raise ValueError(f"weight_cov must have shape ({d}, {d}) for n_features={d}, got {tuple(cov.shape)}")
        chol = _cholesky(0.5 * (cov + cov.T), "weight_cov")
        self.weight_mean = nn.Parameter(mean)
        self.log_chol_diag = nn.Parameter(chol.diagonal().log())
        self.chol_lower = nn.Parameter(torch.tril(chol, -1))

    @property
    def weight_chol(self) -> torch.Tensor:
        """L, the lower-triangular Cholesky factor of Σ: ``[d, d]``."""
        return torch.tril(self.chol_lower, -1) + torch.diag(self.log_chol_diag.exp())

    @property
    def weight_cov(self) -> torch.Tensor:
        """Σ = L Lᵀ: ``[d, d]``."""
        chol = self.weight_chol
        return chol @ chol.T

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """The features in float64: ``[T, n, d]``."""
        if isinstance(self.features, nn.Module):
            dtype = next(self.features.parameters()).dtype
            return self.features(x.to(dtype)).double()
        return self.features(x.double())

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.phi(x) @ self.weight_mean

    def kernel(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        a = self.phi(x1) @ self.weight_chol
        b = a if x2 is x1 else self.phi(x2) @ self.weight_chol
        return a @ b.transpose(-1, -2)

    def kernel_diag(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.phi(x) @ self.weight_chol) ** 2).sum(-1)


def _cholesky(matrix: torch.Tensor, what: str) -> torch.Tensor:
    chol, info = torch.linalg.cholesky_ex(matrix)
    if bool((info != 0).any()):
        raise ValueError(f"{what} is not positive definite (Cholesky failed): check the prior's covariance and noise")
    return chol


def _check_data(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if x.dim() != 3 or y.dim() != 3 or x.shape[:2] != y.shape[:2] or y.shape[-1] != 1:
        raise ValueError(f"{what}: x must be [tasks, points, x_dim] and y [tasks, points, 1] with the same tasks and "
                         f"points; got x {tuple(x.shape)} and y {tuple(y.shape)}")


def posterior_predictive(prior: GaussianPrior, x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor,
                         *, include_noise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``f(x_query)`` given the support points, under ``prior`` (Rasmussen & Williams, Alg. 2.1).

    Parameters
    ----------
    prior : GaussianPrior
    x_support : Tensor ``[T, K, x_dim]``; ``K = 0`` gives the prior itself.
    y_support : Tensor ``[T, K, 1]``
    x_query : Tensor ``[T, Q, x_dim]``
    include_noise : bool
        Add σ² to the variance (the predictive distribution of a noisy *observation* y rather than of f).

    Returns
    -------
    (mean, var) : Tensors ``[T, Q, 1]`` in ``x_query``'s dtype

    Raises
    ------
    ValueError
        Shapes that disagree, or a kernel matrix that is not positive definite.

    Examples
    --------
    Two points of the wave ``2 sin(x - 1)`` pin it down under the sine-feature prior:

    >>> prior = FeaturePrior(sine_features, 2, weight_cov=4.0, noise_var=1e-6)
    >>> x = torch.tensor([[[-2.0], [0.5]]])
    >>> mean, var = posterior_predictive(prior, x, 2 * torch.sin(x - 1), torch.tensor([[[3.0]]]))
    >>> round(float(mean), 3), round(float(2 * math.sin(3.0 - 1)), 3), float(var) < 1e-4
    (1.819, 1.819, True)
    """
    _check_data(x_support, y_support, "posterior_predictive")
    if x_query.dim() != 3 or x_query.shape[0] != x_support.shape[0] or x_query.shape[-1] != x_support.shape[-1]:
        raise ValueError(f"x_query must be [tasks, points, x_dim] matching x_support {tuple(x_support.shape)}, "
                         f"got {tuple(x_query.shape)}")
    out_dtype = x_query.dtype
    mean_q = prior.mean(x_query)
    var_q = prior.kernel_diag(x_query)
    if x_support.shape[1] > 0:
        k_ss = prior.kernel(x_support, x_support)
        chol = _cholesky(k_ss + prior.noise_var * torch.eye(k_ss.shape[-1], dtype=k_ss.dtype), "k(X, X) + σ²I")
        resid = (y_support.double()[..., 0] - prior.mean(x_support))[..., None]
        alpha = torch.cholesky_solve(resid, chol)  # K⁻¹ r  [T, K, 1]
        k_sq = prior.kernel(x_support, x_query)  # [T, K, Q]
        mean_q = mean_q + (k_sq.transpose(-1, -2) @ alpha)[..., 0]
        v = torch.linalg.solve_triangular(chol, k_sq, upper=False)
        var_q = var_q - (v ** 2).sum(-2)
    var_q = var_q.clamp_min(0.0) + (prior.noise_var if include_noise else 0.0)
    return mean_q[..., None].to(out_dtype), var_q[..., None].to(out_dtype)


def log_marginal_likelihood(prior: GaussianPrior, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Log evidence :math:`\log p(\mathbf y \mid X)` of each task's points under ``prior``: ``[T]`` (float64).

    Rasmussen & Williams (2006), eq. 2.30 and Algorithm 2.1. By the chain rule it equals
    :math:`\sum_i \log p(y_i \mid y_{<i})`: the score of predicting every point from the ones
    before it, so a prior that maximises it predicts well from 0, 1, 2, ... points at once.

    >>> prior = RBFPrior(signal_var=1.0, noise_var=1.0)
    >>> x, y = torch.zeros(1, 1, 1), torch.zeros(1, 1, 1)
    >>> round(float(log_marginal_likelihood(prior, x, y)), 4) == round(-0.5 * math.log(2 * math.pi * 2.0), 4)
    True
    """
    _check_data(x, y, "log_marginal_likelihood")
    n = x.shape[1]
    if n == 0:
        return torch.zeros(x.shape[0], dtype=torch.float64)
    k = prior.kernel(x, x)
    chol = _cholesky(k + prior.noise_var * torch.eye(n, dtype=k.dtype), "k(X, X) + σ²I")
    resid = (y.double()[..., 0] - prior.mean(x))[..., None]
    alpha = torch.cholesky_solve(resid, chol)
    return (-0.5 * (resid * alpha).sum((-1, -2)) - chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
            - 0.5 * n * math.log(2 * math.pi))


def weight_posterior(prior: FeaturePrior, x_support: torch.Tensor, y_support: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Posterior over the weights of a :class:`FeaturePrior`: mean ``[T, d]`` and covariance ``[T, d, d]`` (float64).

    :math:`\Sigma_N^{-1} = \Sigma^{-1} + \sigma^{-2}\Phi^\top\Phi`,
    :math:`\mu_N = \Sigma_N(\Sigma^{-1}\mu + \sigma^{-2}\Phi^\top \mathbf y)` (Bishop 2006, §3.3.1).

    >>> prior = FeaturePrior(sine_features, 2, noise_var=1e-6)
    >>> x = torch.tensor([[[0.3], [2.0], [-1.0]]])
    >>> w = sine_weights(torch.tensor(1.5), torch.tensor(0.7))
    >>> mean, cov = weight_posterior(prior, x, (sine_features(x) @ w)[..., None])
    >>> torch.allclose(mean[0].float(), w, atol=1e-4)
    True
    """
    if not isinstance(prior, FeaturePrior):
        raise ValueError(f"weight_posterior needs a FeaturePrior (weights exist only for feature models), got {type(prior).__name__}")
    _check_data(x_support, y_support, "weight_posterior")
    d = prior.weight_mean.shape[0]
    prior_precision = torch.cholesky_inverse(prior.weight_chol)
    phi = prior.phi(x_support)  # [T, K, d]
    precision = prior_precision + phi.transpose(-1, -2) @ phi / prior.noise_var
    cov = torch.cholesky_inverse(_cholesky(precision, "the posterior precision"))
    rhs = prior_precision @ prior.weight_mean + (phi.transpose(-1, -2) @ y_support.double())[..., 0] / prior.noise_var
    mean = (cov @ rhs[..., None])[..., 0]
    return mean, cov.expand(x_support.shape[0], d, d)


def fit_empirical_bayes(prior: GaussianPrior, x: torch.Tensor, y: torch.Tensor, *, steps: int = 300, lr: float = 0.05,
                        meta_batch_size: int | None = None, generator: torch.Generator | None = None) -> list[float]:
    """Fit the prior's parameters to training tasks by maximising their marginal likelihood (empirical Bayes).

    Adam on the negative mean log marginal likelihood per point, over all tasks (or a random
    ``meta_batch_size`` of them each step). Changes ``prior`` in place.

    Parameters
    ----------
    prior : GaussianPrior
        Every parameter with ``requires_grad`` is fitted (freeze one with ``requires_grad_(False)``).
    x, y : Tensors ``[T, n, x_dim]`` and ``[T, n, 1]``
        The training tasks' points (support and query alike: there is no split in empirical Bayes).
    steps : int >= 1
    lr : float > 0
    meta_batch_size : int or None
        Tasks per step; None uses all of them.

    Returns
    -------
    list of float
        The loss (negative log marginal likelihood per point) at every step.

    Examples
    --------
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> batch = SinusoidTasks().sample(200, k_shot=10, generator=torch.Generator().manual_seed(0))
    >>> prior = RBFPrior(length_scale=0.3)
    >>> losses = fit_empirical_bayes(prior, batch.x_support, batch.y_support, steps=100)
    >>> losses[-1] < losses[0], float(prior.length_scale) > 0.5
    (True, True)
    """
    _check_data(x, y, "fit_empirical_bayes")
    steps = check_int("steps", steps)
    lr = check_float("lr", lr, low=0, low_open=True)
    if meta_batch_size is not None:
        meta_batch_size = check_int("meta_batch_size", meta_batch_size)
    params = [p for p in prior.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the prior has no parameter with requires_grad=True: nothing to fit")
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        if meta_batch_size is None:
            xb, yb = x, y
        else:
            idx = torch.randint(x.shape[0], (meta_batch_size,), generator=generator)
            xb, yb = x[idx], y[idx]
        loss = -log_marginal_likelihood(prior, xb, yb).mean() / x.shape[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses
