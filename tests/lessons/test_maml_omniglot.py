"""Lesson 06's exercise checkers, figures and Try-it explorer.

For each exercise: the skeleton as the lesson ships it is "not attempted", the lesson's solution
passes, and each typical wrong answer the checker knows is rejected with its diagnosis.
"""

from __future__ import annotations

import math
import re
import time

import _exercise_cells as cells  # tests/lessons/_exercise_cells.py
import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from _explorers import check_explorer, record_draws  # tests/lessons/_explorers.py

from metalearn_lab import drawing
from metalearn_lab.exercises import WrongAnswer
from metalearn_lab.lessons import maml_omniglot as lesson
from metalearn_lab.metrics import mean_confidence_interval, t_quantile
from metalearn_lab.models import Conv4
from metalearn_lab.samplers import EpisodeSampler

# ---------------------------------------------------------------- ProtoNet by hand

def make_protonet(*, proto="mean", logits="neg_sq"):
    def protonet_by_hand(z_support, y_support, z_query, n_way):
        if proto == "mean":
            p = torch.stack([z_support[y_support == c].mean(0) for c in range(n_way)])
        elif proto == "first":
            p = torch.stack([z_support[y_support == c][0] for c in range(n_way)])
        elif proto == "appearance":
            seen = list(dict.fromkeys(y_support.tolist()))
            p = torch.stack([z_support[y_support == c].mean(0) for c in seen])
        elif proto == "global":
            p = z_support.mean(0).expand(n_way, -1)
        d2 = ((z_query[:, None, :] - p[None, :, :]) ** 2).sum(-1)
        out = {"neg_sq": -d2, "pos_sq": d2, "neg_dist": -d2.sqrt(),
               "log_softmax": torch.log_softmax(-d2, -1), "softmax": torch.softmax(-d2, -1), "scaled": -2 * d2}[logits]
        return p, out

    return protonet_by_hand


SLUG = "maml_omniglot"


@pytest.mark.parametrize("checker", ["check_protonet_by_hand", "check_evaluation_loop"])
def test_nothing_after_the_exercise_uses_the_students_answer(checker):
    assert cells.later_uses_of_answer(SLUG, checker) == [], "later cells must use the library, not the student's answer"


@pytest.mark.parametrize("checker", ["check_protonet_by_hand", "check_evaluation_loop"])
def test_untouched_skeleton_is_not_attempted(checker, capsys):
    skeleton = cells.run_skeleton(SLUG, checker)
    result = getattr(lesson, checker).run(skeleton)
    assert result.status == "not attempted", result
    assert "returned None" in result.message
    getattr(lesson, checker)(skeleton)  # prints and returns, so Run All goes on
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("checker", ["check_protonet_by_hand", "check_evaluation_loop"])
def test_lesson_solution_passes(checker, capsys):
    solution = cells.run_solution(SLUG, checker)
    result = getattr(lesson, checker).run(solution)
    assert result.status == "passed", result
    getattr(lesson, checker)(solution)
    assert capsys.readouterr().out.startswith("✓")


def test_a_pair_of_nones_is_not_attempted():
    result = lesson.check_protonet_by_hand.run(lambda zs, ys, zq, n: (None, None))
    assert result.status == "not attempted" and "prototypes or logits is still None" in result.message


def test_right_protonet_passes(capsys):
    lesson.check_protonet_by_hand(make_protonet())
    assert "matches metalearn_lab.protonet" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda zs, ys, zq, n: zs, "pair (prototypes, logits)"),
    (make_protonet(proto="first"), "MEAN of the class"),
    (make_protonet(proto="appearance"), "order the labels first appear"),
    (make_protonet(proto="global"), "mean of the whole support set"),
    (make_protonet(logits="pos_sq"), "+squared distances"),
    (make_protonet(logits="neg_dist"), "not its square"),
    (make_protonet(logits="log_softmax"), "log-softmax"),
    (make_protonet(logits="softmax"), "probabilities"),
    (make_protonet(logits="scaled"), "logits differ from -squared distance"),
    (lambda zs, ys, zq, n: make_protonet()(zs, ys, zq, n)[::-1], "(logits, prototypes)"),
])
def test_wrong_protonet_fails(wrong, message):
    result = lesson.check_protonet_by_hand.run(wrong)
    assert result.status == "wrong", result
    assert message in result.message
    with pytest.raises(WrongAnswer, match=re.escape(message)):
        lesson.check_protonet_by_hand(wrong)


# ---------------------------------------------------------------- evaluation loop

