"""Lesson 05 (Siamese networks): the exercise checkers.

For each exercise: the skeleton as the lesson ships it is "not attempted", the lesson's solution
passes, and each typical wrong answer the checker knows is rejected with its diagnosis.
"""

from __future__ import annotations

import re

import _exercise_cells as cells  # tests/lessons/_exercise_cells.py
import matplotlib.pyplot as plt  # the Agg backend: tests/conftest.py
import pytest
import torch
from _explorers import check_explorer, record_draws  # tests/lessons/_explorers.py

from metalearn_lab.exercises import WrongAnswer
from metalearn_lab.lessons import siamese_contrastive as lesson
from metalearn_lab.siamese import best_threshold, contrastive_loss, nearest_support, pair_distance

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


SLUG = "siamese_contrastive"


@pytest.mark.parametrize("checker", ["check_contrastive_loss", "check_threshold", "check_one_shot_predict"])
def test_nothing_after_the_exercise_uses_the_students_answer(checker):
    assert cells.later_uses_of_answer(SLUG, checker) == [], "later cells must use the library, not the student's answer"


@pytest.mark.parametrize("checker", ["check_contrastive_loss", "check_threshold", "check_one_shot_predict"])
def test_untouched_skeleton_is_not_attempted(checker, capsys):
    skeleton = cells.run_skeleton(SLUG, checker)
    result = getattr(lesson, checker).run(skeleton)
    assert result.status == "not attempted", result
    assert "returned None" in result.message
    capsys.readouterr()  # the setup cell's own print
    getattr(lesson, checker)(skeleton)  # prints and returns, so Run All goes on
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("checker", ["check_contrastive_loss", "check_threshold", "check_one_shot_predict"])
def test_lesson_solution_passes(checker, capsys):
    solution = cells.run_solution(SLUG, checker)
    result = getattr(lesson, checker).run(solution)
    assert result.status == "passed", result
    capsys.readouterr()  # the setup cell's own print
    getattr(lesson, checker)(solution)
    assert capsys.readouterr().out.startswith("✓")


def _wrong(checker, answer, words):
    result = checker.run(answer)
    assert result.status == "wrong", result
    assert words in result.message
    with pytest.raises(WrongAnswer, match=re.escape(words)):  # in the lesson, the diagnosis is raised
        checker(answer)


# ------------------------------------------------------------------ contrastive loss

def test_contrastive_library_and_other_right_answers_pass():
    for answer in (contrastive_loss, _loss_with(_safe), _loss_with(lambda a, b: torch.linalg.vector_norm(a - b, dim=-1))):
        assert lesson.check_contrastive_loss.run(answer).status == "passed"


@pytest.mark.parametrize("wrong, words", [
    (_loss_with(_safe, swap=True), "labels are swapped"),
    (_loss_with(_safe, same_term=lambda d: d, diff_term=lambda d, m: torch.clamp(m - d, min=0)), "d instead of d²"),
    (_loss_with(_safe, same_term=lambda d: d), "same-class term is d, not d²"),
    (_loss_with(_safe, diff_term=lambda d, m: torch.clamp(m - d, min=0)), "not its square"),
    (_loss_with(_safe, diff_term=lambda d, m: (m - d) ** 2), "hinge is missing"),
    (_loss_with(lambda a, b: ((a - b) ** 2).sum(-1)), "squared distance d² where the formula has d"),
    (_loss_with(_safe, diff_term=lambda d, m: torch.clamp(1.0 - d, min=0) ** 2), "margin is ignored"),
    (_loss_with(_safe, diff_term=lambda d, m: torch.clamp(m - d**2, min=0) ** 2), "hinge compares the margin with d²"),
    (_loss_with(_safe, reduce="sum"), "sum over the"),
    (_loss_with(_naive), "finite"),
    (lambda z1, z2, same, margin: float(contrastive_loss(z1.detach(), z2.detach(), same, margin)), "no gradient"),
    (lambda z1, z2, same, margin: same * pair_distance(z1, z2) ** 2, "did you forget to average"),
])
def test_contrastive_wrong_answers_named(wrong, words):
    _wrong(lesson.check_contrastive_loss, wrong, words)


