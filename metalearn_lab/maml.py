r"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine 2017) on :mod:`torch.func`.

The inner loop is a pure function of a parameter dict. One step is

.. math:: \theta' = \theta - \alpha \nabla_\theta \mathcal{L}_{\text{support}}(\theta),

and the meta-objective is the query loss at the adapted parameters, averaged over tasks,
:math:`\min_\theta \sum_i \mathcal{L}^{(i)}_{\text{query}}(\theta'_i)`. Its gradient passes back
through the inner steps: for one step it is
:math:`(I - \alpha \nabla^2 \mathcal{L}_{\text{support}}(\theta))\,\nabla \mathcal{L}_{\text{query}}(\theta')`.
First-order MAML drops the Hessian term and uses :math:`\nabla \mathcal{L}_{\text{query}}(\theta')`.

Two implementations of the batch meta-loss give the same numbers: a per-task Python loop over
:func:`adapt` (easy to read; the style of learn2learn and higher) and a vectorised one that maps
the whole inner loop over the task dimension with :func:`torch.func.vmap`.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch.func import functional_call, grad, vmap

from metalearn_lab.autodiff import step_cost
from metalearn_lab.functional_models import functional_forward, has_fast_forward
from metalearn_lab.models import unchanged
from metalearn_lab.validation import check_float, check_int

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
InnerLR = float | torch.Tensor | Mapping[str, torch.Tensor]


def check_inner_loop(inner_steps: int, inner_lr: InnerLR,
                     params: Mapping[str, torch.Tensor] | None = None) -> tuple[int, InnerLR]:
    """Check an inner loop's ``inner_steps`` and ``inner_lr``; return them in the form the loop uses.

    ``inner_steps`` is an integer >= 0 (Python, NumPy or a 0-d tensor). ``inner_lr`` is a finite
    number > 0 (Python, NumPy or a 0-d tensor; a one-element tensor is kept as it is, so a learned
    learning rate still gets its gradient), or a dict with one tensor of rates >= 0 per parameter
    (Meta-SGD). Anything else raises ``ValueError`` naming the argument, the value and what is valid.

    >>> import numpy as np
    >>> check_inner_loop(np.int64(2), np.float32(0.5))
    (2, 0.5)
    >>> check_inner_loop(1, 0.0)
    Traceback (most recent call last):
    ...
    ValueError: inner_lr must be a finite number > 0, got 0.0
    """
    inner_steps = check_int("inner_steps", inner_steps, minimum=0)
    if isinstance(inner_lr, Mapping):
        if params is not None and set(inner_lr) != set(params):
            missing = sorted(set(params) - set(inner_lr))
            extra = sorted(set(inner_lr) - set(params))
            raise ValueError(f"inner_lr dict must have one entry per parameter; missing {missing}, unexpected {extra}")
        for name, lr in inner_lr.items():
            lr = torch.as_tensor(lr).detach()
            if not bool(torch.isfinite(lr).all()) or bool((lr < 0).any()):
                raise ValueError(f"inner_lr[{name!r}] must be finite and >= 0 everywhere (Meta-SGD learning rates)")
        return inner_steps, inner_lr
    if isinstance(inner_lr, torch.Tensor) and inner_lr.dim() > 0:
        if inner_lr.numel() != 1:
            raise ValueError("inner_lr must be a number, a scalar tensor or a dict of tensors, "
                             f"got a tensor of shape {tuple(inner_lr.shape)}")
        check_float("inner_lr", inner_lr.detach().reshape(()), low=0, low_open=True)
        return inner_steps, inner_lr
    if isinstance(inner_lr, torch.Tensor) and inner_lr.requires_grad:  # a learned rate: keep its graph
        check_float("inner_lr", inner_lr.detach(), low=0, low_open=True)
        return inner_steps, inner_lr
    return inner_steps, check_float("inner_lr", inner_lr, low=0, low_open=True)


def _step(params: Params, grads: Mapping[str, torch.Tensor], inner_lr: InnerLR) -> Params:
    if isinstance(inner_lr, Mapping):
        return {name: p - inner_lr[name] * grads[name] for name, p in params.items()}
    return {name: p - inner_lr * grads[name] for name, p in params.items()}


