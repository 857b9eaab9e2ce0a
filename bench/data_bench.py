"""CSV -> TFRecords: `tfxp data` side by side with TFX's own CsvExampleGen, on the same synthetic CSV.

Writes synthetic CSVs resampled from the sample (`tfxp data --scale N --write-csv`): --rows rows
(default 1M) that `tfxp data` converts alone, for its rows/s; and --reference-rows rows (default
200k: CsvExampleGen takes minutes per 100k rows here) that `tfxp data` (pyarrow.csv + tfx-bsl's
RecordBatchToExamplesEncoder) and a one-component TFX pipeline of CsvExampleGen (Beam DirectRunner,
in_memory as `make run`) both convert, side by side. Both write gzip'd TFRecords of tf.train.Example
split 2:1; times exclude the imports (CsvExampleGen's is its execution's time in MLMD).
Writes bench/results/data_bench.json.

    python -m bench.data_bench [--rows 1000000] [--reference-rows 200000]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.common import figure, write_results
from pipeline.config import PROJECT_ROOT, load_config

RATE_TARGET = 100_000  # rows/s on 2 cores
SPEEDUP_TARGET = 3.0   # x CsvExampleGen


def run_csv_example_gen(csv_path: str, root: str, beam_args) -> dict:
    """One CsvExampleGen in a fresh LocalDagRunner pipeline (call in a fresh process)."""
    from absl import logging as absl_logging
    from tfx import v1 as tfx

    from pipeline import run_summary

    absl_logging.set_verbosity(absl_logging.WARNING)
    component = tfx.components.CsvExampleGen(input_base=os.path.dirname(csv_path))
    metadata = os.path.join(root, "metadata.db")
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="csv_example_gen_bench", pipeline_root=os.path.join(root, "pipeline"), components=[component],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata),
        beam_pipeline_args=list(beam_args), enable_cache=False)
    start = time.monotonic()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    wall = time.monotonic() - start
    store = run_summary.open_store(metadata)
    [execution] = [e for e in store.get_executions() if e.type_id == store.get_execution_type(
        "tfx.components.example_gen.csv_example_gen.component.CsvExampleGen").id]
    seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
    return {"component_seconds": seconds, "in_process_wall_seconds": wall}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--csv-example-gen", nargs=2, metavar=("CSV", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = load_config()
    if args.csv_example_gen:  # the child process
        result = run_csv_example_gen(*args.csv_example_gen, cfg.resolved_beam_args)
        print("RESULT " + json.dumps(result))
        return

    import logging

    from data import synth, tfrecords

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    features = cfg.user_code.features

    def synthetic_csv(rows: int, path: str) -> float:
        start = time.monotonic()
        synth.write_csv(synth.synthesize(cfg.resolved_source_csv, rows, features), path)
        seconds = time.monotonic() - start
        print(f"synthetic CSV of {rows:,} rows ({os.path.getsize(path) / 2**20:.0f} MB) in {seconds:.1f} s", flush=True)
        return seconds

    with tempfile.TemporaryDirectory(prefix="data-bench-") as tmp:
        big_csv = os.path.join(tmp, "big", "synthetic.csv")
        synth_seconds = synthetic_csv(args.rows, big_csv)
        ours = tfrecords.convert_csv(big_csv, os.path.join(tmp, "ours-big"), features=features)
        ours_rate = ours.total_rows / ours.seconds
        print(f"tfxp data, {args.rows:,} rows: {ours.seconds:.1f} s, {ours_rate:,.0f} rows/s", flush=True)
        shutil.rmtree(os.path.join(tmp, "ours-big"))

        csv_path = os.path.join(tmp, "csv", "synthetic.csv")
        synthetic_csv(args.reference_rows, csv_path)
        side = tfrecords.convert_csv(csv_path, os.path.join(tmp, "ours"), features=features)
        print(f"tfxp data, {args.reference_rows:,} rows: {side.seconds:.1f} s", flush=True)
        print(f"CsvExampleGen on the same CSV ({' '.join(cfg.resolved_beam_args)}) ...", flush=True)
        child = subprocess.run([sys.executable, "-m", "bench.data_bench", "--csv-example-gen", csv_path,
                                os.path.join(tmp, "tfx")], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
        if child.returncode != 0 or not lines:
            raise SystemExit(f"CsvExampleGen failed:\n{child.stderr[-3000:]}")
        reference = json.loads(lines[-1][len("RESULT "):])
    reference_rate = args.reference_rows / reference["component_seconds"]
    speedup = reference["component_seconds"] / side.seconds
    print(f"CsvExampleGen: {reference['component_seconds']:.1f} s, {reference_rate:,.0f} rows/s; "
          f"tfxp data is {speedup:.1f}x faster")
    path = write_results("data_bench", {
        "rows": args.rows, "synthesize_seconds": synth_seconds, "ours_seconds": ours.seconds,
        "ours_rows_per_second": ours_rate, "reference_rows": args.reference_rows,
        "ours_seconds_on_reference_csv": side.seconds, "csv_example_gen": reference,
        "csv_example_gen_rows_per_second": reference_rate, "speedup": speedup,
        "figures": [
            figure(f"tfxp data: CSV -> TFRecords, rows/s ({args.rows:,} rows)", ours_rate, "rows/s", RATE_TARGET,
                   "higher"),
            figure(f"tfxp data / CsvExampleGen, speed on the same CSV ({args.reference_rows:,} rows)", speedup, "x",
                   SPEEDUP_TARGET, "higher"),
            figure("CsvExampleGen rows/s", reference_rate, "rows/s")]})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
