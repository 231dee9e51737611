"""Tests for metalearn_lab.training: the loop, evaluation, checkpoints and load_or_train."""

from __future__ import annotations

import pytest
import torch

from metalearn_lab import training
from metalearn_lab.models import SineMLP
from metalearn_lab.training import (
    History,
    evaluate,
    load_checkpoint,
    load_or_train,
    meta_train,
    save_checkpoint,
    shipped_checkpoint,
)


def test_meta_train_records_history_and_checkpoints():
    calls, checkpoints, evaluations = [], [], []

    def step_fn(step):
        calls.append(step)
        return {"loss": 10.0 - step, "metric": step / 10}

    def evaluate_fn():
        evaluations.append(len(calls))
        return 0.5 + len(calls) / 100

    history = meta_train(step_fn, 5, evaluate_fn=evaluate_fn, eval_every=2, checkpoint_every=2,
                         on_checkpoint=lambda step, h: checkpoints.append((step, list(h.step))), progress=False)
    assert calls == [0, 1, 2, 3, 4]
    assert history.step == [0, 1, 2, 3, 4] and history.loss == [10.0, 9.0, 8.0, 7.0, 6.0]
    assert history.metric == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert history.eval_step == [2, 4] and history.eval_metric == pytest.approx([0.52, 0.54])
    assert checkpoints == [(2, [0, 1]), (4, [0, 1, 2, 3]), (5, [0, 1, 2, 3, 4])]

    # resuming: continue an existing history from step 5
    more = meta_train(step_fn, 7, history=history, start=5, progress=False)
    assert calls[5:] == [5, 6] and more.step == list(range(7))
    # a step without a metric records NaN
    h = meta_train(lambda s: {"loss": 1.0}, 1, progress=False)
    assert h.metric[0] != h.metric[0]
    with pytest.raises(ValueError, match="iterations"):
        meta_train(step_fn, -1, progress=False)


def test_history_round_trip():
    h = History(step=[0, 1], loss=[1.0, 0.5], metric=[0.1, 0.2], eval_step=[2], eval_metric=[0.3])
    assert History.from_dict({**h.as_dict(), "unknown": [1]}) == h
    assert History.from_dict(None) == History()


def test_evaluate_mean_and_interval():
    result = evaluate(lambda b: torch.tensor(b, dtype=torch.float32), [[1.0, 0.0], [1.0, 1.0, 0.5]])
    assert result["n_tasks"] == 5 and result["values"] == [1.0, 0.0, 1.0, 1.0, 0.5]
    assert result["mean"] == pytest.approx(0.7) and result["ci95"] > 0


def _trained_pair():
    torch.manual_seed(0)
    model = SineMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.linspace(-1, 1, 8)[:, None]
    for _ in range(3):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
    return model, optimizer


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model, optimizer = _trained_pair()
    config = {"name": "toy", "steps": (1, 5), "lr": torch.tensor(0.01), "nested": {"a": [1, 2]}}
    history = History(step=[0, 1, 2], loss=[3.0, 2.0, 1.0])
    path = save_checkpoint(tmp_path / "sub" / "ckpt.pt", model, config=config, metrics={"mean": torch.tensor(0.5)},
                           history=history, optimizer=optimizer, step=3)
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["format"] == training.CHECKPOINT_FORMAT

    fresh = SineMLP()
    ckpt = load_checkpoint(path, fresh)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    assert ckpt["config"] == {"name": "toy", "steps": [1, 5], "lr": pytest.approx(0.01), "nested": {"a": [1, 2]}}
    assert ckpt["metrics"] == {"mean": 0.5} and ckpt["step"] == 3
    assert History.from_dict(ckpt["history"]) == history
    new_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    new_optimizer.load_state_dict(ckpt["optimizer"])
    assert new_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]

    with pytest.raises(TypeError, match="set"):
        save_checkpoint(tmp_path / "bad.pt", model, config={"bad": {1, 2}})


