"""metalearn_lab.sweeps: grids of short registered runs, choosing on validation, the shipped results."""

from __future__ import annotations

import json
import math

import pytest

from metalearn_lab import sweeps
from metalearn_lab.experiments import ExperimentConfig, get_config, same_run


def tiny_sweep(**changes):
    fields = dict(grid={"inner_lr": (0.01, 0.1)}, fixed={"iterations": 3, "eval_every": 0, "checkpoint_every": 0,
                                                           "eval_tasks": 5, "meta_batch_size": 2, "eval_steps": (1,)},
                  validation_tasks=4)
    fields.update(changes)
    return sweeps.Sweep("tiny", "sinusoid-maml", **fields)


def test_points_are_the_product_in_order_and_quick_grid_defaults_to_two_values():
    sweep = sweeps.Sweep("s", "sinusoid-maml", grid={"a": (1, 2, 3), "b": ("x", "y")})
    assert sweep.points() == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"},
                              {"a": 3, "b": "x"}, {"a": 3, "b": "y"}]
    assert len(sweep.points(quick=True)) == 4


@pytest.mark.parametrize(("changes", "message"), [
    ({"grid": {}}, "needs a grid"),
    ({"grid": {"inner_lr": ()}}, "at least one value"),
    ({"validation_tasks": 1}, "validation_tasks must be an integer >= 2"),  # a 95% interval needs 2 tasks
    ({"train_tasks": 1}, r"train_tasks must be 0 \(no score on training tasks\) or an integer >= 2"),
    ({"train_tasks": -1}, "train_tasks must be an integer >= 0"),
])
def test_bad_sweeps_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_sweep(**changes)


def test_config_of_a_point_is_the_registered_config_with_the_changes():
    sweep = sweeps.get_sweep("sinusoid-sensitivity")
    config = sweep.config({"meta_batch_size": 5, "inner_steps": 2, "inner_lr": 0.03})
    base = get_config("sinusoid-maml", quick=False)
    assert (config.meta_batch_size, config.inner_steps, config.inner_lr, config.eval_steps) == (5, 2, 0.03, (2,))
    assert config.iterations == 1000 and config.outer_lr == base.outer_lr and config.k_shot == base.k_shot
    quick = sweep.config({"meta_batch_size": 5, "inner_steps": 2, "inner_lr": 0.03}, quick=True)
    assert quick.iterations == 30 and quick.meta_batch_size == 5 and quick.eval_steps == (2,)


def test_unknown_sweep_names_the_valid_ones():
    with pytest.raises(ValueError, match="sinusoid-sensitivity"):
        sweeps.get_sweep("nope")


def test_run_sweep_scores_every_point_and_resumes(tmp_path):
    out = tmp_path / "tiny.json"
    sweep = tiny_sweep(test_on={"big": {"amplitude": (5.0, 10.0)}}, train_tasks=3)
    sweep = sweeps.Sweep(**{**sweep.__dict__, "fixed": {**sweep.fixed, "n_train_tasks": 2}})
    results = sweeps.run_sweep(sweep, out=out, progress=False)
    assert [p["values"] for p in results["points"]] == [{"inner_lr": 0.01}, {"inner_lr": 0.1}]
    point = results["points"][0]
    assert point["validation"]["n_tasks"] == 4 and point["test"]["n_tasks"] == 5
    assert "validation" in point["validation"]["protocol"] and "test" in point["test"]["protocol"]
    assert "A~U[5,10]" in point["test_on"]["big"]["protocol"] and point["train_tasks"]["n_tasks"] == 3
    assert point["config"]["n_train_tasks"] == 2 and point["train_cpu_s"] > 0
    assert results["higher_is_better"] is False and results["grid"] == {"inner_lr": [0.01, 0.1]}
    stored = json.loads(out.read_text())
    assert stored["points"] == json.loads(json.dumps(results["points"]))
    # a second call with the same file trains nothing new
    stored["points"][0]["validation"]["mean"] = -1.0
    out.write_text(json.dumps(stored))
    again = sweeps.run_sweep(sweep, out=out, progress=False)
    assert again["points"][0]["validation"]["mean"] == -1.0 and len(again["points"]) == 2


def test_runs_are_reproducible():
    a = sweeps.run_point(tiny_sweep(), {"inner_lr": 0.1})
    b = sweeps.run_point(tiny_sweep(), {"inner_lr": 0.1})
    assert a["validation"]["mean"] == b["validation"]["mean"] and a["test"]["mean"] == b["test"]["mean"]


