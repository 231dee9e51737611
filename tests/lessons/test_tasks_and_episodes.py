"""Lesson 02's exercises: the skeletons are "not attempted", the solutions pass, typical wrong answers are named.

The skeletons and solutions are read from ``notebooks/02_tasks_and_episodes.md`` itself.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from metalearn_lab.exercises import NOT_ATTEMPTED, PASSED, WRONG, WrongAnswer, checkers_of
from metalearn_lab.lessons import tasks_and_episodes as lesson
from metalearn_lab.metrics import mean_confidence_interval
from metalearn_lab.samplers import EpisodeSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _exercise_cells as cells  # noqa: E402
from _explorers import check_explorer  # noqa: E402  (tests/lessons/_explorers.py)

SLUG = "tasks_and_episodes"
CHECKERS = ["check_episode_sampler", "check_ci95"]


def rejected(check, answer, message):
    """``answer`` is wrong, with a diagnosis matching the regular expression ``message``."""
    result = check.run(answer)
    assert result.status == WRONG, result
    assert re.search(message, result.message), result.message
    return result


def test_checkers_are_the_lessons_two_exercises():
    assert sorted(c.name for c in checkers_of(lesson)) == sorted(CHECKERS)


@pytest.mark.parametrize("name", CHECKERS)
def test_untouched_skeleton_is_not_attempted(name, capsys):
    check = getattr(lesson, name)
    skeleton = cells.run_skeleton(SLUG, name)
    assert check.run(skeleton).status == NOT_ATTEMPTED
    check(skeleton)  # prints, does not raise: Run All goes on
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("name", CHECKERS)
def test_later_cells_never_use_the_students_answer(name):
    assert cells.later_uses_of_answer(SLUG, name) == [], "later cells must use the library, not the student's answer"


@pytest.mark.parametrize("name", CHECKERS)
def test_solution_passes(name, capsys):
    check = getattr(lesson, name)
    solution = cells.run_solution(SLUG, name)
    assert check.run(solution).status == PASSED, check.run(solution)
    check(solution)
    assert capsys.readouterr().out.startswith("✓")


# --- Exercise 1: an episode sampler ---

def right_sampler(classes, n_way, k_shot, n_query, generator):
    chosen = torch.randperm(classes.shape[0], generator=generator)[:n_way]
    support, query = [], []
    for c in chosen:
        order = torch.randperm(classes.shape[1], generator=generator)[: k_shot + n_query]
        support.append(classes[c, order[:k_shot]])
        query.append(classes[c, order[k_shot:]])
    labels = torch.arange(n_way)
    return (torch.cat(support), labels.repeat_interleave(k_shot), torch.cat(query), labels.repeat_interleave(n_query))


def library_sampler(classes, n_way, k_shot, n_query, generator):
    episode = EpisodeSampler(classes, n_way, k_shot, n_query).sample(1, generator=generator)
    return tuple(t[0] for t in episode.as_tuple())


def test_the_library_sampler_passes():
    assert lesson.check_episode_sampler.run(library_sampler).status == PASSED


def class_ids_as_labels(classes, n_way, k_shot, n_query, generator):
    xs, ys, xq, yq = right_sampler(classes, n_way, k_shot, n_query, generator)
    return xs, xs[:, 0, 0, 0].long(), xq, xq[:, 0, 0, 0].long()  # the dataset's class numbers instead of 0..N-1


def support_and_query_drawn_separately(classes, n_way, k_shot, n_query, generator):
    chosen = torch.randperm(classes.shape[0], generator=generator)[:n_way]
    support, query = [], []
    for c in chosen:  # the same image can land in both sets
        support.append(classes[c, torch.randperm(classes.shape[1], generator=generator)[:k_shot]])
        query.append(classes[c, torch.randperm(classes.shape[1], generator=generator)[:n_query]])
    labels = torch.arange(n_way)
    return torch.cat(support), labels.repeat_interleave(k_shot), torch.cat(query), labels.repeat_interleave(n_query)


def classes_with_replacement(classes, n_way, k_shot, n_query, generator):
    if n_way == 1:
        return right_sampler(classes, n_way, k_shot, n_query, generator)
    chosen = torch.zeros(n_way, dtype=torch.long)  # the same class for every label
    support, query = [], []
    examples = torch.randperm(classes.shape[1], generator=generator)
    per_class = k_shot + n_query
    for i, c in enumerate(chosen):
        order = examples[(i * per_class) % 20:][:per_class]
        if len(order) < per_class:
            order = torch.randperm(classes.shape[1], generator=generator)[:per_class]
        support.append(classes[c, order[:k_shot]])
        query.append(classes[c, order[k_shot:]])
    labels = torch.arange(n_way)
    return torch.cat(support), labels.repeat_interleave(k_shot), torch.cat(query), labels.repeat_interleave(n_query)


def first_classes_always(classes, n_way, k_shot, n_query, generator):
    return right_sampler(classes[:n_way], n_way, k_shot, n_query, generator)


def first_examples_always(classes, n_way, k_shot, n_query, generator):
    chosen = torch.randperm(classes.shape[0], generator=generator)[:n_way]
    labels = torch.arange(n_way)
    return (classes[chosen, :k_shot].flatten(0, 1), labels.repeat_interleave(k_shot),
            classes[chosen, k_shot:k_shot + n_query].flatten(0, 1), labels.repeat_interleave(n_query))


def query_labels_shuffled(classes, n_way, k_shot, n_query, generator):
    xs, ys, xq, yq = right_sampler(classes, n_way, k_shot, n_query, generator)
    return xs, ys, xq, yq.flip(0)  # query labels no longer match their images


def query_first(classes, n_way, k_shot, n_query, generator):
    xs, ys, xq, yq = right_sampler(classes, n_way, k_shot, n_query, generator)
    return xq, yq, xs, ys


def float_labels(classes, n_way, k_shot, n_query, generator):
    xs, ys, xq, yq = right_sampler(classes, n_way, k_shot, n_query, generator)
    return xs, ys.float(), xq, yq.float()


@pytest.mark.parametrize(
    "wrong, message",
    [
        (class_ids_as_labels, "labels must be 0"),
        (support_and_query_drawn_separately, "appears twice"),
        (classes_with_replacement, "two labels share one class"),
        (lambda c, n, k, q, g: right_sampler(c, n, k, q, None), "same seed gave two different episodes"),
        (first_classes_always, "choose the classes at random"),
        (first_examples_always, "choose the examples at random"),
        (lambda c, n, k, q, g: EpisodeSampler(c, n, k, q).sample(1, generator=g).as_tuple(), "no batch dimension"),
        (query_labels_shuffled, "two different classes"),
        (query_first, "support and query swapped"),
        (float_labels, "integer labels"),
        (lambda c, n, k, q, g: right_sampler(c, n, k, q, g)[:2], "tuple .* of length 2"),
        (lambda c, n, k, q, g: None if n == 12 else right_sampler(c, n, k, q, g), "returned None for n_way=12"),
    ],
)
def test_sampler_wrong(wrong, message):
    rejected(lesson.check_episode_sampler, wrong, message)


def test_sampler_wrong_raises_for_the_student():
    with pytest.raises(WrongAnswer, match="labels must be 0"):
        lesson.check_episode_sampler(class_ids_as_labels)


def test_sampler_error_in_the_students_code_propagates():
    def broken(classes, n_way, k_shot, n_query, generator):
        return classes[n_way + 100]

    with pytest.raises(IndexError):
        lesson.check_episode_sampler(broken)
    assert lesson.check_episode_sampler.run(broken).status == "error"


# --- Exercise 2: a 95% interval by hand ---

def _t(values, q=0.975, dof=None):
    return scipy.stats.t.ppf(q, len(values) - 1 if dof is None else dof)


def _std(values, ddof=1):
    return float(np.std(np.asarray(values), ddof=ddof))


def test_ci95_library_passes():
    assert lesson.check_ci95.run(mean_confidence_interval).status == PASSED


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda v: (float(v.mean()), 1.96 * _std(v) / math.sqrt(len(v))), "normal approximation"),
        (lambda v: (float(v.mean()), _t(v, 0.95) * _std(v) / math.sqrt(len(v))), "0.95 quantile.*each tail"),
        (lambda v: (float(v.mean()), _t(v, dof=len(v)) * _std(v) / math.sqrt(len(v))), "n degrees of freedom"),
        (lambda v: (float(v.mean()), _t(v) * _std(v, ddof=0) / math.sqrt(len(v))), "population standard deviation"),
        (lambda v: (float(v.mean()), _t(v) * _std(v) / len(v)), "divides by √n"),
        (lambda v: (float(v.mean()), _std(v) / math.sqrt(len(v))), "without the factor t"),
        (lambda v: (float(v.mean()), _t(v) * _std(v)), "spread of single tasks"),
        (lambda v: (float(v.mean()), 2 * _t(v) * _std(v) / math.sqrt(len(v))), "whole interval"),
        (lambda v: (float(v.mean()) - _t(v) * _std(v) / math.sqrt(len(v)),
                    float(v.mean()) + _t(v) * _std(v) / math.sqrt(len(v))), "two ends"),
        (lambda v: (100 * float(v.mean()), 100 * _t(v) * _std(v) / math.sqrt(len(v))), "percentage"),
        (lambda v: (float(v.mean()), 0.123), "formula we do not recognise"),
        (lambda v: float(v.mean()), r"return \(mean, half_width\)"),
        (lambda v: ("mean", "half"), "two numbers"),
    ],
)
def test_ci95_wrong(wrong, message):
    rejected(lesson.check_ci95, wrong, message)


# --- the Try-it: an episode, or why it cannot be drawn ---

def _classes():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(24, 20, 1, 12, 12, generator=g) > 0.7).float()


def test_book_explorer_has_every_frame_within_budget_and_each_slider_changes_it():
    import matplotlib.pyplot as plt

    explorer = lesson.episode_explorer(_classes())
    check_explorer(explorer, lesson.EXPLORER_VALUES)
    assert explorer.initial == {"n_way": 5, "k_shot": 1, "n_query": 2}  # where the widget starts
    impossible = explorer.frame(n_way=5, k_shot=15, n_query=10)  # 25 drawings of a character: the sampler's message
    assert impossible == explorer.frame(n_way=2, k_shot=15, n_query=10) != explorer.frame(n_way=5, k_shot=5, n_query=10)
    plt.close("all")


def test_an_impossible_episode_shows_the_samplers_message():
    import matplotlib.pyplot as plt

    fig = lesson.episode_try_it_view(_classes(), n_way=5, k_shot=15, n_query=10)
    with pytest.raises(ValueError) as raised:
        EpisodeSampler(_classes(), n_way=5, k_shot=15, n_query=10)
    assert fig.texts[0].get_text().replace("\n", " ") == f"ValueError: {raised.value}"
    plt.close("all")


def test_widget_and_book_explorer_draw_with_one_function(monkeypatch):
    import matplotlib.pyplot as plt

    drawn = []
    original = lesson.episode_try_it_view
    monkeypatch.setattr(lesson, "episode_try_it_view", lambda *a, **k: drawn.append(a[1:]) or original(*a, **k))
    widget = lesson.episode_widget(_classes())
    widget.children[1].value = 3
    lesson.episode_explorer(_classes(), {"n_way": (2,), "k_shot": (1, 2), "n_query": (1,)})
    assert drawn == [(5, 1, 2, 0), (5, 3, 2, 0), (2, 1, 1, 0), (2, 2, 1, 0)]
    plt.close("all")
