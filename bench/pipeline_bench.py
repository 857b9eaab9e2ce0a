"""The whole pipeline against TFX's own reference, and the data scientist's edit-and-rerun loop.

1. Full run vs TFX's reference: `taxi_pipeline_native_keras` (ships in the tfx wheel, with its
   data.csv: the same 15,002 rows as data/chicago_taxi.csv) through LocalDagRunner, each run in a
   fresh subprocess with a fresh pipeline root and MLMD; ours is `tfxp run --force --no-data` into
   a fresh output root, on the TFRecords converted once. Three runs: ours in_memory (our default),
   the reference in_memory (same Beam mode: the ratio is about the code) and the reference
   multi_processing (its default). Our pipeline does more (anomalies gate, InfraValidator, the
   TFLite branch; see DIFFERENCES).
2. The loop: a full run into a fresh output root (cache on), an edit to the model (model.py of a
   copy of the user package), a rerun (cache on). Ratio rerun / full run.

Per run: the subprocess wall time, and per component the time from its MLMD execution's creation
to its last update (executed or cached), plus the time before the first component (start-up,
imports, building the pipeline) and after the last one. Writes bench/results/pipeline_bench.json.

    python -m bench.pipeline_bench [--only reference|loop] [--keep DIR]
"""
import argparse
import csv
import gzip
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

from bench.common import RESULTS_DIR, figure, kill_tree, write_results
from pipeline.config import BEAM_PRESETS, PROJECT_ROOT, load_config
from tfxp import nodes

REFERENCE_PACKAGE = "tfx.examples.chicago_taxi_pipeline"
REFERENCE_MODULE = f"{REFERENCE_PACKAGE}.taxi_pipeline_native_keras"
REFERENCE_PIPELINE_NAME = "chicago_taxi_native_keras"
REFERENCE_TRAIN_STEPS = 1000  # fixed in its _create_pipeline (TrainArgs(num_steps=1000))
REFERENCE_DEFAULT_BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
BENCH_USER_PACKAGE = "bench_user_code"
LOGS_DIR = os.path.join(RESULTS_DIR, "logs", "pipeline_bench")
RUN_TIMEOUT_SECONDS = 600  # one pipeline run takes 1-2 minutes here: a run past this is stuck
TARGETS = {"ours_over_reference_same_mode_max": 0.6, "rerun_over_full_run_max": 0.35}
DIFFERENCES = [
    "ours also runs the anomalies gate, the InfraValidator (starts tfxp serve, sends requests, writes warmup) "
    "and the TFLite branch (converter, evaluator, lite pusher); the reference does not",
    "ours reads the TFRecords converted once (ImportExampleGen) and imports a curated schema (ImportSchemaGen); "
    "the reference parses its CSV (CsvExampleGen) and infers the schema (SchemaGen)",
    "training: both 1000 steps; ours {batch} examples per step and {eval_steps} eval steps, the reference 40 per "
    "step and 150 eval steps",
    "tfxp run's wall time also holds what it does after the pipeline (the run summary, the TFLite report, one "
    "prediction of the pushed model); the reference driver only runs the pipeline",
    "the reference passes module_file=: TFX packages it as a wheel under the pipeline root and installs it for "
    "Transform and Trainer; ours references code by module path",
]
# Rows of the side-by-side table: the same role under each pipeline's node id.
ROLES = {nodes.EXAMPLE_GEN: "ExampleGen", "CsvExampleGen": "ExampleGen", nodes.SCHEMA_GEN: "SchemaGen",
         nodes.EVALUATOR: "Evaluator", nodes.PUSHER: "Pusher"}


class RunFailed(RuntimeError):
    pass


# -- the reference driver (runs in its own process) ---------------------------------------------