def test_naive_sqrt_really_is_nan_at_zero():
    """The reason for the finite-gradient check: sqrt's derivative at 0 is infinite."""
    z = torch.zeros(1, 3, requires_grad=True)
    (_naive(z, torch.zeros(1, 3)) ** 2).sum().backward()
    assert torch.isnan(z.grad).all()
    z.grad = None
    (pair_distance(z, torch.zeros(1, 3)) ** 2).sum().backward()
    assert torch.isfinite(z.grad).all()


# ------------------------------------------------------------------ threshold

def _best_threshold_midpoints(d, same):
    values = torch.sort(d).values
    candidates = (values[1:] + values[:-1]) / 2
    accuracies = torch.stack([((d < t).double() == same).double().mean() for t in candidates])
    return float(candidates[accuracies.argmax()])


def test_threshold_right_answers_pass():
    for answer in (_best_threshold_midpoints, best_threshold):
        result = lesson.check_threshold.run(answer)
        assert result.status == "passed", result
        assert "best accuracy" in result.message


def test_library_best_threshold_is_best_on_every_candidate():
    gen = torch.Generator().manual_seed(0)
    d = torch.rand(60, generator=gen, dtype=torch.float64)
    same = (torch.rand(60, generator=gen) < 0.5).double()
    t = best_threshold(d, same)
    accuracy = float(((d < t).double() == same).double().mean())
    for candidate in torch.cat([d, d + 1e-9, d.new_tensor([-1.0, 2.0])]):
        assert accuracy >= float(((d < candidate).double() == same).double().mean()) - 1e-12
    with pytest.raises(ValueError, match="one label per distance"):
        best_threshold(d, same[:-1])


def _midpoint_of_means(d, same):
    return float((d[same == 1].mean() + d[same == 0].mean()) / 2)


def _inverted(d, same):
    values = torch.sort(d).values
    accuracies = torch.stack([((d > t).double() == same).double().mean() for t in values])
    return float(values[accuracies.argmax()])


@pytest.mark.parametrize("wrong, words", [
    (_midpoint_of_means, "midpoint between the two mean distances"),
    (lambda d, same: float(d.mean()), "midpoint between the two mean distances"),  # balanced pairs: the same number
    (lambda d, same: float(d.median()), "median of all distances"),
    (_inverted, "small"),
    (lambda d, same: torch.tensor([0.5, 0.6]), "one number"),
])
def test_threshold_wrong_answers_named(wrong, words):
    _wrong(lesson.check_threshold, wrong, words)


# ------------------------------------------------------------------ one-shot prediction

def _right(model, x_support, x_query):
    return torch.cdist(model(x_query), model(x_support)).argmin(dim=1)


def test_one_shot_right_answers_pass():
    for answer in (_right, nearest_support):
        result = lesson.check_one_shot_predict.run(answer)
        assert result.status == "passed", result
        assert "nearest support embedding" in result.message


@pytest.mark.parametrize("wrong, words", [
    (lambda m, s, q: torch.cdist(m(q), m(s)).argmax(dim=1), "farthest"),
    (lambda m, s, q: torch.cdist(q.flatten(1), s.flatten(1)).argmin(dim=1), "raw pixels"),
    (lambda m, s, q: torch.cdist(m(s), m(q)).argmin(dim=1), "transposed"),
    (lambda m, s, q: torch.cdist(m(q), m(s)), "argmin of each row"),
    (lambda m, s, q: torch.cdist(m(q), m(s)).min(dim=1).values, "integer indices"),
    (lambda m, s, q: torch.zeros(len(q), dtype=torch.long), "embed both sets"),
])
def test_one_shot_wrong_answers_named(wrong, words):
    _wrong(lesson.check_one_shot_predict, wrong, words)


# ------------------------------------------------------------------ figures and widgets build

def test_lesson05_figures_and_widgets_build():
    lesson.plot_contrastive_loss(1.0, points=[(0.5, 1), (0.6, 0)])
    lesson.plot_siamese_diagram(torch.rand(1, 8, 8), torch.rand(1, 8, 8), same=1)
    points, share = lesson.pca_project(torch.randn(30, 5))
    assert points.shape == (30, 2) and 0 < share <= 1
    lesson.plot_embedding_2d([(points, "x")], torch.arange(30) % 3)
    d, same = torch.rand(50), (torch.rand(50) < 0.5).float()
    lesson.plot_distance_histogram(d, same, 0.5)
    lesson.plot_one_shot_trial(torch.rand(1, 8, 8), torch.rand(20, 1, 8, 8), 3, 4, torch.rand(20))
    lesson.plot_one_shot_comparison([("a", 50.0, "ours"), ("b", 90.0, "published")])
    lesson.contrastive_margin_widget()
    lesson.threshold_widget(d, same, d, same)
    plt.close("all")


