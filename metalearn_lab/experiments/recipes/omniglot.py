"""Shared by the Omniglot episode recipes (MAML, ProtoNets, Reptile): the rotation split's tasks."""

from __future__ import annotations

from dataclasses import dataclass

from metalearn_lab.experiments.config import ExperimentConfig
from metalearn_lab.experiments.splits import omniglot_splits, omniglot_test_tasks, omniglot_validation_tasks
from metalearn_lab.samplers import FixedEpisodes


@dataclass(frozen=True)
class EpisodeConfig(ExperimentConfig):
    """N-way K-shot Omniglot tasks on the 1200/423 rotation split; ``eval_n_query`` queries per class at test."""

    n_way: int = 5
    k_shot: int = 1
    n_query: int = 1
    eval_n_query: int = 15


def train_classes(config: EpisodeConfig):
    """The training classes (characters × 4 rotations) of the config's split."""
    return omniglot_splits(getattr(config, "validation_characters", 0))[0]


def evaluation_tasks(config: EpisodeConfig, split: str, n_tasks: int | None) -> FixedEpisodes:
    """The fixed tasks of ``split``; configs without validation characters fall back to test tasks."""
    if split == "validation" and getattr(config, "validation_characters", 0):
        return omniglot_validation_tasks(config, n_tasks)
    return omniglot_test_tasks(config, n_tasks)


def protocol(config: EpisodeConfig, n_tasks: int, split: str, extra: str = "") -> str:
    return (f"1200/423 character split, rotations x4 as classes, 28x28; {n_tasks} fixed {split} tasks "
            f"(seed {config.eval_seed}), {config.eval_n_query} queries per class{extra}")
