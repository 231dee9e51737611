r"""One MAML meta-training step recorded as a CUDA graph and replayed.

A second-order MAML step on Conv4 launches hundreds of small GPU kernels (forward, inner gradient,
query forward, the backward through all of it, the Adam update). At a meta-batch of 32 5-way
1-shot tasks each kernel runs for microseconds, so the step is bound by launching them from
Python, not by the GPU. A CUDA graph records the whole step once and replays it with one launch
(PyTorch's "whole-network capture", ``torch.cuda.graph``); the inputs are copied into fixed
buffers before each replay.

:func:`make_meta_train_step` is what training uses: a plain :func:`~metalearn_lab.maml.meta_train_step`
on the CPU, and on a GPU the graphed step when asked for (``cuda_graph=True`` or the environment
variable ``METALEARN_LAB_CUDA_GRAPHS=1``). Both give the same parameters step after step, up to
the rounding of the GPU kernels (``scripts/gpu_session.py`` checks it on the device).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Callable

import torch

from metalearn_lab.maml import InnerLR, LossFn, check_inner_loop, meta_loss, meta_train_step
from metalearn_lab.validation import check_int

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
StepFn = Callable[[Batch], tuple[float, torch.Tensor]]
ENV_FLAG = "METALEARN_LAB_CUDA_GRAPHS"


def cuda_graphs_requested() -> bool:
    """Whether ``$METALEARN_LAB_CUDA_GRAPHS`` asks training to use CUDA graphs (``1``/``true``/``yes``)."""
    return os.environ.get(ENV_FLAG, "").strip().lower() in ("1", "true", "yes")


class GraphedMetaTrainStep:
    """:func:`~metalearn_lab.maml.meta_train_step` for a fixed batch shape, captured once, then replayed.

    The first ``warmup_steps`` calls run eagerly on a side stream (real training steps: CUDA
    libraries pick their kernels and the optimizer creates its state), the next call records the
    step as a CUDA graph and replays it, and every later call with the same shapes only copies the
    batch in and replays. A batch of new shapes, or a changed learning rate, is recorded anew.
    If recording fails, a warning says why and every later call runs eagerly.

    Parameters
    ----------
    model : nn.Module on a CUDA device
    optimizer : torch.optim.Optimizer over ``model``'s parameters
        Adam and AdamW step with ``capturable=True`` while warming up and recording (their step
        counters move to the GPU); plain SGD keeps no counters. Others raise ``ValueError``.
    loss_fn, inner_steps, inner_lr, first_order, vectorize
        As in :func:`~metalearn_lab.maml.meta_train_step`.
    warmup_steps : int >= 1

    Returns (when called with a batch)
    ----------------------------------
    (loss : float, predictions : Tensor ``[meta_batch_size, n_query_total, n_way]``), as
    :func:`~metalearn_lab.maml.meta_train_step`.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, *,
                 inner_steps: int, inner_lr: InnerLR, first_order: bool = False, vectorize: bool | None = True,
                 warmup_steps: int = 2) -> None:
        inner_steps, inner_lr = check_inner_loop(inner_steps, inner_lr)
        warmup_steps = check_int("warmup_steps", warmup_steps)
        params = list(model.parameters())
        if not params or any(p.device.type != "cuda" for p in params):
            devices = sorted({p.device.type for p in params})
            raise ValueError(f"GraphedMetaTrainStep needs a model on a CUDA device, got parameters on {devices or 'no device'}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.kwargs = dict(inner_steps=inner_steps, inner_lr=inner_lr, first_order=first_order, vectorize=vectorize)
        self.warmup_steps = warmup_steps
        self.calls = 0
        self.failed: str | None = None
        self._graphs: dict[tuple, tuple] = {}
        self._lrs: list[float] | None = None
        self._stream = torch.cuda.Stream(device=params[0].device)
        if any("capturable" not in g for g in optimizer.param_groups) and type(optimizer) is not torch.optim.SGD:
            raise ValueError(f"{type(optimizer).__name__} has no capturable mode; use Adam, AdamW or SGD")

    @contextlib.contextmanager
    def _capturable(self):
        """``capturable=True`` while the optimizer steps in Python (warm-up and recording), then as before.

        The recorded graph keeps the capturable update (step counters on the GPU) whatever the flag
        says later, and restoring it keeps checkpoints loadable on a CPU, where Adam refuses
        ``capturable=True``.
        """
        device = next(self.model.parameters()).device
        before = [g.get("capturable") for g in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            if "capturable" in group:
                group["capturable"] = True
        for state in self.optimizer.state.values():
            if isinstance(state.get("step"), torch.Tensor) and state["step"].device != device:
                state["step"] = state["step"].to(device)
        try:
            yield
        finally:
            for group, flag in zip(self.optimizer.param_groups, before):
                if flag is not None:
                    group["capturable"] = flag

    def _eager(self, batch: Batch) -> tuple[float, torch.Tensor]:
        return meta_train_step(self.model, self.optimizer, batch, self.loss_fn, **self.kwargs)

    def _capture(self, batch: Batch) -> tuple:
        static_batch = tuple(t.clone() for t in batch)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        with torch.cuda.graph(graph, stream=self._stream):
            loss, predictions = meta_loss(
                self.model, dict(self.model.named_parameters()), static_batch, self.loss_fn,
                buffers=dict(self.model.named_buffers()), **self.kwargs)
            loss.backward()
            self.optimizer.step()
        return graph, static_batch, loss.detach(), predictions.detach()

    def __call__(self, batch: Batch) -> tuple[float, torch.Tensor]:
        self.calls += 1
        if self.failed is not None:
            return self._eager(batch)
        lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        if lrs != self._lrs:  # a learning rate is baked into the recorded Adam update
            self._graphs.clear()
            self._lrs = lrs
        if self.calls <= self.warmup_steps:
            self._stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self._stream), self._capturable():
                out = self._eager(batch)
            torch.cuda.current_stream().wait_stream(self._stream)
            return out
        key = tuple((tuple(t.shape), t.dtype, t.device) for t in batch)
        if key not in self._graphs:
            try:
                with self._capturable():
                    self._graphs[key] = self._capture(batch)
            except Exception as exc:  # noqa: BLE001 - any failure to record falls back to eager steps
                self.failed = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"CUDA graph capture failed, training goes on without it: {self.failed}", RuntimeWarning)
                self.optimizer.zero_grad(set_to_none=True)
                return self._eager(batch)
        graph, static_batch, loss, predictions = self._graphs[key]
        for static, new in zip(static_batch, batch):
            static.copy_(new, non_blocking=True)
        graph.replay()
        return float(loss), predictions.clone()


