"""Lesson 01's exercise checkers: right answers pass, typical wrong answers fail with a useful message."""

from __future__ import annotations

import pytest
import torch

from metalearn_lab.lessons import why_meta_learning as lesson


def test_family_map_right(capsys):
    answer = {m: f"{f}-based" for m, f in lesson.FAMILY_OF.items()}
    answer["MAML"] = "Optimization-based"  # American spelling is fine
    answer["SNAIL"] = "black-box"
    lesson.check_family_map(answer)
    assert "right branch" in capsys.readouterr().out


def test_family_map_source_placement_of_maml_is_explained():
    answer = dict(lesson.FAMILY_OF)
    answer["MAML"] = "model"
    with pytest.raises(AssertionError, match="Hospedales"):
        lesson.check_family_map(answer)


def test_family_map_missing_and_unknown():
    with pytest.raises(AssertionError, match="no entry"):
        lesson.check_family_map({"MAML": "optimisation"})
    answer = {m: None for m in lesson.FAMILY_OF}
    with pytest.raises(AssertionError, match="write 'optimisation', 'model' or 'metric'"):
        lesson.check_family_map(answer)


def test_family_map_metric_mistake():
    answer = dict(lesson.FAMILY_OF)
    answer["ProtoNet"] = "model"
    with pytest.raises(AssertionError, match="'ProtoNet' is metric-based.*embedding"):
        lesson.check_family_map(answer)


def _count(widths):
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def test_parameter_count_right(capsys):
    lesson.check_parameter_count(_count)
    assert "1761" in capsys.readouterr().out


def test_parameter_count_without_biases():
    with pytest.raises(AssertionError, match="weights alone"):
        lesson.check_parameter_count(lambda w: sum(a * b for a, b in zip(w[:-1], w[1:])))


def test_parameter_count_placeholder():
    with pytest.raises(AssertionError, match="returned None"):
        lesson.check_parameter_count(lambda w: None)


def test_roles_puzzle_and_check(capsys):
    classes = torch.rand(10, 20, 1, 4, 4)
    puzzle = lesson.roles_puzzle(classes)
    p = lesson.ROLES_PUZZLE
    assert puzzle["A"][0].shape[0] == p["n_way"] * p["n_query"]
    assert puzzle["B"][0].shape[0] == p["n_way"] * p["k_shot"]
    assert set(puzzle["A"][1]) == {"?"}
    lesson.check_episode_roles({"support": "b", "n_way": 4, "k_shot": 3, "n_query": 2})
    assert "Right" in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer, message",
    [
        ({"support": "A", "n_way": 4, "k_shot": 3, "n_query": 2}, "not the support set"),
        ({"support": "B", "n_way": 5, "k_shot": 3, "n_query": 2}, "count the different labels"),
        ({"support": "B", "n_way": 4, "k_shot": 12, "n_query": 2}, "per class"),
        ({"support": "B", "n_way": 4, "k_shot": 3, "n_query": 8}, "divide by n_way"),
        ({"support": None, "n_way": 4, "k_shot": 3, "n_query": 2}, "missing"),
    ],
)
def test_roles_wrong(answer, message):
    with pytest.raises(AssertionError, match=message):
        lesson.check_episode_roles(answer)
