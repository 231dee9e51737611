"""Shared by the Omniglot episode recipes (MAML, ProtoNets, Reptile): the rotation split's tasks."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from metalearn_lab.experiments.config import ExperimentConfig, Int
from metalearn_lab.experiments.recipe import batch_norm_protocol
from metalearn_lab.experiments.splits import omniglot_splits, omniglot_test_tasks, omniglot_validation_tasks
from metalearn_lab.maml import adapt_and_predict
from metalearn_lab.metrics import accuracy, mean_confidence_interval
from metalearn_lab.models import unchanged
from metalearn_lab.samplers import FixedEpisodes
from metalearn_lab.validation import check_int


@dataclass(frozen=True)
class EpisodeConfig(ExperimentConfig):
    """N-way K-shot Omniglot tasks on the 1200/423 rotation split; ``eval_n_query`` queries per class at test.

    ``validation_characters`` of the 1200 training characters are held out (100, as in Finn et al.'s
    code); progress during training is measured on tasks of those. Runs made before validation
    existed have 0 and monitored test tasks (the results page says so).
    """

    n_way: int = 5
    k_shot: int = 1
    n_query: int = 1
    eval_n_query: int = 15
    validation_characters: int = 100

    legacy_defaults = {"validation_characters": 0}

    ranges = {"n_way": Int(1), "k_shot": Int(1), "n_query": Int(1), "eval_n_query": Int(1), "validation_characters": Int(0, 1199)}


def train_classes(config: EpisodeConfig):
    """The training classes (characters × 4 rotations) of the config's split."""
    return omniglot_splits(config.validation_characters)[0]


def evaluation_tasks(config: EpisodeConfig, split: str, n_tasks: int | None) -> FixedEpisodes:
    """The fixed tasks of ``split``; configs without validation characters (the old protocol) fall back to test tasks."""
    n_tasks = None if n_tasks is None else check_int("n_tasks", n_tasks, minimum=1)
    if split == "validation" and config.validation_characters:
        return omniglot_validation_tasks(config, n_tasks)
    return omniglot_test_tasks(config, n_tasks)


def protocol(config: EpisodeConfig, n_tasks: int, split: str, extra: str = "") -> str:
    """The evaluation protocol in words, for results files."""
    n_tasks = check_int("n_tasks", n_tasks, minimum=1)
    if config.validation_characters:
        characters = f"{1200 - config.validation_characters} train / {config.validation_characters} validation / 423 test characters"
    else:
        characters = "1200/423 character split (no validation characters: the old protocol)"
    return (f"{characters}, rotations x4 as classes, 28x28; {n_tasks} fixed {split} tasks "
            f"(seed {config.eval_seed if split == 'test' else config.eval_seed + 1}), {config.eval_n_query} queries per class{extra}")


def evaluate_by_adaptation(config, model, split: str, n_tasks: int | None, device) -> dict:
    """Accuracy after ``config.eval_inner_steps`` SGD steps of ``config.inner_lr`` on each task's support set.

    The test protocol of MAML and Reptile: every task of ``split`` adapted from the same starting
    point, its queries classified by the adapted network, mean ± 95% interval over tasks.
    """
    tasks = evaluation_tasks(config, split, n_tasks)
    values: list[float] = []
    with unchanged(model):
        # batch statistics at test time, as in Finn et al.'s and Nichol et al.'s code (transductive)
        model.train()
        norm = batch_norm_protocol(model)
        for episode in tasks.batches(32 if config.n_way <= 5 else 8):
            episode = episode.to(device)
            logits = adapt_and_predict(model, episode.as_tuple(), F.cross_entropy,
                                       inner_steps=config.eval_inner_steps, inner_lr=config.inner_lr)
            values.extend(accuracy(logits, episode.y_query).cpu().tolist())
    mean, half = mean_confidence_interval(values)
    extra = f"; {config.eval_inner_steps} inner steps, inner_lr={config.inner_lr}; {norm['batch_norm']}"
    return {"metric": f"accuracy, Omniglot {config.n_way}-way {config.k_shot}-shot", "mean": mean, "ci95": half,
            "n_tasks": len(values), "values": values, "transductive": norm["transductive"],
            "protocol": protocol(config, len(values), split, extra)}