def reference_files() -> Dict[str, str]:
    """The reference's data folder (CsvExampleGen's input_base) and module file, inside the tfx wheel."""
    spec = importlib.util.find_spec(REFERENCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RunFailed(f"{REFERENCE_PACKAGE} is not installed (it ships in the tfx wheel)")
    directory = list(spec.submodule_search_locations)[0]
    return {"data_root": os.path.join(directory, "data", "simple"),
            "module_file": os.path.join(directory, "taxi_utils_native_keras.py")}


def reference_command(root: str, beam_args: Sequence[str], python: str = sys.executable) -> List[str]:
    """The subprocess that runs the reference pipeline into ``root`` with ``beam_args``."""
    return [python, "-m", "bench.pipeline_bench", "--reference-driver", root,
            *(f"--beam-arg={arg}" for arg in beam_args)]


def reference_paths(root: str) -> Dict[str, str]:
    return {"pipeline_root": os.path.join(root, "pipeline"),
            "metadata_path": os.path.join(root, "metadata", "metadata.db"),
            "serving_model_dir": os.path.join(root, "serving_model", REFERENCE_PIPELINE_NAME)}


def run_reference(root: str, beam_args: Sequence[str]) -> None:
    """Builds the reference with its own _create_pipeline and runs it with LocalDagRunner."""
    from absl import logging as absl_logging
    from tfx import v1 as tfx

    reference = importlib.import_module(REFERENCE_MODULE)
    files, paths = reference_files(), reference_paths(root)
    os.makedirs(os.path.dirname(paths["metadata_path"]), exist_ok=True)
    absl_logging.set_verbosity(absl_logging.INFO)  # as its __main__ does
    tfx.orchestration.LocalDagRunner().run(reference._create_pipeline(
        pipeline_name=REFERENCE_PIPELINE_NAME, pipeline_root=paths["pipeline_root"], data_root=files["data_root"],
        module_file=files["module_file"], serving_model_dir=paths["serving_model_dir"],
        metadata_path=paths["metadata_path"], beam_pipeline_args=list(beam_args)))


# -- our pipeline --------------------------------------------------------------------------------

def tfxp() -> List[str]:
    script = os.path.join(os.path.dirname(sys.executable), "tfxp")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "pipeline.cli"]


def ours_command(output_root: str, beam_preset: str, *, force: bool, user_package: Optional[str] = None) -> List[str]:
    command = tfxp() + ["run", "--no-data", "--set", f"output_root={output_root}",
                        "--set", f"beam_preset={beam_preset}"]
    if user_package:
        command += ["--set", f"user_package={user_package}"]
    return command + (["--force"] if force else [])


def copy_user_package(source_dir: str, parent: str, name: str = BENCH_USER_PACKAGE) -> str:
    """A copy of the user package's own files (its top-level .py files) as package ``name`` under ``parent``."""
    target = os.path.join(parent, name)
    os.makedirs(target)
    for entry in sorted(os.listdir(source_dir)):
        if entry.endswith(".py"):
            shutil.copyfile(os.path.join(source_dir, entry), os.path.join(target, entry))
    return target


HIDDEN_UNITS_LINE = re.compile(r"^HIDDEN_UNITS = \(([\d\s,]+)\)", re.MULTILINE)


