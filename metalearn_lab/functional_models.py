r"""The networks of :mod:`metalearn_lab.models` as pure functions of a parameter dict, written for speed.

MAML's inner loop evaluates the network as a function of its weights, ``forward(params, buffers, x)``.
:func:`torch.func.functional_call` does that for any ``nn.Module``; :func:`functional_forward`
returns it, except for the MAML Conv4 (:class:`~metalearn_lab.models.Conv4` with
:class:`~metalearn_lab.models.TaskBatchNorm2d`), where it returns :func:`conv4_forward`: the same
function, computed with fewer passes over the activations.

Why it pays. Profiling one second-order MAML step (Conv4, 32 tasks of 5-way 1-shot, 5 inner steps,
one CPU thread; ``benchmarks/README.md``) shows little time in Python or dispatch: about 40% goes
to convolutions and about 45% to element-wise kernels, most of them the batch norm's autograd
graph taken twice (inner gradient, then the meta-gradient through it). Two exact rewrites cut the
element-wise work by about 40%:

* batch norm as :math:`y = (x - \mu)\cdot(\gamma / \sqrt{\sigma^2 + \epsilon}) + \beta`, with the
  per-channel factor computed once, instead of normalising the whole map and then scaling it
  (fewer full-size tensors in the forward pass, so fewer in each backward pass);
* max-pool before ReLU: :math:`\max_i \operatorname{relu}(x_i) = \operatorname{relu}(\max_i x_i)`
  because ReLU is monotone, and the gradients agree too (a window whose maximum is negative gets
  zero gradient either way), but the ReLU and its derivatives then touch a quarter of the numbers.

The result equals ``functional_call(model, ...)`` to rounding (float64: 1e-14;
``tests/test_functional_models.py``). Under :func:`torch.func.vmap` over tasks each convolution
with per-task weights becomes one grouped convolution (groups = tasks), which PyTorch does well.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metalearn_lab.models import Conv4, TaskBatchNorm2d
from metalearn_lab.validation import check_float, check_int

Params = Mapping[str, torch.Tensor]
Forward = Callable[[Params, Params, torch.Tensor], torch.Tensor]


def task_batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    r"""Batch norm with the statistics of ``x`` itself, as :class:`~metalearn_lab.models.TaskBatchNorm2d`.

    :math:`y = (x - \mu)\,\gamma / \sqrt{\sigma^2 + \epsilon} + \beta` with the per-channel mean
    :math:`\mu` and biased variance :math:`\sigma^2` over the batch and both image axes.

    Parameters
    ----------
    x : Tensor ``[batch, channels, height, width]``
    weight, bias : Tensor ``[channels]``, :math:`\gamma` and :math:`\beta`
    eps : float, added to the variance

    Returns
    -------
    Tensor shaped like ``x``.

    >>> x = torch.randn(4, 3, 5, 5)
    >>> bn = TaskBatchNorm2d(3)
    >>> torch.allclose(task_batch_norm(x, bn.weight, bn.bias), bn(x), atol=1e-6)
    True
    """
    eps = check_float("eps", eps, low=0, low_open=True)
    if x.dim() != 4:
        raise ValueError(f"task_batch_norm expects x shaped [batch, channels, height, width], got {tuple(x.shape)}")
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(dim=(0, 2, 3), keepdim=True)
    scale = weight.view(1, -1, 1, 1) * torch.rsqrt(var + eps)
    return torch.addcmul(bias.view(1, -1, 1, 1), centred, scale)


def conv4_forward(params: Params, x: torch.Tensor, *, blocks: int = 4, eps: float = 1e-5,
                  head: bool = True) -> torch.Tensor:
    """The MAML Conv4 (``Conv4(out_features=n_way, track_running_stats=False)``) as a pure function.

    Each block: 3×3 convolution (padding 1), :func:`task_batch_norm`, 2×2 max-pool, ReLU (the
    pool comes first: the same numbers as ReLU then pool, for a quarter of the ReLU work); then
    the flattened features and, with ``head``, the linear layer.

    Parameters
    ----------
    params : dict name → Tensor
        The names of ``Conv4.named_parameters()``: ``features.{i}.0.weight``/``bias`` (conv),
        ``features.{i}.1.weight``/``bias`` (batch norm), ``head.weight``/``bias``.
    x : Tensor ``[batch, channels, height, width]``

    Returns
    -------
    Tensor ``[batch, n_way]`` (``[batch, features]`` without ``head``).

    >>> model = Conv4(out_features=5, track_running_stats=False)
    >>> x = torch.randn(3, 1, 28, 28)
    >>> torch.allclose(conv4_forward(dict(model.named_parameters()), x), model(x), atol=1e-5)
    True
    """
    blocks = check_int("blocks", blocks, minimum=1, maximum=4)  # Conv4 has four blocks
    eps = check_float("eps", eps, low=0, low_open=True)
    if x.dim() != 4:
        raise ValueError(f"Conv4 expects images shaped [batch, channels, height, width], got {tuple(x.shape)}")
    for i in range(blocks):
        x = F.conv2d(x, params[f"features.{i}.0.weight"], params[f"features.{i}.0.bias"], padding=1)
        x = task_batch_norm(x, params[f"features.{i}.1.weight"], params[f"features.{i}.1.bias"], eps)
        x = F.relu(F.max_pool2d(x, 2))
    x = x.flatten(1)
    return F.linear(x, params["head.weight"], params["head.bias"]) if head else x


def _is_maml_conv4(model: nn.Module) -> bool:
    """Whether ``model`` is exactly the Conv4 that :func:`conv4_forward` computes (no subclass, no hooks)."""
    if type(model) is not Conv4 or not isinstance(model.features, nn.Sequential):
        return False
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return False
    if model.head is not None and type(model.head) is not nn.Linear:
        return False
    eps = None
    for block in model.features:
        if type(block) is not nn.Sequential or len(block) != 4:
            return False
        conv, norm, relu, pool = block
        if not (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
                and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                and conv.padding_mode == "zeros" and conv.bias is not None):
            return False
        if type(norm) is not TaskBatchNorm2d or (eps is not None and norm.eps != eps):
            return False
        eps = norm.eps
        if type(relu) is not nn.ReLU:
            return False
        if not (type(pool) is nn.MaxPool2d and pool.kernel_size in (2, (2, 2)) and pool.stride in (2, (2, 2))
                and pool.padding in (0, (0, 0)) and pool.dilation in (1, (1, 1)) and not pool.ceil_mode
                and not pool.return_indices):
            return False
    return eps is not None


def functional_forward(model: nn.Module) -> Forward:
    """A pure ``forward(params, buffers, x)`` equal to ``functional_call(model, (params, buffers), (x,))``.

    For the MAML Conv4 it is :func:`conv4_forward` (faster, same numbers to rounding); for every
    other model, :func:`torch.func.functional_call`. Parameters missing from ``params`` are taken
    from ``model``, as ``functional_call`` does.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    callable ``(params, buffers, x) -> prediction``

    >>> from metalearn_lab.models import SineMLP
    >>> model = Conv4(out_features=5, track_running_stats=False)
    >>> functional_forward(model).__name__, functional_forward(SineMLP()).__name__
    ('conv4_forward', 'module_forward')
    """
    if _is_maml_conv4(model):
        own = dict(model.named_parameters())
        eps = model.features[0][1].eps
        blocks, head = len(model.features), model.head is not None

        def forward(params, buffers, x):
            return conv4_forward({**own, **params} if params.keys() != own.keys() else params, x,
                                 blocks=blocks, eps=eps, head=head)

        forward.__name__ = "conv4_forward"
        return forward

    def forward(params, buffers, x):
        return functional_call(model, (dict(params), dict(buffers)), (x,))

    forward.__name__ = "module_forward"
    return forward


def has_fast_forward(model: nn.Module) -> bool:
    """Whether :func:`functional_forward` has a hand-written fast form for ``model`` (the MAML Conv4).

    >>> has_fast_forward(Conv4(out_features=5, track_running_stats=False)), has_fast_forward(Conv4())
    (True, False)
    """
    return _is_maml_conv4(model)
