"""MAML meta-training throughput on a CPU or a GPU: the vmap path against the per-task loop.

Measures meta-training tasks per second: one full outer step (forward through the inner loop,
backward through it, Adam step), for

* the sine MLP of Finn et al. (2017): 25 tasks, K = 10 support and 10 query points;
* Conv4 on Omniglot-shaped 5-way 1-shot tasks: 32 tasks (Finn et al.'s meta-batch), 1 support
  and ``--n-query`` (default 1, as in Finn et al.'s reference code) query images per class; random
  28x28 images, since the speed does not depend on the pixels;

second- and first-order, 1 and 5 inner steps, with

* ``vmap``: ``meta_loss(..., vectorize=True)``, the inner loop mapped over tasks by torch.func,
  the network evaluated by ``functional_models.functional_forward`` (for Conv4 the hand-written
  ``conv4_forward``; on the CPU in chunks of ``maml.VMAP_CPU_CHUNK_SIZE`` tasks);
* ``vmap, module``: the same with the network evaluated by ``torch.func.functional_call`` and
  no chunks (the vmap path as it was before ``conv4_forward``; Conv4 only);
* ``loop``: ``meta_loss(..., vectorize=False)``, one task after the other (learn2learn/higher style);
* ``higher``: ``higher.innerloop_ctx`` with a differentiable SGD, if the package is importable.

A second table times adaptation without a meta-gradient, which ``prefers_vmap`` decides
separately: evaluation (``adapt_and_predict``, 3 steps, 15 queries per class) and Reptile
(``reptile_step``, 5 steps on 5 tasks of 25 images).

A third table times what can make the GPU path faster, on Conv4 with Finn et al.'s protocol
(meta-batch 32, ``--option-steps`` inner steps, default 1): CUDA graphs
(``metalearn_lab.cuda_graphs``), channels-last tensors, TF32 on and off, ``torch.compile``.
Every option gets a row: measured, "not available on cpu", skipped with the reason, or the error
that stopped it. Each row also gives a gradient gap (relative norm of the difference, from the same
weights): an eager row's first-step gradients against the plain float32 loop's, and a CUDA-graph
row's gradients at the fourth of four SGD steps on four batches (a replay) against those of the
eager row it records, so an option that computes something else, or a graph that replays stale
inputs, shows.

Each cell: warm-up steps, then ``--repeats`` timed steps; the median is reported. On the CPU with
one thread the timer is this process's CPU time (robust to other jobs on a shared machine; say
``--timer wall`` for wall time); on a GPU it is wall time with the device synchronised.

Usage::

    python benchmarks/maml_throughput.py --threads 1               # the CPU table in benchmarks/README.md
    python benchmarks/maml_throughput.py --device cuda --out t.md  # the GPU tables
    python benchmarks/maml_throughput.py --quick                   # a smoke run: 4 tasks, 1 repeat
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import signal
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metalearn_lab.cuda_graphs import GraphedMetaTrainStep  # noqa: E402
from metalearn_lab.data.sinusoid import SinusoidTasks  # noqa: E402
from metalearn_lab.maml import adapt_and_predict, meta_loss  # noqa: E402
from metalearn_lab.models import Conv4, SineMLP  # noqa: E402
from metalearn_lab.reptile import reptile_step  # noqa: E402

try:
    import higher
except ImportError:  # optional
    higher = None


class ModuleConv4(Conv4):
    """Conv4 that ``functional_forward`` does not recognise: the vmap path then uses ``functional_call``."""


# ------------------------------------------------------------------------------ workloads


def sine_workload(tasks: int, device):
    torch.manual_seed(0)
    batch = SinusoidTasks().sample(tasks, 10, generator=torch.Generator().manual_seed(0)).as_tuple()
    return "sine MLP", SineMLP().to(device), tuple(t.to(device) for t in batch), F.mse_loss, 0.01


def conv_batch(tasks: int, n_way: int, k_shot: int, n_query: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_support = torch.rand(tasks, n_way * k_shot, 1, 28, 28, generator=g)
    x_query = torch.rand(tasks, n_way * n_query, 1, 28, 28, generator=g)
    y_support = torch.arange(n_way).repeat_interleave(k_shot).repeat(tasks, 1)
    y_query = torch.arange(n_way).repeat_interleave(n_query).repeat(tasks, 1)
    return tuple(t.to(device) for t in (x_support, y_support, x_query, y_query))


def conv_workload(tasks: int, device, n_way: int = 5, k_shot: int = 1, n_query: int = 1):
    torch.manual_seed(0)
    model = Conv4(out_features=n_way, track_running_stats=False).to(device)
    return (f"Conv4 {n_way}w{k_shot}s q{n_query}", model, conv_batch(tasks, n_way, k_shot, n_query, device),
            F.cross_entropy, 0.4)


def module_twin(model: Conv4) -> Conv4:
    twin = ModuleConv4(out_features=model.head.out_features, track_running_stats=False)
    twin.load_state_dict(model.state_dict())
    return twin.to(next(model.parameters()).device)


# ------------------------------------------------------------------------------ one outer step per method


def eager_step(model, optimizer, batch, loss_fn, *, vectorize, **kwargs):
    optimizer.zero_grad(set_to_none=True)
    loss, _ = meta_loss(model, dict(model.named_parameters()), batch, loss_fn, vectorize=vectorize, **kwargs)
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


class Timer:
    """Median seconds per call: CPU time of this process, or wall time (with CUDA synchronised)."""

    def __init__(self, kind: str, device: torch.device):
        self.kind, self.device = kind, device

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.process_time() if self.kind == "cpu" else time.perf_counter()

    def per_call(self, fn: Callable[[], object], *, warmup: int, repeats: int) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = self.now()
            fn()
            times.append(self.now() - start)
        return statistics.median(times)


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores"


def load_average() -> str:
    try:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load average unknown"


def fmt(x: float | str) -> str:
    return f"{x:8.1f}" if isinstance(x, float) and x == x else f"{str(x) if isinstance(x, str) else '-':>8s}"


# ------------------------------------------------------------------------------ table 1: vmap vs loop


def main_table(args, device, timer, emit, repeats, warmup, sine_tasks, conv_tasks, use_higher):
    header = (f"| {'workload':22s} | {'order':6s} | steps | {'vmap':>8s} | {'vmap, module':>12s} | {'loop':>8s} "
              f"| {'higher':>8s} | vmap/loop |")
    emit(header)
    emit("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    workloads = [sine_workload(sine_tasks, device), conv_workload(conv_tasks, device, n_query=args.n_query)]
    for name, model, batch, loss_fn, inner_lr in workloads:
        n_tasks = batch[0].shape[0]
        twin = module_twin(model) if isinstance(model, Conv4) else None
        for first_order in (False, True):
            for inner_steps in (1, 5):
                kwargs = dict(inner_steps=inner_steps, inner_lr=inner_lr, first_order=first_order)
                row: dict[str, float | str] = {}
                for label, m, vectorize in (("vmap", model, True), ("vmap, module", twin, True), ("loop", model, False)):
                    if m is None:
                        row[label] = "same"
                        continue
                    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
                    row[label] = n_tasks / timer.per_call(
                        lambda m=m, opt=opt, v=vectorize: eager_step(m, opt, batch, loss_fn, vectorize=v, **kwargs),
                        warmup=warmup, repeats=repeats)
                if use_higher:
                    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
                    row["higher"] = n_tasks / timer.per_call(lambda: step_higher(model, opt, batch, loss_fn, **kwargs),
                                                             warmup=warmup, repeats=repeats)
                else:
                    row["higher"] = "n/i"
                order = "first" if first_order else "second"
                emit(f"| {name:22s} | {order:6s} | {inner_steps:5d} | {fmt(row['vmap'])} | {fmt(row['vmap, module']):>12s} "
                     f"| {fmt(row['loop'])} | {fmt(row['higher'])} | {row['vmap'] / row['loop']:8.2f}x |")
    emit("")
    emit("vmap, module: the vmap path through functional_call (as before conv4_forward); 'same' where the model has no"
         " hand-written form. higher: n/i = not installed.")


# ------------------------------------------------------------------------------ table 2: options for the GPU path


class Option:
    """One way to run the vectorised (or looped) step. ``twin``: the row whose eager path a CUDA-graph row replays."""

    def __init__(self, label: str, *, vectorize=True, graph=False, channels_last=False, tf32=None, compile=False,
                 twin: int | None = None):
        self.label, self.vectorize, self.graph, self.channels_last = label, vectorize, graph, channels_last
        self.tf32, self.compile, self.twin = tf32, compile, twin

    def unavailable(self, device: torch.device, args) -> str | None:
        if device.type == "cpu" and (self.graph or self.tf32 is not None):
            return "not available on cpu"
        if self.compile and args.no_compile:
            return "skipped (--no-compile)"
        if self.compile and args.quick:
            return "skipped (--quick: compiling takes minutes on a CPU)"
        return None


class OptionTimeout(BaseException):
    """Raised in the main thread by SIGALRM when an option runs past ``--option-timeout``.

    A ``BaseException``, like ``KeyboardInterrupt``: compilers catch ``Exception`` in places and
    would swallow it.
    """

    def __init__(self, seconds: float = 0):
        super().__init__(f"gave up after {seconds:.0f} s (--option-timeout)")
        self.seconds = seconds

    @classmethod
    def start(cls, seconds: float) -> "OptionTimeout":
        alarm = cls(seconds)
        if seconds and hasattr(signal, "SIGALRM"):
            def handler(signum, frame):
                raise cls(seconds)

            signal.signal(signal.SIGALRM, handler)
            signal.setitimer(signal.ITIMER_REAL, seconds)
        return alarm

    def stop(self) -> None:
        if self.seconds and hasattr(signal, "SIGALRM"):
            signal.setitimer(signal.ITIMER_REAL, 0)


def set_tf32(matmul: bool | None, cudnn: bool | None = None) -> tuple[bool, bool]:
    """Switch TF32 for matrix products and cuDNN convolutions (``None``: leave it); returns the old settings."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    cudnn = matmul if cudnn is None else cudnn
    if matmul is not None:
        torch.backends.cuda.matmul.allow_tf32 = matmul
    if cudnn is not None:
        torch.backends.cudnn.allow_tf32 = cudnn
    return before


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``[B, N, C, H, W]`` whose per-image slices ``[C, H, W]`` are stored channels-last."""
    return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def build_option_step(option: Option, model, optimizer, batches, loss_fn, kwargs):
    """``step() -> None`` that runs one outer step with ``option``, cycling through ``batches`` (a list, or one batch)."""
    batches = list(batches) if isinstance(batches, list) else [batches]
    if option.channels_last:
        model.to(memory_format=torch.channels_last)
        batches = [(to_channels_last(b[0]), b[1], to_channels_last(b[2]), b[3]) for b in batches]
    calls = [0]

    def next_batch():
        calls[0] += 1
        return batches[(calls[0] - 1) % len(batches)]

    if option.graph:
        graphed = GraphedMetaTrainStep(model, optimizer, loss_fn, vectorize=option.vectorize, **kwargs)
        return lambda: graphed(next_batch())
    if option.compile:
        def loss_of(params, b):
            return meta_loss(model, params, b, loss_fn, vectorize=option.vectorize, **kwargs)[0]

        compiled = torch.compile(loss_of)

        def step():
            optimizer.zero_grad(set_to_none=True)
            compiled(dict(model.named_parameters()), next_batch()).backward()
            optimizer.step()

        return step
    return lambda: eager_step(model, optimizer, next_batch(), loss_fn, vectorize=option.vectorize, **kwargs)


def relative_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    num = torch.sqrt(sum(((x.float() - y.float()) ** 2).sum() for x, y in zip(a, b)))
    den = torch.sqrt(sum((y.float() ** 2).sum() for y in b))
    return float(num / den.clamp_min(1e-30))


def options_table(args, device, timer, emit, repeats, warmup, conv_tasks):
    strict = False if device.type == "cuda" else None  # TF32 off, where TF32 exists
    options = [
        Option("1 loop, eager, TF32 off (reference)", vectorize=False, tf32=strict),
        Option("2 vmap, eager, TF32 off", tf32=strict),
        Option("3 vmap, eager, PyTorch's TF32 defaults"),
        Option("4 vmap, eager, TF32 on", tf32=True),
        Option("5 vmap, eager, channels-last", channels_last=True),
        Option("6 vmap + CUDA graph", graph=True, twin=3),
        Option("7 vmap + CUDA graph, TF32 off", graph=True, tf32=False, twin=2),
        Option("8 vmap + CUDA graph, TF32 on", graph=True, tf32=True, twin=4),
        Option("9 loop + CUDA graph, TF32 off", vectorize=False, graph=True, tf32=False, twin=1),
        Option("10 vmap + CUDA graph + channels-last", graph=True, channels_last=True, twin=5),
        Option("11 vmap + torch.compile", compile=True),
    ]
    name, base, batch, loss_fn, inner_lr = conv_workload(conv_tasks, device, n_query=args.n_query)
    check_batches = [conv_batch(conv_tasks, 5, 1, args.n_query, device, seed=10 + i) for i in range(4)]
    defaults = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    emit(f"PyTorch's TF32 defaults here: matmul {defaults[0]}, cuDNN convolutions {defaults[1]}")
    emit("")
    header = f"| {'option':44s} | order  | steps | {'tasks/s':>9s} | {'x loop':>7s} | grad gap | gap to        |"
    emit(header)
    emit("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    state = copy.deepcopy(base.state_dict())
    for first_order in (False, True):
        for inner_steps in args.option_steps:
            kwargs = dict(inner_steps=inner_steps, inner_lr=inner_lr, first_order=first_order)
            order = "first" if first_order else "second"
            grads: dict[int, tuple[list, list]] = {}  # row -> gradients at the first and the fourth step
            loop_speed = None
            for row, option in enumerate(options, start=1):
                skip = option.unavailable(device, args)
                if skip:
                    emit(f"| {option.label:44s} | {order:6s} | {inner_steps:5d} | {skip:>9s} |")
                    continue
                before = set_tf32(option.tf32)
                alarm = OptionTimeout.start(args.option_timeout)
                try:
                    # accuracy: four plain SGD steps on four batches from the same weights. An eager row's
                    # first-step gradients are compared with the loop's (same weights, same batch); a
                    # CUDA-graph row's fourth-step gradients (the third step is recorded, the fourth
                    # replays it) with those of the eager row it replays. SGD, not Adam: Adam's first
                    # updates are about lr * sign(gradient), which turns rounding into different weights.
                    model = copy.deepcopy(base)
                    model.load_state_dict(state)
                    check_step = build_option_step(option, model, torch.optim.SGD(model.parameters(), lr=0.01),
                                                   check_batches, loss_fn, kwargs)
                    seen = []
                    for _ in range(4):
                        check_step()
                        seen.append([p.grad.detach().clone() for p in model.parameters()])
                    grads[row] = (seen[0], seen[3])
                    if row == 1:
                        gap, against = "-", "(reference)"
                    elif option.twin is None:
                        gap, against = f"{relative_gap(seen[0], grads[1][0]):.1e}", "row 1, step 1"
                    elif option.twin in grads:
                        gap, against = f"{relative_gap(seen[3], grads[option.twin][1]):.1e}", f"row {option.twin}, step 4"
                    else:
                        gap, against = "-", f"row {option.twin} missing"
                    # speed: Adam, as in training
                    model = copy.deepcopy(base)
                    model.load_state_dict(state)
                    step = build_option_step(option, model, torch.optim.Adam(model.parameters(), lr=1e-3), batch,
                                             loss_fn, kwargs)
                    seconds = timer.per_call(step, warmup=max(warmup, 3) if option.graph else warmup, repeats=repeats)
                    speed = conv_tasks / seconds
                    if row == 1:
                        loop_speed = speed
                    ratio = f"{speed / loop_speed:6.1f}x" if loop_speed else "-"
                    emit(f"| {option.label:44s} | {order:6s} | {inner_steps:5d} | {speed:9.1f} | {ratio:>7s} "
                         f"| {gap:>8s} | {against:13s} |")
                except (Exception, OptionTimeout) as exc:  # noqa: BLE001 - every option gets a row, failures included
                    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:150]
                    emit(f"| {option.label:44s} | {order:6s} | {inner_steps:5d} | failed: {reason} |")
                    if args.verbose:
                        traceback.print_exc()
                finally:
                    alarm.stop()
                    set_tf32(*before)
    emit("")
    emit("grad gap: |difference| / |reference| of the gradients (relative norm), every row from the same weights: an"
         " eager row at its first SGD step against row 1's; a CUDA-graph row at its fourth SGD step (a replay) against"
         " the eager row it records. tasks/s: Adam steps, as in training; x loop: against row 1.")


# ------------------------------------------------------------------------------ table 3: adaptation only


def adaptation_table(args, device, timer, emit, repeats, warmup, conv_tasks):
    header = f"| {'adaptation (no meta-gradient)':40s} | {'vmap':>8s} | {'vmap, module':>12s} | {'loop':>8s} | vmap/loop |"
    emit(header)
    emit("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    eval_batch = conv_batch(conv_tasks, 5, 1, 15, device, seed=1)
    reptile_tasks = min(5, conv_tasks)
    reptile_batch = conv_batch(reptile_tasks, 5, 5, 1, device, seed=2)[:2]
    _, model, _, loss_fn, _ = conv_workload(conv_tasks, device)
    twin = module_twin(model)
    rows = [
        (f"evaluation: {conv_tasks} tasks, 3 steps, 15 queries", conv_tasks,
         lambda m, v: adapt_and_predict(m, eval_batch, loss_fn, inner_steps=3, inner_lr=0.4, vectorize=v)),
        (f"Reptile: {reptile_tasks} tasks of 25 images, 5 steps", reptile_tasks,
         lambda m, v: reptile_step(m, *reptile_batch, loss_fn, inner_steps=5, inner_lr=0.1, outer_lr=0.5, vectorize=v)),
    ]
    for label, n_tasks, fn in rows:
        speeds = [n_tasks / timer.per_call(lambda m=m, v=v: fn(m, v), warmup=warmup, repeats=repeats)
                  for m, v in ((model, True), (twin, True), (model, False))]
        emit(f"| {label:40s} | {speeds[0]:8.1f} | {speeds[1]:12.1f} | {speeds[2]:8.1f} | {speeds[0] / speeds[2]:8.2f}x |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default cpu)")
    parser.add_argument("--repeats", type=int, default=5, help="timed outer steps per cell (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed outer steps per cell")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--timer", choices=["auto", "cpu", "wall"], default="auto",
                        help="auto: process CPU time on the CPU with one thread, else wall time")
    parser.add_argument("--n-query", type=int, default=1, help="Conv4 query images per class (Finn et al.: 1)")
    parser.add_argument("--option-steps", type=int, nargs="+", default=[1], help="inner steps for the options table")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 1 warm-up, 4 tasks a batch: a smoke run")
    parser.add_argument("--tables", default="main,adaptation,options", help="which tables, comma-separated")
    parser.add_argument("--no-higher", action="store_true", help="skip `higher` even if it is installed")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows (they say so)")
    parser.add_argument("--option-timeout", type=float, default=0,
                        help="give up an option after this many seconds (compiling can take minutes; 0: never)")
    parser.add_argument("--out", help="also write the tables to this file")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failed options")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    tables = {t.strip() for t in args.tables.split(",") if t.strip()}
    if not tables <= {"main", "options", "adaptation"}:
        parser.error(f"--tables takes main, options, adaptation; got {sorted(tables)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False here (a CPU build of torch, or no GPU)")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    timer_kind = args.timer if args.timer != "auto" else ("cpu" if device.type == "cpu" and torch.get_num_threads() == 1 else "wall")
    timer = Timer(timer_kind, device)
    repeats, warmup = (1, 1) if args.quick else (args.repeats, args.warmup)
    sine_tasks, conv_tasks = (4, 4) if args.quick else (25, 32)
    use_higher = higher is not None and not args.no_higher

    out_file = open(args.out, "w") if args.out else None  # written line by line: a run cut short keeps its rows

    def emit(line: str = "") -> None:
        print(line, flush=True)
        if out_file is not None:
            out_file.write(line + "\n")
            out_file.flush()

    emit(f"# MAML meta-training throughput on {device.type}: {machine_description(device)}")
    emit(f"# {datetime.datetime.now().isoformat(timespec='minutes')}  torch {torch.__version__}  python {platform.python_version()}"
         f"  threads {torch.get_num_threads()}  {load_average()} at start"
         f"  higher {getattr(higher, '__version__', 'yes') if use_higher else 'not installed'}")
    emit(f"# tasks per second, median of {repeats} steps after {warmup} warm-up steps; timer: "
         f"{'CPU time of this process' if timer_kind == 'cpu' else 'wall time' + (' (CUDA synchronised)' if device.type == 'cuda' else '')}")
    emit("")
    if "main" in tables:
        main_table(args, device, timer, emit, repeats, warmup, sine_tasks, conv_tasks, use_higher)
        emit("")
    if "adaptation" in tables:
        emit("## Adaptation without a meta-gradient, Conv4 5-way")
        adaptation_table(args, device, timer, emit, repeats, warmup, conv_tasks)
        emit("")
    if "options" in tables:
        emit(f"## Options for the vectorised path: Conv4 5-way 1-shot, {conv_tasks} tasks")
        options_table(args, device, timer, emit, repeats, warmup, conv_tasks)
        emit("")
    emit(f"# {load_average()} at the end")
    if out_file is not None:
        out_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
