"""Meta-training loop, evaluation with 95% intervals, checkpoints and ``load_or_train``.

A checkpoint is a plain dict saved with :func:`torch.save` and read back with
``torch.load(..., weights_only=True)``: ``{"format", "model", "config", "metrics", "history", "step",
"optimizer"}`` where everything except tensors is made of numbers, strings, lists and dicts.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from tqdm.auto import tqdm

from metalearn_lab.metrics import mean_confidence_interval
from metalearn_lab.validation import check_float, check_int

CHECKPOINT_FORMAT = 1
SHIPPED_DIR = Path(__file__).parent / "checkpoints"


@dataclass
class History:
    """What a training run recorded: per-step loss/metric and periodic evaluations."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    metric: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_metric: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, list] | None) -> "History":
        return cls(**{k: list(v) for k, v in (data or {}).items() if k in cls.__dataclass_fields__})


def meta_train(
    step_fn: Callable[[int], Mapping[str, float]],
    iterations: int,
    *,
    evaluate_fn: Callable[[], float] | None = None,
    eval_every: int = 0,
    history: History | None = None,
    start: int = 0,
    on_checkpoint: Callable[[int, History], None] | None = None,
    checkpoint_every: int = 0,
    progress: bool = True,
    desc: str = "meta-train",
    time_limit: float | None = None,
) -> History:
    """Run ``step_fn(step)`` for steps ``start .. iterations-1`` with a progress bar.

    ``step_fn`` performs one meta-update and returns ``{"loss": float, "metric": float}`` (metric
    optional). Every ``eval_every`` steps ``evaluate_fn()`` is recorded; every ``checkpoint_every``
    steps (and at the end) ``on_checkpoint(step, history)`` is called, which is how runs resume.
    With ``time_limit`` (seconds of wall time) the loop stops after the first step that ends past
    the limit, checkpoints there and returns; ``history.step[-1] + 1`` then says how far it got.

    >>> h = meta_train(lambda s: {"loss": 1.0 / (s + 1)}, 3, progress=False)
    >>> h.step, h.loss
    ([0, 1, 2], [1.0, 0.5, 0.3333333333333333])
    """
    iterations = check_int("iterations", iterations, minimum=0)
    start = check_int("start", start, minimum=0, maximum=iterations)
    eval_every = check_int("eval_every", eval_every, minimum=0)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, minimum=0)
    if time_limit is not None:
        time_limit = check_float("time_limit", time_limit, low=0, low_open=True)  # seconds
    history = history or History()
    t0 = time.perf_counter()
    bar = tqdm(range(start, iterations), desc=desc, disable=not progress, initial=start, total=iterations)
    for step in bar:
        out = step_fn(step)
        history.step.append(step)
        history.loss.append(float(out["loss"]))
        history.metric.append(float(out.get("metric", float("nan"))))
        if evaluate_fn is not None and eval_every and (step + 1) % eval_every == 0:
            history.eval_step.append(step + 1)
            history.eval_metric.append(float(evaluate_fn()))
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", eval=f"{history.eval_metric[-1]:.3f}")
        elif step % 10 == 0:
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}")
        if on_checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            on_checkpoint(step + 1, history)
        if time_limit is not None and step + 1 < iterations and time.perf_counter() - t0 > time_limit:
            bar.close()
            if on_checkpoint is not None:
                on_checkpoint(step + 1, history)
            return history
    if on_checkpoint is not None and iterations > start:
        on_checkpoint(iterations, history)
    return history


def evaluate(task_metric: Callable[[Any], torch.Tensor], batches: Iterable[Any], *, progress: bool = False) -> dict[str, Any]:
    """Apply ``task_metric(batch) -> Tensor [tasks]`` to every batch; mean ± 95% CI over all tasks.

    Returns ``{"mean", "ci95", "n_tasks", "values"}``.

    >>> r = evaluate(lambda b: torch.tensor(b), [[1.0, 0.0], [1.0, 1.0]])
    >>> r["mean"], r["n_tasks"]
    (0.75, 4)
    """
    values: list[float] = []
    for batch in tqdm(batches, desc="evaluate", disable=not progress):
        values.extend(float(v) for v in torch.as_tensor(task_metric(batch)).flatten())
    mean, half = mean_confidence_interval(values)
    return {"mean": mean, "ci95": half, "n_tasks": len(values), "values": values}


