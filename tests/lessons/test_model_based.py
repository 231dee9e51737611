"""Lesson model_based's checkers (on the lesson's own skeleton and solution cells), cost timing, figures and explorer."""

from __future__ import annotations

import math
import re

import _exercise_cells as cells  # tests/lessons/_exercise_cells.py
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metalearn_lab.blackbox import ConditionalNeuralProcess, InContextTransformer
from metalearn_lab.data.sinusoid import SinusoidTasks
from metalearn_lab.exercises import NOT_ATTEMPTED, PASSED, WRONG
from metalearn_lab.lessons import model_based as lesson


def assert_wrong(result, message):
    assert result.status == WRONG and re.search(message, result.message), result.message



@pytest.mark.parametrize("checker", ["check_cnp_forward", "check_attention_mask", "check_gaussian_nll"])
def test_later_cells_never_use_the_students_answer(checker):
    assert cells.later_uses_of_answer("model_based", checker) == [], "later cells must use the library, not the student's answer"


# ---------------------------------------------------------------- exercise 1
def test_cnp_forward_skeleton_and_solution():
    assert lesson.check_cnp_forward.run(cells.run_skeleton("model_based", "check_cnp_forward")).status == NOT_ATTEMPTED
    result = lesson.check_cnp_forward.run(cells.run_solution("model_based", "check_cnp_forward"))
    assert result.status == PASSED, result.message


def _cnp(aggregate="mean", order="r_first", std="floor", swap=False):
    def cnp_forward(encoder, decoder, x_support, y_support, x_query, min_std):
        encoded = encoder(torch.cat([x_support, y_support], -1))
        r = {"mean": encoded.mean(1), "sum": encoded.sum(1), "max": encoded.max(1).values}[aggregate]
        r = r[:, None].expand(-1, x_query.shape[1], -1)
        inputs = torch.cat([r, x_query], -1) if order == "r_first" else torch.cat([x_query, r], -1)
        first, second = decoder(inputs).chunk(2, -1)
        mean, raw = (second, first) if swap else (first, second)
        scale = {"floor": min_std + (1 - min_std) * F.softplus(raw), "softplus": F.softplus(raw), "exp": raw.exp(),
                 "raw": raw}[std]
        return mean, scale

    return cnp_forward


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_cnp(aggregate="sum"), "with the sum"),
        (_cnp(aggregate="max"), "with the maximum"),
        (_cnp(order="x_first"), "r first"),
        (_cnp(swap=True), "swapped"),
        (_cnp(std="softplus"), "no floor"),
        (_cnp(std="exp"), "not exp"),
        (_cnp(std="raw"), "raw scale"),
        (lambda *args: torch.zeros(2, 3, 1), "pair"),
        (lambda *args: (torch.zeros(2, 3), torch.ones(2, 3)), "shape"),
    ],
)
def test_cnp_forward_mistakes_are_diagnosed(answer, message):
    assert_wrong(lesson.check_cnp_forward.run(answer), message)


# ---------------------------------------------------------------- exercise 2
def test_attention_mask_skeleton_and_solution():
    assert lesson.check_attention_mask.run(cells.run_skeleton("model_based", "check_attention_mask")).status == NOT_ATTEMPTED
    result = lesson.check_attention_mask.run(cells.run_solution("model_based", "check_attention_mask"))
    assert result.status == PASSED, result.message


def _mask(kind):
    def attention_mask(k, q):
        n = k + q
        right = InContextTransformer.attention_mask(k, q)
        if kind == "inverted":
            return ~right
        if kind == "causal":
            return torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        if kind == "queries see queries":
            mask = torch.zeros(n, n, dtype=torch.bool)
            mask[:k, k:] = True
            return mask
        if kind == "self":
            mask = right.clone()
            mask[k:, k:] = ~torch.eye(q, dtype=torch.bool)
            return mask
        if kind == "support sees queries":
            mask = right.clone()
            mask[:k, k:] = False
            return mask
        if kind == "float":
            return right.float()
        if kind == "blocks support":
            mask = right.clone()
            mask[k:, 0] = True
            return mask
        return right[:k]

    return attention_mask


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("inverted", "inverted"),
        ("causal", "causal"),
        ("queries see queries", "other queries"),
        ("self", "attend to themselves"),
        ("support sees queries", "support tokens attend to query tokens"),
        ("float", "boolean"),
        ("blocks support", "cannot see a support pair"),
        ("shape", "K \\+ Q"),
    ],
)
def test_attention_mask_mistakes_are_diagnosed(kind, message):
    assert_wrong(lesson.check_attention_mask.run(_mask(kind)), message)


# ---------------------------------------------------------------- exercise 3
def test_gaussian_nll_skeleton_and_solution():
    assert lesson.check_gaussian_nll.run(cells.run_skeleton("model_based", "check_gaussian_nll")).status == NOT_ATTEMPTED
    result = lesson.check_gaussian_nll.run(cells.run_solution("model_based", "check_gaussian_nll"))
    assert result.status == PASSED, result.message


HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda m, s, y: ((y - m) ** 2 / (2 * s ** 2)).mean() + HALF_LOG_2PI, "log σ term is missing"),
        (lambda m, s, y: -(HALF_LOG_2PI + s.log() + (y - m) ** 2 / (2 * s ** 2)).mean(), "sign is flipped"),
        (lambda m, s, y: (HALF_LOG_2PI + s.log() + (y - m) ** 2 / (2 * s)).mean(), "not 2σ"),
        (lambda m, s, y: (HALF_LOG_2PI + (s ** 2).log() + (y - m) ** 2 / (2 * s ** 2)).mean(), "not log σ²"),
        (lambda m, s, y: (s.log() + (y - m) ** 2 / (2 * s ** 2)).mean(), "constant"),
        (lambda m, s, y: (HALF_LOG_2PI + s.log() + (y - m) ** 2 / (2 * s ** 2)).sum(), "do not sum"),
        (lambda m, s, y: (HALF_LOG_2PI + s.log() + (y - m) ** 2 / (2 * s ** 2)), "one number"),
        (lambda m, s, y: torch.tensor(0.0), "expected"),
    ],
)
def test_gaussian_nll_mistakes_are_diagnosed(answer, message):
    assert_wrong(lesson.check_gaussian_nll.run(answer), message)


# ---------------------------------------------------------------- timing, figures, explorer
def test_cpu_seconds_measures_work():
    light = lesson.cpu_seconds(lambda: None, repeats=3)
    heavy = lesson.cpu_seconds(lambda: torch.randn(300, 300) @ torch.randn(300, 300), repeats=3)
    assert 0 <= light < heavy


def predictors():
    torch.manual_seed(0)
    cnp = ConditionalNeuralProcess(hidden=16)

    def from_model(x_support, y_support, x_grid):
        with torch.no_grad():
            mean, std = cnp(x_support[None], y_support[None], x_grid[None])
        return mean[0, :, 0], std[0, :, 0]

    return {"cnp": from_model, "zero": lambda xs, ys, xg: (torch.zeros(len(xg)), None)}


@pytest.fixture
def explorer():
    return lesson.in_context_widget(predictors(), k_shot=5, amplitude=3.0, phase=1.0, seed=0)


def line(explorer, label):
    for artist in explorer.ax.lines:
        if artist.get_label().startswith(label):
            return np.asarray(artist.get_ydata(), dtype=float).copy()
    raise LookupError(label)


def test_the_explorer_draws_every_predictor(explorer):
    assert set(explorer.errors) == {"cnp", "zero"}
    assert explorer.k_shot.max == 40 and explorer.amplitude.max == 10.0


@pytest.mark.parametrize(("control", "value"), [("k_shot", 20), ("amplitude", 8.0), ("phase", 2.5)])
def test_each_control_changes_the_prediction(explorer, control, value):
    before = line(explorer, "cnp")
    getattr(explorer, control).value = value
    assert not np.allclose(before, line(explorer, "cnp"))


def test_the_zero_predictor_costs_the_mean_square_of_the_wave(explorer):
    explorer.amplitude.value = 4.0
    assert explorer.errors["zero"] == pytest.approx(8.0, rel=0.05)  # A²/2 over whole periods (about)
    assert "beyond training" not in explorer.ax.get_title()
    explorer.amplitude.value = 6.0
    assert "beyond training" in explorer.ax.get_title()


def test_new_points_move_the_support_set(explorer):
    before = explorer.x_all.clone()
    explorer.new_points.click()
    assert not torch.equal(before, explorer.x_all)


def test_the_explorer_answers_within_a_third_of_a_second(explorer):
    import time

    start = time.perf_counter()
    for k in (3, 9, 27, 40):
        explorer.k_shot.value = k
    assert (time.perf_counter() - start) / 4 < 0.3


def test_static_twin_and_errors():
    fig = lesson.in_context_figure(predictors(), [{"k_shot": 2, "amplitude": 1.0, "phase": 0.0},
                                                  {"k_shot": 30, "amplitude": 9.0, "phase": 2.0}])
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="settings"):
        lesson.in_context_figure(predictors(), [])
    with pytest.raises(ValueError, match="at least one predictor"):
        lesson.in_context_widget({})


def test_figures_build():
    batch = SinusoidTasks().sample(3, 10, 1, generator=torch.Generator().manual_seed(0))
    figs = [lesson.draw_blackbox_diagram().figure,
            lesson.plot_attention_mask(InContextTransformer.attention_mask(3, 2), k_shot=3),
            lesson.plot_predictions(predictors(), batch, k_shot=5),
            lesson.plot_costs({"a": 0.001, "b": 0.01})]
    assert len(figs[2].axes) == 3
    for fig in figs:
        plt.close(fig)


def test_the_pre_rendered_explorer_has_a_frame_per_k_and_amplitude():
    explorer = lesson.in_context_explorer(predictors(), k_shots=(1, 5), amplitudes=(1.0, 8.0), seed=0)
    assert len(explorer.frames) == 4 and explorer.initial == {"k_shot": 5, "amplitude": 8.0}
    assert explorer.frame(k_shot=1, amplitude=1.0) != explorer.frame(k_shot=5, amplitude=1.0)
    assert 'class="metalearn-tryit"' in explorer.html()
