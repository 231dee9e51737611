"""Prototypical networks on Omniglot (Snell et al. 2017, §2 and §3.1)."""

from __future__ import annotations

from dataclasses import dataclass

from metalearn_lab.experiments.config import Int
from metalearn_lab.experiments.recipe import Recipe, batch_norm_protocol, step_generator
from metalearn_lab.experiments.recipes.omniglot import EpisodeConfig, evaluation_tasks, protocol, train_classes
from metalearn_lab.metrics import accuracy, mean_confidence_interval
from metalearn_lab.models import Conv4, unchanged
from metalearn_lab.protonet import protonet_loss, protonet_predict
from metalearn_lab.samplers import EpisodeSampler


@dataclass(frozen=True)
class ProtoNetConfig(EpisodeConfig):
    """``train_way``: classes per training episode (Snell et al. train with 60); 0 means ``n_way``."""

    train_way: int = 0

    ranges = {"train_way": Int(0)}


class ProtoNet(Recipe):
    algorithm = "protonet"
    config_class = ProtoNetConfig

    def build_model(self, config):
        return Conv4()

    def make_step(self, config, model, optimizer, device):
        sampler = EpisodeSampler(train_classes(config), config.train_way or config.n_way, config.k_shot, config.n_query)

        def step(i):
            episode = sampler.sample(config.meta_batch_size, generator=step_generator(config, i)).to(device)
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss, acc = protonet_loss(model, episode, sampler.n_way)
            loss.backward()
            optimizer.step()
            return {"loss": float(loss.detach()), "metric": float(acc.mean())}

        return step

    def evaluate(self, config, model, *, split, n_tasks, device):
        tasks = evaluation_tasks(config, split, n_tasks)
        values: list[float] = []
        with unchanged(model):
            model.eval()  # running statistics: each image embedded on its own (Snell et al.'s code)
            norm = batch_norm_protocol(model)
            for episode in tasks.batches(32 if config.n_way <= 5 else 8):
                episode = episode.to(device)
                logits = protonet_predict(model, episode.x_support, episode.y_support, episode.x_query, config.n_way)
                values.extend(accuracy(logits, episode.y_query).cpu().tolist())
        mean, half = mean_confidence_interval(values)
        return {"metric": f"accuracy, Omniglot {config.n_way}-way {config.k_shot}-shot", "mean": mean, "ci95": half,
                "n_tasks": len(values), "values": values, "transductive": norm["transductive"],
                "protocol": protocol(config, len(values), split, f"; {norm['batch_norm']}")}

    def has_validation(self, config):
        return bool(config.validation_characters)