def edit_model_source(text: str) -> Tuple[str, str]:
    """A data scientist's edit to model.py: the last hidden layer 1.5x wider. Returns (text, what changed)."""
    found = HIDDEN_UNITS_LINE.search(text)
    if found is None:
        raise RunFailed("model.py has no `HIDDEN_UNITS = (...)` line to edit: update edit_model_source")
    units = [int(u) for u in found.group(1).replace(" ", "").split(",") if u]
    edited = units[:-1] + [units[-1] * 3 // 2]
    new_line = f"HIDDEN_UNITS = ({', '.join(map(str, edited))}{',' if len(edited) == 1 else ''})"
    return text[:found.start()] + new_line + text[found.end():], f"{found.group(0)} -> {new_line}"


# -- running and timing --------------------------------------------------------------------------

def timed_run(label: str, command: List[str], log_path: str, env: Optional[dict] = None,
              timeout: float = RUN_TIMEOUT_SECONDS) -> Dict[str, float]:
    """Runs ``command`` with its output in ``log_path``; wall seconds and start/end epoch seconds. A run that
    takes longer than ``timeout`` is stopped (with every process it started) and fails."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    print(f"  {label} ... (log: {os.path.relpath(log_path, PROJECT_ROOT)})", flush=True)
    with open(log_path, "w") as log:
        log.write(" ".join(command) + "\n\n")
        log.flush()
        start_epoch, start = time.time(), time.monotonic()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                   env=dict(os.environ, **(env or {})))
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(process)
            raise RunFailed(f"{label} did not finish in {timeout:.0f} s: stopped (see {log_path})") from None
        except BaseException:  # Ctrl-C: no run left behind
            kill_tree(process)
            raise
        seconds, end_epoch = time.monotonic() - start, time.time()
    if code != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise RunFailed(f"{label} failed (exit {code}); the end of {log_path}:\n{tail}")
    print(f"    {seconds:.1f} s", flush=True)
    return {"wall_seconds": seconds, "start_epoch": start_epoch, "end_epoch": end_epoch}


def component_times(metadata_path: str, pipeline_name: str) -> List[dict]:
    """Per execution of the newest run of ``pipeline_name``, in start order: component (node id), state
    (COMPLETE, CACHED, ...), seconds (MLMD create to last update) and its start/end epoch seconds."""
    from ml_metadata.proto import metadata_store_pb2

    from pipeline import run_summary

    store = run_summary.open_store(metadata_path)
    runs = run_summary.pipeline_runs(store, pipeline_name)
    if not runs:
        raise RunFailed(f"no pipeline {pipeline_name!r} in {metadata_path}")
    run = runs[-1]
    node_type, prefix = store.get_context_type("node").id, pipeline_name + "."
    rows = []
    for execution in store.get_executions_by_context(run.id):
        node = next(c for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type)
        start, end = execution.create_time_since_epoch / 1000, execution.last_update_time_since_epoch / 1000
        rows.append({"component": node.name[len(prefix):] if node.name.startswith(prefix) else node.name,
                     "state": metadata_store_pb2.Execution.State.Name(execution.last_known_state),
                     "seconds": end - start, "start_epoch": start, "end_epoch": end})
    return sorted(rows, key=lambda r: r["start_epoch"])


def busy_seconds(intervals: Sequence[Tuple[float, float]]) -> float:
    """Seconds in which at least one interval is running (components may run at the same time)."""
    total, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total, end = total + stop - start, stop
        elif stop > end:
            total, end = total + stop - end, stop
    return total


def breakdown(run: Dict[str, float], components: List[dict]) -> dict:
    """Where a run's wall time went: before the first component, in components, with none running, after the last;
    per component its seconds and when it started (seconds after the process started).
    ``components_seconds`` sums the components; ``busy_seconds`` counts time in which any ran (less, when some
    ran at the same time)."""
    first, last = min(c["start_epoch"] for c in components), max(c["end_epoch"] for c in components)
    busy = busy_seconds([(c["start_epoch"], c["end_epoch"]) for c in components])
    return {"wall_seconds": run["wall_seconds"], "before_first_component_seconds": first - run["start_epoch"],
            "components_seconds": sum(c["seconds"] for c in components), "busy_seconds": busy,
            "between_components_seconds": (last - first) - busy,
            "after_last_component_seconds": run["end_epoch"] - last, "pipeline_span_seconds": last - first,
            "components": [dict({k: c[k] for k in ("component", "state", "seconds")},
                                started_at_seconds=c["start_epoch"] - run["start_epoch"]) for c in components]}


# -- the table -----------------------------------------------------------------------------------

OVERHEAD_ROWS = [("sum of the components", "components_seconds"),
                 ("first component start to last component end", "pipeline_span_seconds"),
                 ("before the first component (start-up, imports, pipeline build)",
                  "before_first_component_seconds"),
                 ("between components, none running (orchestration)", "between_components_seconds"),
                 ("after the last component", "after_last_component_seconds"),
                 ("wall time of the process", "wall_seconds")]


def format_component_table(columns: Dict[str, dict]) -> str:
    """Side by side, one column per run (a ``breakdown``): seconds per component (by role), then the overheads.
    A cached component shows its time with `(cached)`; a component a run does not have shows `-`."""
    roles: List[str] = []
    cells: Dict[str, Dict[str, str]] = {label: {} for label in columns}
    for label, run in columns.items():
        for c in run["components"]:
            role = ROLES.get(c["component"], c["component"])
            if role not in roles:
                roles.append(role)
            shown = f"{c['seconds']:.1f}" + (" (cached)" if c["state"] == "CACHED" else "")
            shown += "" if c["state"] in ("COMPLETE", "CACHED") else f" ({c['state'].lower()})"
            if c["component"] != role and len(columns) > 1:
                shown += f" [{c['component']}]"
            cells[label][role] = shown
    for name, key in OVERHEAD_ROWS:
        roles.append(name)
        for label, run in columns.items():
            cells[label][name] = f"{run[key]:.1f}"
    first = max(len(r) for r in roles + ["seconds"])
    widths = {label: max([len(label)] + [len(v) for v in cells[label].values()]) for label in columns}
    lines = ["seconds".ljust(first) + "".join(f"  {label:>{widths[label]}}" for label in columns)]
    for role in roles:
        lines.append(role.ljust(first) + "".join(f"  {cells[label].get(role, '-'):>{widths[label]}}"
                                                  for label in columns))
    return "\n".join(lines)


# -- data check ------------------------------------------------------------------------------------

def csv_rows(path: str) -> int:
    with open(path, newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1  # the header


def tfrecord_count(path: str) -> int:
    """Records in one TFRecord file (gzip by extension), read by the format's framing: no TensorFlow."""
    opener = gzip.open if path.endswith(".gz") else open
    count = 0
    with opener(path, "rb") as f:
        while True:
            header = f.read(12)  # uint64 length + uint32 CRC of the length
            if not header:
                return count
            (length,) = struct.unpack("<Q", header[:8])
            f.read(length + 4)  # data + its CRC
            count += 1


def check_same_rows(cfg) -> Dict[str, int]:
    root = cfg.resolved_data_root
    rows = {"reference_csv": csv_rows(os.path.join(reference_files()["data_root"], "data.csv")),
            "our_csv": csv_rows(cfg.resolved_source_csv),
            "our_tfrecords": sum(tfrecord_count(os.path.join(root, split, name)) for split in ("train", "eval")
                                 for name in os.listdir(os.path.join(root, split)))}
    if len(set(rows.values())) != 1:
        raise RunFailed(f"the two pipelines would not read the same rows: {rows}")
    return rows


# -- the two benchmarks ------------------------------------------------------------------------------

def bench_reference(tmp: str, cfg) -> dict:
    print("1. full run: ours vs TFX's taxi_pipeline_native_keras (fresh roots, no cache)", flush=True)
    runs = {}
    plan = [("ours_in_memory", "ours, in_memory", None),
            ("reference_in_memory", "reference, in_memory", BEAM_PRESETS["in_memory"]),
            ("reference_multi_processing", "reference, multi_processing", REFERENCE_DEFAULT_BEAM_ARGS)]
    for key, label, beam_args in plan:
        root = os.path.join(tmp, key)
        log = os.path.join(LOGS_DIR, f"{key}.log")
        if beam_args is None:
            run = timed_run(label, ours_command(root, "in_memory", force=True), log)
            metadata, name = load_config(overrides=[f"output_root={root}"]).resolved_metadata_path, cfg.pipeline_name
        else:
            # tf_keras, as ours: tf.Transform 1.16 needs it (TF 2.16 would hand out Keras 3 as tf.keras).
            run = timed_run(label, reference_command(root, beam_args), log, env={"TF_USE_LEGACY_KERAS": "1"})
            metadata, name = reference_paths(root)["metadata_path"], REFERENCE_PIPELINE_NAME
        runs[key] = dict(breakdown(run, component_times(metadata, name)), beam_args=beam_args or
                         BEAM_PRESETS["in_memory"])
    same = runs["ours_in_memory"]["wall_seconds"] / runs["reference_in_memory"]["wall_seconds"]
    default = runs["ours_in_memory"]["wall_seconds"] / runs["reference_multi_processing"]["wall_seconds"]
    print(format_component_table({"ours in_memory": runs["ours_in_memory"],
                                  "reference in_memory": runs["reference_in_memory"],
                                  "reference multi_processing": runs["reference_multi_processing"]}))
    print(f"ours / reference wall time, both in_memory: {same:.2f} (target <= "
          f"{TARGETS['ours_over_reference_same_mode_max']}); each in its default mode (ours in_memory, the "
          f"reference multi_processing): {default:.2f}", flush=True)
    return {"runs": runs, "ours_over_reference_same_mode": same, "ours_over_reference_default_modes": default}


def bench_loop(tmp: str, cfg) -> dict:
    print("2. the data scientist's loop: full run, edit model.py, rerun (cache on)", flush=True)
    code_parent, root = os.path.join(tmp, "user_code"), os.path.join(tmp, "loop")
    package = copy_user_package(cfg.user_code.directory, code_parent)
    env = {"PYTHONPATH": os.pathsep.join([code_parent] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    command = ours_command(root, "in_memory", force=False, user_package=BENCH_USER_PACKAGE)
    metadata = load_config(overrides=[f"output_root={root}"]).resolved_metadata_path
    full = timed_run("full run", command, os.path.join(LOGS_DIR, "loop_full.log"), env)
    full = breakdown(full, component_times(metadata, cfg.pipeline_name))
    model_py = os.path.join(package, "model.py")
    with open(model_py) as f:
        text, edit = edit_model_source(f.read())
    with open(model_py, "w") as f:
        f.write(text)
    print(f"  edited {BENCH_USER_PACKAGE}/model.py: {edit}", flush=True)
    rerun = timed_run("rerun after the edit", command, os.path.join(LOGS_DIR, "loop_rerun.log"), env)
    rerun = breakdown(rerun, component_times(metadata, cfg.pipeline_name))
    ratio = rerun["wall_seconds"] / full["wall_seconds"]
    print(format_component_table({"full run": full, "rerun after the edit": rerun}))
    executed = [c["component"] for c in rerun["components"] if c["state"] == "COMPLETE"]
    print(f"rerun executed: {', '.join(executed)}")
    print(f"rerun / full run wall time: {ratio:.2f} (target <= {TARGETS['rerun_over_full_run_max']})", flush=True)
    return {"edit": edit, "full": full, "rerun": rerun, "rerun_over_full_run": ratio, "rerun_executed": executed}


def figures_of(results: dict) -> list:
    found = []
    if "reference" in results:
        r = results["reference"]
        found += [
            figure("full run wall time, ours / TFX reference, both in_memory", r["ours_over_reference_same_mode"], "x",
                   TARGETS["ours_over_reference_same_mode_max"], "lower"),
            figure("full run wall time, ours (in_memory) / TFX reference (multi_processing), each its default",
                   r["ours_over_reference_default_modes"], "x"),
            figure("full run, first component start to last component end, ours / TFX reference, both in_memory",
                   r["runs"]["ours_in_memory"]["pipeline_span_seconds"]
                   / r["runs"]["reference_in_memory"]["pipeline_span_seconds"], "x"),
            *(figure(f"full run wall time, {key.replace('_', ' ', 1)}", run["wall_seconds"], "s")
              for key, run in r["runs"].items()),
        ]
    if "loop" in results:
        loop = results["loop"]
        found += [figure("loop: rerun after a model.py edit / full run", loop["rerun_over_full_run"], "x",
                         TARGETS["rerun_over_full_run_max"], "lower"),
                  figure("loop: full run wall time (cache on, fresh root)", loop["full"]["wall_seconds"], "s"),
                  figure("loop: rerun wall time after a model.py edit", loop["rerun"]["wall_seconds"], "s")]
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["reference", "loop"], help="run one of the two benchmarks")
    parser.add_argument("--keep", metavar="DIR", help="run in DIR and keep every run's outputs (default: a temp dir)")
    parser.add_argument("--reference-driver", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--beam-arg", action="append", default=[], help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.reference_driver:
        run_reference(args.reference_driver, args.beam_arg)
        return
    cfg = load_config()
    from pipeline.local_runner import ensure_data
    ensure_data(cfg)
    rows = check_same_rows(cfg)
    print(f"rows: {rows} (the same in both pipelines); train steps: ours {cfg.training.train_steps}, "
          f"the reference {REFERENCE_TRAIN_STEPS}", flush=True)
    if cfg.training.train_steps != REFERENCE_TRAIN_STEPS:
        raise SystemExit(f"training.train_steps is {cfg.training.train_steps}, the reference trains "
                         f"{REFERENCE_TRAIN_STEPS} steps: the comparison needs the same")
    results = {"rows": rows, "train_steps": REFERENCE_TRAIN_STEPS, "targets": TARGETS,
               "differences": [d.format(batch=cfg.training.batch_size, eval_steps=cfg.training.eval_steps)
                               for d in DIFFERENCES]}
    parallel = getattr(cfg, "parallel_components", 1)
    if parallel > 1:
        results["differences"].append(f"ours runs up to {parallel} components at once (parallel_components); TFX's "
                                      f"LocalDagRunner, which runs the reference, one at a time: the per-component "
                                      f"seconds of ours include sharing the 2 cores")
    tmp = args.keep or tempfile.mkdtemp(prefix="pipeline-bench-")
    try:
        if args.only in (None, "reference"):
            results["reference"] = bench_reference(tmp, cfg)
        if args.only in (None, "loop"):
            results["loop"] = bench_loop(tmp, cfg)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    results["figures"] = figures_of(results)
    print(f"wrote {write_results('pipeline_bench', results)}")


if __name__ == "__main__":
    try:
        main()
    except RunFailed as e:
        raise SystemExit(str(e)) from None