def make_evaluate(kind="right"):
    def evaluate_tasks(predict, tasks, batch_size):
        per_task, per_batch, pooled = [], [], []
        for i, episode in enumerate(tasks.batches(batch_size)):
            right = (predict(episode).argmax(-1) == episode.y_query).float()
            if kind == "first_batch" and i > 0:
                break
            per_task.extend(right.mean(-1).tolist())
            per_batch.append(float(right.mean()))
            pooled.extend(right.flatten().tolist())
        v = torch.tensor(per_task, dtype=torch.float64)
        n = len(v)
        if kind == "right":
            return mean_confidence_interval(v)
        if kind == "first_batch":
            return mean_confidence_interval(v)
        if kind == "percent":
            m, h = mean_confidence_interval(v)
            return 100 * m, 100 * h
        if kind == "ci_percent":
            m, h = mean_confidence_interval(v)
            return m, 100 * h
        if kind == "batch_means":
            return sum(per_batch) / len(per_batch), mean_confidence_interval(v)[1]
        if kind == "stderr":
            return float(v.mean()), float(v.std() / math.sqrt(n))
        if kind == "normal":
            return float(v.mean()), float(1.96 * v.std() / math.sqrt(n))
        if kind == "no_sqrt":
            return float(v.mean()), float(t_quantile(0.95, n) * v.std())
        if kind == "population_std":
            return float(v.mean()), float(t_quantile(0.95, n) * v.std(unbiased=False) / math.sqrt(n))
        if kind == "pooled":
            p = torch.tensor(pooled, dtype=torch.float64)
            return mean_confidence_interval(p)
        if kind == "low_high":
            m, h = mean_confidence_interval(v)
            return m, (m - h, m + h)
        raise ValueError(kind)

    return evaluate_tasks


def test_right_evaluation_loop_passes(capsys):
    lesson.check_evaluation_loop(make_evaluate())
    assert "matches mean_confidence_interval" in capsys.readouterr().out


@pytest.mark.parametrize(("kind", "message"), [
    ("percent", "percentage"),
    ("batch_means", "averages the batch means"),
    ("first_batch", "only the first batch"),
    ("stderr", "the 95% half-width is t"),
    ("normal", "normal approximation"),
    ("no_sqrt", "divide by sqrt"),
    ("population_std", "sample standard deviation"),
    ("pooled", "every query as independent"),
    ("low_high", "half-width"),
    ("ci_percent", "interval is in percent"),
])
def test_wrong_evaluation_loop_fails(kind, message):
    result = lesson.check_evaluation_loop.run(make_evaluate(kind))
    assert result.status == "wrong", result
    assert message in result.message
    with pytest.raises(WrongAnswer, match=re.escape(message)):
        lesson.check_evaluation_loop(make_evaluate(kind))


def test_fake_tasks_have_varied_accuracy():
    # the checker can only tell per-batch from per-task averaging if task accuracies differ
    tasks, predict = lesson._fake_tasks()
    per_task, per_batch, _ = lesson._reference_values(tasks, predict, 5)
    assert 0.3 < float(per_task.mean()) < 0.95
    assert float(per_task.std()) > 0.1
    assert not math.isclose(sum(per_batch) / len(per_batch), float(per_task.mean()), rel_tol=1e-6)


# ---------------------------------------------------------------- figures and widgets
@pytest.fixture(scope="module")
def classes():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(12, 20, 1, 28, 28, generator=g) > 0.8).float()


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"MAML": Conv4(out_features=5, track_running_stats=False),
            "first-order MAML": Conv4(out_features=5, track_running_stats=False)}


