"""Where the time of one MAML meta-gradient goes, operation by operation: vmap against the loop.

One meta-gradient (forward through the inner loop, backward through it) of Conv4 on 32 random
5-way 1-shot tasks, timed per ATen operation with a ``TorchDispatchMode`` that wraps every
operation in a timer (CPU time of the thread, so other jobs on a shared machine do not count;
on the CPU the backward pass runs in the calling thread). It sees the operations after ``vmap`` has batched them (one grouped
convolution for all tasks, say), the element counts they touched, and how many calls there were,
for three paths:

* ``vmap``: ``meta_loss(vectorize=True)`` with the hand-written ``conv4_forward`` (in chunks of
  ``VMAP_CPU_CHUNK_SIZE`` tasks on the CPU);
* ``vmap, module``: the vmap path through ``functional_call``, all tasks at once (as before);
* ``loop``: one task after the other.

``torch.profiler`` is not used: with ``record_shapes`` it made the vmap step about six times
slower (34 s instead of 5 s on one thread here) while the loop's stayed the same, so its shares
were not trustworthy. The timer adds a few microseconds per operation, which inflates the loop
(about 150,000 operations) more than vmap (about 5,000): compare the "ops" row with the plain
time printed above the table.

Usage::

    python benchmarks/profile_conv4_step.py --threads 1 [--inner-steps 5] [--first-order]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from maml_throughput import conv_workload, load_average, machine_description, module_twin  # noqa: E402

from metalearn_lab.maml import meta_loss  # noqa: E402

VIEWS = {"view", "reshape", "expand", "unsqueeze", "squeeze", "permute", "transpose", "t", "_unsafe_view", "slice",
         "select", "as_strided", "detach", "alias", "split", "unbind", "split_with_sizes", "_reshape_alias"}
MEMORY = {"copy_", "fill_", "empty", "zeros", "zero_", "new_zeros", "clone", "empty_like", "zeros_like", "ones_like",
          "new_empty", "new_empty_strided", "empty_strided", "cat", "stack"}


def kind(name: str) -> str:
    if "convolution" in name:
        return "convolution"
    if "max_pool" in name:
        return "max-pool"
    if name in ("sum", "mean", "var_mean", "amax"):
        return "reductions"
    if name in VIEWS:
        return "views"
    if name in MEMORY:
        return "copies, fills, allocations"
    return "element-wise"


class OpTimer(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self.elements = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.thread_time()  # CPU time of this thread: other jobs on a shared machine do not count
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        self.seconds[name] += time.thread_time() - start
        self.calls[name] += 1
        if isinstance(out, torch.Tensor):
            self.elements[name] += out.numel()
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--inner-steps", type=int, default=5)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--top", type=int, default=8, help="how many single operations to list per path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _, model, batch, loss_fn, inner_lr = conv_workload(args.tasks, "cpu")
    twin = module_twin(model)
    print(f"# one meta-gradient, Conv4, {args.tasks} tasks 5-way 1-shot (1 query per class), {args.inner_steps} inner "
          f"steps, {'first' if args.first_order else 'second'} order; {machine_description(torch.device('cpu'))}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {load_average()}")

    def gradient(m, vectorize):
        params = dict(m.named_parameters())
        loss, _ = meta_loss(m, params, batch, loss_fn, inner_steps=args.inner_steps, inner_lr=inner_lr,
                            first_order=args.first_order, vectorize=vectorize)
        return torch.autograd.grad(loss, list(params.values()))

    paths = {"vmap": (model, True), "vmap, module": (twin, True), "loop": (model, False)}
    timers, plain = {}, {}
    for label, (m, vectorize) in paths.items():
        gradient(m, vectorize)  # warm-up
        start = time.process_time()
        gradient(m, vectorize)
        plain[label] = time.process_time() - start
        timer = OpTimer()
        with timer:
            gradient(m, vectorize)
        timers[label] = timer
    print("# plain CPU seconds (no timer): " + ", ".join(f"{k} {v:.2f}" for k, v in plain.items()))
    print()
    print("| seconds (calls) | " + " | ".join(paths) + " |")
    print("|---|" + "---|" * len(paths))
    kinds = ["convolution", "element-wise", "max-pool", "reductions", "copies, fills, allocations", "views"]
    for k in kinds:
        cells = []
        for label in paths:
            t = timers[label]
            names = [n for n in t.seconds if kind(n) == k]
            cells.append(f"{sum(t.seconds[n] for n in names):.2f} ({sum(t.calls[n] for n in names)})")
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("| all ops | " + " | ".join(f"{sum(t.seconds.values()):.2f} ({sum(t.calls.values())})" for t in timers.values()) + " |")
    print()
    print("Element-wise work (millions of output elements, all element-wise ops):",
          ", ".join(f"{label} {sum(t.elements[n] for n in t.elements if kind(n) == 'element-wise') / 1e6:.0f}"
                    for label, t in timers.items()))
    for label, t in timers.items():
        print(f"\n## {label}: the {args.top} costliest operations")
        print("| op | seconds | calls | M elements | ns/element |")
        print("|---|---|---|---|---|")
        for name in sorted(t.seconds, key=lambda n: -t.seconds[n])[:args.top]:
            per = f"{1e9 * t.seconds[name] / t.elements[name]:.2f}" if kind(name) == "element-wise" and t.elements[name] else "-"
            print(f"| {name} | {t.seconds[name]:.3f} | {t.calls[name]} | {t.elements[name] / 1e6:.1f} | {per} |")
    print(f"\n# {load_average()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
