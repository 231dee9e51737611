"""metalearn_lab.report: the lesson run-time table of the results page, read from the measurements."""

import json
import shutil
from pathlib import Path

from metalearn_lab.report import lesson_run_times, write_results_page

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _record(wall, cpu, load, date="2026-11-30T07:00:00+00:00"):
    return {"wall_seconds": wall, "kernel_cpu_seconds": cpu, "load_average": load, "date": date, "cores": 2}


def test_the_table_has_a_row_per_lesson_from_the_file_and_names_the_command_for_a_missing_one(tmp_path):
    for name in ("01_first", "02_second"):
        (tmp_path / f"{name}.md").write_text("# lesson\n")
    (tmp_path / "run_times.json").write_text(json.dumps({"lessons": {
        "01_first": {"classroom": _record(154.4, 40.2, 1.26), "quick": _record(20.6, 9.0, 0.8)}}}))
    rows = lesson_run_times(tmp_path)
    assert rows[0] == ("01_first", "154 s", "21 s", "40 s, 9 s", "2026-11-30, 2 cores, load average 1.3 and 0.8")
    assert rows[1][0] == "02_second" and rows[1][1] == "not measured"
    assert "scripts/measure_run_times.py 02_second" in rows[1][4]
    assert not any("|" in cell or "**" in cell for row in rows for cell in row)


def test_the_results_page_shows_every_lesson_of_the_repository(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for path in NOTEBOOKS.glob("[0-9][0-9]_*.md"):
        shutil.copy2(path, notebooks / path.name)
    if (NOTEBOOKS / "run_times.json").exists():
        shutil.copy2(NOTEBOOKS / "run_times.json", notebooks / "run_times.json")
    page = write_results_page(tmp_path / "results.md", notebooks_dir=notebooks).read_text()
    table = page.split("## Lesson run times", 1)[1]
    for path in NOTEBOOKS.glob("[0-9][0-9]_*.md"):
        assert f"| {path.stem} |" in table


def test_every_row_compared_with_a_paper_states_its_protocol_differences():
    from metalearn_lab.report import PROTOCOL_DIFFERENCES, TARGETS

    compared = {name for name, _, _, keys in TARGETS if keys and name.startswith(("omniglot", "sinusoid-maml", "sinusoid-pretrain"))}
    assert compared <= set(PROTOCOL_DIFFERENCES), sorted(compared - set(PROTOCOL_DIFFERENCES))
    assert all(PROTOCOL_DIFFERENCES[name] for name in compared)


def test_the_results_table_marks_old_protocol_rows_and_shows_the_other_batching():
    from metalearn_lab.experiments import ExperimentConfig
    from metalearn_lab.report import load_results, results_table

    results = load_results()
    configs = {name: ExperimentConfig.from_dict(r["config"]) for name, r in results.items()}
    old = {name for name, c in configs.items()
           if getattr(c, "validation_characters", None) == 0 or getattr(c, "validation_alphabets", None) == 0}
    assert old, "the shipped runs include old-protocol ones: the test would check nothing"
    table = results_table(results)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    from metalearn_lab.report import TARGETS

    for name, label, _, _ in TARGETS:
        if name in results:
            assert ("**old protocol**" in rows[label]) is (name in old), rows[label]
    maml = dict(results["omniglot-maml-5w1s"])
    maml["one_query_per_class_result"] = {"mean": 0.5, "ci95": 0.01, "transductive": True}
    table = results_table({**results, "omniglot-maml-5w1s": maml})
    assert any("1 query a class" in line and "50.0 ± 1.0%" in line for line in table.splitlines())


def test_the_sinusoid_rows_say_which_seed_validation_chose():
    from metalearn_lab.report import TARGETS, load_results, results_table

    results = load_results()
    table = results_table(results)
    for name in ("sinusoid-maml", "sinusoid-pretrain"):
        label = next(label for n, label, _, _ in TARGETS if n == name)
        row = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
        chosen = results[name]["seed_selection"]["chosen_seed"]
        assert chosen == results[name]["config"]["seed"]
        assert f"seed {chosen} (against" in row and "validation tasks" in row, row


def test_every_shipped_run_and_sweep_is_on_the_results_page(tmp_path):
    from metalearn_lab.report import RESULTS_DIR, TARGETS, load_results, load_sweeps

    page = write_results_page(tmp_path / "results.md").read_text()
    results = load_results()
    manifest = json.loads((RESULTS_DIR.parent / "checkpoints" / "manifest.json").read_text())
    assert set(manifest) <= set(results), f"shipped checkpoints without results: {sorted(set(manifest) - set(results))}"
    labels = {name: label for name, label, *_ in TARGETS}
    missing = [name for name in results if name not in labels]
    assert not missing, f"shipped runs without a row in report.TARGETS (label, target, published keys): {missing}"
    table = page.split("## Reached, target and published", 1)[1].split("\n\n", 2)[1]
    for name in results:
        assert f"| {labels[name]} | **" in table, name
    sweeps = load_sweeps()
    assert sweeps, "no shipped sweeps found"
    for name, sweep in sweeps.items():
        rows = [line for line in page.splitlines() if line.startswith(f"| {name} (")]
        assert len(rows) == len(sweep["points"]), (name, len(rows))


def test_a_shipped_run_missing_from_the_targets_still_gets_a_row(tmp_path):
    from metalearn_lab.report import RESULTS_DIR, results_table

    shutil.copy2(RESULTS_DIR / "sinusoid-maml.json", tmp_path / "sinusoid-maml.json")
    data = json.loads((tmp_path / "sinusoid-maml.json").read_text())
    data["experiment"] = "sinusoid-maml-new"
    from metalearn_lab.report import load_results

    (tmp_path / "new.json").write_text(json.dumps(data))
    table = results_table(load_results(tmp_path))
    assert "| sinusoid-maml-new | **" in table and "(no target)" in table
