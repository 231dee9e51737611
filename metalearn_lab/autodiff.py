r"""Derivative tools for checking gradients by running code.

Hessian-vector products without the Hessian, central finite differences, a comparison of two
gradients (cosine and relative error), and the memory autograd keeps for a backward pass. Lesson
``maml_math`` uses them to verify MAML's meta-gradient :math:`(I - \alpha \nabla^2 \mathcal{L}_{\text{support}})\,\nabla\mathcal{L}_{\text{query}}(\theta')`
and to measure what its second-order term costs; they work for any scalar function of a
parameter dict ``{name: tensor}``.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch.func import grad

from metalearn_lab.validation import check_float, check_int

Params = dict[str, torch.Tensor]


def hessian_vector_product(
    f: Callable[[Params], torch.Tensor], params: Mapping[str, torch.Tensor], v: Mapping[str, torch.Tensor]
) -> Params:
    r"""The Hessian of a scalar function of a parameter dict times a vector: :math:`\nabla^2 f(\theta)\, v`.

    Reverse-over-reverse: the vector-Jacobian product of :math:`\nabla f` with ``v``
    (:func:`torch.func.vjp` of :func:`torch.func.grad`, the same as a double backward), which is
    :math:`H^\top v = H v` because the Hessian is symmetric. It costs about as much as two or three
    gradients and never builds the :math:`P \times P` Hessian. (Forward-over-reverse,
    ``jvp(grad(f))``, is the other classic; with ``mse_loss`` or stacked ``nn.Linear`` layers it
    still raises "ZeroTensors are immutable" in PyTorch 2.13, pytorch/pytorch issues #112013 and
    #123996, so we do not use it here.)

    Parameters
    ----------
    f : callable ``params -> scalar tensor``
    params : dict name → Tensor, the point :math:`\theta`
    v : dict name → Tensor, same keys and shapes as ``params``

    Returns
    -------
    dict name → Tensor, :math:`H v` with the shapes of ``params``.

    Examples
    --------
    >>> A = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    >>> f = lambda p: 0.5 * p["w"] @ A @ p["w"]          # Hessian = A
    >>> hessian_vector_product(f, {"w": torch.zeros(2)}, {"w": torch.tensor([1.0, 0.0])})["w"]
    tensor([2., 1.])
    """
    from torch.func import vjp

    if set(v) != set(params):
        raise ValueError(f"v must have the keys of params; missing {sorted(set(params) - set(v))}, "
                         f"unexpected {sorted(set(v) - set(params))}")
    primals = {k: params[k] for k in params}
    tangents = {k: v[k].to(params[k].dtype) for k in params}
    _, pullback = vjp(grad(f), primals)
    (hv,) = pullback(tangents)
    return hv


def finite_difference_gradient(
    f: Callable[[Params], torch.Tensor], params: Mapping[str, torch.Tensor], eps: float = 1e-6
) -> Params:
    r"""Central finite differences of a scalar function, one coordinate at a time.

    :math:`\partial f/\partial\theta_j \approx (f(\theta + \varepsilon e_j) - f(\theta - \varepsilon e_j)) / 2\varepsilon`,
    with error :math:`O(\varepsilon^2)`. Two calls of ``f`` per number in ``params``: use it on
    tiny models in float64 (the reference a gradient check compares autograd with).

    Examples
    --------
    >>> f = lambda p: (p["w"] ** 3).sum()
    >>> g = finite_difference_gradient(f, {"w": torch.tensor([1.0, 2.0], dtype=torch.float64)})
    >>> torch.allclose(g["w"], torch.tensor([3.0, 12.0], dtype=torch.float64))
    True
    """
    eps = check_float("eps", eps, low=0, low_open=True)  # e.g. 1e-6 in float64
    base = {k: v.detach().clone() for k, v in params.items()}
    out: Params = {}
    with torch.no_grad():
        for name, value in base.items():
            g = torch.zeros_like(value)
            flat, gflat = value.view(-1), g.view(-1)
            for j in range(flat.numel()):
                old = float(flat[j])
                flat[j] = old + eps
                up = float(f(base))
                flat[j] = old - eps
                down = float(f(base))
                flat[j] = old
                gflat[j] = (up - down) / (2 * eps)
            out[name] = g
    return out


def compare_gradients(reference: Mapping[str, torch.Tensor] | torch.Tensor,
                      other: Mapping[str, torch.Tensor] | torch.Tensor) -> tuple[float, float]:
    r"""Cosine similarity and relative error of ``other`` against ``reference``, over all entries.

    Returns ``(cos, rel)`` with :math:`\cos = \langle r, o\rangle / (\lVert r\rVert \lVert o\rVert)`
    and :math:`\text{rel} = \lVert o - r\rVert / \lVert r\rVert`.

    >>> compare_gradients({"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([1.0, 1.0])})
    (0.7071067690849304, 1.0)
    """
    def flat(g):
        if isinstance(g, torch.Tensor):
            return g.detach().reshape(-1)
        return torch.cat([g[k].detach().reshape(-1) for k in sorted(g)])

    if not isinstance(reference, torch.Tensor) and not isinstance(other, torch.Tensor) and set(reference) != set(other):
        raise ValueError(f"gradients must have the same keys, got {sorted(reference)} and {sorted(other)}")
    r, o = flat(reference), flat(other)
    if r.shape != o.shape:
        raise ValueError(f"gradients must have the same number of entries, got {r.numel()} and {o.numel()}")
    cos = float(torch.dot(r, o) / (r.norm() * o.norm()).clamp_min(torch.finfo(r.dtype).tiny))
    rel = float((o - r).norm() / r.norm().clamp_min(torch.finfo(r.dtype).tiny))
    return cos, rel


def peak_saved_tensor_bytes(fn: Callable[[], object]) -> tuple[object, int]:
    r"""Run ``fn()`` and measure the peak memory autograd holds for the backward pass, in bytes.

    Every tensor that an operation saves for its backward goes through
    :func:`torch.autograd.graph.saved_tensors_hooks`; we count the bytes of its storage while it
    is alive (a storage shared by several saved tensors counts once; it is released when the
    graph node that saved it is freed, e.g. after an inner ``torch.autograd.grad`` without
    ``create_graph``). The peak of that live total is the memory the meta-gradient's graph
    needs on top of the model and the data, which is what grows with the inner steps.

    Returns ``(fn's result, peak bytes)``.

    >>> x = torch.ones(1000, requires_grad=True)
    >>> _, peak = peak_saved_tensor_bytes(lambda: (x.exp() * 2).sum())
    >>> peak  # exp saves its 1000-float result (4000 bytes)
    4000
    """
    live: dict[tuple[int, int], int] = {}
    total = [0, 0]  # live bytes, peak bytes

    class _Saved:
        __slots__ = ("tensor", "key")

        def __init__(self, tensor, key):
            self.tensor, self.key = tensor, key

        def __del__(self):
            count = live.get(self.key, 0) - 1
            if count <= 0:
                live.pop(self.key, None)
                total[0] -= self.key[1]
            else:
                live[self.key] = count

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in live:
            total[0] += key[1]
            total[1] = max(total[1], total[0])
        live[key] = live.get(key, 0) + 1
        return _Saved(tensor, key)

    def unpack(saved):
        return saved.tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        result = fn()
    return result, total[1]


def step_cost(fn: Callable[[], object], *, repeats: int = 3, threads: int | None = None) -> dict[str, float]:
    """Time and autograd memory of one call of ``fn``: the best wall time of ``repeats`` runs (seconds)
    and the peak bytes saved for backward (:func:`peak_saved_tensor_bytes`, as ``saved_mb``), with
    torch limited to ``threads`` threads meanwhile (``None``: as it is). The measuring harness of
    :func:`metalearn_lab.maml.meta_gradient_cost` and :func:`metalearn_lab.reptile.reptile_step_cost`.

    >>> sorted(step_cost(lambda: torch.ones(3, requires_grad=True).exp().sum(), repeats=1))
    ['saved_mb', 'seconds']
    """
    import math
    import time

    repeats = check_int("repeats", repeats, minimum=1)
    threads = None if threads is None else check_int("threads", threads, minimum=1)
    best, peak = math.inf, 0
    previous = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        for _ in range(repeats):
            start = time.perf_counter()
            _, saved = peak_saved_tensor_bytes(fn)
            best = min(best, time.perf_counter() - start)
            peak = max(peak, saved)
    finally:
        torch.set_num_threads(previous)
    return {"seconds": best, "saved_mb": peak / 2**20}

