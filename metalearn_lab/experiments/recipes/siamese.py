"""Siamese networks with the contrastive loss, tested on Lake's 20 one-shot runs (Koch et al. 2015; Lake et al. 2015)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metalearn_lab.experiments.config import ExperimentConfig, Float, Int
from metalearn_lab.experiments.recipe import Recipe, batch_norm_protocol, step_generator
from metalearn_lab.experiments.splits import _check_unlocked, background_classes, lake_validation_runs
from metalearn_lab.metrics import mean_confidence_interval
from metalearn_lab.models import EmbeddingNet, unchanged
from metalearn_lab.samplers import PairSampler, random_affine
from metalearn_lab.siamese import nearest_support, siamese_loss


@dataclass(frozen=True)
class SiameseConfig(ExperimentConfig):
    """``meta_batch_size`` pairs a step, contrastive ``margin``, ``augment`` with Koch et al.'s affine distortions.

    ``validation_alphabets`` background alphabets are held out of training; their
    ``validation_runs_per_alphabet`` Lake-style one-shot runs measure progress (the old protocol, 0,
    trained on all 30 background alphabets and monitored Lake's test runs).
    """

    meta_batch_size: int = 128
    margin: float = 1.0
    embedding_dim: int = 64
    augment: bool = False
    validation_alphabets: int = 5
    validation_runs_per_alphabet: int = 4

    legacy_defaults = {"validation_alphabets": 0}

    ranges = {"margin": Float(0, low_open=True), "embedding_dim": Int(1), "validation_alphabets": Int(0, 10),
              "validation_runs_per_alphabet": Int(1)}


class Siamese(Recipe):
    algorithm = "siamese"
    config_class = SiameseConfig

    def build_model(self, config):
        return EmbeddingNet(embedding_dim=config.embedding_dim)

    def make_step(self, config, model, optimizer, device):
        pairs = PairSampler(background_classes(config.validation_alphabets))

        def step(i):
            generator = step_generator(config, i)
            x1, x2, same = pairs.sample(config.meta_batch_size, generator=generator)
            if config.augment:
                x1, x2 = random_affine(x1, generator=generator), random_affine(x2, generator=generator)
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss = siamese_loss(model, x1.to(device), x2.to(device), same.to(device), config.margin)
            loss.backward()
            optimizer.step()
            return {"loss": float(loss.detach())}

        return step

    def evaluate(self, config, model, *, split, n_tasks, device):
        from metalearn_lab.data.lake_runs import load_lake_runs, score_lake_runs

        if split == "validation" and config.validation_alphabets:
            runs = lake_validation_runs(config.validation_alphabets, config.validation_runs_per_alphabet)
            what = (f"{len(runs)} Lake-style 20-way within-alphabet one-shot runs from {config.validation_alphabets} "
                    "held-out background alphabets (validation)")
        else:
            _check_unlocked("Lake's one-shot runs (the Siamese experiment's test set)")
            runs = load_lake_runs()
            what = "Lake's 20 runs x 20 trials (all_runs.zip)"
        with unchanged(model):
            model.eval()  # running statistics: each image embedded on its own
            norm = batch_norm_protocol(model)
            scores = score_lake_runs(runs, lambda s, q: nearest_support(model, s.to(device), q.to(device)).cpu())
        per_run = torch.tensor(scores["per_run"])
        mean, half = mean_confidence_interval(per_run)
        trained_on = (f"trained on {30 - config.validation_alphabets} background alphabets"
                      if config.validation_alphabets else "trained on all 30 background alphabets")
        return {"metric": "accuracy, Lake's 20-way within-alphabet one-shot runs", "mean": mean, "ci95": half,
                "n_tasks": len(per_run) * 20, "per_run": scores["per_run"], "values": scores["per_run"],
                "transductive": norm["transductive"],
                "protocol": f"{what}; nearest support embedding; {trained_on}; Student's t interval over the runs; "
                            f"{norm['batch_norm']}"}

    def has_validation(self, config):
        return bool(config.validation_alphabets)