# ------------------------------------------------------------------ the three Try-its in the book

PAIRS_ABC = [(0.5, 1, "A"), (0.6, 0, "B"), (2.0, 0, "C")]


def _distances(seed=0, n=300):
    g = torch.Generator().manual_seed(seed)
    same = (torch.rand(n, generator=g) < 0.5).float()
    return torch.rand(n, generator=g) * 2 + 0.5 * (1 - same), same


def _runs(n_runs=4, size=12):
    from metalearn_lab.data.lake_runs import LakeRun

    g = torch.Generator().manual_seed(0)
    return [LakeRun(torch.rand(20, 1, size, size, generator=g), torch.rand(20, 1, size, size, generator=g),
                    torch.randperm(20, generator=g), f"run{k + 1:02d}") for k in range(n_runs)]


def _embedder(size=12):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(size * size, 8))


def test_margin_explorer_has_every_margin_and_each_changes_the_figure():
    explorer = lesson.contrastive_margin_explorer(points=PAIRS_ABC)
    check_explorer(explorer, {"margin": lesson.MARGIN_VALUES})
    assert explorer.initial == {"margin": 1.0}


def test_threshold_explorer_uses_the_live_sliders_grid_and_each_threshold_changes_the_figure():
    d_train, same_train = _distances(0)
    d_test, same_test = _distances(1)
    explorer = lesson.threshold_explorer(d_train, same_train, d_test, same_test)
    view = lesson.ThresholdView(d_train, same_train, d_test, same_test)
    check_explorer(explorer, {"threshold": view.values(12)})
    widget = lesson.threshold_widget(d_train, same_train, d_test, same_test)
    slider = widget.children[0]
    grid = [round(slider.min + k * slider.step, view.digits) for k in range(round((slider.max - slider.min) / slider.step) + 1)]
    assert set(explorer.sliders["threshold"]) <= set(grid), "a pre-rendered threshold the live slider cannot take"
    assert abs(explorer.initial["threshold"] - slider.value) <= view.top / 12
    plt.close("all")


def test_trial_explorer_has_every_run_and_trial_and_each_changes_the_figure():
    explorer = lesson.one_shot_trial_explorer(_embedder(), _runs())
    check_explorer(explorer, {"run": (1, 2, 3, 4), "trial": (1, 2, 3, 4, 5, 6)})
    with pytest.raises(ValueError, match="run must be in 1..4 and trial in 1..20, got run=5, trial=1"):
        lesson.OneShotTrialView(_embedder(), _runs()).draw(5, 1)


def test_trial_view_redraws_one_figure_as_a_new_figure_would_draw_it():
    import io

    runs, model = _runs(), _embedder()
    view = lesson.OneShotTrialView(model, runs)
    view.draw(1, 1)
    reused = view.draw(2, 3)
    fresh = lesson.OneShotTrialView(model, runs).draw(2, 3)
    assert reused is view.fig

    def png(fig):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=40)
        return buffer.getvalue()

    assert png(reused) == png(fresh), "redrawing in place left something of the previous trial"


def test_every_try_it_of_lesson05_draws_its_widget_and_explorer_with_one_function(monkeypatch):
    d, same = _distances()
    calls = record_draws(monkeypatch, lesson.ThresholdView)
    lesson.threshold_widget(d, same, d, same)
    lesson.threshold_explorer(d, same, d, same, n_values=3)
    assert len(calls) == 1 + 3
    calls = record_draws(monkeypatch, lesson.OneShotTrialView)
    lesson.one_shot_trial_widget(_embedder(), _runs())
    lesson.one_shot_trial_explorer(_embedder(), _runs(), run_values=(1,), trial_values=(1, 2))
    assert calls == [((1, 1), {}), ((), {"run": 1, "trial": 1}), ((), {"run": 1, "trial": 2})]
    drawn = []
    monkeypatch.setattr(lesson, "contrastive_margin_view", lambda margin, **kw: drawn.append(margin) or plt.figure())
    lesson.contrastive_margin_widget()
    lesson.contrastive_margin_explorer(margins=(0.5, 2.0))
    assert drawn == [1.0, 0.5, 2.0]  # the widget at m = 1, then each pre-rendered margin
    plt.close("all")
