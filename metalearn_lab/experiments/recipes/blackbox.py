"""Black-box (model-based) learners on sinusoids: a conditional neural process and an in-context transformer.

The network reads a task's support set and predicts its query points in one forward pass
(:mod:`metalearn_lab.blackbox`). Training: each step draws ``meta_batch_size`` tasks from Finn et
al.'s sinusoid family with ``K ~ U{k_min, ..., k_max}`` support points (one K per step) and
``n_query`` query points, and takes an Adam step on the Gaussian negative log-likelihood of the
queries (Garnelo et al. 2018, §2). Evaluation: query MSE of the predicted mean on the fixed test
tasks at every K in ``eval_k_shots`` (the same tasks as the MAML runs at that K).

Neither network is transductive: a conditional neural process encodes the support set and decodes
every query from that summary alone, and the transformer's attention mask stops queries attending
to each other (:func:`queries_attend_to_each_other` reads it), so a query's prediction does not
depend on the other queries of its task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from metalearn_lab.blackbox import ConditionalNeuralProcess, InContextTransformer, gaussian_nll, predict
from metalearn_lab.data.sinusoid import SinusoidTasks
from metalearn_lab.experiments.config import ExperimentConfig, Float, Int, Ints
from metalearn_lab.experiments.recipe import Recipe, batch_norm_protocol, step_generator
from metalearn_lab.experiments.splits import sinusoid_test_tasks, sinusoid_validation_tasks
from metalearn_lab.metrics import summarize_mse
from metalearn_lab.models import unchanged
from metalearn_lab.validation import check_int

ARCHITECTURES = ("cnp", "transformer")


@dataclass(frozen=True)
class BlackBoxConfig(ExperimentConfig):
    """Fields of a black-box sinusoid learner.

    ``architecture`` is ``"cnp"`` (``hidden`` = width, ``layers`` = encoder and decoder depth) or
    ``"transformer"`` (``hidden`` = d_model, ``layers`` = encoder layers, ``n_heads``,
    ``dim_feedforward``). Training tasks have ``k_min``..``k_max`` support and ``n_query`` query
    points; evaluation uses ``eval_n_query`` query points and reports every K in ``eval_k_shots``,
    ``eval_k_shot`` being the headline (and the validation metric).
    """

    architecture: str = "cnp"
    hidden: int = 128
    layers: int = 3
    n_heads: int = 4
    dim_feedforward: int = 128
    min_std: float = 0.01
    meta_batch_size: int = 64
    k_min: int = 1
    k_max: int = 10
    n_query: int = 20
    eval_k_shot: int = 5
    eval_n_query: int = 100
    eval_k_shots: tuple[int, ...] = (1, 2, 5, 10)

    ranges = {"hidden": Int(1), "layers": Int(1), "n_heads": Int(1), "dim_feedforward": Int(1),
              "min_std": Float(0, 1, high_open=True), "k_min": Int(1), "k_max": Int(1), "n_query": Int(1),
              "eval_k_shot": Int(1), "eval_n_query": Int(1), "eval_k_shots": Ints(Int(1))}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.architecture == "cnp" and self.layers < 2:  # the decoder: at least one hidden layer and the output layer
            raise ValueError(f"layers must be an integer >= 2 for architecture 'cnp', got {self.layers}")
        if self.architecture == "transformer" and self.hidden % self.n_heads:
            raise ValueError(f"hidden (d_model) must be divisible by n_heads; got hidden={self.hidden}, n_heads={self.n_heads}")
        if not 1 <= self.k_min <= self.k_max:
            raise ValueError(f"need 1 <= k_min <= k_max, got k_min={self.k_min}, k_max={self.k_max}")

    def quick(self) -> "BlackBoxConfig":
        return super().quick().replace(iterations=min(self.iterations, 30))


def build_blackbox(config: BlackBoxConfig) -> torch.nn.Module:
    """The network a config describes."""
    if config.architecture == "cnp":
        return ConditionalNeuralProcess(hidden=config.hidden, encoder_layers=config.layers,
                                        decoder_layers=config.layers, min_std=config.min_std)
    return InContextTransformer(d_model=config.hidden, n_heads=config.n_heads, n_layers=config.layers,
                                dim_feedforward=config.dim_feedforward, min_std=config.min_std)


def per_task_mse(model: torch.nn.Module, batch) -> torch.Tensor:
    """Query MSE of the predicted mean for every task of a :class:`SinusoidBatch`: ``[tasks]``."""
    mean, _ = predict(model, batch.x_support, batch.y_support, batch.x_query)
    return ((mean - batch.y_query) ** 2).mean(dim=(1, 2))


def queries_attend_to_each_other(model: torch.nn.Module, k_shot: int = 3, n_query: int = 4) -> bool:
    """Whether a query token of ``model`` can attend to another query token (read off its attention mask).

    A conditional neural process has no attention between queries (False). For
    :class:`~metalearn_lab.blackbox.InContextTransformer` the answer is whether any entry of
    ``attention_mask(k_shot, n_query)`` that links two different queries is left open.

    >>> queries_attend_to_each_other(InContextTransformer(d_model=8, n_heads=2, n_layers=1))
    False
    >>> queries_attend_to_each_other(ConditionalNeuralProcess(hidden=8))
    False
    """
    if isinstance(model, ConditionalNeuralProcess):
        return False
    if not isinstance(model, InContextTransformer):
        raise TypeError(f"queries_attend_to_each_other needs a ConditionalNeuralProcess or InContextTransformer, "
                        f"got {type(model).__name__}")
    k_shot, n_query = check_int("k_shot", k_shot, minimum=0), check_int("n_query", n_query, minimum=2)
    blocked = model.attention_mask(k_shot, n_query)[k_shot:, k_shot:]
    between = ~torch.eye(n_query, dtype=torch.bool)
    return not bool(blocked[between].all())


def independence(model: torch.nn.Module) -> dict[str, Any]:
    """:func:`batch_norm_protocol` of a black-box learner, with why each query is (or is not) predicted alone."""
    if isinstance(model, ConditionalNeuralProcess):
        return batch_norm_protocol(model, alone="the support set is encoded once and each query is decoded from that "
                                                "summary on its own")
    if not queries_attend_to_each_other(model):
        return batch_norm_protocol(model, alone="the attention mask lets each query attend to the support points only, "
                                                "never to the other queries")
    return {"transductive": True, "batch_norm": "transductive: queries attend to each other, so a query's prediction "
                                                "depends on the other queries of its task"}


class SinusoidBlackBox(Recipe):
    algorithm = "sinusoid-blackbox"
    config_class = BlackBoxConfig
    higher_is_better = False

    def build_model(self, config: BlackBoxConfig) -> torch.nn.Module:
        return build_blackbox(config)

    def make_step(self, config, model, optimizer, device):
        tasks = SinusoidTasks()

        def step(i):
            generator = step_generator(config, i)
            k_shot = int(torch.randint(config.k_min, config.k_max + 1, (1,), generator=generator))
            batch = tasks.sample(config.meta_batch_size, k_shot, config.n_query, generator=generator)
            x_support, y_support, x_query, y_query = (t.to(device) for t in batch.as_tuple())
            mean, std = model(x_support, y_support, x_query)
            loss = gaussian_nll(mean, std, y_query)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return {"loss": float(loss.detach()), "metric": float(((mean.detach() - y_query) ** 2).mean())}

        return step

    def evaluate(self, config: BlackBoxConfig, model: torch.nn.Module, *, split: str, n_tasks: int | None,
                 device: torch.device) -> dict[str, Any]:
        with unchanged(model):  # eval mode for the forward passes; the caller's modes come back
            model.eval()
            return evaluate_by_k_shot(config, lambda batch: per_task_mse(model, batch), split=split, n_tasks=n_tasks,
                                      device=device, method=f"{config.architecture}, one forward pass, no gradient steps",
                                      independence=independence(model))


def _with_values(mse: torch.Tensor) -> dict[str, Any]:
    """:func:`summarize_mse` with the per-task values the interval is over (``"values"``)."""
    return {**summarize_mse(mse), "values": mse.detach().double().cpu().tolist()}


def evaluate_by_k_shot(config: Any, task_mse: Callable[[Any], torch.Tensor], *, split: str, n_tasks: int | None,
                       device: torch.device, method: str, independence: dict[str, Any]) -> dict[str, Any]:
    """Query MSE of a sinusoid learner at every K of ``config.eval_k_shots`` (and ``eval_k_shot``).

    ``task_mse(batch) -> [tasks]`` gives one MSE per task of a :class:`SinusoidBatch`. The tasks at
    each K are the fixed test (or validation) tasks of that K, the same for every learner. On the
    test split the headline ``"mean"`` is the MSE at ``eval_k_shot``; on the validation split, which
    chooses checkpoints, it is each task's MSE averaged over all the K (one score for few-shot
    learning from 1 to 10 points, not only at one K). ``"values"`` holds the per-task numbers of the
    headline (each ``by_k_shot`` entry its own). ``independence`` is the learner's
    :func:`batch_norm_protocol`: whether the evaluation is transductive, and the sentence that says so.
    """
    tasks = sinusoid_test_tasks if split == "test" else sinusoid_validation_tasks
    by_k_shot, values = {}, []
    with torch.no_grad():
        for k_shot in sorted({config.eval_k_shot, *config.eval_k_shots}):
            batch = tasks(config.replace(eval_k_shot=k_shot), n_tasks)
            batch = type(batch)(*(t.to(device) for t in batch.as_tuple()), batch.amplitude, batch.phase)
            mse = task_mse(batch).detach().cpu()
            by_k_shot[str(k_shot)] = _with_values(mse)
            if k_shot in config.eval_k_shots:
                values.append(mse)
    shots = ", ".join(str(k) for k in config.eval_k_shots)
    if split == "test":
        headline, metric = by_k_shot[str(config.eval_k_shot)], f"query MSE, K={config.eval_k_shot}"
    else:
        headline, metric = _with_values(torch.stack(values).mean(0)), f"query MSE averaged over K = {shots}"
    return {"metric": f"{metric}; {method}", **headline, "by_k_shot": by_k_shot,
            "transductive": independence["transductive"],
            "protocol": f"{headline['n_tasks']} {split} tasks A~U[0.1,5], phase~U[0,pi], x~U[-5,5] at each K = {shots}; "
                        f"K support points, {config.eval_n_query} query points; {method}; {independence['batch_norm']}"}
