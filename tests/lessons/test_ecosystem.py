"""The ecosystem lesson: the implementations it compares, its tables, its exercises (read from the
lesson's cells) and its Try-it."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib
import pytest
import torch
import torch.nn.functional as F

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metalearn_lab.lessons import ecosystem as lesson  # noqa: E402
from metalearn_lab.maml import meta_gradient  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _exercise_cells import later_uses_of_answer, run_skeleton, run_solution  # noqa: E402
from _explorers import check_explorer, displayed_controls, offered  # noqa: E402  (tests/lessons/_explorers.py)

SLUG = "ecosystem"
CHECKERS = ["check_torch_func_meta_gradient", "check_transfer_evidence"]


@pytest.mark.parametrize("checker_name", CHECKERS)
def test_skeleton_is_not_attempted_and_solution_passes(checker_name):
    check = getattr(lesson, checker_name)
    assert check.run(run_skeleton(SLUG, checker_name)).status == "not attempted"
    result = check.run(run_solution(SLUG, checker_name))
    assert result.status == "passed", result.message


@pytest.mark.parametrize("checker_name", CHECKERS)
def test_nothing_after_an_exercise_uses_the_answer(checker_name):
    assert later_uses_of_answer(SLUG, checker_name) == []


def _library(first_order=False, steps=None, scale=1.0, sign=1.0):
    def answer(model, params, batch, inner_steps, inner_lr):
        g = meta_gradient(model, dict(model.named_parameters()), batch, F.mse_loss, inner_steps=steps or inner_steps,
                          inner_lr=inner_lr, first_order=first_order)
        return {k: sign * scale * v for k, v in g.items()}
    return answer


@pytest.mark.parametrize(("wrong", "message"), [
    (_library(first_order=True), "first-order MAML"),
    (_library(steps=1), "ONE inner step"),
    (_library(scale=3.0), "constant factor"),
    (_library(sign=-1.0), "wrong way"),
    (lambda model, params, batch, k, a: {"net.0.weight": torch.zeros(40, 1)}, "one gradient per parameter"),
    (lambda model, params, batch, k, a: {n: torch.ones_like(p) for n, p in params.items()}, "not MAML's meta-gradient"),
])
def test_torch_func_exercise_wrong_answers(wrong, message):
    result = lesson.check_torch_func_meta_gradient.run(wrong)
    assert result.status == "wrong" and message in result.message, result


def _evidence(maml_steps=1, pretrained_steps=10, swap=False):
    from metalearn_lab.maml import adapt_and_predict

    def evidence(maml_model, pretrained_model, tasks):
        if swap:
            maml_model, pretrained_model = pretrained_model, maml_model
        batch = tasks.as_tuple()

        def mse(model, steps):
            prediction = adapt_and_predict(model, batch, F.mse_loss, inner_steps=steps, inner_lr=0.01)
            return float(((prediction - batch[3]) ** 2).mean())
        return mse(maml_model, maml_steps), mse(pretrained_model, pretrained_steps)
    return evidence


@pytest.mark.parametrize(("wrong", "message"), [
    (_evidence(swap=True), "swapped"),
    (_evidence(maml_steps=10), "after 10 steps"),
    (_evidence(pretrained_steps=1), "not after 10 steps"),
    (_evidence(maml_steps=0), "before adaptation"),
    (lambda m, p, t: 3.0, "two numbers"),
])
def test_evidence_exercise_wrong_answers(wrong, message):
    result = lesson.check_transfer_evidence.run(wrong)
    assert result.status == "wrong" and message in result.message, result


def test_the_implementations_agree_and_first_order_does_not():
    model, batch = lesson.comparison_setup()
    found = lesson.implementations()
    reference = found.pop("ours, loop")
    errors = lesson.compare_implementations(reference, found, model, batch, F.mse_loss, inner_steps=2, inner_lr=0.1)
    assert {"ours, vmap", "torch.func only"} <= set(errors)
    for name, r in errors.items():
        if "first-order" in name:
            assert r["relative_error"] > 1e-3
        else:
            assert r["relative_error"] < 1e-12, name


def test_the_comparison_detects_a_wrong_implementation():
    """compare_implementations is what the lesson trusts; a gradient off by a factor must show."""
    model, batch = lesson.comparison_setup()

    def doubled(m, b, f, **kw):
        return {k: 2 * v for k, v in lesson.torch_func_meta_gradient(m, b, f, **kw).items()}

    errors = lesson.compare_implementations(lesson.torch_func_meta_gradient, {"doubled": doubled}, model, batch,
                                            F.mse_loss, inner_steps=1, inner_lr=0.1)
    assert errors["doubled"]["relative_error"] == pytest.approx(1.0) and errors["doubled"]["cosine"] == pytest.approx(1.0)


def test_higher_gives_the_library_meta_gradient_or_a_clear_install_message():
    """Runs either way: with higher installed it must agree with metalearn_lab.maml; without, say how to get it."""
    model, batch = lesson.comparison_setup()
    grads_before = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    if lesson.higher_installed():
        got = lesson.higher_meta_gradient(model, batch, F.mse_loss, inner_steps=3, inner_lr=0.1)
        truth = meta_gradient(model, dict(model.named_parameters()), batch, F.mse_loss, inner_steps=3, inner_lr=0.1)
        from metalearn_lab.autodiff import compare_gradients

        assert compare_gradients(truth, got)[1] < 1e-12
        assert [p.grad for p in model.parameters()] == grads_before  # .grad left as it was
    else:
        with pytest.raises(ModuleNotFoundError, match="pip install higher"):
            lesson.higher_meta_gradient(model, batch, F.mse_loss, inner_steps=3, inner_lr=0.1)
        assert "higher" not in lesson.implementations()


def test_tables_name_every_library_with_sources():
    table = lesson.ecosystem_table()
    for name in ("learn2learn", "higher", "torchmeta", "torch.func", "Meta-Dataset"):
        assert f"**{name}**" in table
    for entry in lesson.ECOSYSTEM:
        assert entry["sources"] and all(entry[k] for k in ("what", "release", "last_commit", "pytorch", "state"))
    assert lesson.sources_list().count(lesson.CHECKED_ON) == len(lesson.ECOSYSTEM)
    mapping = lesson.mapping_table()
    assert mapping.splitlines()[0] == "| this course | learn2learn | higher | torchmeta | torch.func |"
    assert len(mapping.splitlines()) == 2 + len(lesson.MAPPING)


def test_results_rows_and_limitations(tmp_path):
    rows = lesson.results_rows({"omniglot-maml-5w1s": {"metric": "accuracy, Omniglot", "mean": 0.97, "ci95": 0.003},
                                "sinusoid-maml": {"metric": "query MSE", "mean": 0.38, "ci95": 0.1}})
    assert "| 06 | `omniglot-maml-5w1s` | accuracy, Omniglot | 97% ± 0.3% |" in rows
    assert rows.index("sinusoid-maml") < rows.index("omniglot-maml")  # ordered by lesson
    summary = lesson.limitations_summary(tmp_path)  # no sweeps there: the parts that need none
    assert summary.count("\n- ") == 1 and "Debugging" in summary
    shipped = lesson.limitations_summary()
    assert "Hyper-parameters" in shipped and "Number of tasks" in shipped and "Task distribution" in shipped


def test_agreement_figure_widget_and_explorer():
    setup = lesson.comparison_setup()
    fig = lesson.draw_agreement(2, 0.1, setup=setup)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "first-order MAML (not the same)" in labels and "ours, vmap" in labels
    plt.close(fig)
    explorer = lesson.agreement_explorer(setup)
    assert len(explorer.frames) == 9
    lesson.agreement_widget(setup)
    plt.close("all")


def test_agreement_widget_and_explorer_draw_with_one_function_at_values_the_widget_offers(monkeypatch):
    setup = lesson.comparison_setup()
    calls, labels = [], []
    original = lesson.draw_agreement

    def draw(*args, **kwargs):
        fig = original(*args, **kwargs)
        calls.append(args)
        labels.extend(t.get_text() for t in fig.axes[0].texts)
        return fig

    monkeypatch.setattr(lesson, "draw_agreement", draw)
    steps, lr = displayed_controls(monkeypatch, lesson.agreement_widget, setup)
    assert calls == [(steps.value, lr.value)]  # the widget draws its first frame with the shared function
    explorer = lesson.agreement_explorer(setup)
    check_explorer(explorer, {"inner_steps": [1, 2, 5], "inner_lr": [0.01, 0.1, 0.2]})
    assert len(calls) == 1 + len(explorer.frames)  # and so does every pre-rendered frame
    assert set(explorer.sliders["inner_steps"]) <= set(offered(steps))
    assert set(explorer.sliders["inner_lr"]) <= set(offered(lr))
    assert explorer.initial == {"inner_steps": steps.value, "inner_lr": lr.value}
    assert labels and not [t for t in labels if "nan" in t or "inf" in t], labels  # no frame shows an overflow
    plt.close("all")


def test_every_setting_the_agreement_widget_offers_computes_finite_gradients():
    setup = lesson.comparison_setup()
    found = lesson.implementations()
    reference = found.pop("ours, loop")
    model, batch = setup
    for inner_steps in range(1, 6):
        for inner_lr in lesson.AGREEMENT_RATES:
            errors = lesson.compare_implementations(reference, found, model, batch, F.mse_loss,
                                                    inner_steps=inner_steps, inner_lr=inner_lr)
            assert all(math.isfinite(e["relative_error"]) for e in errors.values()), (inner_steps, inner_lr, errors)


def test_the_map_names_exist():
    import ast

    import jupytext

    from metalearn_lab.drawing import FAMILY_MAP

    lesson_md = Path(__file__).resolve().parents[2] / "notebooks" / "12_ecosystem.md"
    cell = next(c for c in jupytext.read(lesson_md).cells if "draw_family_map(highlight=" in c.source)
    names = ast.literal_eval(cell.source.split("draw_family_map(highlight=", 1)[1].split("]", 1)[0] + "]")
    known = set(FAMILY_MAP) | {m for info in FAMILY_MAP.values() for m in info["methods"]}
    assert names and set(names) <= known, set(names) - known
