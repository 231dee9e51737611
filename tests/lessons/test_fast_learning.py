"""Lesson fast_learning's checkers (on the lesson's own skeleton and solution cells), figures and Try-it explorer."""

from __future__ import annotations

import math

import _exercise_cells as cells  # tests/lessons/_exercise_cells.py
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from metalearn_lab import drawing
from metalearn_lab.bayes import FeaturePrior, RBFPrior, sine_features
from metalearn_lab.exercises import NOT_ATTEMPTED, PASSED, WRONG
from metalearn_lab.lessons import fast_learning as lesson
from metalearn_lab.report import mse_by_k_table
from metalearn_lab.samplers import Episode


@pytest.mark.parametrize("checker", ["check_weight_posterior", "check_log_evidence", "check_nearest_prototype"])
def test_later_cells_never_use_the_students_answer(checker):
    assert cells.later_uses_of_answer("fast_learning", checker) == [], "later cells must use the library, not the student's answer"


# ---------------------------------------------------------------- exercise 1
def test_weight_posterior_skeleton_and_solution():
    assert lesson.check_weight_posterior.run(cells.run_skeleton("fast_learning", "check_weight_posterior")).status == NOT_ATTEMPTED
    result = lesson.check_weight_posterior.run(cells.run_solution("fast_learning", "check_weight_posterior"))
    assert result.status == PASSED, result.message


def _posterior(*, data_scale=None, add_covariances=False, no_prior_mean=False, raw_prior_mean=False, precision=False):
    def posterior(phi, y, prior_mean, prior_cov, noise_var):
        prior_precision = torch.linalg.inv(prior_cov)
        if add_covariances:  # the prior covariance used where its inverse belongs
            post_precision = prior_cov + phi.T @ phi / noise_var
        elif data_scale == "times":
            post_precision = prior_precision + phi.T @ phi * noise_var
        else:
            post_precision = prior_precision + phi.T @ phi / noise_var
        cov = torch.linalg.inv(post_precision)
        prior_term = 0 if no_prior_mean else (prior_mean if raw_prior_mean else prior_precision @ prior_mean)
        mean = cov @ (prior_term + phi.T @ y / noise_var)
        return mean, post_precision if precision else cov

    return posterior


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_posterior(precision=True), "precision"),
        (_posterior(data_scale="times"), "divide by the noise variance"),
        (_posterior(add_covariances=True), "add \\*precisions\\*"),
        (_posterior(no_prior_mean=True), "prior mean is missing"),
        (_posterior(raw_prior_mean=True), "Σ⁻¹ μ, not μ"),
        (lambda *args: torch.zeros(3), "pair"),
        (lambda *args: (torch.zeros(2), torch.eye(2)), "shape"),
    ],
)
def test_weight_posterior_mistakes_are_diagnosed(answer, message):
    result = lesson.check_weight_posterior.run(answer)
    assert result.status == WRONG and __import__("re").search(message, result.message), result.message


# ---------------------------------------------------------------- exercise 2
def test_log_evidence_skeleton_and_solution():
    assert lesson.check_log_evidence.run(cells.run_skeleton("fast_learning", "check_log_evidence")).status == NOT_ATTEMPTED
    result = lesson.check_log_evidence.run(cells.run_solution("fast_learning", "check_log_evidence"))
    assert result.status == PASSED, result.message


def _evidence(*, sign=1.0, noise=True, half=True, constant=True):
    def log_evidence(k, y, noise_var):
        c = k + (noise_var * torch.eye(len(y), dtype=k.dtype) if noise else 0)
        value = (-0.5 * y @ torch.linalg.solve(c, y) - (0.5 if half else 1.0) * torch.linalg.slogdet(c)[1]
                 - (0.5 * len(y) * math.log(2 * math.pi) if constant else 0.0))
        return sign * value

    return log_evidence


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_evidence(sign=-1.0), "sign is flipped"),
        (_evidence(noise=False), "noise is missing"),
        (_evidence(half=False), "one half"),
        (_evidence(constant=False), "constant"),
        (lambda k, y, s: torch.zeros(2), "one number"),
        (lambda k, y, s: 1.0, "should be"),
    ],
)
def test_log_evidence_mistakes_are_diagnosed(answer, message):
    result = lesson.check_log_evidence.run(answer)
    assert result.status == WRONG and message in result.message, result.message


