"""MAML meta-training throughput: the vmap path against the per-task loop (and `higher`).

Measures meta-training tasks per second — one full outer step: forward through the inner loop,
backward through it, Adam step — for

* the sine MLP of Finn et al. (2017): 25 tasks, K = 10 support and 10 query points;
* Conv4 on Omniglot-shaped 5-way 1-shot tasks: 32 tasks, 1 support image and ``--n-query``
  (default 1, as in Finn et al.'s reference code and ``omniglot-maml-5w1s``) query images per
  class; random 28x28 images, since the speed does not depend on the pixels;

second- and first-order, 1 and 5 inner steps, with

* ``vmap``: ``meta_loss(..., vectorize=True)``, the inner loop mapped over tasks by torch.func;
* ``loop``: ``meta_loss(..., vectorize=False)``, one task after the other (learn2learn/higher style);
* ``higher``: ``higher.innerloop_ctx`` with a differentiable SGD, if the package is importable
  (optional: ``pip install higher``; never a dependency of metalearn-lab).

``--explore`` adds the Conv4 variants tried to make the vmap path faster on CPU: vmap with
``chunk_size`` (tasks per chunk) and the loop path with channels_last images.

Each cell: warm-up steps, then ``--repeats`` timed steps; the median is reported.

Usage::

    python benchmarks/maml_throughput.py --threads 1            # the table in benchmarks/README.md
    python benchmarks/maml_throughput.py --quick                # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metalearn_lab.data.sinusoid import SinusoidTasks  # noqa: E402
from metalearn_lab.maml import _functional_task, meta_loss  # noqa: E402
from metalearn_lab.models import Conv4, SineMLP  # noqa: E402

try:
    import higher
except ImportError:  # optional
    higher = None


# ------------------------------------------------------------------------------ workloads


def sine_workload(tasks: int = 25, k_shot: int = 10):
    torch.manual_seed(0)
    batch = SinusoidTasks().sample(tasks, k_shot, generator=torch.Generator().manual_seed(0)).as_tuple()
    return "sine MLP", SineMLP(), batch, F.mse_loss, 0.01


def conv_workload(tasks: int = 32, n_way: int = 5, k_shot: int = 1, n_query: int = 1):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x_support = torch.rand(tasks, n_way * k_shot, 1, 28, 28, generator=g)
    x_query = torch.rand(tasks, n_way * n_query, 1, 28, 28, generator=g)
    y_support = torch.arange(n_way).repeat_interleave(k_shot).repeat(tasks, 1)
    y_query = torch.arange(n_way).repeat_interleave(n_query).repeat(tasks, 1)
    model = Conv4(out_features=n_way, track_running_stats=False)
    return f"Conv4 {n_way}w{k_shot}s q{n_query}", model, (x_support, y_support, x_query, y_query), F.cross_entropy, 0.4


# ------------------------------------------------------------------------------ one outer step per method


def step_metalearn(model, optimizer, batch, loss_fn, *, inner_steps, inner_lr, first_order, vectorize):
    optimizer.zero_grad(set_to_none=True)
    loss, _ = meta_loss(model, dict(model.named_parameters()), batch, loss_fn, inner_steps=inner_steps,
                        inner_lr=inner_lr, first_order=first_order, vectorize=vectorize)
    loss.backward()
    optimizer.step()


def step_vmap_chunked(model, optimizer, batch, loss_fn, *, inner_steps, inner_lr, first_order, chunk_size):
    """The vmap path with ``chunk_size`` tasks per vectorised chunk (torch.func.vmap's option)."""
    optimizer.zero_grad(set_to_none=True)
    task = _functional_task(model, loss_fn, inner_steps, inner_lr, first_order)
    x_support, y_support, x_query, y_query = batch
    predictions = vmap(task, in_dims=(None, None, 0, 0, 0), randomness="different", chunk_size=chunk_size)(
        dict(model.named_parameters()), {}, x_support, y_support, x_query)
    loss = torch.stack([loss_fn(p, y) for p, y in zip(predictions, y_query)]).mean()
    loss.backward()
    optimizer.step()


def step_higher(model, optimizer, batch, loss_fn, *, inner_steps, inner_lr, first_order):
    """The classic `higher` recipe: a differentiable SGD inner optimiser, one task at a time."""
    optimizer.zero_grad(set_to_none=True)
    inner_optimizer = torch.optim.SGD(model.parameters(), lr=inner_lr)
    n_tasks = batch[0].shape[0]
    for x_support, y_support, x_query, y_query in zip(*batch):
        with higher.innerloop_ctx(model, inner_optimizer, copy_initial_weights=False,
                                  track_higher_grads=not first_order) as (fmodel, diffopt):
            for _ in range(inner_steps):
                diffopt.step(loss_fn(fmodel(x_support), y_support))
            query_loss = loss_fn(fmodel(x_query), y_query) / n_tasks
            if first_order:  # the fast weights are detached leaves: gradient at the adapted point
                grads = torch.autograd.grad(query_loss, list(fmodel.parameters()))
                for p, g in zip(model.parameters(), grads):
                    p.grad = g if p.grad is None else p.grad + g
            else:
                query_loss.backward()
    optimizer.step()


# ------------------------------------------------------------------------------ timing


def tasks_per_second(step, n_tasks: int, *, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return n_tasks / statistics.median(times)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed outer steps per cell (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed outer steps per cell")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--n-query", type=int, default=1, help="Conv4 query images per class (Finn et al.: 1)")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 1 warm-up, 4 tasks a batch: a smoke run")
    parser.add_argument("--explore", action="store_true", help="also time vmap chunk_size and channels_last for Conv4")
    parser.add_argument("--no-higher", action="store_true", help="skip `higher` even if it is installed")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats, warmup = (1, 1) if args.quick else (args.repeats, args.warmup)
    sine_tasks, conv_tasks = (4, 4) if args.quick else (25, 32)
    use_higher = higher is not None and not args.no_higher

    print(f"# MAML meta-training throughput (tasks/s, median of {repeats} after {warmup} warm-up steps)")
    print(f"# {datetime.date.today().isoformat()}  torch {torch.__version__}  threads {torch.get_num_threads()}"
          f"  {machine_description()}  python {platform.python_version()}"
          f"  higher {'%s' % higher.__version__ if use_higher and hasattr(higher, '__version__') else ('yes' if use_higher else 'not installed')}")
    if args.threads == 1:
        print("# one thread: the machine is shared with other jobs, so single-thread numbers are the stable ones")
    header = f"| {'workload':22s} | {'order':6s} | steps | {'vmap':>8s} | {'loop':>8s} | {'higher':>8s} | vmap/loop |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")

    workloads = [sine_workload(sine_tasks), conv_workload(conv_tasks, n_query=args.n_query)]
    for name, model, batch, loss_fn, inner_lr in workloads:
        n_tasks = batch[0].shape[0]
        for first_order in (False, True):
            for inner_steps in (1, 5):
                kwargs = dict(inner_steps=inner_steps, inner_lr=inner_lr, first_order=first_order)
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
                row = {}
                for label, vectorize in (("vmap", True), ("loop", False)):
                    row[label] = tasks_per_second(
                        lambda v=vectorize: step_metalearn(model, optimizer, batch, loss_fn, vectorize=v, **kwargs),
                        n_tasks, warmup=warmup, repeats=repeats)
                row["higher"] = (tasks_per_second(lambda: step_higher(model, optimizer, batch, loss_fn, **kwargs),
                                                  n_tasks, warmup=warmup, repeats=repeats) if use_higher else float("nan"))
                order = "first" if first_order else "second"
                cells = " | ".join(f"{row[k]:8.1f}" if row[k] == row[k] else f"{'-':>8s}" for k in ("vmap", "loop", "higher"))
                print(f"| {name:22s} | {order:6s} | {inner_steps:5d} | {cells} | {row['vmap'] / row['loop']:8.2f}x |", flush=True)

    if args.explore:
        name, model, batch, loss_fn, inner_lr = workloads[1]
        n_tasks = batch[0].shape[0]
        print(f"\n# Conv4 variants ({name}, {n_tasks} tasks, second order): tasks/s")
        print("| variant | 1 step | 5 steps |")
        print("|---|---|---|")
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        variants = {f"vmap chunk_size={c}": (lambda s, c=c: step_vmap_chunked(
            model, optimizer, batch, loss_fn, inner_steps=s, inner_lr=inner_lr, first_order=False, chunk_size=c))
            for c in (1, 4, 8) if c <= n_tasks}
        cl_model = Conv4(out_features=5, track_running_stats=False).to(memory_format=torch.channels_last)
        cl_optimizer = torch.optim.Adam(cl_model.parameters(), lr=1e-3)

        def to_channels_last(x):  # [B, N, C, H, W] whose per-task slices [N, C, H, W] are channels_last
            return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)

        cl_batch = (to_channels_last(batch[0]), batch[1], to_channels_last(batch[2]), batch[3])

        def channels_last_loop(s):
            step_metalearn(cl_model, cl_optimizer, cl_batch, loss_fn, inner_steps=s, inner_lr=inner_lr,
                           first_order=False, vectorize=False)

        variants["loop, channels_last"] = channels_last_loop
        for label, step in variants.items():
            speeds = [tasks_per_second(lambda s=s: step(s), n_tasks, warmup=warmup, repeats=repeats) for s in (1, 5)]
            print(f"| {label} | {speeds[0]:.1f} | {speeds[1]:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
