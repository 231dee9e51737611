"""The challenges lesson: its exercises (skeleton, solution and typical wrong answers read from the
lesson's own cells), the planted-bug script's checklist, and every figure and Try-it."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import jupytext
import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metalearn_lab.lessons import challenges as lesson  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _exercise_cells import later_uses_of_answer, run_skeleton, run_solution  # noqa: E402
from _explorers import check_explorer, displayed_controls, offered  # noqa: E402  (tests/lessons/_explorers.py)

SLUG = "challenges"

LESSON = Path(__file__).resolve().parents[2] / "notebooks" / "11_challenges.md"


def _cells():
    return [c for c in jupytext.read(LESSON).cells if c.cell_type == "code"]


def _namespace(*sources: str) -> dict:
    """Execute the setup cell and then ``sources`` (bare expressions dropped: checks, prints, figures)."""
    namespace: dict = {"__name__": "__lesson__"}
    for source in (_cells()[0].source, *sources):
        tree = ast.parse(source)
        tree.body = [node for node in tree.body if not isinstance(node, ast.Expr)]
        exec(compile(ast.unparse(tree), "<lesson cell>", "exec"), namespace)
    return namespace


def _exercise(checker_name: str):
    """(skeleton answer, solution answer) of the exercise checked by ``lesson.<checker_name>``."""
    return run_skeleton(SLUG, checker_name), run_solution(SLUG, checker_name)


def _script():
    """The planted-bug script's two functions, as the lesson defines them."""
    cell = next(c for c in _cells() if c.source.startswith("def meta_gradient(model, batch"))
    namespace = _namespace(cell.source)
    return namespace["meta_gradient"], namespace["evaluate"]


# --- exercises -------------------------------------------------------------------------------------

@pytest.mark.parametrize("checker_name", ["check_choose_point", "check_fixed_meta_gradient", "check_fixed_evaluate"])
def test_skeleton_is_not_attempted_and_solution_passes(checker_name):
    skeleton, solution = _exercise(checker_name)
    check = getattr(lesson, checker_name)
    assert check.run(skeleton).status == "not attempted"
    result = check.run(solution)
    assert result.status == "passed", result.message


@pytest.mark.parametrize("checker_name", ["check_choose_point", "check_fixed_meta_gradient", "check_fixed_evaluate"])
def test_nothing_after_an_exercise_uses_the_answer(checker_name):
    assert later_uses_of_answer(SLUG, checker_name) == []


def _choose_by(metric, sign=1):
    return lambda results: min(results["points"], key=lambda p: sign * float(p[metric]["mean"]))["values"]


@pytest.mark.parametrize(("wrong", "message"), [
    (_choose_by("test"), "TEST score"),
    (_choose_by("validation", sign=-1), "lower is better"),
    (lambda results: results["points"][0]["values"], "first point"),
    (lambda results: results["points"][1], "is not one of the points' values"),
    (lambda results: "inner_lr=0.03", "should return the chosen point's values"),
])
def test_choose_point_wrong_answers(wrong, message):
    result = lesson.check_choose_point.run(wrong)
    assert result.status == "wrong" and message in result.message, result


def test_the_script_meta_gradient_is_rejected_as_first_order():
    meta_gradient, _ = _script()
    result = lesson.check_fixed_meta_gradient.run(meta_gradient)
    assert result.status == "wrong" and "first-order MAML" in result.message and "create_graph=True" in result.message


def test_in_place_meta_gradient_is_rejected_for_moving_the_weights():
    result = lesson.check_fixed_meta_gradient.run(lesson.in_place_meta_gradient)
    assert result.status == "wrong" and "moves the model's weights" in result.message


def test_meta_gradient_sign_and_averaging_mistakes():
    _, solution = _exercise("check_fixed_meta_gradient")

    def negated(model, batch, inner_steps, inner_lr):
        loss, grads = solution(model, batch, inner_steps, inner_lr)
        return loss, {k: -g for k, g in grads.items()}

    def summed(model, batch, inner_steps, inner_lr):
        loss, grads = solution(model, batch, inner_steps, inner_lr)
        return loss * 2, {k: 2 * g for k, g in grads.items()}

    assert "opposite way" in lesson.check_fixed_meta_gradient.run(negated).message
    assert "differs from MAML's meta-gradient" in lesson.check_fixed_meta_gradient.run(summed).message
    assert "one entry per parameter" in lesson.check_fixed_meta_gradient.run(lambda m, b, k, a: (0.0, {})).message


