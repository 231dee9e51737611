"""Lesson 05 (Siamese networks): the exercise checkers accept right answers and name typical mistakes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from metalearn_lab.lessons import siamese_contrastive as lesson
from metalearn_lab.siamese import contrastive_loss, nearest_support, pair_distance

# ------------------------------------------------------------------ contrastive loss

def _loss_with(distance, *, same_term=lambda d: d**2, diff_term=lambda d, m: torch.clamp(m - d, min=0) ** 2,
               swap=False, reduce="mean"):
    def loss(z1, z2, same, margin):
        d = distance(z1, z2)
        y = 1 - same if swap else same
        per_pair = y * same_term(d) + (1 - y) * diff_term(d, margin)
        return per_pair.mean() if reduce == "mean" else per_pair.sum()
    return loss


def _safe(z1, z2):
    return torch.sqrt(torch.clamp(((z1 - z2) ** 2).sum(-1), min=1e-12))


def _naive(z1, z2):
    return torch.sqrt(((z1 - z2) ** 2).sum(-1))


def test_contrastive_library_passes(capsys):
    lesson.check_contrastive_loss(contrastive_loss)
    assert "✓" in capsys.readouterr().out


def test_contrastive_other_right_answers_pass():
    lesson.check_contrastive_loss(_loss_with(_safe))
    lesson.check_contrastive_loss(_loss_with(lambda a, b: torch.linalg.vector_norm(a - b, dim=-1)))


@pytest.mark.parametrize("wrong, words", [
    (_loss_with(_safe, swap=True), "labels are swapped"),
    (_loss_with(_safe, same_term=lambda d: d, diff_term=lambda d, m: torch.clamp(m - d, min=0)), "d instead of d²"),
    (_loss_with(_safe, same_term=lambda d: d), "same-class term is d, not d²"),
    (_loss_with(_safe, diff_term=lambda d, m: torch.clamp(m - d, min=0)), "not its square"),
    (_loss_with(_safe, diff_term=lambda d, m: (m - d) ** 2), "hinge is missing"),
    (_loss_with(lambda a, b: ((a - b) ** 2).sum(-1)), "squared distance d² where the formula has d"),
    (_loss_with(_safe, diff_term=lambda d, m: torch.clamp(1.0 - d, min=0) ** 2), "margin is ignored"),
    (_loss_with(_safe, reduce="sum"), "sum over the"),
    (_loss_with(_naive), "finite"),
])
def test_contrastive_wrong_answers_named(wrong, words):
    with pytest.raises(AssertionError, match=words):
        lesson.check_contrastive_loss(wrong)


def test_contrastive_placeholder_and_detached():
    with pytest.raises(AssertionError, match="returned None"):
        lesson.check_contrastive_loss(lambda z1, z2, same, margin: None)
    with pytest.raises(AssertionError, match="no gradient"):
        lesson.check_contrastive_loss(lambda z1, z2, same, margin: float(contrastive_loss(z1.detach(), z2.detach(), same, margin)))


def test_naive_sqrt_really_is_nan_at_zero():
    """The reason for the finite-gradient check: sqrt's derivative at 0 is infinite."""
    z = torch.zeros(1, 3, requires_grad=True)
    (_naive(z, torch.zeros(1, 3)) ** 2).sum().backward()
    assert torch.isnan(z.grad).all()
    z.grad = None
    (pair_distance(z, torch.zeros(1, 3)) ** 2).sum().backward()
    assert torch.isfinite(z.grad).all()


# ------------------------------------------------------------------ threshold

def _best_threshold(d, same):
    candidates = torch.sort(d).values
    accuracies = torch.stack([((d < t).double() == same).double().mean() for t in candidates])
    # "same if d < t" with t just above the best sorted distance
    i = int(accuracies.argmax())
    return float(candidates[i])


def _best_threshold_midpoints(d, same):
    values = torch.sort(d).values
    candidates = (values[1:] + values[:-1]) / 2
    accuracies = torch.stack([((d < t).double() == same).double().mean() for t in candidates])
    return float(candidates[accuracies.argmax()])


def test_threshold_right_answer_passes(capsys):
    lesson.check_threshold(_best_threshold_midpoints)
    assert "best accuracy" in capsys.readouterr().out


def test_threshold_midpoint_of_means_named():
    def midpoint(d, same):
        return float((d[same == 1].mean() + d[same == 0].mean()) / 2)

    with pytest.raises(AssertionError, match="midpoint between the two mean distances"):
        lesson.check_threshold(midpoint)


def test_threshold_inverted_rule_named():
    def inverted(d, same):
        values = torch.sort(d).values
        accuracies = torch.stack([((d > t).double() == same).double().mean() for t in values])
        return float(values[accuracies.argmax()])

    with pytest.raises(AssertionError, match="small"):
        lesson.check_threshold(inverted)


def test_threshold_placeholder():
    with pytest.raises(AssertionError, match="returned None"):
        lesson.check_threshold(lambda d, same: None)


# ------------------------------------------------------------------ one-shot prediction

def _right(model, x_support, x_query):
    return torch.cdist(model(x_query), model(x_support)).argmin(dim=1)


def test_one_shot_right_answers_pass(capsys):
    lesson.check_one_shot_predict(_right)
    lesson.check_one_shot_predict(nearest_support)
    assert "nearest support embedding" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, words", [
    (lambda m, s, q: torch.cdist(m(q), m(s)).argmax(dim=1), "farthest"),
    (lambda m, s, q: torch.cdist(q.flatten(1), s.flatten(1)).argmin(dim=1), "raw pixels"),
    (lambda m, s, q: torch.cdist(m(s), m(q)).argmin(dim=1), "transposed"),
    (lambda m, s, q: torch.cdist(m(q), m(s)).min(dim=1).values, "integer indices"),
    (lambda m, s, q: None, "returned None"),
])
def test_one_shot_wrong_answers_named(wrong, words):
    with pytest.raises(AssertionError, match=words):
        lesson.check_one_shot_predict(wrong)


# ------------------------------------------------------------------ figures and widgets build

def test_lesson05_figures_and_widgets_build():


    lesson.plot_contrastive_margins()
    lesson.plot_contrastive_loss(1.0, points=[(0.5, 1), (0.6, 0)])
    lesson.plot_siamese_diagram(torch.rand(1, 8, 8), torch.rand(1, 8, 8), same=1)
    points, share = lesson.pca_project(torch.randn(30, 5))
    assert points.shape == (30, 2) and 0 < share <= 1
    lesson.plot_embedding_2d([(points, "x")], torch.arange(30) % 3)
    d, same = torch.rand(50), (torch.rand(50) < 0.5).float()
    lesson.plot_distance_histogram(d, same, 0.5)
    lesson.plot_one_shot_trial(torch.rand(1, 8, 8), torch.rand(20, 1, 8, 8), 3, 4, torch.rand(20))
    lesson.plot_one_shot_comparison([("a", 50.0, "ours"), ("b", 90.0, "published")])
    lesson.contrastive_margin_explorer()
    lesson.threshold_explorer(d, same, d, same)
    import matplotlib.pyplot as plt
    plt.close("all")