def results_of(values):
    return {"higher_is_better": False, "points": [
        {"values": {"a": a, "b": b}, "validation": {"mean": v}, "test": {"mean": -v}} for (a, b), v in values.items()]}


def test_best_point_reads_validation_and_treats_nan_as_worst():
    results = results_of({(1, 1): float("nan"), (1, 2): 0.5, (2, 1): 0.2, (2, 2): 0.9})
    assert sweeps.best_point(results)["values"] == {"a": 2, "b": 1}
    assert sweeps.best_point(results, where={"a": 1})["values"] == {"a": 1, "b": 2}
    assert sweeps.best_point({**results, "higher_is_better": True})["values"] == {"a": 2, "b": 2}
    with pytest.raises(ValueError, match="no point"):
        sweeps.best_point(results, where={"a": 3})


def test_grid_table_fills_missing_cells_with_nan_and_refuses_ambiguous_cells():
    rows, columns, table = sweeps.grid_table(results_of({(1, 1): 0.1, (2, 2): 0.4}), "a", "b")
    assert rows == [1, 2] and columns == [1, 2] and table[0][0] == 0.1 and math.isnan(table[0][1])
    doubled = results_of({(1, 1): 0.1})
    doubled["points"].append({"values": {"a": 1, "b": 1}, "validation": {"mean": 0.3}})
    with pytest.raises(ValueError, match="share the cell"):
        sweeps.grid_table(doubled, "a", "b")


def test_value_reads_every_metric_and_strings_for_infinity():
    point = {"validation": {"mean": 1.0}, "test": {"mean": 2.0, "median": 1.5}, "test_on": {"x": {"mean": "inf"}}}
    assert sweeps.value(point) == 1.0 and sweeps.value(point, "test", statistic="median") == 1.5
    assert math.isinf(sweeps.value(point, "test_on:x"))


def test_save_and_load(tmp_path):
    sweeps.save_sweep({"sweep": "x", "points": [{"v": float("inf")}]}, tmp_path / "x.json")
    assert sweeps.load_sweep("x", tmp_path)["points"][0]["v"] == "inf"
    assert sweeps.load_sweep("missing", tmp_path) is None
    (tmp_path / "y.json").write_text(json.dumps({"sweep": "x"}))
    with pytest.raises(ValueError, match="holds the sweep 'x'"):
        sweeps.load_sweep("y", tmp_path)


@pytest.mark.parametrize("name", list(sweeps.SWEEPS))
def test_shipped_sweeps_are_complete_and_were_run_with_todays_configs(name):
    shipped = sweeps.load_sweep(name)
    assert shipped is not None, f"{name}: no shipped results in {sweeps.SHIPPED_SWEEPS_DIR} (metalearn-lab sweep {name} --ship)"
    sweep = sweeps.get_sweep(name)
    assert shipped["quick"] is False
    expected = {sweeps.point_label(v) for v in sweep.points()}
    stored = {sweeps.point_label({k: tuple(x) if isinstance(x, list) else x for k, x in p["values"].items()})
              for p in shipped["points"]}
    assert stored == expected
    for point in shipped["points"]:
        values = {k: tuple(x) if isinstance(x, list) else x for k, x in point["values"].items()}
        # read back as today's config (fields added since the sweep ran take their defaults), it is the same run as the
        # sweep's point (notes and evaluation schedules may be reworded; what the run computes may not differ)
        stored_config = ExperimentConfig.from_dict(point["config"])
        assert same_run(stored_config.to_dict(), sweep.config(values).to_dict()), values
        assert point["validation"]["n_tasks"] == sweep.validation_tasks
        assert "validation" in point["validation"]["protocol"] and "test" in point["test"]["protocol"]


def test_quick_results_are_computed_live():
    results = sweeps.sweep_results("sinusoid-shift", quick=True)
    assert results["source"] == "quick" and len(results["points"]) == 2 and results["quick"] is True


def test_cli_sweep_writes_the_json(tmp_path, capsys):
    from metalearn_lab.cli import main

    out = tmp_path / "shift.json"
    assert main(["sweep", "sinusoid-shift", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert len(json.loads(out.read_text())["points"]) == 2 and "best on validation" in capsys.readouterr().out