def test_the_script_evaluation_is_rejected_for_writing_into_the_model():
    _, evaluate = _script()
    result = lesson.check_fixed_evaluate.run(evaluate)
    assert result.status == "wrong" and "changed buffers" in result.message and "eval mode" in result.message


def _variant(*, train_mode=False, restore=True, leak=False, steps_offset=0):
    def evaluate(model, x_support, y_support, x_query, y_query, inner_steps, inner_lr):
        state = {k: v.clone() for k, v in model.state_dict().items()}
        modes = {m: m.training for m in model.modules()}
        model.train(train_mode)
        x, y = (torch.cat([x_support, x_query]), torch.cat([y_support, y_query])) if leak else (x_support, y_support)
        params = {k: p.detach().requires_grad_() for k, p in model.named_parameters()}
        for _ in range(inner_steps + steps_offset):
            grads = torch.autograd.grad(F.cross_entropy(functional_call(model, params, (x,)), y), list(params.values()))
            params = {k: (p - inner_lr * g).detach().requires_grad_() for (k, p), g in zip(params.items(), grads)}
        with torch.no_grad():
            out = functional_call(model, params, (x_query,))
        if restore:
            model.load_state_dict(state)
            for m, mode in modes.items():
                m.training = mode
        return out

    return evaluate


@pytest.mark.parametrize(("wrong", "message"), [
    (_variant(train_mode=True), "transductive"),                 # restores the buffers, still batch statistics
    (_variant(leak=True), "query labels"),                       # eval mode, but adapts on the queries too
    (_variant(steps_offset=-1), "differ from a right evaluation"),  # no adaptation at all
    (_variant(restore=False), "back in training mode"),          # leaves a training-mode model in eval mode
])
def test_evaluate_wrong_answers(wrong, message):
    result = lesson.check_fixed_evaluate.run(wrong)
    assert result.status == "wrong" and message in result.message, result


def test_checklist_finds_the_three_planted_bugs_and_passes_the_fixes():
    meta_gradient, evaluate = _script()
    assert [d.passed for d in lesson.run_checklist(meta_gradient, evaluate)] == [False, True, False, False, False]
    _, fixed_gradient = _exercise("check_fixed_meta_gradient")
    _, fixed_evaluate = _exercise("check_fixed_evaluate")
    diagnoses = lesson.run_checklist(fixed_gradient, fixed_evaluate)
    assert all(d.passed for d in diagnoses), [d.line for d in diagnoses]
    table = lesson.checklist_table(diagnoses)
    assert table.count("✓ passed") == 5 and table.startswith("| check |")


def test_lesson_three_in_place_trap_fails_checks_one_and_two():
    diagnoses = lesson.run_checklist(lesson.in_place_meta_gradient, lesson.reference_evaluate)
    assert [d.passed for d in diagnoses] == [False, False, True, True, True]


# --- figures and Try-it --------------------------------------------------------------------------

def fake_sensitivity():
    points = []
    for b in (5, 25):
        for k in (1, 2):
            for lr in (0.01, 0.1):
                mse = lr * k * (2 if b == 5 else 1)
                points.append({"values": {"meta_batch_size": b, "inner_steps": k, "inner_lr": lr},
                               "validation": {"mean": mse if mse < 0.15 else 1e30},
                               "test": {"mean": mse * 1.1, "ci95": 0.01}})
    return {"sweep": "sinusoid-sensitivity", "higher_is_better": False, "points": points}


def test_heatmap_marks_the_best_cell_and_diverged_ones():
    ax, _ = lesson.draw_heatmap(fake_sensitivity(), "inner_steps", "inner_lr", where={"meta_batch_size": 25})
    texts = [t.get_text() for t in ax.texts]
    assert "0.01" in texts and "div." in texts
    frame = [p for p in ax.patches if p.get_linewidth() > 2]
    assert len(frame) == 1 and frame[0].get_xy() == (-0.5, -0.5)  # lowest: 1 step, lr 0.01
    plt.close("all")


def test_sensitivity_figure_explorer_and_widget():
    results = fake_sensitivity()
    fig = lesson.draw_sensitivity(results, 5, "test")
    assert "meta-batch size 5" in fig.axes[0].get_title()
    plt.close(fig)
    explorer = lesson.sensitivity_explorer(results)
    assert len(explorer.frames) == 4 and explorer.frame(meta_batch_size=5, scores="test") != explorer.frame(
        meta_batch_size=25, scores="validation")
    lesson.sensitivity_widget(results)
    plt.close("all")


