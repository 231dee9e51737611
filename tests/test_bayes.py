"""Tests for metalearn_lab.bayes: posteriors against independent formulas, the evidence against scipy, empirical Bayes, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch import nn

from metalearn_lab.bayes import (
    FeaturePrior,
    RBFPrior,
    fit_empirical_bayes,
    log_marginal_likelihood,
    posterior_predictive,
    sine_features,
    sine_weights,
    weight_posterior,
)
from metalearn_lab.data.sinusoid import SinusoidTasks


def tasks(n_tasks=4, k_shot=6, n_query=5, seed=0):
    return SinusoidTasks().sample(n_tasks, k_shot, n_query, generator=torch.Generator().manual_seed(seed))


def priors():
    cov = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
    return [
        FeaturePrior(sine_features, 2, weight_mean=torch.tensor([0.5, -1.0]), weight_cov=cov, noise_var=0.05),
        RBFPrior(length_scale=0.8, signal_var=2.5, mean=0.3, noise_var=0.05),
    ]


@pytest.mark.parametrize("prior", priors(), ids=["features", "rbf"])
def test_posterior_matches_the_explicit_gaussian_conditioning_formula(prior):
    b = tasks()
    mean, var = posterior_predictive(prior, b.x_support, b.y_support, b.x_query)
    with torch.no_grad():
        for t in range(len(b)):
            xs, ys, xq = b.x_support[t:t + 1], b.y_support[t:t + 1], b.x_query[t:t + 1]
            k_ss = prior.kernel(xs, xs)[0] + prior.noise_var * torch.eye(xs.shape[1], dtype=torch.float64)
            k_sq, k_qq = prior.kernel(xs, xq)[0], prior.kernel(xq, xq)[0]
            inv = torch.linalg.inv(k_ss)
            want_mean = prior.mean(xq)[0] + k_sq.T @ inv @ (ys[0, :, 0].double() - prior.mean(xs)[0])
            want_var = (k_qq - k_sq.T @ inv @ k_sq).diagonal()
            torch.testing.assert_close(mean[t, :, 0].double().detach(), want_mean, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(var[t, :, 0].double().detach(), want_var, rtol=1e-3, atol=1e-5)


def test_feature_prior_function_space_equals_weight_space():
    prior = priors()[0]
    b = tasks()
    mean, var = posterior_predictive(prior, b.x_support, b.y_support, b.x_query)
    w_mean, w_cov = weight_posterior(prior, b.x_support, b.y_support)
    phi = sine_features(b.x_query.double())
    torch.testing.assert_close(mean[..., 0].double().detach(), (phi @ w_mean[..., None])[..., 0].detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(var[..., 0].double().detach(), torch.einsum("tqd,tde,tqe->tq", phi, w_cov, phi).detach(),
                               rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("prior", priors(), ids=["features", "rbf"])
def test_no_support_points_gives_the_prior(prior):
    b = tasks()
    mean, var = posterior_predictive(prior, b.x_support[:, :0], b.y_support[:, :0], b.x_query)
    torch.testing.assert_close(mean[..., 0].double().detach(), prior.mean(b.x_query).detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var[..., 0].double().detach(), prior.kernel_diag(b.x_query).detach(), rtol=1e-5, atol=1e-6)
    _, noisy = posterior_predictive(prior, b.x_support[:, :0], b.y_support[:, :0], b.x_query, include_noise=True)
    torch.testing.assert_close((noisy - var).detach(), torch.full_like(var, float(prior.noise_var.detach())), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("prior", priors(), ids=["features", "rbf"])
def test_log_marginal_likelihood_matches_scipy(prior):
    b = tasks()
    got = log_marginal_likelihood(prior, b.x_support, b.y_support).detach()
    with torch.no_grad():
        for t in range(len(b)):
            xs = b.x_support[t:t + 1]
            cov = prior.kernel(xs, xs)[0] + prior.noise_var * torch.eye(xs.shape[1], dtype=torch.float64)
            want = multivariate_normal(prior.mean(xs)[0].numpy(), cov.numpy()).logpdf(b.y_support[t, :, 0].double().numpy())
            assert float(got[t]) == pytest.approx(want, rel=1e-6)


def test_log_evidence_is_the_sum_of_one_step_predictions():
    prior = priors()[1]
    b = tasks(n_tasks=2, k_shot=5)
    total = torch.zeros(2, dtype=torch.float64)
    for i in range(5):
        mean, var = posterior_predictive(prior, b.x_support[:, :i], b.y_support[:, :i], b.x_support[:, i:i + 1], include_noise=True)
        dist = torch.distributions.Normal(mean.double()[:, 0, 0], var.double()[:, 0, 0].sqrt())
        total = total + dist.log_prob(b.y_support[:, i, 0].double())
    torch.testing.assert_close(total.detach(), log_marginal_likelihood(prior, b.x_support, b.y_support).detach(), rtol=1e-4, atol=1e-4)


def test_two_exact_points_determine_a_sine_task():
    prior = FeaturePrior(sine_features, 2, weight_cov=4.0, noise_var=1e-6)
    b = tasks(n_tasks=20, k_shot=2, n_query=50)
    mean, var = posterior_predictive(prior, b.x_support, b.y_support, b.x_query)
    assert float(((mean - b.y_query) ** 2).mean().detach()) < 1e-3
    assert float(var.detach().median()) < 1e-3  # (a pair of inputs nearly pi apart leaves one direction uncertain)
    w_mean, _ = weight_posterior(prior, b.x_support, b.y_support)
    torch.testing.assert_close(w_mean.float().detach(), sine_weights(b.amplitude, b.phase), atol=2e-2, rtol=1e-2)


def test_kernels_and_their_diagonals_agree():
    x = torch.linspace(-3, 3, 7).reshape(1, 7, 1)
    for prior in priors():
        torch.testing.assert_close(prior.kernel_diag(x).detach(), prior.kernel(x, x).diagonal(dim1=-2, dim2=-1).detach())
    rbf = RBFPrior(length_scale=2.0, signal_var=3.0)
    k = rbf.kernel(x, x).detach()
    assert float(k[0, 0, 1]) == pytest.approx(3.0 * math.exp(-0.5 * 1.0 ** 2 / 4.0))


def test_samples_from_the_prior_have_its_covariance():
    prior = RBFPrior(length_scale=1.0, signal_var=2.0)
    x = torch.tensor([[[0.0], [0.5], [3.0]]])
    draws = prior.sample(x, 4000, generator=torch.Generator().manual_seed(0))[:, 0]  # [4000, 3]
    empirical = np.cov(draws.numpy().T)
    np.testing.assert_allclose(empirical, prior.kernel(x, x)[0].detach().numpy(), atol=0.15)


def test_empirical_bayes_recovers_the_moments_of_the_sine_family():
    b = tasks(n_tasks=300, k_shot=10, n_query=10, seed=4)
    x, y = torch.cat([b.x_support, b.x_query], 1), torch.cat([b.y_support, b.y_query], 1)
    prior = FeaturePrior(sine_features, 2, noise_var=1e-2, min_noise_var=1e-4)
    losses = fit_empirical_bayes(prior, x, y, steps=150, lr=0.05)
    assert losses[-1] < losses[0]
    w = sine_weights(b.amplitude, b.phase).double()
    with torch.no_grad():
        torch.testing.assert_close(prior.weight_mean, w.mean(0), atol=0.1, rtol=0)
        torch.testing.assert_close(prior.weight_cov, torch.cov(w.T, correction=0), atol=0.5, rtol=0.1)


def test_a_neural_feature_map_is_trained_with_the_prior():
    net = nn.Sequential(nn.Linear(1, 8), nn.ReLU(), nn.Linear(8, 4))
    prior = FeaturePrior(net, 4)
    assert any(p is net[0].weight for p in prior.parameters())
    b = tasks()
    before = net[0].weight.detach().clone()
    fit_empirical_bayes(prior, b.x_support, b.y_support, steps=3, lr=0.01, meta_batch_size=2,
                        generator=torch.Generator().manual_seed(0))
    assert not torch.equal(before, net[0].weight.detach())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RBFPrior(length_scale=0.0), "length_scale"),
        (lambda: RBFPrior(signal_var=-1.0), "signal_var"),
        (lambda: RBFPrior(noise_var=1e-8, min_noise_var=1e-6), "noise_var"),
        (lambda: FeaturePrior(sine_features, 2, weight_mean=torch.zeros(3)), "weight_mean"),
        (lambda: FeaturePrior(sine_features, 2, weight_cov=torch.eye(3)), "weight_cov"),
        (lambda: FeaturePrior(sine_features, 2, weight_cov=torch.tensor([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
        (lambda: FeaturePrior(sine_features, 0), "n_features"),
    ],
)
def test_bad_priors_are_refused_with_the_argument_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_calls_are_refused():
    b = tasks()
    prior = priors()[1]
    with pytest.raises(ValueError, match="x must be"):
        posterior_predictive(prior, b.x_support[0], b.y_support[0], b.x_query[0])
    with pytest.raises(ValueError, match="x_query"):
        posterior_predictive(prior, b.x_support, b.y_support, b.x_query[:2])
    with pytest.raises(ValueError, match="FeaturePrior"):
        weight_posterior(prior, b.x_support, b.y_support)
    with pytest.raises(ValueError, match="steps"):
        fit_empirical_bayes(prior, b.x_support, b.y_support, steps=0)
    frozen = RBFPrior()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to fit"):
        fit_empirical_bayes(frozen, b.x_support, b.y_support, steps=1)
    with pytest.raises(ValueError, match=r"\[\.\.\., n, 1\]"):
        sine_features(torch.zeros(2, 3, 2))


def test_a_prior_without_mean_and_kernel_cannot_be_built():
    from metalearn_lab.bayes import GaussianPrior

    with pytest.raises(TypeError, match="abstract"):
        GaussianPrior()
