"""MAML and first-order MAML on Omniglot (Finn et al. 2017, §5.2): Conv4 with batch statistics only."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from metalearn_lab.cuda_graphs import make_meta_train_step
from metalearn_lab.experiments.config import Float, Int
from metalearn_lab.experiments.recipe import Recipe, step_generator
from metalearn_lab.experiments.recipes.omniglot import EpisodeConfig, evaluate_by_adaptation, train_classes
from metalearn_lab.metrics import accuracy
from metalearn_lab.models import Conv4
from metalearn_lab.samplers import EpisodeSampler


@dataclass(frozen=True)
class MAMLConfig(EpisodeConfig):
    """Inner loop: ``inner_steps`` SGD steps of size ``inner_lr`` (``eval_inner_steps`` at test)."""

    inner_steps: int = 1
    inner_lr: float = 0.4
    first_order: bool = False
    eval_inner_steps: int = 3

    ranges = {"inner_steps": Int(0), "inner_lr": Float(0, low_open=True), "eval_inner_steps": Int(0)}


class OmniglotMAML(Recipe):
    algorithm = "maml"
    config_class = MAMLConfig

    def build_model(self, config):
        return Conv4(out_features=config.n_way, track_running_stats=False)

    def make_step(self, config, model, optimizer, device):
        sampler = EpisodeSampler(train_classes(config), config.n_way, config.k_shot, config.n_query)
        # meta_train_step, or on a GPU with $METALEARN_LAB_CUDA_GRAPHS=1 the same step replayed as a CUDA graph
        train_step = make_meta_train_step(model, optimizer, F.cross_entropy, inner_steps=config.inner_steps,
                                          inner_lr=config.inner_lr, first_order=config.first_order)

        def step(i):
            episode = sampler.sample(config.meta_batch_size, generator=step_generator(config, i)).to(device)
            loss, logits = train_step(episode.as_tuple())
            return {"loss": loss, "metric": float(accuracy(logits, episode.y_query).mean())}

        return step

    def evaluate(self, config, model, *, split, n_tasks, device):
        results = evaluate_by_adaptation(config, model, split, n_tasks, device)
        if split == "test" and config.eval_n_query != 1:
            # The same weights with the test batching of Finn et al.'s code: one query a class, so batch
            # norm normalises N query images per task instead of N * eval_n_query (issue: both batchings).
            finn = evaluate_by_adaptation(config.replace(eval_n_query=1), model, split, n_tasks, device)
            results["one_query_per_class_result"] = {k: finn[k] for k in
                                                     ("mean", "ci95", "n_tasks", "values", "transductive", "protocol")}
        return results

    def has_validation(self, config):
        return bool(config.validation_characters)