def test_sensitivity_widget_and_explorer_draw_with_one_function_at_values_the_widget_offers(monkeypatch):
    results = fake_sensitivity()
    calls = []
    original = lesson.draw_sensitivity
    monkeypatch.setattr(lesson, "draw_sensitivity", lambda *args: calls.append(args[1:]) or original(*args))
    size, scores = displayed_controls(monkeypatch, lesson.sensitivity_widget, results)
    assert calls == [(size.value, scores.value)]  # the widget's first frame, drawn by the shared function
    explorer = lesson.sensitivity_explorer(results)
    check_explorer(explorer, {"meta_batch_size": offered(size), "scores": offered(scores)})
    assert len(calls) == 1 + len(explorer.frames)
    assert explorer.initial == {"meta_batch_size": size.value, "scores": scores.value}
    plt.close("all")


def test_spread():
    best, median = lesson.spread(fake_sensitivity())
    assert best == pytest.approx(0.01) and median >= best


def fake_shift():
    labels = ["A 0.1-2.5", "A 2.5-5", "A 5-10"]
    points = []
    for i, amplitude in enumerate([(0.1, 5.0), (0.1, 2.5), (2.5, 5.0)]):
        points.append({"values": {"amplitude": list(amplitude)},
                       "test_on": {label: {"by_steps": {"1": {"mean": 1.0 + i + j}, "10": {"mean": 0.5 + i + j}}}
                                   for j, label in enumerate(labels)}})
    return {"points": points}


def test_shift_table_and_figure():
    results = fake_shift()
    results["points"][2]["test_on"]["A 5-10"]["by_steps"]["10"] = {"mean": 1e27, "n_diverged": 7}
    rows, columns, table, diverged = lesson.shift_table(results, steps="10")
    assert rows[1] == "trained on A 0.1-2.5" and columns[2] == "A 5-10" and table[1, 2] == 3.5
    assert math.isinf(table[2, 2]) and diverged[2, 2] == 7
    fig = lesson.plot_shift(results)
    assert "after 1 test step " in fig.axes[0].get_title() and "after 10 test steps" in fig.axes[1].get_title()
    assert any(t.get_text() == "diverged\n(7 > 25)" for t in fig.axes[1].texts)
    plt.close(fig)


def fake_pool():
    points = []
    for n in (10, 0, 100):
        points.append({"values": {"n_train_tasks": n}, "train_tasks": {"mean": 0.1},
                       "validation": {"mean": 3.0 if n == 10 else 0.5},
                       "test": {"by_steps": {"10": {"mean": 3.0 if n == 10 else 0.5, "ci95": 0.1}}}})
    return {"points": points}


def test_pool_rows_are_ordered_with_unlimited_last_and_plot():
    rows = lesson.pool_rows(fake_pool())
    assert [r["n_train_tasks"] for r in rows] == [10, 100, math.inf]
    fig = lesson.plot_pool(fake_pool())
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][-1].startswith("∞")
    plt.close(fig)


def test_cost_plot():
    rows = {"second-order": [{"seconds": 0.1, "saved_mb": 2.0}, {"seconds": 0.2, "saved_mb": 4.0}],
            "first-order": [{"seconds": 0.05, "saved_mb": 1.0}, {"seconds": 0.1, "saved_mb": 2.0}]}
    fig = lesson.plot_costs((1, 2), rows, xlabel="B", title="t", logx=True)
    assert len(fig.axes[1].lines) == 2 and fig.axes[1].lines[0].get_ydata()[1] == 4.0
    plt.close(fig)


def test_omniglot_shaped_batch():
    x_support, y_support, x_query, y_query = lesson.omniglot_shaped_batch(3, n_query=2, side=16)
    assert x_support.shape == (3, 5, 1, 16, 16) and x_query.shape == (3, 10, 1, 16, 16)
    assert y_query[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_the_map_names_exist():
    from metalearn_lab.drawing import FAMILY_MAP

    cell = next(c for c in _cells() if "draw_family_map(highlight=" in c.source)
    names = ast.literal_eval(cell.source.split("draw_family_map(highlight=", 1)[1].split("]", 1)[0] + "]")
    known = set(FAMILY_MAP) | {m for info in FAMILY_MAP.values() for m in info["methods"]}
    assert names and set(names) <= known, set(names) - known
