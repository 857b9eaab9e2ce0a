"""The benchmarks' pure parts: figures against targets, the summary table, which benchmarks run,
and how the pipeline benchmark builds its runs (the reference driver's arguments, ours, the edit)."""
import ast
import gzip
import os
import struct

import pytest

from bench import common, pipeline_bench, run_all
from components.core.user_code import load_user_code


# -- figures and targets ---------------------------------------------------------------------------

def test_a_lower_is_better_figure_meets_its_target_at_or_below_it():
    assert common.figure("ratio", 0.6, "x", target=0.6, better="lower")["met"] is True
    assert common.figure("ratio", 0.61, "x", target=0.6, better="lower")["met"] is False


def test_a_higher_is_better_figure_meets_its_target_at_or_above_it():
    assert common.figure("speedup", 3.0, "x", target=3.0, better="higher")["met"] is True
    assert common.figure("speedup", 2.9, "x", target=3.0, better="higher")["met"] is False


def test_a_figure_without_a_target_is_neither_met_nor_missed():
    assert common.figure("wall time", 61.2, "s")["met"] is None


def test_a_figure_carries_the_fields_the_summary_reads():
    assert common.figure("p50", 2, "ms", target=1.0) == {
        "name": "p50", "value": 2.0, "unit": "ms", "target": 1.0, "better": "lower", "met": False}


def test_better_must_say_lower_or_higher():
    with pytest.raises(ValueError, match="better must be one of"):
        common.figure("x", 1.0, "x", target=1.0, better="smaller")


# -- the summary table -----------------------------------------------------------------------------

def _bench(name, *figures, **extra):
    return {"name": name, "status": "ok", "figures": list(figures), **extra}


def test_the_table_shows_value_target_and_whether_it_was_met():
    table = run_all.format_table([_bench("pipeline_bench",
                                         common.figure("ours / reference", 0.72, "x", 0.6, "lower"),
                                         common.figure("full run", 61.23, "s"))])
    lines = table.splitlines()
    assert lines[0].split() == ["benchmark", "figure", "value", "target", "met"]
    assert lines[2].split()[-4:] == ["0.72x", "<=", "0.60x", "NO"]
    assert lines[3].split()[-4:] == ["61.2", "s", "-", "-"]


def test_the_table_columns_line_up():
    table = run_all.format_table([_bench("a", common.figure("short", 1.0, "x", 3.0, "higher")),
                                  _bench("longer_name",
                                         common.figure("a much longer figure name", 123456, "examples/s"))])
    lines = table.splitlines()
    for column in ("figure", "met"):
        start = lines[0].index(column)
        assert all(line[start - 2:start] == "  " and line[start] != " " for line in lines[2:]), column
    assert "123,456 examples/s" in lines[3]


def test_a_failed_benchmark_is_a_row_that_says_so_and_names_its_log():
    failed = {"name": "serving_bench", "status": "failed", "error": "exit 1: boom", "figures": [],
              "log": os.path.join(run_all.LOGS_DIR, "serving_bench.log")}
    table = run_all.format_table([_bench("tflite_bench", common.figure("size", 2.2, "x", 3.5, "higher")), failed])
    row = table.splitlines()[-1]
    assert row.startswith("serving_bench") and "FAILED: exit 1: boom" in row
    assert "bench/results/logs/serving_bench.log" in row


def test_values_keep_their_significant_digits():
    assert run_all.format_value(0.004, "") == "0.0040"
    assert run_all.format_value(0.0, "") == "0.00"
    assert run_all.format_value(2.26, "ms") == "2.26 ms"
    assert run_all.format_value(192568.1, "examples/s") == "192,568 examples/s"
    assert run_all.format_target(3.5, "higher", "x") == ">= 3.50x"
    assert run_all.format_target(None, "lower", "x") == "-"


def test_the_markdown_table_has_one_row_per_figure():
    md = run_all.format_markdown([_bench("x", common.figure("a", 1, "s"), common.figure("b", 2, "s"))])
    assert md.splitlines()[2:] == ["| x | a | 1.00 s | - | - |", "| x | b | 2.00 s | - | - |"]


# -- which benchmarks run --------------------------------------------------------------------------

