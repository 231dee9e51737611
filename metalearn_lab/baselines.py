"""Every learner that is not meta-learned, one implementation each: the comparisons of the course.

* :func:`fit_from_scratch`: a fresh network trained on one task's few points (lesson
  ``why_meta_learning``): what happens without any knowledge from other tasks.
* :func:`pretrain`: the transfer-learning baseline, one network trained on all tasks pooled, then
  fine-tuned on a new task's support set with the same gradient steps as MAML's inner loop. This is
  the "pretrained" comparison of Finn et al. (2017, §5.1 and Appendix C.1): MAML differs only in
  *what the training optimises*, the loss after adaptation rather than at the shared weights.
* :func:`fit_from_scratch_batch`: the same for many tasks at once (one fresh network per task,
  trained side by side with :func:`torch.func.vmap`), e.g. one model per user in personalisation.
* :func:`pixel_nearest_neighbour`: one-shot classification by the nearest support image in raw
  pixels (Lake's one-shot runs).
* :func:`knn_regression` and :func:`kernel_regression`: the non-parametric regressors of lesson
  ``fast_learning``, which keep the support points and average their labels near each query.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from metalearn_lab.maml import LossFn
from metalearn_lab.models import SineMLP
from metalearn_lab.validation import check_float, check_int


def pretrain_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  loss_fn: LossFn) -> float:
    """One step of pooled training: the loss of ``model(x)`` against ``y`` at the shared weights, no adaptation.

    ``x``, ``y``: the examples of all tasks of a step, flattened together (``[n, ...]``). Returns the loss.
    The ``sinusoid-pretrain`` experiment and :func:`pretrain` both train with it.

    >>> from metalearn_lab.models import SineMLP
    >>> model = SineMLP()
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> x = torch.linspace(-1, 1, 8)[:, None]
    >>> before = pretrain_step(model, optimizer, x, x, torch.nn.functional.mse_loss)
    >>> pretrain_step(model, optimizer, x, x, torch.nn.functional.mse_loss) < before
    True
    """
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def pretrain(
    model: torch.nn.Module,
    sample_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    *,
    iterations: int,
    lr: float = 1e-3,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` on pooled data from many tasks with Adam; returns the loss of every step.

    ``sample_batch()`` returns ``(x, y)`` for one step, e.g. the support and query points of 25
    sinusoid tasks flattened together.

    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> tasks, model = SinusoidTasks(), SineMLP()
    >>> def sample():
    ...     b = tasks.sample(25, 10)
    ...     return b.x_support.reshape(-1, 1), b.y_support.reshape(-1, 1)
    >>> losses = pretrain(model, sample, torch.nn.functional.mse_loss, iterations=5, progress=False)
    >>> len(losses)
    5
    """
    iterations = check_int("iterations", iterations)
    lr = check_float("lr", lr, low=0, low_open=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in tqdm(range(iterations), desc="pretrain", disable=not progress):
        x, y = sample_batch()
        losses.append(pretrain_step(model, optimizer, x, y, loss_fn))
    return losses


def fit_from_scratch(x_support, y_support, x_grid, *, steps: int = 300, lr: float = 1e-2, seed: int = 0,
                     record_every: int = 25, x_test=None, y_test=None, hidden: int = 40) -> dict:
    """Train a fresh 1-40-40-1 :class:`~metalearn_lab.models.SineMLP` with Adam on a few points.

    Plain supervised learning on one task, as in lesson 01: mean squared error on the support
    points, full batch, ``steps`` Adam updates.

    Parameters
    ----------
    x_support, y_support : Tensor ``[K, 1]``
    x_grid : Tensor ``[P, 1]``
        Inputs where predictions are recorded (for plotting).
    steps, lr, seed : int, float, int
        Adam steps, learning rate, and the seed of the initial weights.
    record_every : int
        Record predictions and errors every this many steps (and at step 0 and at the end).
    x_test, y_test : Tensor ``[M, 1]``, optional
        Held-out points of the same task; their MSE is recorded as ``test_mse``.
    hidden : int
        Width of the two hidden layers.

    Returns
    -------
    dict
        ``{"step": [R], "predictions": Tensor [R, P], "train_mse": [R], "test_mse": [R] or None,
        "model": the trained SineMLP}``.

    Examples
    --------
    >>> import torch
    >>> x = torch.linspace(-3, 3, 5)[:, None]
    >>> run = fit_from_scratch(x, torch.sin(x), x, steps=50, record_every=25)
    >>> run["step"], run["train_mse"][-1] < run["train_mse"][0]
    ([0, 25, 50], True)
    """
    steps = check_int("steps", steps, minimum=0)
    record_every = check_int("record_every", record_every)
    lr = check_float("lr", lr, low=0, low_open=True)
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching the caller's RNG
        torch.manual_seed(check_int("seed", seed, minimum=0))
        model = SineMLP(hidden=hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    record = {"step": [], "predictions": [], "train_mse": [], "test_mse": [] if x_test is not None else None}

    def log(step):
        with torch.no_grad():
            record["step"].append(step)
            record["predictions"].append(model(x_grid).flatten())
            record["train_mse"].append(float(((model(x_support) - y_support) ** 2).mean()))
            if x_test is not None:
                record["test_mse"].append(float(((model(x_test) - y_test) ** 2).mean()))

    log(0)
    for step in range(1, steps + 1):
        loss = ((model(x_support) - y_support) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % record_every == 0 or step == steps:
            log(step)
    record["predictions"] = torch.stack(record["predictions"])
    record["model"] = model
    return record


def fit_from_scratch_batch(x_support: torch.Tensor, y_support: torch.Tensor, x_eval: torch.Tensor, *,
                           steps: int = 300, lr: float = 1e-2, seed: int = 0, hidden: int = 40,
                           record_at: Sequence[int] | None = None) -> torch.Tensor | dict[int, torch.Tensor]:
    """:func:`fit_from_scratch` for many tasks at once: one fresh network per task, trained on its own points.

    Network ``i`` starts from the weights ``fit_from_scratch(..., seed=seed + i)`` would use and is
    trained with full-batch Adam on task ``i``'s support MSE; all networks train side by side
    (their parameters are stacked and the forward pass is mapped over tasks with
    :func:`torch.func.vmap`). Adam acts on each number separately, so this is exactly ``n_tasks``
    independent runs, only faster.

    Parameters
    ----------
    x_support, y_support : Tensor ``[n_tasks, K, 1]``
    x_eval : Tensor ``[n_tasks, P, 1]``
        Inputs at which each task's trained network is evaluated.
    steps, lr, seed, hidden : as in :func:`fit_from_scratch`
    record_at : sequence of int, optional
        Also record the predictions after each of these numbers of steps (training runs to the
        largest; ``steps`` is then ignored): one run gives every candidate number of steps.

    Returns
    -------
    Tensor ``[n_tasks, P, 1]``: each task's predictions at its ``x_eval`` after ``steps`` steps;
    with ``record_at``, a dict ``{steps: Tensor [n_tasks, P, 1]}``.

    Examples
    --------
    >>> x = torch.linspace(-3, 3, 5).expand(2, 5)[..., None]
    >>> y = torch.stack([torch.sin(x[0]), torch.cos(x[1])])
    >>> fit_from_scratch_batch(x, y, x, steps=20).shape
    torch.Size([2, 5, 1])
    >>> sorted(fit_from_scratch_batch(x, y, x, record_at=(0, 5, 10)))
    [0, 5, 10]
    """
    from torch.func import functional_call, stack_module_state, vmap

    if record_at is not None:
        record = sorted({check_int("record_at", s, minimum=0) for s in record_at})
        if not record:
            raise ValueError("record_at must name at least one number of steps")
        steps = record[-1]
    steps = check_int("steps", steps, minimum=0)
    lr = check_float("lr", lr, low=0, low_open=True)
    seed = check_int("seed", seed, minimum=0)
    hidden = check_int("hidden", hidden)
    if x_support.ndim != 3 or y_support.shape != x_support.shape or x_eval.ndim != 3 or x_eval.shape[0] != x_support.shape[0]:
        raise ValueError("x_support and y_support must be [n_tasks, K, 1] and x_eval [n_tasks, P, 1]; got "
                         f"{tuple(x_support.shape)}, {tuple(y_support.shape)} and {tuple(x_eval.shape)}")
    models = []
    with torch.random.fork_rng(devices=[]):
        for i in range(x_support.shape[0]):
            torch.manual_seed(seed + i)
            models.append(SineMLP(hidden=hidden))
    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = models[0]

    def predict(p, b, x):
        return functional_call(base, (p, b), (x,))

    batched = vmap(predict)
    optimizer = torch.optim.Adam(list(params.values()), lr=lr)
    recorded = {}
    for step in range(steps + 1):
        if record_at is not None and step in record:
            with torch.no_grad():
                recorded[step] = batched(params, buffers, x_eval)
        if step == steps:
            break
        # the sum over tasks of each task's mean squared error: task i's gradient is its own
        loss = ((batched(params, buffers, x_support) - y_support) ** 2).mean(dim=(1, 2)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if record_at is not None:
        return recorded
    with torch.no_grad():
        return batched(params, buffers, x_eval)


def pixel_nearest_neighbour(support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Baseline: give each query the support image nearest in raw pixels (Euclidean 1-NN).

    On Lake's 20 within-alphabet runs, Koch et al. (2015, Table 2) list 21.7% accuracy (78.3%
    errors) for this baseline, from Lake et al. (2013). With
    :func:`metalearn_lab.data.lake_runs.score_lake_runs` on the same runs we measure 21.0% accuracy
    (84/400 queries) at 28x28 (LANCZOS, ink = 1) and 19.0% (76/400) at the original 105x105, barely
    4x chance (5%).

    Parameters
    ----------
    support : torch.Tensor
        ``[n_way, C, S, S]`` one image per class.
    query : torch.Tensor
        ``[n_query, C, S, S]``.

    Returns
    -------
    torch.Tensor
        long ``[n_query]``: index of the nearest support image for each query.

    Examples
    --------
    >>> import torch
    >>> support = torch.eye(3).reshape(3, 1, 1, 3)
    >>> pixel_nearest_neighbour(support, support.flip(0)).tolist()
    [2, 1, 0]
    """
    if support.ndim < 2 or query.ndim < 2 or support.shape[1:] != query.shape[1:]:
        raise ValueError(
            f"support and query must be [n, C, S, S] with the same image shape; got "
            f"support {tuple(support.shape)} and query {tuple(query.shape)}"
        )
    distances = torch.cdist(query.flatten(1).double(), support.flatten(1).double())
    return distances.argmin(dim=1)


def _check_regression_sets(x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor, what: str) -> None:
    if (x_support.dim() != 3 or y_support.dim() != 3 or x_query.dim() != 3 or x_support.shape[:2] != y_support.shape[:2]
            or x_query.shape[0] != x_support.shape[0] or x_query.shape[-1] != x_support.shape[-1]):
        raise ValueError(f"{what}: x_support [T, K, D], y_support [T, K, 1] and x_query [T, Q, D] must agree; got "
                         f"{tuple(x_support.shape)}, {tuple(y_support.shape)}, {tuple(x_query.shape)}")
    if x_support.shape[1] < 1:
        raise ValueError(f"{what} needs at least one support point (K >= 1)")


def knn_regression(x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor, k: int) -> torch.Tensor:
    """k-nearest-neighbour regression: each query gets the mean label of its ``k`` nearest support points.

    Non-parametric (Cover & Hart 1967 for the classifier): nothing is fitted, the support set *is*
    the model. ``k`` larger than the support set uses all of it.

    Parameters
    ----------
    x_support : Tensor ``[T, K, D]``;  y_support : Tensor ``[T, K, 1]``;  x_query : Tensor ``[T, Q, D]``
    k : int >= 1

    Returns
    -------
    Tensor ``[T, Q, 1]``

    Examples
    --------
    >>> xs, ys = torch.tensor([[[0.0], [1.0], [5.0]]]), torch.tensor([[[0.0], [2.0], [10.0]]])
    >>> knn_regression(xs, ys, torch.tensor([[[0.4], [4.0]]]), k=2)[0, :, 0].tolist()
    [1.0, 6.0]
    """
    _check_regression_sets(x_support, y_support, x_query, "knn_regression")
    k = min(check_int("k", k), x_support.shape[1])
    distances = torch.cdist(x_query, x_support)  # [T, Q, K]
    nearest = distances.topk(k, dim=-1, largest=False).indices  # [T, Q, k]
    labels = y_support[..., 0][:, None, :].expand(-1, x_query.shape[1], -1)
    return labels.gather(-1, nearest).mean(-1, keepdim=True)


def kernel_regression(x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor, bandwidth: float) -> torch.Tensor:
    r"""Nadaraya-Watson kernel regression: a Gaussian-weighted mean of the support labels.

    :math:`\hat f(x) = \sum_i w_i(x) y_i`, :math:`w_i(x) \propto \exp(-\lVert x - x_i\rVert^2 / (2h^2))`
    (Nadaraya 1964; Watson 1964). A small bandwidth ``h`` approaches 1-nearest-neighbour, a large
    one the mean of all labels. The weights are a softmax, so queries far from every support point
    still get the nearest point's label rather than 0/0.

    Parameters
    ----------
    x_support : Tensor ``[T, K, D]``;  y_support : Tensor ``[T, K, 1]``;  x_query : Tensor ``[T, Q, D]``
    bandwidth : float > 0

    Returns
    -------
    Tensor ``[T, Q, 1]``

    Examples
    --------
    >>> xs, ys = torch.tensor([[[0.0], [2.0]]]), torch.tensor([[[0.0], [4.0]]])
    >>> kernel_regression(xs, ys, torch.tensor([[[1.0], [100.0]]]), bandwidth=0.5)[0, :, 0].tolist()
    [2.0, 4.0]
    """
    _check_regression_sets(x_support, y_support, x_query, "kernel_regression")
    h = check_float("bandwidth", bandwidth, low=0, low_open=True)
    weights = torch.softmax(-torch.cdist(x_query, x_support) ** 2 / (2 * h * h), dim=-1)  # [T, Q, K]
    return weights @ y_support