def adapt(
    model: torch.nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    first_order: bool = False,
    buffers: Mapping[str, torch.Tensor] | None = None,
) -> Params:
    r"""Adapt ``params`` to one task with ``inner_steps`` steps of gradient descent on ``(x, y)``.

    Parameters
    ----------
    model : nn.Module
        Evaluated with :func:`torch.func.functional_call`, so its own weights are never changed.
    params : dict name → Tensor
        Starting point :math:`\theta` (e.g. ``dict(model.named_parameters())``).
    x, y : Tensor
        The task's support set, ``[k_shot * n_way, ...]`` (no task dimension).
    loss_fn : callable ``(prediction, y) -> scalar``
    inner_steps : int >= 0
    inner_lr : float > 0, scalar tensor, or dict name → Tensor
        :math:`\alpha`; a dict gives one learning rate per parameter (as in Meta-SGD).
    first_order : bool
        ``False``: the result is differentiable back to ``params`` through every inner step
        (second-order MAML). ``True``: inner gradients are treated as constants, so the
        Jacobian :math:`\partial\theta'/\partial\theta` is the identity (first-order MAML).

    Returns
    -------
    dict name → Tensor
        The adapted parameters :math:`\theta'`.

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> model = SineMLP()
    >>> params = dict(model.named_parameters())
    >>> x = torch.linspace(-5, 5, 10)[:, None]
    >>> adapted = adapt(model, params, x, torch.sin(x), torch.nn.functional.mse_loss, inner_steps=1, inner_lr=0.01)
    >>> sorted(adapted) == sorted(params), adapted["net.0.weight"].requires_grad
    (True, True)
    """
    inner_steps, inner_lr = check_inner_loop(inner_steps, inner_lr, params)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have one row per example; got {x.shape[0]} inputs and {y.shape[0]} targets")
    buffers = dict(buffers or {})
    outer = torch.is_grad_enabled() and any(p.requires_grad for p in params.values())
    # Frozen tensors (requires_grad=False) are still adapted, as in the vmap path, but get no meta-gradient.
    adapted: Params = (
        {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in params.items()}
        if outer else {k: v.detach().requires_grad_() for k, v in params.items()}
    )
    with torch.enable_grad():
        for _ in range(inner_steps):
            loss = loss_fn(functional_call(model, (adapted, buffers), (x,)), y)
            grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=outer and not first_order)
            adapted = _step(adapted, dict(zip(adapted, grads)), inner_lr)
            if not outer:
                adapted = {k: v.detach().requires_grad_() for k, v in adapted.items()}
    return adapted if outer else {k: v.detach() for k, v in adapted.items()}


def functional_adapt(model: torch.nn.Module, loss_fn: LossFn, *, inner_steps: int, inner_lr: InnerLR, first_order: bool = False):
    """Build a pure ``adapt_fn(params, buffers, x_support, y_support) -> adapted params``.

    The same inner loop as :func:`adapt`, written with :func:`torch.func.grad` so that it can be
    mapped over tasks with :func:`torch.func.vmap` (used by :func:`meta_loss` and Reptile). The
    network is evaluated by :func:`~metalearn_lab.functional_models.functional_forward`: a
    hand-written pure form for the MAML Conv4 (the same numbers, less work), ``functional_call``
    for any other model.
    """
    inner_steps, inner_lr = check_inner_loop(inner_steps, inner_lr)
    forward = functional_forward(model)

    def support_loss(p, b, x, y):
        return loss_fn(forward(p, b, x), y)

    def adapt_fn(params, buffers, x_support, y_support):
        adapted = dict(params)
        for _ in range(inner_steps):
            grads = grad(support_loss)(adapted, buffers, x_support, y_support)
            if first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            adapted = _step(adapted, grads, inner_lr)
        return adapted

    return adapt_fn


def _functional_task(model: torch.nn.Module, loss_fn: LossFn, inner_steps: int, inner_lr: InnerLR, first_order: bool):
    """Build ``task(params, buffers, x_support, y_support, x_query) -> query prediction``, pure and vmappable."""
    adapt_fn = functional_adapt(model, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, first_order=first_order)
    forward = functional_forward(model)

    def task(params, buffers, x_support, y_support, x_query):
        return forward(adapt_fn(params, buffers, x_support, y_support), buffers, x_query)

    return task