def test_every_benchmark_module_in_bench_is_run():
    bench_dir = os.path.dirname(run_all.__file__)
    modules = {f[:-3] for f in os.listdir(bench_dir) if f.endswith(".py")} - run_all.NOT_BENCHMARKS
    assert modules == set(run_all.NAMES)


def test_the_whole_pipeline_benchmarks_run_after_those_that_read_the_default_run():
    needs = [needs for _, _, needs in run_all.BENCHMARKS]
    assert needs == sorted(needs, reverse=True)


def test_only_and_skip_keep_the_run_order():
    assert run_all.select(["pipeline_bench", "input_bench"], None) == ["input_bench", "pipeline_bench"]
    assert run_all.select(None, ["serving_bench"]) == [n for n in run_all.NAMES if n != "serving_bench"]


def test_an_unknown_benchmark_name_is_refused():
    with pytest.raises(SystemExit, match="unknown benchmark.*no_such_bench"):
        run_all.select(["no_such_bench"], None)


# -- the pipeline benchmark's runs -----------------------------------------------------------------

def test_the_reference_driver_gets_back_the_root_and_beam_args_it_was_given():
    beam_args = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    command = pipeline_bench.reference_command("/tmp/ref", beam_args, python="python")
    assert command[:3] == ["python", "-m", "bench.pipeline_bench"]
    args = pipeline_bench.build_parser().parse_args(command[3:])
    assert args.reference_driver == "/tmp/ref" and args.beam_arg == beam_args


def test_the_reference_driver_passes_every_argument_of_the_references_create_pipeline():
    path = os.path.join(os.path.dirname(pipeline_bench.reference_files()["module_file"]),
                        "taxi_pipeline_native_keras.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    create = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_create_pipeline")
    with open(pipeline_bench.__file__) as f:
        driver = next(n for n in ast.parse(f.read()).body
                      if isinstance(n, ast.FunctionDef) and n.name == "run_reference")
    passed = {k.arg for n in ast.walk(driver) if isinstance(n, ast.Call) for k in n.keywords}
    assert {a.arg for a in create.args.args} <= passed


def test_the_reference_reads_the_same_rows_as_our_sample():
    files = pipeline_bench.reference_files()
    assert os.path.exists(files["module_file"])
    assert pipeline_bench.csv_rows(os.path.join(files["data_root"], "data.csv")) == 15002


def test_our_run_reads_the_converted_tfrecords_into_the_given_root():
    command = pipeline_bench.ours_command("/tmp/out", "in_memory", force=True)
    assert "run" in command and "--no-data" in command and "--force" in command
    assert "output_root=/tmp/out" in command and "beam_preset=in_memory" in command
    cached = pipeline_bench.ours_command("/tmp/out", "in_memory", force=False, user_package="bench_user_code")
    assert "--force" not in cached and "user_package=bench_user_code" in cached


def test_the_edit_widens_the_last_hidden_layer_of_the_shipped_model():
    with open(load_user_code("components").file("model")) as f:
        original = f.read()
    edited, what = pipeline_bench.edit_model_source(original)
    assert edited != original and "HIDDEN_UNITS = (64, 48)" in edited
    assert what == "HIDDEN_UNITS = (64, 32) -> HIDDEN_UNITS = (64, 48)"


def test_a_model_without_hidden_units_cannot_be_edited():
    with pytest.raises(pipeline_bench.RunFailed, match="no `HIDDEN_UNITS"):
        pipeline_bench.edit_model_source("def build_model(inputs, task): ...\n")


def test_the_user_package_copy_holds_its_top_level_files_only(tmp_path):
    source = load_user_code("components").directory
    copy = pipeline_bench.copy_user_package(source, str(tmp_path))
    assert sorted(os.listdir(copy)) == ["__init__.py", "features.py", "model.py", "preprocessing.py"]


def test_tfrecords_are_counted_by_their_framing(tmp_path):
    path = tmp_path / "data.tfrecord.gz"
    with gzip.open(path, "wb") as f:
        for payload in (b"a", b"", b"xyz" * 100):
            f.write(struct.pack("<Q", len(payload)) + b"\0" * 4 + payload + b"\0" * 4)
    assert pipeline_bench.tfrecord_count(str(path)) == 3


# -- where a run's time goes -----------------------------------------------------------------------

def _components(*rows):
    return [{"component": c, "state": s, "seconds": end - start, "start_epoch": start, "end_epoch": end}
            for c, s, start, end in rows]