def test_checkpoint_refuses_to_overwrite_a_different_config(tmp_path):
    model, _ = _trained_pair()
    path = save_checkpoint(tmp_path / "ckpt.pt", model, config={"seed": 0}, step=1)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="different config"):
        save_checkpoint(path, SineMLP(), config={"seed": 1}, step=2)
    assert path.read_bytes() == before
    save_checkpoint(path, model, config={"seed": 0}, step=2)  # the same run, resuming
    assert load_checkpoint(path)["step"] == 2
    save_checkpoint(path, model, config={"seed": 1}, step=0, overwrite=True)
    assert load_checkpoint(path)["config"] == {"seed": 1}


def test_corrupted_checkpoint_gives_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="not a readable metalearn-lab checkpoint.*delete it") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    with pytest.raises(FileExistsError, match="unreadable"):
        save_checkpoint(path, SineMLP(), config={})
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="format"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_load_or_train(tmp_path):
    path = tmp_path / "run.pt"
    calls = []

    def train_fn(model):
        calls.append(1)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(0.25 * len(calls))
        return {"metrics": {"mse": 0.1}, "history": History(step=[0], loss=[1.0])}

    first = load_or_train(path, SineMLP(), train_fn, config={"seed": 0})
    assert calls == [1] and first["loaded"] is False and first["metrics"] == {"mse": 0.1}

    model = SineMLP()
    second = load_or_train(path, model, train_fn, config={"seed": 0})
    assert calls == [1] and second["loaded"] is True
    assert all(bool((p == 0.25).all()) for p in model.parameters())

    with pytest.raises(ValueError, match="different config.*retrain=True"):
        load_or_train(path, SineMLP(), train_fn, config={"seed": 1})
    assert calls == [1]
    third = load_or_train(path, SineMLP(), train_fn, config={"seed": 1}, retrain=True)
    assert calls == [1, 1] and third["loaded"] is False and third["config"] == {"seed": 1}
    retrained = SineMLP()
    load_checkpoint(path, retrained)
    assert all(bool((p == 0.5).all()) for p in retrained.parameters())


def test_shipped_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "SHIPPED_DIR", tmp_path)
    assert shipped_checkpoint("toy") is None
    save_checkpoint(tmp_path / "toy.pt", SineMLP(), config={})
    assert shipped_checkpoint("toy") == tmp_path / "toy.pt"


def test_time_limit_stops_early_and_checkpoints_where_it_stopped():
    import time

    checkpoints = []

    def slow_step(step):
        time.sleep(0.02)
        return {"loss": 1.0}

    history = meta_train(slow_step, 1000, time_limit=0.05, progress=False,
                         on_checkpoint=lambda s, h: checkpoints.append((s, len(h.step))))
    reached = history.step[-1] + 1
    assert 2 <= reached < 1000 and checkpoints == [(reached, reached)]
    # a limit that is never hit changes nothing
    full = meta_train(lambda s: {"loss": 1.0}, 5, time_limit=60, progress=False)
    assert full.step == [0, 1, 2, 3, 4]
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="time_limit must be a finite number > 0"):
            meta_train(slow_step, 3, time_limit=bad, progress=False)


def test_optimizer_state_is_saved_on_the_cpu(tmp_path):
    model = SineMLP()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 1)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    moved = training._to_cpu({"a": [torch.ones(1)], "b": (torch.zeros(2), 3), "c": "x"})
    assert moved["b"][1] == 3 and moved["c"] == "x" and isinstance(moved["b"], tuple)
    path = save_checkpoint(tmp_path / "c.pt", model, config={"x": 1}, optimizer=optimizer)
    loaded = load_checkpoint(path)["optimizer"]
    assert all(t.device.type == "cpu" for s in loaded["state"].values() for t in s.values() if torch.is_tensor(t))
    torch.testing.assert_close(loaded["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
