"""The small networks of the lessons.

All of them work with :func:`torch.func.functional_call` and a parameter dict
(``dict(model.named_parameters())``), which is how :mod:`metalearn_lab.maml` adapts them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from metalearn_lab.validation import check_float, check_int


class SineMLP(nn.Module):
    """The 1-40-40-1 ReLU regressor of the MAML sinusoid experiment (Finn et al. 2017).

    Input ``[..., 1]`` → output ``[..., 1]``.

    >>> SineMLP()(torch.zeros(5, 1)).shape
    torch.Size([5, 1])
    """

    def __init__(self, hidden: int = 40, layers: int = 2) -> None:
        super().__init__()
        hidden, layers = check_int("hidden", hidden), check_int("layers", layers)
        blocks: list[nn.Module] = []
        width = 1
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TaskBatchNorm2d(nn.Module):
    """BatchNorm that always normalises with the statistics of the batch in front of it.

    Numerically the same as ``nn.BatchNorm2d(c, track_running_stats=False)``, with the same
    parameter names, but written with plain tensor operations: PyTorch 2.13's fused batch-norm
    kernel gives wrong second derivatives under :func:`torch.func.vmap` (our test
    ``test_vmap_matches_loop_with_batchnorm`` shows it), and MAML needs exactly those.

    >>> bn = TaskBatchNorm2d(3)
    >>> x = torch.randn(4, 3, 5, 5)
    >>> torch.allclose(bn(x), nn.BatchNorm2d(3, track_running_stats=False)(x), atol=1e-5)
    True
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        num_features = check_int("num_features", num_features)
        self.eps = check_float("eps", eps, low=0, low_open=True)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


DOWNSAMPLING = ("maxpool", "stride")


def conv_block(in_channels: int, out_channels: int, *, track_running_stats: bool = True,
               downsample: str = "maxpool") -> nn.Sequential:
    """3×3 convolution (64 filters), BatchNorm, ReLU, then halve the image: one block of Conv4.

    ``track_running_stats=False`` uses :class:`TaskBatchNorm2d` (batch statistics only, for MAML).
    ``downsample="maxpool"`` halves with a 2×2 max-pool after the ReLU (Vinyals et al. 2016, Snell
    et al. 2017); ``"stride"`` uses a stride-2 convolution instead and no pooling, as Finn et al.'s
    and Nichol et al.'s Omniglot code do (about four times fewer multiply-adds).
    """
    in_channels, out_channels = check_int("in_channels", in_channels), check_int("out_channels", out_channels)
    if downsample not in DOWNSAMPLING:
        raise ValueError(f"downsample must be one of {DOWNSAMPLING}, got {downsample!r}")
    norm = nn.BatchNorm2d(out_channels) if track_running_stats else TaskBatchNorm2d(out_channels)
    if downsample == "stride":
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1), norm, nn.ReLU())
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        norm,
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


def conv4_side(image_size: int, downsample: str = "maxpool") -> int:
    """Side of Conv4's last feature map: 28 → 1 with max-pooling (28, 14, 7, 3, 1), 28 → 2 with strides (14, 7, 4, 2).

    >>> conv4_side(28), conv4_side(28, "stride"), conv4_side(84)
    (1, 2, 5)
    """
    if downsample not in DOWNSAMPLING:
        raise ValueError(f"downsample must be one of {DOWNSAMPLING}, got {downsample!r}")
    # four halvings must leave at least one pixel: 16 → 1 with max-pooling (which floors), 1 → 1 with strides
    side = check_int("image_size", image_size, minimum=16 if downsample == "maxpool" else 1)
    for _ in range(4):
        side = side // 2 if downsample == "maxpool" else (side + 1) // 2
    return side


