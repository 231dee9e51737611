r"""Checks that find the usual bugs of meta-learning code by running it: a debugging checklist.

Meta-learning code fails quietly: a meta-gradient that silently drops its second-order term still
trains, an evaluation that writes batch-norm statistics into the model still reports a number.
Each function here runs the code under test on a small input and returns a :class:`Diagnosis`
(passed or not, and what was measured), never raising for a failed check:

* :func:`check_gradient` — does a function's gradient match central finite differences of the
  loss it returns, along random directions? (the first-order trap: ``create_graph=False``, a
  ``.detach()``, or inner steps written into the model's weights, lesson ``maml_math``);
* :func:`check_leaves_model_unchanged` — does a call leave every weight, buffer and train/eval
  mode as it found them? (running statistics written during evaluation; inner steps applied in place);
* :func:`check_queries_independent` — is a query's prediction the same whatever the other
  queries are? (transductive evaluation through batch statistics, Nichol et al. 2018, §6);
* :func:`check_no_label_leak` — do the predictions ignore the query labels? (query data in the
  inner loop).

Sources: gradient checking by finite differences is the classic test of back-propagation code
(e.g. Goodfellow, Bengio and Courville 2016, *Deep Learning*, §11.5); the batch-norm pitfalls of
MAML are discussed by Nichol et al. (2018, §6, "transduction") and Antoniou et al. (2019, §3.1-3.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from metalearn_lab.validation import check_float, check_int

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Diagnosis:
    """The outcome of one check: its name, whether it passed, and what was measured."""

    check: str
    passed: bool
    detail: str

    @property
    def line(self) -> str:
        """``"✓ name: detail"`` or ``"✗ name: detail"``."""
        return f"{'✓' if self.passed else '✗'} {self.check}: {self.detail}"


def _state(model: torch.nn.Module, buffers: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, bool]]:
    source = model.state_dict(keep_vars=True) if buffers else dict(model.named_parameters())
    tensors = {name: t.detach().clone() for name, t in source.items()}
    modes = {name or "(model)": m.training for name, m in model.named_modules()}
    return tensors, modes


def check_leaves_model_unchanged(fn: Callable[..., Any], model: torch.nn.Module, *args: Any,
                                 name: str = "leaves the model unchanged", buffers: bool = True,
                                 **kwargs: Any) -> Diagnosis:
    """Call ``fn(model, *args, **kwargs)`` and report any weight, buffer or train/eval mode it changed.

    Evaluation must not write into the model: a batch-norm layer in training mode updates its
    running statistics with every forward pass, so an evaluation run in training mode writes the
    test data's statistics into the model, and the next evaluation sees them. An inner loop that
    applies its steps to the model's own weights (``optimizer.step()``) destroys the initialisation
    MAML is learning.

    ``buffers=False`` checks the weights only (a training step may update batch-norm running
    statistics, but must not move the weights it differentiates).

    Returns
    -------
    Diagnosis
        ``passed`` if every tensor of ``model.state_dict()`` (every weight, with ``buffers=False``) is bit-for-bit the same afterwards and
        every module is in the mode it was in; ``detail`` names what changed. The model is left as
        ``fn`` left it.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    >>> def evaluate_in_train_mode(model, x):
    ...     return model.train()(x)
    >>> check_leaves_model_unchanged(evaluate_in_train_mode, net, torch.randn(8, 3)).passed
    False
    >>> def evaluate_in_eval_mode(model, x):
    ...     was = model.training
    ...     out = model.eval()(x)
    ...     model.train(was)
    ...     return out
    >>> check_leaves_model_unchanged(evaluate_in_eval_mode, net, torch.randn(8, 3)).line
    '✓ leaves the model unchanged: every weight, buffer and train/eval mode as before'
    """
    tensors, modes = _state(model, buffers)
    fn(model, *args, **kwargs)
    after, modes_after = _state(model, buffers)
    changed = [k for k, v in tensors.items() if k not in after or after[k].shape != v.shape or not torch.equal(after[k], v)]
    switched = [k for k, v in modes.items() if modes_after.get(k) != v] if buffers else []
    if not changed and not switched:
        return Diagnosis(name, True, "every weight, buffer and train/eval mode as before" if buffers else "every weight as before")
    parts = []
    if changed:
        kinds = {"weights" if k in dict(model.named_parameters()) else "buffers" for k in changed}
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        parts.append(f"changed {' and '.join(sorted(kinds))}: {shown}")
    if switched:
        parts.append(f"left {len(switched)} module(s) in another train/eval mode (e.g. {switched[0]})")
    return Diagnosis(name, False, "; ".join(parts))


def check_gradient(loss_and_gradient: Callable[[], tuple[torch.Tensor, Params]], params: Params, *,
                   directions: int = 3, eps: float = 1e-6, tolerance: float = 1e-4, seed: int = 0,
                   name: str = "gradient check") -> Diagnosis:
    r"""Compare the gradient a function returns with central finite differences of the loss it returns.

    ``loss_and_gradient()`` computes ``(loss, {name: gradient})`` at the current values of
    ``params`` (tensors it reads, e.g. ``dict(model.named_parameters())``). For ``directions``
    random unit directions :math:`v` the check compares :math:`\langle g, v\rangle` with
    :math:`(L(\theta + \epsilon v) - L(\theta - \epsilon v)) / 2\epsilon`, moving ``params`` in place
    and restoring them. Use float64 (``model.double()``): in float32 rounding hides errors below
    about :math:`10^{-3}`.

    A MAML meta-gradient that lost its second-order term (``create_graph=False``, a ``.detach()``
    or inner steps written into the weights) fails this check: its forward loss is still the MAML
    loss, but its gradient is the first-order one.

    Returns
    -------
    Diagnosis
        ``passed`` if the largest relative error over the directions is below ``tolerance``.

    Raises
    ------
    ValueError
        If the returned gradient lacks a parameter, or ``directions``/``eps``/``tolerance`` are invalid.

    Examples
    --------
    >>> w = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> right = lambda: ((w ** 3).sum(), {"w": 3 * w ** 2})
    >>> wrong = lambda: ((w ** 3).sum(), {"w": 2 * w})
    >>> check_gradient(right, {"w": w}).passed, check_gradient(wrong, {"w": w}).passed
    (True, False)
    """
    directions = check_int("directions", directions)
    eps = check_float("eps", eps, low=0, low_open=True)
    tolerance = check_float("tolerance", tolerance, low=0, low_open=True)
    seed = check_int("seed", seed, minimum=0)
    _, gradient = loss_and_gradient()
    missing = sorted(set(params) - set(gradient))
    if missing:
        raise ValueError(f"the gradient has no entry for {missing}; it must have one tensor per parameter")
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _ in range(directions):
        v = {k: torch.randn(p.shape, generator=generator, dtype=p.dtype) for k, p in params.items()}
        norm = torch.sqrt(sum((t ** 2).sum() for t in v.values()))
        v = {k: t / norm for k, t in v.items()}
        analytic = float(sum((gradient[k].detach() * v[k]).sum() for k in params))
        losses = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for k, p in params.items():
                    p.add_(sign * eps * v[k])
            losses.append(float(torch.as_tensor(loss_and_gradient()[0]).detach()))
            with torch.no_grad():
                for k, p in params.items():
                    p.sub_(sign * eps * v[k])
        numeric = (losses[0] - losses[1]) / (2 * eps)
        worst = max(worst, abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-12))
    if worst < tolerance:
        return Diagnosis(name, True, f"gradient matches finite differences along {directions} directions "
                                     f"(largest relative error {worst:.1e})")
    return Diagnosis(name, False, f"the gradient does not match finite differences of the loss (largest relative "
                                  f"error {worst:.1e} along {directions} directions): part of the computation is "
                                  "not differentiated (create_graph=False? a .detach()? an in-place update?)")


def _first_query(predictions: Any) -> torch.Tensor:
    out = torch.as_tensor(predictions).detach()
    return out[0] if out.dim() else out


def check_queries_independent(predict: Callable[..., torch.Tensor], model: torch.nn.Module,
                              x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor,
                              y_query: torch.Tensor, *, atol: float = 1e-6, seed: int = 0,
                              name: str = "queries classified independently") -> Diagnosis:
    """Whether the prediction for one query changes when the other queries of the task change.

    ``predict(model, x_support, y_support, x_query, y_query)`` returns the predictions for one
    task's queries, one row per query (``[n_query_total, ...]``). The check predicts twice, the
    second time with every query but the first replaced by noise, and compares the first query's
    prediction. They differ when the queries are normalised together (batch norm with batch
    statistics at test time): a *transductive* evaluation, in which one query's answer depends on
    the others (Nichol et al. 2018, §6; Finn et al.'s MAML code evaluates this way).

    Examples
    --------
    >>> bn = torch.nn.BatchNorm1d(2)
    >>> def predict(model, xs, ys, xq, yq):
    ...     return model(xq)
    >>> xs, ys, xq, yq = torch.randn(4, 2), torch.zeros(4), torch.randn(6, 2), torch.zeros(6)
    >>> check_queries_independent(predict, bn.train(), xs, ys, xq, yq).passed
    False
    >>> check_queries_independent(predict, bn.eval(), xs, ys, xq, yq).passed
    True
    """
    atol = check_float("atol", atol, low=0)
    seed = check_int("seed", seed, minimum=0)
    if x_query.shape[0] < 2:
        raise ValueError(f"x_query needs at least 2 queries to compare, got {x_query.shape[0]}")
    generator = torch.Generator().manual_seed(seed)
    first = _first_query(predict(model, x_support, y_support, x_query, y_query))
    others = x_query.clone()
    others[1:] = torch.rand(others[1:].shape, generator=generator, dtype=x_query.dtype) * 2 * x_query.std() + x_query.mean()
    again = _first_query(predict(model, x_support, y_support, others, y_query))
    gap = float((first.double() - again.double()).abs().max())
    if gap <= atol:
        return Diagnosis(name, True, f"query 1's prediction does not depend on the other queries (difference {gap:.1e})")
    return Diagnosis(name, False, f"query 1's prediction moved by {gap:.2g} when the other queries changed: the "
                                  "evaluation is transductive (batch statistics of the query batch?)")


def check_no_label_leak(predict: Callable[..., torch.Tensor], model: torch.nn.Module,
                        x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor,
                        y_query: torch.Tensor, *, atol: float = 1e-6, name: str = "query labels unused") -> Diagnosis:
    """Whether the predictions for a task's queries change when the query labels change.

    ``predict`` is called as in :func:`check_queries_independent`, once with the true query
    labels and once with them shifted by one class (``(y + 1) mod n``) or, for regression,
    negated. Predictions that depend on the labels they are scored against mean the query set
    leaked into adaptation (e.g. the inner loop ran on support and query points together).

    Examples
    --------
    >>> def cheat(model, xs, ys, xq, yq):
    ...     return torch.nn.functional.one_hot(yq, 3).double()
    >>> def honest(model, xs, ys, xq, yq):
    ...     return torch.zeros(len(xq), 3)
    >>> args = (None, torch.randn(3, 2), torch.arange(3), torch.randn(3, 2), torch.arange(3))
    >>> check_no_label_leak(cheat, *args).passed, check_no_label_leak(honest, *args).passed
    (False, True)
    """
    atol = check_float("atol", atol, low=0)
    if y_query.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        n_classes = int(max(int(y_query.max()), int(y_support.max())) + 1)
        other = (y_query + 1) % max(n_classes, 2)
    else:
        other = -y_query
    first = torch.as_tensor(predict(model, x_support, y_support, x_query, y_query)).detach()
    again = torch.as_tensor(predict(model, x_support, y_support, x_query, other)).detach()
    gap = float((first.double() - again.double()).abs().max())
    if gap <= atol:
        return Diagnosis(name, True, f"predictions do not depend on the query labels (difference {gap:.1e})")
    return Diagnosis(name, False, f"predictions moved by {gap:.2g} when only the query labels changed: the query "
                                  "set leaks into adaptation (the inner loop must see the support set only)")
