"""Lesson 01's exercises: the skeletons are "not attempted", the solutions pass, typical wrong answers are named.

The skeletons and solutions are read from ``notebooks/01_why_meta_learning.md`` itself.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from metalearn_lab.exercises import NOT_ATTEMPTED, PASSED, WRONG, WrongAnswer
from metalearn_lab.lessons import why_meta_learning as lesson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _exercise_cells as cells  # noqa: E402
from _explorers import check_explorer  # noqa: E402  (tests/lessons/_explorers.py)

SLUG = "why_meta_learning"
CHECKERS = ["check_episode_roles", "check_family_map", "check_parameter_count"]


def rejected(check, answer, message):
    """``answer`` is wrong, with a diagnosis matching the regular expression ``message``."""
    result = check.run(answer)
    assert result.status == WRONG, result
    assert re.search(message, result.message), result.message
    return result


@pytest.mark.parametrize("name", CHECKERS)
def test_untouched_skeleton_is_not_attempted(name, capsys):
    check = getattr(lesson, name)
    skeleton = cells.run_skeleton(SLUG, name)
    result = check.run(skeleton)
    assert result.status == NOT_ATTEMPTED, result
    check(skeleton)  # prints, does not raise: Run All goes on
    assert "not attempted" in capsys.readouterr().out


@pytest.mark.parametrize("name", CHECKERS)
def test_later_cells_never_use_the_students_answer(name):
    assert cells.later_uses_of_answer(SLUG, name) == [], "later cells must use the library, not the student's answer"


@pytest.mark.parametrize("name", CHECKERS)
def test_solution_passes(name, capsys):
    check = getattr(lesson, name)
    result = check.run(cells.run_solution(SLUG, name))
    assert result.status == PASSED, result
    check(cells.run_solution(SLUG, name))
    assert capsys.readouterr().out.startswith("✓")


def test_checkers_are_the_lessons_three_exercises():
    from metalearn_lab.exercises import checkers_of

    assert sorted(c.name for c in checkers_of(lesson)) == sorted(CHECKERS)


# --- Exercise 1: which set is the support set? ---

RIGHT_ROLES = {"support": "B", "n_way": 4, "k_shot": 3, "n_query": 2}


def test_roles_spellings_accepted():
    for support in ("b", " B ", "set B"):
        assert lesson.check_episode_roles.run({**RIGHT_ROLES, "support": support}).status == PASSED


@pytest.mark.parametrize(
    "change, message",
    [
        ({"support": "A"}, "not the support set.*labels the learner is given"),
        ({"n_way": 5}, "count the different labels"),
        ({"n_way": 12}, "number of support images"),
        ({"n_way": 8}, "number of query images"),
        ({"k_shot": 12}, "whole support set.*per class"),
        ({"n_query": 8}, "divide by n_way"),
        ({"k_shot": 2, "n_query": 3}, "swapped"),
        ({"k_shot": 1}, "how many support images per label"),
        ({"support": None}, r"episode_roles\['support'\] is missing"),
        ({"n_way": "4"}, "whole number"),
        ({"support": "C"}, "'A' or 'B'"),
    ],
)
def test_roles_wrong(change, message):
    rejected(lesson.check_episode_roles, {**RIGHT_ROLES, **change}, message)


def test_roles_wrong_raises_for_the_student():
    with pytest.raises(WrongAnswer, match="not the support set"):
        lesson.check_episode_roles({**RIGHT_ROLES, "support": "A"})


def test_roles_puzzle_shows_the_query_set_unlabelled():
    puzzle = lesson.roles_puzzle(torch.rand(10, 20, 1, 4, 4))
    p = lesson.ROLES_PUZZLE
    assert puzzle["A"][0].shape[0] == p["n_way"] * p["n_query"]
    assert puzzle["B"][0].shape[0] == p["n_way"] * p["k_shot"]
    assert set(puzzle["A"][1]) == {"?"}
    assert len(set(puzzle["B"][1])) == p["n_way"]


# --- Exercise 2: place the methods on the map ---

def test_family_map_other_spellings_pass():
    answer = {m: f"{f}-based" for m, f in lesson.FAMILY_OF.items()}
    answer["MAML"] = "Optimization-based"  # American spelling
    answer["SNAIL"] = "black-box"
    answer["ProtoNet"] = "non-parametric"
    assert lesson.check_family_map.run(answer).status == PASSED


@pytest.mark.parametrize(
    "change, message",
    [
        ({"MAML": "model"}, "'MAML' is optimisation-based.*source text.*Hospedales et al. 2021, §3.1"),
        ({"Meta-SGD": "model"}, "'Meta-SGD' is optimisation-based"),
        ({"ProtoNet": "model"}, "'ProtoNet' is metric-based.*embedding"),
        ({"neural process": "metric"}, "'neural process' is model-based.*one forward pass"),
        ({"SNAIL": "optimisation", "MANN": "metric"}, "2 of 10 misplaced"),
        ({"Reptile": None}, "the family of 'Reptile' is None"),
        ({"Reptile": "bayesian"}, "write 'optimisation', 'model' or 'metric'"),
    ],
)
def test_family_map_wrong(change, message):
    rejected(lesson.check_family_map, {**lesson.FAMILY_OF, **change}, message)


def test_family_map_missing_methods_and_wrong_type():
    rejected(lesson.check_family_map, {"MAML": "optimisation"}, "no entry for")
    rejected(lesson.check_family_map, [("MAML", "optimisation")], "must be a dict")


# --- Exercise 3: count the parameters ---

def _pairs(widths):
    return list(zip(widths[:-1], widths[1:]))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda w: sum(a * b for a, b in _pairs(w)), "weights alone"),
        (lambda w: sum(a * b for a, b in _pairs(w)) + sum(w), "every unit a bias, the inputs too"),
        (lambda w: sum(a * b + a for a, b in _pairs(w)), "one bias per \\*input\\*"),
        (lambda w: 1761, "must depend on widths"),
        (lambda w: sum(w), "the net has 1761 parameters"),
        (lambda w: "1761", "return one whole number|the net has"),
    ],
)
def test_parameter_count_wrong(wrong, message):
    rejected(lesson.check_parameter_count, wrong, message)


def test_parameter_count_none_after_the_first_width_list_is_wrong_not_unattempted():
    def partly(widths):
        return 1761 if widths == [1, 40, 40, 1] else None

    rejected(lesson.check_parameter_count, partly, "returned None")


def test_parameter_count_accepts_a_tensor_count():
    assert lesson.check_parameter_count.run(lambda w: torch.tensor(sum(a * b + b for a, b in _pairs(w)))).status == PASSED


# --- the Try-it: a net trained from scratch on K points ---

def test_book_explorer_has_every_frame_within_budget_and_each_slider_changes_it():
    import matplotlib.pyplot as plt

    explorer = lesson.sine_overfit_explorer()
    check_explorer(explorer, lesson.EXPLORER_VALUES)
    assert explorer.initial == {"k_shot": 5, "steps": 150}
    plt.close("all")


def test_widget_and_book_explorer_draw_with_one_function(monkeypatch):
    import matplotlib.pyplot as plt

    drawn = []
    original = lesson.sine_overfit_view
    monkeypatch.setattr(lesson, "sine_overfit_view", lambda *a, **k: drawn.append(a[:3]) or original(*a, **k))
    widget = lesson.sine_overfit_widget(max_steps=100)
    widget.children[1].value = 50
    lesson.sine_overfit_explorer({"k_shot": (3,), "steps": (0, 100)}, max_steps=100)
    assert drawn == [(5, 100, 0), (5, 50, 0), (3, 0, 0), (3, 100, 0)]
    with pytest.raises(ValueError, match="values must give"):
        lesson.sine_overfit_explorer({"k_shot": (3,)})
    plt.close("all")