class Conv4(nn.Module):
    """Four conv blocks, then (optionally) a linear head: the standard few-shot backbone.

    Used by MAML (Finn et al. 2017), ProtoNets (Snell et al. 2017) and Matching Nets. On 28×28
    Omniglot images the feature map is 64×1×1, so the embedding has 64 numbers.

    Parameters
    ----------
    out_features : int or None
        Size of the linear head (``n_way`` for MAML). ``None`` returns the embedding.
    track_running_stats : bool
        ``False`` for MAML: BatchNorm always normalises with the statistics of the batch it sees
        (as in the reference MAML code), so a functional call never writes running averages.
    downsample : {"maxpool", "stride"}
        How each block halves the image (see :func:`conv_block`). With ``"stride"`` a 28×28 image
        ends as a 2×2×64 map, flattened to 256 numbers, as in Nichol et al.'s (2018) Omniglot model.
    image_size : int
        Input side, used only to size the linear head (28 for Omniglot).

    >>> Conv4(out_features=5, track_running_stats=False)(torch.zeros(3, 1, 28, 28)).shape
    torch.Size([3, 5])
    >>> Conv4()(torch.zeros(3, 1, 28, 28)).shape
    torch.Size([3, 64])
    >>> Conv4(out_features=5, downsample="stride").embed(torch.zeros(3, 1, 28, 28)).shape
    torch.Size([3, 256])
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden: int = 64,
        out_features: int | None = None,
        *,
        track_running_stats: bool = True,
        downsample: str = "maxpool",
        image_size: int = 28,
    ) -> None:
        super().__init__()
        in_channels, hidden = check_int("in_channels", in_channels), check_int("hidden", hidden)
        out_features = None if out_features is None else check_int("out_features", out_features)
        block = dict(track_running_stats=track_running_stats, downsample=downsample)
        self.features = nn.Sequential(
            conv_block(in_channels, hidden, **block),
            *[conv_block(hidden, hidden, **block) for _ in range(3)],
        )
        side = conv4_side(image_size, downsample)  # checks image_size
        self.head = nn.Linear(hidden * side * side, out_features) if out_features else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` → features ``[B, hidden * h * w]`` (64 for 28×28 inputs)."""
        if x.dim() != 4:
            raise ValueError(f"Conv4 expects images shaped [batch, channels, height, width], got {tuple(x.shape)}")
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        return self.head(z) if self.head is not None else z


class EmbeddingNet(nn.Module):
    """Conv4 features followed by a linear projection: the twin of a Siamese network.

    >>> EmbeddingNet(embedding_dim=16)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 16])
    """

    def __init__(self, embedding_dim: int = 64, in_channels: int = 1, hidden: int = 64, image_size: int = 28) -> None:
        super().__init__()
        embedding_dim = check_int("embedding_dim", embedding_dim)
        image_size = check_int("image_size", image_size, minimum=16)  # four 2x2 max-pools leave >= 1 pixel
        self.backbone = Conv4(in_channels, hidden)
        side = image_size
        for _ in range(4):
            side //= 2
        self.project = nn.Linear(hidden * side * side, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.backbone.embed(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in ``model``.

    >>> count_parameters(SineMLP())
    1761
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def uses_batch_statistics(model: nn.Module) -> bool:
    """Whether ``model``, in its current train/eval modes, normalises with the statistics of the batch it sees.

    True for :class:`TaskBatchNorm2d` (always) and for PyTorch's batch norm in training mode or
    without running statistics. Evaluated that way, a query's prediction depends on the other
    queries of its batch: the evaluation is *transductive* (Nichol et al. 2018, §6; Finn et al.'s
    MAML code). Layer, group and instance norm work on each example alone and are not counted.

    >>> uses_batch_statistics(Conv4(track_running_stats=False)), uses_batch_statistics(Conv4().eval())
    (True, False)
    >>> uses_batch_statistics(Conv4().train()), uses_batch_statistics(SineMLP())
    (True, False)
    """
    for module in model.modules():
        if isinstance(module, TaskBatchNorm2d):
            return True
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and (module.training or module.running_mean is None):
            return True
    return False


@contextlib.contextmanager
def unchanged(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block that must leave ``model`` as it was: its buffers and train/eval modes are restored after it.

    Evaluation code uses it so that a forward pass in training mode (batch norm with running
    statistics updates them in place) never writes the test data's statistics into the model.
    Parameters are not copied: evaluation does not write them.

    >>> net = Conv4().train()
    >>> before = net.features[0][1].running_mean.clone()
    >>> with unchanged(net):
    ...     _ = net.eval().train()(torch.rand(4, 1, 28, 28))
    >>> torch.equal(net.features[0][1].running_mean, before), net.training
    (True, True)
    """
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    modes = {module: module.training for module in model.modules()}
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in buffers:
                    buffer.copy_(buffers[name])
        for module, training in modes.items():
            module.training = training