def test_adapt_episode_matches_library_and_leaves_model_alone(models, classes):
    from torch.nn import functional as F

    from metalearn_lab.maml import adapt_and_predict

    model = models["MAML"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    episode = EpisodeSampler(classes, 5, 1, 3).sample(1, generator=torch.Generator().manual_seed(1))
    out = lesson.adapt_episode(model, episode, inner_steps=2, inner_lr=0.4)
    want = adapt_and_predict(model, episode.as_tuple(), F.cross_entropy, inner_steps=2, inner_lr=0.4)[0]
    assert torch.allclose(out["logits"], want)
    assert out["accuracy"] == float((want.argmax(-1) == episode.y_query[0]).float().mean())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_explorer_responds_to_controls(models, classes):
    explorer = lesson.omniglot_adaptation_widget(models, classes, inner_steps=0, seed=3)
    first = explorer.result["predicted"].clone()
    explorer.steps.value = 5
    assert explorer.fig.axes, "the figure was not drawn"
    assert "5 inner steps" in explorer.fig._suptitle.get_text()
    assert explorer.result["logits"].shape == (25, 5)
    explorer.model.value = "first-order MAML"
    assert explorer.fig._suptitle.get_text().startswith("first-order MAML")
    old = explorer.episode.x_support.clone()
    explorer.next_episode()
    assert explorer.seed == 4 and not torch.equal(old, explorer.episode.x_support)
    assert first.shape == explorer.result["predicted"].shape


def test_explorer_is_fast(models, classes):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the lesson does
    try:
        explorer = lesson.omniglot_adaptation_widget(models, classes, inner_steps=0)
        start = time.perf_counter()
        explorer.steps.value = 10
        total = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    # ten inner steps and a redraw: a few hundred ms on a laptop; slack for a busy shared machine
    assert explorer.result["seconds"] < 1.5, f"adaptation took {explorer.result['seconds']:.2f} s"
    assert total < 3.0, f"a slider change took {total:.2f} s"


def test_explorer_needs_a_model(classes):
    with pytest.raises(ValueError, match="at least one model"):
        lesson.omniglot_adaptation_widget({}, classes)


def test_book_explorer_has_every_frame_within_budget_and_each_control_changes_it(models, classes):
    explorer = lesson.omniglot_adaptation_explorer(models, classes)
    check_explorer(explorer, {"model": list(models), "inner_steps": (0, 1, 3, 10), "inner_lr": (0.05, 0.4, 3.2)})
    assert explorer.initial == {"model": "MAML", "inner_steps": 3, "inner_lr": 0.4}  # where the widget starts
    assert set(explorer.sliders["inner_lr"]) <= set(lesson.INNER_LRS), "a pre-rendered α the live slider cannot take"


def test_widget_and_book_explorer_draw_with_one_view(models, classes, monkeypatch):
    calls = record_draws(monkeypatch, lesson.OmniglotAdaptationView)
    widget = lesson.omniglot_adaptation_widget(models, classes, inner_steps=2, inner_lr=0.2)
    widget.model.value = "first-order MAML"
    assert [kw for _, kw in calls] == [{"model": "MAML", "inner_steps": 2, "inner_lr": 0.2},
                                       {"model": "first-order MAML", "inner_steps": 2, "inner_lr": 0.2}]
    lesson.omniglot_adaptation_explorer({"MAML": models["MAML"]}, classes, inner_steps=(0, 1), inner_lrs=(0.4,))
    assert [kw for _, kw in calls[2:]] == [{"model": "MAML", "inner_steps": k, "inner_lr": 0.4} for k in (0, 1)]
    with pytest.raises(ValueError, match="model must be one of \\['MAML'\\], got 'ProtoNet'"):
        lesson.OmniglotAdaptationView({"MAML": models["MAML"]}, classes).draw(model="ProtoNet", inner_steps=1, inner_lr=0.4)


def test_episode_predictions_colours():
    y = torch.arange(2)
    fig = lesson.plot_episode_predictions(torch.rand(2, 1, 8, 8), y, torch.rand(4, 1, 8, 8), y.repeat_interleave(2),
                                            torch.tensor([0, 1, 1, 1]))
    frames = [p.get_edgecolor() for p in fig.axes[1].patches]
    green, red = matplotlib.colors.to_rgba("#2e7d32"), matplotlib.colors.to_rgba("#c62828")
    assert frames.count(green) == 3 and frames.count(red) == 1
    assert "75%" in fig._suptitle.get_text()
    plt.close(fig)


def test_training_histories_and_adaptation_curve():
    h = {"step": list(range(100)), "metric": [i / 100 for i in range(100)], "eval_step": [50, 100],
         "eval_metric": [0.6, 0.9], "loss": [1.0] * 100}
    fig = lesson.plot_training_histories({"MAML": h, "Reptile": {"step": [0, 1], "metric": [float("nan")] * 2}})
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[1].lines) == 1
    plt.close(fig)
    ax = drawing.plot_adaptation_curve(range(3), {"MAML": ([0.2, 0.5, 0.9], [0.1, 0.1, 0.1])},
                                        references={"ProtoNet": (0.95, 0.01)}, chance=0.2)
    assert list(ax.lines[0].get_ydata()) == pytest.approx([20, 50, 90])
    with pytest.raises(ValueError, match="2 points for 3"):
        drawing.plot_adaptation_curve(range(3), {"bad": ([0.1, 0.2], [0.0, 0.0])})
    plt.close("all")