# ---------------------------------------------------------------- exercise 3
def test_nearest_prototype_skeleton_and_solution():
    assert lesson.check_nearest_prototype.run(cells.run_skeleton("fast_learning", "check_nearest_prototype")).status == NOT_ATTEMPTED
    result = lesson.check_nearest_prototype.run(cells.run_solution("fast_learning", "check_nearest_prototype"))
    assert result.status == PASSED, result.message


def _nearest_example_label(z_support, y_support, z_query, n_way):
    return y_support[torch.cdist(z_query, z_support).argmin(-1)]


def _farthest_prototype(z_support, y_support, z_query, n_way):
    centres = torch.stack([z_support[y_support == c].mean(0) for c in range(n_way)])
    return torch.cdist(z_query, centres).argmax(-1)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_nearest_example_label, "nearest \\*example\\*"),
        (_farthest_prototype, "farthest"),
        (lambda zs, ys, zq, n: torch.cdist(zq, zs).argmin(-1), "indices of support examples"),
        (lambda zs, ys, zq, n: torch.zeros(2, dtype=torch.long), "one label per query"),
        (lambda zs, ys, zq, n: torch.zeros(len(zq), dtype=torch.long), "some labels differ"),
    ],
)
def test_nearest_prototype_mistakes_are_diagnosed(answer, message):
    result = lesson.check_nearest_prototype.run(answer)
    assert result.status == WRONG and __import__("re").search(message, result.message), result.message


# ---------------------------------------------------------------- the explorer and its static twin
@pytest.fixture
def priors():
    return {"sine": FeaturePrior(sine_features, 2, weight_cov=4.0, noise_var=1e-4), "rbf": RBFPrior(noise_var=1e-4)}


@pytest.fixture
def explorer(priors):
    return lesson.posterior_widget(priors, scalable=["sine", "rbf"], k_shot=1, seed=0)


def curve(explorer, index=-1):
    return np.asarray(explorer.ax.lines[index].get_ydata(), dtype=float).copy()  # the posterior mean is drawn last


def test_the_explorer_draws_the_posterior(explorer):
    assert len(explorer.fig.axes) == 1 and len(curve(explorer)) == 200
    assert explorer.k_shot.max == 10 and explorer.k_shot.min == 0
    assert "MSE" in explorer.ax.get_title()


@pytest.mark.parametrize(("control", "value"), [("k_shot", 5), ("scale", 3.0), ("prior", "rbf")])
def test_each_control_changes_the_posterior(explorer, control, value):
    before = curve(explorer)
    getattr(explorer, control).value = value
    assert not np.allclose(before, curve(explorer)), f"moving {control} left the posterior mean unchanged"


def test_zero_points_show_the_prior_and_two_points_pin_the_sine_task(explorer):
    explorer.k_shot.value = 0
    np.testing.assert_allclose(curve(explorer), 0.0, atol=1e-6)
    explorer.k_shot.value = 2
    assert explorer.last["mse"] < 1e-2


def test_the_scale_applies_only_to_scalable_priors_and_never_changes_them(priors):
    before = {k: v.clone() for k, v in priors["sine"].state_dict().items()}
    ex = lesson.posterior_widget(priors, scalable=["rbf"], k_shot=1)
    unscaled = curve(ex)
    ex.scale.value = 5.0
    np.testing.assert_allclose(curve(ex), unscaled)
    for k, v in priors["sine"].state_dict().items():
        assert torch.equal(v, before[k])


def test_new_task_changes_the_truth(explorer):
    before = curve(explorer, index=-2)  # the true curve
    explorer.new_task.click()
    assert not np.allclose(before, curve(explorer, index=-2))