def meta_loss(
    model: torch.nn.Module,
    params: Mapping[str, torch.Tensor],
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    first_order: bool = False,
    vectorize: bool | None = None,
    buffers: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The MAML objective on a batch of tasks: mean query loss after adaptation.

    Parameters
    ----------
    batch : (x_support, y_support, x_query, y_query)
        Each with a leading task dimension ``[meta_batch_size, ...]`` (an
        :class:`~metalearn_lab.samplers.Episode` or a sinusoid batch's ``as_tuple()``).
    vectorize : bool or None
        ``True`` maps the inner loop over tasks with :func:`torch.func.vmap`; ``False`` loops over
        tasks in Python with :func:`adapt`. Both give the same loss and gradients. ``None`` picks
        the faster one as measured by ``benchmarks/maml_throughput.py`` (:func:`prefers_vmap`).
        On the CPU the vmap path maps the MAML Conv4 over chunks of :data:`VMAP_CPU_CHUNK_SIZE`
        tasks, whose activations stay in the processor's cache.

    Returns
    -------
    loss : Tensor, scalar
        :math:`\frac{1}{B}\sum_i \mathcal{L}^{(i)}_{\text{query}}(\theta'_i)`, differentiable w.r.t. ``params``.
    predictions : Tensor ``[meta_batch_size, n_query_total, ...]``
        The adapted models' outputs on the query sets.

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> model = SineMLP()
    >>> batch = SinusoidTasks().sample(4, 5, generator=torch.Generator().manual_seed(0)).as_tuple()
    >>> loss, pred = meta_loss(model, dict(model.named_parameters()), batch, torch.nn.functional.mse_loss, inner_steps=1, inner_lr=0.01)
    >>> loss.shape, tuple(pred.shape)
    (torch.Size([]), (4, 5, 1))
    """
    inner_steps, inner_lr = check_inner_loop(inner_steps, inner_lr, params)
    x_support, y_support, x_query, y_query = batch
    sizes = {t.shape[0] for t in batch}
    if len(sizes) != 1:
        raise ValueError(f"batch tensors must share the task dimension, got sizes {[t.shape[0] for t in batch]}")
    buffers = dict(buffers or {})
    if vectorize is None:
        meta_gradient = torch.is_grad_enabled() and any(p.requires_grad for p in params.values())
        vectorize = prefers_vmap(model, x_support.device, meta_gradient=meta_gradient)
    if vectorize:
        check_vectorizable(model)
        task = _functional_task(model, loss_fn, inner_steps, inner_lr, first_order)
        predictions = vmap(task, in_dims=(None, None, 0, 0, 0), randomness="different",
                           chunk_size=_vmap_chunk_size(model, x_support.device))(
            dict(params), buffers, x_support, y_support, x_query
        )
    else:
        predictions = torch.stack([
            functional_call(
                model,
                (adapt(model, params, xs, ys, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr,
                       first_order=first_order, buffers=buffers), buffers),
                (xq,),
            )
            for xs, ys, xq in zip(x_support, y_support, x_query)
        ])
    losses = torch.stack([loss_fn(p, y) for p, y in zip(predictions, y_query)])
    return losses.mean(), predictions


def meta_train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    first_order: bool = False,
    vectorize: bool | None = None,
) -> tuple[float, torch.Tensor]:
    """One outer update: meta-loss on ``batch``, backward through the inner loop, ``optimizer.step()``.

    Returns the meta-loss (a float) and the detached query predictions.
    """
    optimizer.zero_grad(set_to_none=True)
    loss, predictions = meta_loss(
        model, dict(model.named_parameters()), batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr,
        first_order=first_order, vectorize=vectorize, buffers=dict(model.named_buffers()),
    )
    loss.backward()
    optimizer.step()
    return float(loss.detach()), predictions.detach()


def adapt_and_predict(
    model: torch.nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    vectorize: bool | None = None,
) -> torch.Tensor:
    """Test-time use of a meta-trained model: adapt to each task's support set, predict its queries.

    No meta-gradient is built (the inner gradients still are), and the model is left exactly as it
    was: its weights are adapted in copies, and batch-norm running statistics that a forward pass in
    training mode updates are restored afterwards (:func:`metalearn_lab.models.unchanged`).

    In training mode, batch norm normalises each task's support set and each task's queries with
    their own statistics, so a query's prediction depends on the other queries of its task: a
    *transductive* evaluation, as in Finn et al.'s MAML code. In eval mode, a model with running
    statistics classifies each query on its own. :func:`metalearn_lab.models.uses_batch_statistics`
    says which applies.

    Returns ``[meta_batch_size, n_query_total, ...]``. Raises ``ValueError`` for ``vectorize=True``
    on a model whose batch norm updates running statistics in training mode (vmap cannot do that).
    """
    with torch.no_grad(), unchanged(model):
        params = {k: v.detach() for k, v in model.named_parameters()}
        _, predictions = meta_loss(
            model, params, batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True,
            vectorize=vectorize, buffers=dict(model.named_buffers()),
        )
    return predictions


def query_mse(model: torch.nn.Module, tasks, inner_steps: int, inner_lr: InnerLR) -> torch.Tensor:
    """Each task's query mean squared error after ``inner_steps`` steps of size ``inner_lr`` on its support set.

    The test-time measure of sinusoid regression (Finn et al. 2017, §5.1 and Appendix C.1): adapt to
    the support points with :func:`adapt_and_predict` (plain gradient descent on the support MSE),
    then average the squared error over that task's query points. The model is not changed.

    Parameters
    ----------
    model : nn.Module
        A regressor, ``[P, 1] -> [P, 1]``.
    tasks : SinusoidBatch or tuple ``(x_support, y_support, x_query, y_query)``
        Shapes ``[n_tasks, k_shot, 1]`` and ``[n_tasks, n_query, 1]``; an object with ``as_tuple()``.
    inner_steps : int >= 0
    inner_lr : float > 0

    Returns
    -------
    Tensor ``[n_tasks]``
        One MSE per task (a diverging task gives a huge, infinite or NaN value: see
        :func:`metalearn_lab.metrics.summarize_mse`).

    Examples
    --------
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> from metalearn_lab.models import SineMLP
    >>> batch = SinusoidTasks().sample(3, 5, 10, generator=torch.Generator().manual_seed(0))
    >>> query_mse(SineMLP(), batch, inner_steps=1, inner_lr=0.01).shape
    torch.Size([3])
    """
    batch = tuple(tasks.as_tuple() if hasattr(tasks, "as_tuple") else tasks)
    if len(batch) != 4:
        raise ValueError(f"tasks must be a SinusoidBatch or (x_support, y_support, x_query, y_query), got {len(batch)} tensors")
    predictions = adapt_and_predict(model, batch, torch.nn.functional.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr)
    return ((predictions - batch[3]) ** 2).flatten(1).mean(dim=1)


#: Tasks per :func:`torch.func.vmap` chunk for the MAML Conv4 on the CPU. Measured on one thread
#: (``benchmarks/README.md``): chunks of 8 tasks (8 MB of first-layer activations for 5-way 1-shot)
#: run 10-30% faster than all 32 tasks at once, whose activations do not fit in the cache.
VMAP_CPU_CHUNK_SIZE = 8


def _vmap_chunk_size(model: torch.nn.Module, device: torch.device) -> int | None:
    return VMAP_CPU_CHUNK_SIZE if device.type == "cpu" and has_fast_forward(model) else None


def prefers_vmap(model: torch.nn.Module, device: torch.device | str | None = None, *, meta_gradient: bool = True) -> bool:
    """Whether :func:`meta_loss` should vectorise over tasks for ``model``: the faster path, by measurement.

    Measured with ``benchmarks/maml_throughput.py`` (tables in ``benchmarks/README.md``):

    * on a GPU, vmap: the loop launches every small kernel once per task (provisional until the
      GPU table is measured; the per-task loop ran about 5 steps of 8 tasks a second on an H100);
    * networks without convolutions (the sine MLP), vmap: 4-7x the loop on the CPU;
    * the MAML Conv4 (:func:`~metalearn_lab.functional_models.has_fast_forward`) on the CPU:
      vmap when a meta-gradient is built (meta-training, 1.3-1.5x the loop), the loop when tasks
      are only adapted (evaluation, Reptile: 0.6-1.1x the loop in repeated runs, no gain that
      shows above the noise; all tasks' activations at once overflow the cache);
    * other convolutional nets on the CPU, the loop;
    * never for a model whose batch norm updates running statistics (:func:`writes_running_statistics`).

    Parameters
    ----------
    model : nn.Module
    device : where the tasks are (default: where ``model``'s parameters are)
    meta_gradient : bool
        ``True`` when the meta-gradient will be taken through the inner loop (training).

    >>> from metalearn_lab.models import Conv4, SineMLP
    >>> maml_net = Conv4(out_features=5, track_running_stats=False)
    >>> prefers_vmap(SineMLP()), prefers_vmap(maml_net), prefers_vmap(maml_net, meta_gradient=False)
    (True, True, False)
    >>> prefers_vmap(Conv4(out_features=5).eval()), prefers_vmap(Conv4(out_features=5).eval(), "cuda")
    (False, True)
    >>> prefers_vmap(Conv4(out_features=5), "cuda")  # training mode: its batch norm writes running statistics
    False
    """
    if writes_running_statistics(model):  # vmap cannot write one set of running statistics from many tasks
        return False
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    if torch.device(device).type != "cpu":
        return True
    if not any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules()):
        return True
    return bool(meta_gradient) and has_fast_forward(model)


def check_vectorizable(model: torch.nn.Module) -> None:
    """Raise ``ValueError`` if ``model`` cannot be mapped over tasks with :func:`torch.func.vmap` (``vectorize=True``)."""
    if writes_running_statistics(model):
        raise ValueError(
            "vectorize=True cannot run this model: its batch norm updates running statistics in training mode, and "
            "vmap cannot write one set of statistics from many tasks at once; pass vectorize=False (one task at a "
            "time), put the model in eval mode (running statistics, not transductive), or build it with batch "
            "statistics only (Conv4(track_running_stats=False))")


def writes_running_statistics(model: torch.nn.Module) -> bool:
    """Whether a forward pass of ``model`` in its current mode updates batch-norm running statistics in place."""
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
               for m in model.modules())


# --- the meta-gradient written out: as a dict, in closed form for linear regression, and its cost ---
# (Hessian-vector products, finite differences and gradient comparisons are in metalearn_lab.autodiff.)


def meta_gradient(
    model: torch.nn.Module,
    params: Mapping[str, torch.Tensor],
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    first_order: bool = False,
    vectorize: bool | None = None,
    buffers: Mapping[str, torch.Tensor] | None = None,
) -> Params:
    r"""The gradient of :func:`meta_loss` with respect to ``params``, as a dict name → Tensor.

    Second-order (``first_order=False``): :math:`\nabla_\theta \frac1B\sum_i \mathcal{L}^{(i)}_{\text{query}}(\theta'_i)`,
    through every inner step. First-order: the query gradients at the adapted points,
    :math:`\frac1B\sum_i \nabla \mathcal{L}^{(i)}_{\text{query}}(\theta'_i)`.
    ``params`` are used as given; leaves that do not require grad are made to (on a detached copy).

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> model = SineMLP()
    >>> batch = SinusoidTasks().sample(2, 5, generator=torch.Generator().manual_seed(0)).as_tuple()
    >>> g = meta_gradient(model, dict(model.named_parameters()), batch, torch.nn.functional.mse_loss,
    ...                   inner_steps=1, inner_lr=0.01)
    >>> g["net.0.weight"].shape
    torch.Size([40, 1])
    """
    params = {k: (v if v.requires_grad else v.detach().requires_grad_()) for k, v in params.items()}
    with torch.enable_grad():
        loss, _ = meta_loss(model, params, batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr,
                            first_order=first_order, vectorize=vectorize, buffers=buffers)
        grads = torch.autograd.grad(loss, list(params.values()))
    return dict(zip(params, grads))


def linear_regression_meta_gradient(
    theta: torch.Tensor,
    x_support: torch.Tensor,
    y_support: torch.Tensor,
    x_query: torch.Tensor,
    y_query: torch.Tensor,
    *,
    inner_lr: float,
    inner_steps: int = 1,
    first_order: bool = False,
) -> torch.Tensor:
    r"""Closed-form MAML meta-gradient for linear regression with the mean squared error.

    With :math:`\mathcal{L}(w) = \lVert Xw - y\rVert^2 / n`, the gradient is
    :math:`\frac2n X^\top (Xw - y)` and the Hessian is the constant :math:`A = \frac2n X^\top X`.
    One inner step is :math:`\theta_{k+1} = \theta_k - \alpha \frac2n X_s^\top (X_s\theta_k - y_s)`,
    whose Jacobian is :math:`I - \alpha A_s`; after :math:`K` steps

    .. math:: \nabla_\theta \mathcal{L}_q(\theta_K) = \big((I - \alpha A_s)^K\big)^\top \tfrac2m X_q^\top (X_q \theta_K - y_q).

    First-order MAML keeps only :math:`\frac2m X_q^\top (X_q \theta_K - y_q)`.

    Parameters
    ----------
    theta : Tensor ``[d]``
    x_support : ``[n, d]``;  y_support : ``[n]``;  x_query : ``[m, d]``;  y_query : ``[m]``
    inner_lr : float > 0;  inner_steps : int >= 0;  first_order : bool

    Returns
    -------
    Tensor ``[d]``

    Examples
    --------
    >>> x = torch.eye(2, dtype=torch.float64); y = torch.ones(2, dtype=torch.float64)
    >>> linear_regression_meta_gradient(torch.zeros(2, dtype=torch.float64), x, y, x, y, inner_lr=0.25)
    tensor([-0.5625, -0.5625], dtype=torch.float64)
    """
    inner_steps, inner_lr = check_inner_loop(inner_steps, inner_lr)
    if theta.dim() != 1 or x_support.dim() != 2 or x_query.dim() != 2:
        raise ValueError(f"theta must be [d] and x_support, x_query [n, d]; got {tuple(theta.shape)}, "
                         f"{tuple(x_support.shape)}, {tuple(x_query.shape)}")
    n, m = x_support.shape[0], x_query.shape[0]
    a_support = 2.0 / n * x_support.T @ x_support
    step_jacobian = torch.eye(theta.numel(), dtype=theta.dtype) - inner_lr * a_support
    adapted = theta
    for _ in range(inner_steps):
        adapted = adapted - inner_lr * 2.0 / n * x_support.T @ (x_support @ adapted - y_support)
    query_grad = 2.0 / m * x_query.T @ (x_query @ adapted - y_query)
    if first_order:
        return query_grad
    return torch.linalg.matrix_power(step_jacobian, inner_steps).T @ query_grad


def meta_gradient_cost(
    model: torch.nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: float,
    first_order: bool,
    repeats: int = 3,
    threads: int | None = 1,
) -> dict[str, float]:
    """Wall time and graph memory of one meta-gradient (forward through the inner loop + backward).

    Uses the per-task loop (``vectorize=False``, the path whose saved tensors the hooks see).
    Returns ``{"seconds": fastest of repeats, "saved_mb": peak saved-tensor MB}`` (see
    :func:`metalearn_lab.autodiff.peak_saved_tensor_bytes`). The fastest run is the one least disturbed by other
    programs on the machine; ``threads`` (default 1, ``None`` leaves PyTorch's setting) pins the
    number of CPU threads during the measurement, since on a busy machine more threads mostly
    add noise. The previous setting is restored afterwards.

    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> batch = SinusoidTasks().sample(2, 5, generator=torch.Generator().manual_seed(0)).as_tuple()
    >>> cost = meta_gradient_cost(SineMLP(), batch, torch.nn.functional.mse_loss, inner_steps=1, inner_lr=0.01,
    ...                           first_order=False, repeats=1)
    >>> sorted(cost), cost["saved_mb"] > 0
    (['saved_mb', 'seconds'], True)
    """
    inner_steps, inner_lr = check_inner_loop(inner_steps, inner_lr)
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())

    def meta_gradient_step():
        loss, _ = meta_loss(model, params, batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr,
                            first_order=first_order, vectorize=False, buffers=buffers)
        return torch.autograd.grad(loss, list(params.values()))

    return step_cost(meta_gradient_step, repeats=repeats, threads=threads)