def _plain(obj: Any) -> Any:
    """Turn config/metric values into types that ``weights_only=True`` loading accepts."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint's config/metrics: use numbers, strings, lists, dicts")


def _to_cpu(obj: Any) -> Any:
    """Every tensor in a nested state dict moved to the CPU, so a GPU run resumes on a laptop."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    *,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    history: History | Mapping[str, list] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    overwrite: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    An existing file is replaced only if it was written with the same ``config`` (the same run,
    resuming) or ``overwrite=True``; otherwise ``FileExistsError`` says so and nothing is written.
    ``extra`` adds top-level entries made of plain types or tensors (e.g. ``{"scheduler": state}``).
    """
    step = check_int("step", step, minimum=0)
    path = Path(path)
    if path.exists() and not overwrite:
        try:
            old = torch.load(path, map_location="cpu", weights_only=True)
            same = old.get("config") == _plain(config)
        except Exception:  # an unreadable file is never silently replaced
            same = False
        if not same:
            raise FileExistsError(
                f"{path} already holds a checkpoint with a different config (or is unreadable); "
                "pass overwrite=True to replace it, or choose another path"
            )
    hist = history.as_dict() if isinstance(history, History) else _plain(history or {})
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": _plain(config),
        "metrics": _plain(metrics or {}),
        "history": hist,
        "step": int(step),
        "optimizer": _to_cpu(optimizer.state_dict()) if optimizer is not None else None,
    }
    reserved = set(payload) & set(extra or {})
    if reserved:
        raise ValueError(f"extra may not replace the checkpoint's own entries {sorted(reserved)}")
    payload.update(_to_cpu(dict(extra or {})))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a checkpoint is ordinary data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module | None = None, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; load its weights into ``model`` if given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable metalearn-lab checkpoint ({exc.__class__.__name__}: {exc}); delete it and train again") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise ValueError(f"{path} is not a metalearn-lab checkpoint of format {CHECKPOINT_FORMAT}")
    if model is not None:
        model.load_state_dict(ckpt["model"])
    return ckpt


def shipped_checkpoint(name: str) -> Path | None:
    """Path of a checkpoint shipped inside the package (``metalearn_lab/checkpoints/<name>.pt``), if any."""
    path = SHIPPED_DIR / f"{name}.pt"
    return path if path.is_file() else None


def load_or_train(
    path: str | os.PathLike,
    model: torch.nn.Module,
    train_fn: Callable[[torch.nn.Module], Mapping[str, Any]],
    *,
    config: Mapping[str, Any],
    retrain: bool = False,
) -> dict[str, Any]:
    """Load ``model``'s weights from ``path`` if a checkpoint with this ``config`` exists; else train.

    ``train_fn(model)`` trains in place and returns ``{"metrics": ..., "history": ...}`` (either
    optional). The result is saved to ``path`` and returned as a checkpoint dict, with
    ``"loaded": True`` when nothing was trained. A checkpoint at ``path`` with a *different* config
    is never overwritten unless ``retrain=True``.
    """
    path = Path(path)
    if path.exists() and not retrain:
        ckpt = load_checkpoint(path)
        if ckpt["config"] != _plain(config):
            raise ValueError(
                f"{path} was trained with a different config; pass retrain=True to replace it or use another path.\n"
                f"  stored:    {ckpt['config']}\n  requested: {_plain(config)}"
            )
        model.load_state_dict(ckpt["model"])
        return {**ckpt, "loaded": True}
    result = dict(train_fn(model) or {})
    save_checkpoint(path, model, config=config, metrics=result.get("metrics"), history=result.get("history"), overwrite=retrain)
    return {**load_checkpoint(path), "loaded": False}