def test_the_explorer_answers_within_a_third_of_a_second(explorer):
    import time

    start = time.perf_counter()
    for k in range(1, 6):
        explorer.k_shot.value = k
    assert (time.perf_counter() - start) / 5 < 0.3


def test_the_static_twin(priors):
    fig = lesson.posterior_figure(priors, [{"prior": "sine", "k_shot": 1}, {"prior": "rbf", "k_shot": 5}])
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="settings"):
        lesson.posterior_figure(priors, [])
    with pytest.raises(ValueError, match="unknown prior"):
        lesson.posterior_figure(priors, [{"prior": "nope", "k_shot": 1}])
    with pytest.raises(ValueError, match="at least one prior"):
        lesson.posterior_widget({})


# ---------------------------------------------------------------- figures and helpers
def test_figures_build(priors):
    task = lesson.one_task(3)
    figs = [lesson.plot_posterior_sharpening(priors, task, k_shots=(0, 2)),
            lesson.plot_weight_posterior(priors["sine"], task, k_shots=(0, 1)),
            drawing.plot_mse_by_k({"a": {k: torch.rand(5) for k in lesson.K_SHOTS},
                                   "MAML": {k: torch.tensor([1.0, float("nan"), 2.0]) for k in lesson.K_SHOTS}},
                                  train_range=(1, 10))]
    assert len(figs[0].axes) == 4
    for fig in figs:
        plt.close(fig)


def test_mse_table_counts_divergences_only_for_gradient_learners():
    values = torch.tensor([0.1, 0.2, 30.0])
    table = mse_by_k_table({"MAML, 10 steps": {1: values}, "1-NN": {1: values}}, k_shots=(1,))
    maml_row, nn_row = table.splitlines()[2:]
    assert "above 25" in maml_row and "above 25" not in nn_row


def test_first_k_and_frequency_tasks():
    task = lesson.one_task(0)
    assert lesson.first_k(task, 3).x_support.shape == (1, 3, 1)
    same = lesson.frequency_tasks(4, 5, 6, 1.0, seed=2)  # frequency 1: Finn et al.'s tasks
    torch.testing.assert_close(same.y_query, same.amplitude[:, None, None] * torch.sin(same.x_query - same.phase[:, None, None]))
    fast = lesson.frequency_tasks(4, 5, 6, 2.0, seed=2)
    torch.testing.assert_close(fast.y_query, fast.amplitude[:, None, None] * torch.sin(2 * fast.x_query - fast.phase[:, None, None]))


def test_choose_on_tasks_picks_the_best_value():
    batch = lesson.one_task(1, n_query=50)
    truth = batch.y_query
    best = lesson.choose_on_tasks(lambda b, c: truth * c, [0.0, 0.5, 1.0, 2.0], batch)
    assert best == 1.0


def test_episode_accuracies_score_each_task():
    class FakeTasks:
        def batches(self, batch_size):
            x = torch.zeros(2, 2, 1, 2, 2)
            yield Episode(x, torch.tensor([[0, 1], [0, 1]]), x, torch.tensor([[0, 1], [1, 1]]), torch.zeros(2, 2))

    acc = lesson.episode_accuracies(FakeTasks(), lambda xs, ys, xq: torch.zeros(2, 2, dtype=torch.long))
    assert acc.tolist() == [0.5, 0.0]


def test_the_pre_rendered_explorer_has_a_frame_per_prior_and_k(priors):
    explorer = lesson.posterior_explorer(priors, k_shots=(0, 2), seed=1)
    assert len(explorer.frames) == 4 and explorer.initial == {"prior": "sine", "k_shot": 0}
    assert explorer.frame(prior="rbf", k_shot=2) != explorer.frame(prior="sine", k_shot=2)
    assert 'class="metalearn-tryit"' in explorer.html()
    with pytest.raises(ValueError, match="at least one prior"):
        lesson.posterior_explorer({})