def make_meta_train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, *,
                         inner_steps: int, inner_lr: InnerLR, first_order: bool = False,
                         vectorize: bool | None = None, cuda_graph: bool | None = None) -> StepFn:
    """A ``step(batch) -> (loss, predictions)`` function for meta-training ``model``.

    ``cuda_graph=None`` uses :class:`GraphedMetaTrainStep` when the model is on a CUDA device and
    ``$METALEARN_LAB_CUDA_GRAPHS`` is set (:func:`cuda_graphs_requested`); ``True`` insists on it
    (``ValueError`` off CUDA); ``False`` never uses it. Otherwise each call is one
    :func:`~metalearn_lab.maml.meta_train_step`.

    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> model = SineMLP()
    >>> step = make_meta_train_step(model, torch.optim.Adam(model.parameters()), torch.nn.functional.mse_loss,
    ...                             inner_steps=1, inner_lr=0.01)
    >>> loss, predictions = step(SinusoidTasks().sample(4, 5, generator=torch.Generator().manual_seed(0)).as_tuple())
    >>> isinstance(loss, float), tuple(predictions.shape)
    (True, (4, 5, 1))
    """
    on_cuda = next(model.parameters()).device.type == "cuda"
    if cuda_graph is None:
        cuda_graph = on_cuda and cuda_graphs_requested()
    if cuda_graph:
        return GraphedMetaTrainStep(model, optimizer, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr,
                                    first_order=first_order, vectorize=True if vectorize is None else vectorize)
    inner_steps, inner_lr = check_inner_loop(inner_steps, inner_lr)

    def step(batch: Batch) -> tuple[float, torch.Tensor]:
        return meta_train_step(model, optimizer, batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr,
                               first_order=first_order, vectorize=vectorize)

    return step