def test_a_runs_time_splits_into_start_up_components_gaps_and_the_end():
    run = {"wall_seconds": 20.0, "start_epoch": 100.0, "end_epoch": 120.0}
    found = pipeline_bench.breakdown(run, _components(("A", "COMPLETE", 105, 108), ("B", "CACHED", 109, 110)))
    assert found["before_first_component_seconds"] == 5
    assert found["components_seconds"] == 4 and found["busy_seconds"] == 4
    assert found["between_components_seconds"] == 1
    assert found["after_last_component_seconds"] == 10
    assert [(c["component"], c["started_at_seconds"]) for c in found["components"]] == [("A", 5), ("B", 9)]


def test_components_running_at_the_same_time_count_once_in_the_busy_time():
    run = {"wall_seconds": 20.0, "start_epoch": 100.0, "end_epoch": 120.0}
    found = pipeline_bench.breakdown(run, _components(("A", "COMPLETE", 101, 105), ("B", "COMPLETE", 103, 106),
                                                      ("C", "COMPLETE", 108, 110)))
    assert found["components_seconds"] == 9 and found["busy_seconds"] == 7
    assert found["between_components_seconds"] == 2  # 106 -> 108, nothing running


def test_the_side_by_side_table_aligns_components_by_role_and_marks_cached_ones():
    run = {"wall_seconds": 30.0, "start_epoch": 0.0, "end_epoch": 30.0}
    ours = pipeline_bench.breakdown(run, _components(("ImportExampleGen", "CACHED", 5, 6),
                                                     ("infra_validator", "COMPLETE", 6, 10)))
    reference = pipeline_bench.breakdown(run, _components(("CsvExampleGen", "COMPLETE", 5, 9)))
    lines = pipeline_bench.format_component_table({"ours": ours, "reference": reference}).splitlines()
    example_gen = next(line for line in lines if line.startswith("ExampleGen"))
    assert "1.0 (cached) [ImportExampleGen]" in example_gen and "4.0 [CsvExampleGen]" in example_gen
    infra = next(line for line in lines if line.startswith("infra_validator"))
    assert infra.split()[-2:] == ["4.0", "-"]
    assert lines[-1].startswith("wall time of the process") and lines[-1].split()[-2:] == ["30.0", "30.0"]


# -- the scale benchmark ---------------------------------------------------------------------------

def test_the_scale_benchmark_samples_the_memory_of_the_whole_process_tree(tmp_path):
    import sys

    from bench import scale_bench

    # a child that holds ~300 MB while its parent holds little: only the tree's sum sees it
    child = "import time; block = bytearray(300 * 2**20); time.sleep(2.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    run = scale_bench.sampled_run("memory", [sys.executable, "-c", parent], str(tmp_path / "run.log"))
    assert run["peak_bytes"] > 300 * 2 ** 20
    assert len(run["samples"]) >= 3 and run["wall_seconds"] >= 2.5


def test_a_failed_scaled_run_names_its_log(tmp_path):
    import sys

    from bench import scale_bench

    with pytest.raises(pipeline_bench.RunFailed, match="run.log"):
        scale_bench.sampled_run("failing", [sys.executable, "-c", "raise SystemExit(3)"], str(tmp_path / "run.log"))


def test_the_scale_figures_hold_the_targets_at_a_million_rows():
    from bench import scale_bench

    runs = {15_002: {"wall_seconds": 100.0, "peak_bytes": 2 * 2 ** 30},
            100_000: {"wall_seconds": 200.0, "peak_bytes": 3 * 2 ** 30},
            1_000_000: {"wall_seconds": 1600.0, "peak_bytes": 9 * 2 ** 30}}
    figures = {f["name"]: f for f in scale_bench.figures_of(runs)}
    growth = figures["time(1,000,000 rows) / time(100,000 rows) (10.0x the rows)"]
    assert (growth["value"], growth["target"], growth["met"]) == (8.0, 10.0, True)
    memory = figures["whole pipeline at 1,000,000 rows: peak memory (process tree RSS)"]
    assert (memory["value"], memory["target"], memory["met"]) == (9.0, 8.0, False)
    assert figures["whole pipeline at 100,000 rows: peak memory (process tree RSS)"]["target"] is None
    assert figures["time(100,000 rows) / time(15,002 rows) (6.7x the rows)"]["target"] is None
