"""Where Transform's time goes on the sample, and what each of its options costs.

    python -m bench.transform_bench [--variants tfx_defaults,as_wired,...] [--keep DIR]

Each variant runs TFX's own Transform executor (`tfx.components.transform.executor.Executor().Do`)
in a fresh process, on the latest ImportExampleGen output and schema of the default pipeline, with
the exec properties and Beam flags `tfxp run` passes (pipeline/local_runner.local_beam_args), into a
temp dir; the variants differ only in Transform's own options. In the trial process, timers wrap
(without changing) the imports, the tracing of ``preprocessing_fn`` (tf.Transform traces it several
times: to find the columns it reads, to build the analysis graph, and to write the final graph with
the analyzers' results as constants), the building of the Beam pipeline, Beam's translation into
fused stages and each stage's bundles. Every stage is put in the phase its transforms belong to
(statistics, analyzer cache, materialization, analysis). Afterwards every variant's outputs are
checked against the first's: the same vocabularies and schemas, the same transformed values (the
transform graph applied to the raw eval split, and the materialized examples when written; ids
exactly, floats within FLOAT_TOLERANCE). With ``analysis_only`` among the variants it also measures
what a reader would pay to apply the transform graph itself instead of reading Transform's examples.
Findings and numbers: docs/transform.md.

Results: bench/results/transform_bench.json, and a table of seconds per phase, side by side.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Dict, List, Optional

from bench.common import figure, write_results
from pipeline.config import PROJECT_ROOT, load_config
from tfxp import nodes

# Transform's own options (its component's arguments), per variant. "tfx_defaults" is TFX's Transform
# as the pipeline wired it before this benchmark; "as_wired" is the Transform of create_pipeline today.
TFX_DEFAULTS = dict(disable_statistics=False, disable_analyzer_cache=False, materialize=True)
VARIANTS = ["tfx_defaults", "as_wired", "no_statistics", "no_analyzer_cache", "analysis_only", "compat_v1"]
DEFAULT_VARIANTS = ["tfx_defaults", "as_wired"]


def variant_options(variant: str) -> Optional[Dict[str, bool]]:
    """The Transform arguments of ``variant``; None: the pipeline's own Transform, as wired."""
    from pipeline.pipeline import TRANSFORM_OPTIONS

    wired = {**TFX_DEFAULTS, **TRANSFORM_OPTIONS}
    return {"tfx_defaults": TFX_DEFAULTS, "as_wired": None,
            "no_statistics": {**TFX_DEFAULTS, "disable_statistics": True},
            "no_analyzer_cache": {**TFX_DEFAULTS, "disable_analyzer_cache": True},
            "analysis_only": {**wired, "materialize": False},
            "compat_v1": {**wired, "force_tf_compat_v1": True}}[variant]


def transform_spec(variant: str) -> dict:
    """What the Transform node of ``variant`` hands its executor: {"exec_properties": ..., "outputs":
    {output key: artifact class name}}, from a real Transform component (the pipeline's own for
    "as_wired"; for the others one built with the pipeline's preprocessing_fn and custom_config)."""
    from tfx.components import Transform
    from tfx.types import Channel, standard_artifacts

    from pipeline.pipeline import create_pipeline

    wired = next(c for c in create_pipeline(load_config()).components if c.id == nodes.TRANSFORM)
    options = variant_options(variant)
    component = wired if options is None else Transform(
        examples=Channel(type=standard_artifacts.Examples), schema=Channel(type=standard_artifacts.Schema),
        preprocessing_fn=wired.exec_properties["preprocessing_fn"],
        custom_config=json.loads(wired.exec_properties["custom_config"]), **options)
    return {"exec_properties": {k: v for k, v in component.exec_properties.items() if v is not None},
            "outputs": {key: channel.type.__name__ for key, channel in component.outputs.items()}}


# What a transform of the Beam graph belongs to, by its name (first match wins). Beam fuses
# transforms into stages; a stage is labelled with every phase its transforms belong to, e.g. the read
# of the train split that feeds both the first analysis phase and the pre-transform statistics.
PART_PHASES = [
    ("final graph", ("Analyze-CreateSavedModel-",)),  # the transform_fn traced with the analyzers' results
    ("statistics", ("GenerateStats", "GenerateAndValidateStats", "FlattenAnalysisDatasets",
                    "FlattenTransformedDatasets", "WaitForTransformWrite", "ExtractRecordBatches")),
    ("analyzer cache", ("WriteCache", "OptimizeRun")),
    ("materialization", ("TransformIndex",)),
    ("analysis", ("Analyze", "AnalysisIndex", "WriteTransformFn", "WriteMetadata")),
]
PHASE_ORDER = [phase for phase, _ in PART_PHASES] + ["other"]


def stage_phase(stage_name: str) -> str:
    """The phases of a fused stage's transforms, e.g. "statistics + analysis"."""
    found = set()
    for part in re.findall(r"ref_AppliedPTransform_([^)]+)", stage_name):
        found.add(next((phase for phase, markers in PART_PHASES if any(m in part for m in markers)), "other"))
    found = found - {"other"} or {"other"}
    return " + ".join(p for p in PHASE_ORDER if p in found)


# ---------------------------------------------------------------- the trial (one fresh process)

class Timers:
    """Wall and CPU seconds per name (CPU: the whole process, every thread), counting only the
    outermost of nested calls of one name."""

    def __init__(self):
        self.seconds: Dict[str, float] = defaultdict(float)
        self.cpu: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self._depth: Dict[str, int] = defaultdict(int)

    @contextlib.contextmanager
    def span(self, key: str):
        self._depth[key] += 1
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._depth[key] -= 1
            if self._depth[key] == 0:
                self.seconds[key] += time.perf_counter() - wall
                self.cpu[key] += time.process_time() - cpu
                self.calls[key] += 1

    def wrap(self, owner, attribute: str, name: str, key_fn=None):
        original = getattr(owner, attribute)
        timers = self

        def timed(*args, **kwargs):
            with timers.span(key_fn(*args, **kwargs) if key_fn else name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)

    def active(self, name: str) -> bool:
        return self._depth[name] > 0


STARTUP, DO, RUN = "start-up", "Executor.Do", "Beam pipeline run"
TRACING_BUILD, TRACING_RUN = "tracing (building the pipeline)", "tracing (in stages)"
SIDE_INPUT_SIZING = "Beam's state cache sizing side inputs"
TOTAL = "total (process start to the end of Do)"


def _imports(timers: Timers) -> None:
    for module in ["tensorflow", "apache_beam", "tensorflow_transform", "tensorflow_data_validation",
                   "tfx.components.transform.executor"]:
        with timers.span(f"import {module}"):
            __import__(module)


def _instrument(timers: Timers) -> None:
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.worker import statecache
    from tensorflow_transform import impl_helper

    def tracing(*args, **kwargs):  # tft traces while the pipeline is built and inside some stages
        return TRACING_RUN if timers.active(RUN) else TRACING_BUILD

    for function in ["trace_preprocessing_function", "trace_and_write_v2_saved_model"]:
        timers.wrap(impl_helper, function, "", key_fn=tracing)
    timers.wrap(beam.Pipeline, "run", RUN)
    # Beam's state cache sizes every side input it caches with objsize, which walks the globals of
    # every loaded module (thousands, with TensorFlow) on each call.
    timers.wrap(statecache, "get_deep_size", SIDE_INPUT_SIZING)
    timers.wrap(fn_runner.FnApiRunner, "_execute_bundle", "",
                key_fn=lambda runner, context, bundle_context, bundle_input:
                "stage " + bundle_context.stage.name)


def _artifacts(inputs: dict, out: str, outputs: Dict[str, str]):
    """Input and output artifacts as the local runner builds them for the Transform node."""
    from tfx.types import artifact_utils, standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = inputs["examples"]
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    schema = standard_artifacts.Schema()
    schema.uri = inputs["schema"]
    output_dict = {}
    for key, type_name in outputs.items():
        artifact = getattr(standard_artifacts, type_name)()
        artifact.uri = os.path.join(out, key)
        os.makedirs(artifact.uri, exist_ok=True)
        output_dict[key] = [artifact]
    return {"examples": [examples], "schema": [schema]}, output_dict


def run_trial(variant: str, spec: dict, inputs: dict, out: str) -> dict:
    """Runs TFX's Transform executor once as ``spec`` (transform_spec) says; wall and CPU seconds per timer."""
    timers = Timers()
    with timers.span(STARTUP):
        import components  # noqa: F401  (sets the one Keras before TensorFlow, as every run does)

        _imports(timers)
        _instrument(timers)
        from tfx.components.transform import executor as transform_executor
        from tfx.dsl.components.base import base_beam_executor

        from pipeline.local_runner import local_beam_args

        input_dict, output_dict = _artifacts(inputs, out, spec["outputs"])
        context = base_beam_executor.BaseBeamExecutor.Context(
            beam_pipeline_args=local_beam_args(load_config()), tmp_dir=os.path.join(out, ".temp"), unique_id="1")
    with timers.span(DO):
        transform_executor.Executor(context).Do(input_dict, output_dict, dict(spec["exec_properties"]))
    return {"variant": variant, "spec": spec, "beam_args": context.beam_pipeline_args,
            "seconds": dict(timers.seconds), "cpu": dict(timers.cpu), "calls": dict(timers.calls)}


def run_reader(mode: str, transform_graph: str, examples: str) -> dict:
    """What one reader of Transform's output (the TFLite evaluator, say) pays, after its imports, for
    the transformed eval split: "materialized" reads Transform's examples as the readers do now;
    without materialization every reader would apply the transform graph to the raw examples:
    "raw_plus_graph_eager" batch by batch, eagerly (only for data that fits in memory),
    "raw_plus_graph_in_tf_data" in its tf.data pipeline, as TFX's templates do with ``materialize=False``."""
    import components  # noqa: F401
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.training import inputs

    user = load_config().user_code
    wall, cpu = time.perf_counter(), time.process_time()
    output = tft.TFTransformOutput(transform_graph)
    pattern = os.path.join(examples, "Split-eval", "*")
    if mode == "materialized":
        _, labels = inputs.read_transformed_examples(pattern, output, user)
        rows = len(labels)
    else:
        layer, spec = output.transform_features_layer(), output.raw_feature_spec()
        dataset = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern)), compression_type="GZIP").batch(1024)
        if mode == "raw_plus_graph_in_tf_data":
            dataset = dataset.map(lambda batch: layer(tf.io.parse_example(batch, spec)))
        else:
            dataset = (layer(tf.io.parse_example(batch, spec)) for batch in dataset)
        rows = sum(int(batch[user.task.label_key].shape[0]) for batch in dataset)
    return {"mode": mode, "rows": rows, "seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


# ---------------------------------------------------------------- the driver

def sample_inputs() -> dict:
    """The latest ImportExampleGen examples and ImportSchemaGen schema of the default pipeline."""
    from pipeline import run_summary

    cfg = load_config()
    found = {key: run_summary.latest_output_uri(cfg.resolved_metadata_path, cfg.pipeline_name, node, output)
             for key, node, output in [("examples", nodes.EXAMPLE_GEN, "examples"),
                                       ("schema", nodes.SCHEMA_GEN, "schema")]}
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise SystemExit(f"no {', '.join(missing)} of pipeline {cfg.pipeline_name!r} in "
                         f"{cfg.resolved_metadata_path}: run `tfxp run` first")
    return found


def phases(trial: dict, clock: str = "seconds") -> Dict[str, float]:
    """Seconds per phase of one trial (``clock``: "seconds" wall, "cpu" CPU); they add up to the total."""
    s = defaultdict(float, trial[clock])
    imports = sum(v for k, v in s.items() if k.startswith("import "))
    stages: Dict[str, float] = defaultdict(float)
    for name, seconds in s.items():
        if name.startswith("stage "):
            stages[stage_phase(name)] += seconds
    # tf.Transform traces preprocessing_fn while the pipeline is built (the columns it reads, the
    # analysis graph) and inside stages (each phase's graph, the final graph: counted in their stage).
    building = s[DO] - s[RUN]
    out = {
        "imports (TF, Beam, TFT, TFDV, TFX)": imports,
        "other start-up": s[STARTUP] - imports,
        "tracing preprocessing_fn, building the pipeline": s[TRACING_BUILD],
        "rest of building the Beam pipeline": building - s[TRACING_BUILD],
        "Beam: pipeline proto, translation, fusion": s[RUN] - sum(stages.values()),
    }
    out.update({f"stages: {k}": v for k, v in sorted(stages.items(), key=lambda kv: -kv[1])})
    out["  (of the stages: tracing preprocessing_fn)"] = s[TRACING_RUN]
    out["  (of the stages: Beam sizing side inputs, objsize)"] = s[SIDE_INPUT_SIZING]
    out[TOTAL] = s[STARTUP] + s[DO]
    return out


def _in_fresh_process(arguments: List[str], out: str, name: str) -> dict:
    result_file = os.path.join(out, f"{name}.json")
    command = [sys.executable, "-m", "bench.transform_bench", *arguments, "--result", result_file]
    with open(os.path.join(out, f"{name}.log"), "w") as log:
        subprocess.run(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    with open(result_file) as f:
        return json.load(f)


def _run_trial_process(variant: str, inputs: dict, out: str) -> dict:
    return _in_fresh_process(["--trial", variant, "--spec", json.dumps(transform_spec(variant)), "--out", out,
                              "--examples", inputs["examples"], "--schema", inputs["schema"]], out, "trial")


def _reader_costs(materialized_dir: str, inputs: dict) -> List[dict]:
    graph = os.path.join(materialized_dir, "transform_graph")
    return [_in_fresh_process(["--reader", mode, "--graph", graph, "--examples", examples], materialized_dir,
                              f"reader-{mode}")
            for mode, examples in [("materialized", os.path.join(materialized_dir, "transformed_examples")),
                                   ("raw_plus_graph_eager", inputs["examples"]),
                                   ("raw_plus_graph_in_tf_data", inputs["examples"])]]


# Transformed floats may differ in the last bits from run to run (Beam combines partial sums of
# the mean and variance analyzers in no fixed order): floats are compared within this, the rest exactly.
FLOAT_TOLERANCE = 1e-5


def _numpy(tensors) -> dict:
    import tensorflow as tf

    return {k: (tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v).numpy().reshape(-1)
            for k, v in tensors.items()}


def _sorted_rows(columns: dict) -> dict:
    """The rows of ``columns`` in a fixed order (by every column; floats rounded), to compare files
    whose records Beam may have written in another order."""
    import numpy as np

    keys = [np.round(v, 3) if v.dtype.kind == "f" else v for _, v in sorted(columns.items())]
    order = np.lexsort(keys[::-1])
    return {k: v[order] for k, v in columns.items()}


def _value_differences(label: str, reference: dict, other: dict, report: dict) -> None:
    import numpy as np

    for key, expected in reference.items():
        got = other.get(key)
        if got is None or got.shape != expected.shape:
            report["differences"].append(f"{label}: {key} missing or of another shape")
        elif expected.dtype.kind == "f":
            gap = float(np.max(np.abs(expected - got))) if expected.size else 0.0
            report["max_float_difference"] = max(report["max_float_difference"], gap)
            if gap > FLOAT_TOLERANCE:
                report["differences"].append(f"{label}: {key} differs by up to {gap:g}")
        elif not np.array_equal(expected, got):
            report["differences"].append(f"{label}: {key}")


def compare_outputs(reference: str, other: str, inputs: dict) -> dict:
    """How two Transform output dirs differ: vocabularies and schemas byte for byte; the transform graph
    applied to the raw eval split and the materialized examples (when both have them) value by value,
    floats within FLOAT_TOLERANCE. {"differences": [...], "max_float_difference": float}."""
    import tensorflow as tf
    import tensorflow_transform as tft

    report = {"differences": [], "max_float_difference": 0.0}
    ref_graph, other_graph = os.path.join(reference, "transform_graph"), os.path.join(other, "transform_graph")
    files = [os.path.join("transform_fn", "assets", name)
             for name in sorted(os.listdir(os.path.join(ref_graph, "transform_fn", "assets")))]
    for name in files + ["transformed_metadata/schema.pbtxt", "metadata/schema.pbtxt"]:
        with open(os.path.join(ref_graph, name), "rb") as a, open(os.path.join(other_graph, name), "rb") as b:
            if a.read() != b.read():
                report["differences"].append(name)
    raw_files = sorted(tf.io.gfile.glob(os.path.join(inputs["examples"], "Split-eval", "*")))
    raw = next(iter(tf.data.TFRecordDataset(raw_files, compression_type="GZIP").batch(1_000_000)))
    outputs = [tft.TFTransformOutput(graph) for graph in (ref_graph, other_graph)]
    # As the Trainer's export applies it (transform_raw_features cannot run a TF1 graph eagerly).
    applied = [_numpy(o.transform_features_layer()(tf.io.parse_example(raw, o.raw_feature_spec()))) for o in outputs]
    _value_differences("the graph on raw eval", applied[0], applied[1], report)
    examples = [os.path.join(d, "transformed_examples") for d in (reference, other)]
    if all(os.path.isdir(d) for d in examples):
        spec = outputs[0].transformed_feature_spec()
        for split in ("Split-train", "Split-eval"):
            values = []
            for directory in examples:
                files = sorted(tf.io.gfile.glob(os.path.join(directory, split, "*")))
                records = next(iter(tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1_000_000)))
                values.append(_sorted_rows(_numpy(tf.io.parse_example(records, spec))))
            _value_differences(f"materialized {split}", values[0], values[1], report)
    return report


def _table(trials: List[dict]) -> str:
    """Seconds per phase, wall and CPU, one column pair per variant."""
    rows = [(phases(t), phases(t, "cpu")) for t in trials]
    names = list(dict.fromkeys(k for wall, _ in rows for k in wall))
    width = max(len(n) for n in names) + 2
    lines = [" " * width + "".join(f"{t['variant'][:21]:>22}" for t in trials),
             " " * width + "".join(f"{'wall':>11}{'CPU':>11}" for _ in rows)]
    for n in names:
        lines.append(f"{n:<{width}}" + "".join(f"{wall.get(n, 0.0):>11.1f}{cpu.get(n, 0.0):>11.1f}"
                                                for wall, cpu in rows))
    return "\n".join(lines)


def _top_stages(trial: dict, n: int = 6) -> str:
    stages = sorted(((v, k[len("stage "):]) for k, v in trial["cpu"].items() if k.startswith("stage ")),
                    reverse=True)[:n]
    return "\n".join(f"  {v:6.2f} s CPU  {stage_phase(k)}" for v, k in stages)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated, of: {', '.join(VARIANTS)} (one may repeat)")
    parser.add_argument("--keep", help="keep each variant's outputs under this dir")
    parser.add_argument("--trial", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--reader", help=argparse.SUPPRESS)
    parser.add_argument("--graph", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--examples", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trial or args.reader:
        result = run_trial(args.trial, json.loads(args.spec), {"examples": args.examples, "schema": args.schema},
                           args.out) if args.trial else run_reader(args.reader, args.graph, args.examples)
        with open(args.result + ".tmp", "w") as f:
            json.dump(result, f, indent=2)
        os.replace(args.result + ".tmp", args.result)
        return

    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    inputs = sample_inputs()
    root = args.keep or tempfile.mkdtemp(prefix="transform_bench_")
    trials = []
    try:
        for index, variant in enumerate(variants):
            out = os.path.join(root, f"{index}-{variant}")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            print(f"running Transform ({variant}) ...", flush=True)
            trials.append(_run_trial_process(variant, inputs, out))
            print(f"  {phases(trials[-1])[TOTAL]:.1f} s wall, {phases(trials[-1], 'cpu')[TOTAL]:.1f} s CPU; "
                  f"{sum(1 for k in trials[-1]['cpu'] if k.startswith('stage '))} Beam stages, the costliest:\n"
                  f"{_top_stages(trials[-1])}", flush=True)
        for index, trial in enumerate(trials[1:], start=1):
            trial["compared_with_first"] = compare_outputs(
                os.path.join(root, f"0-{variants[0]}"), os.path.join(root, f"{index}-{trial['variant']}"), inputs)
        materializing = [i for i, t in enumerate(trials) if "transformed_examples" in t["spec"]["outputs"]]
        readers = _reader_costs(os.path.join(root, f"{materializing[0]}-{variants[materializing[0]]}"), inputs) \
            if "analysis_only" in variants and materializing else []
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(_table(trials))
    for trial in trials[1:]:
        found = trial["compared_with_first"]
        print(f"{trial['variant']} vs {trials[0]['variant']}: " + (
            "DIFFERS: " + "; ".join(found["differences"]) if found["differences"] else
            f"the same transform (vocabularies, schemas, ids; floats within {found['max_float_difference']:g})"))
    for reader in readers:
        print(f"a reader of the transformed eval split ({reader['rows']} rows), {reader['mode']}: "
              f"{reader['seconds']:.1f} s wall, {reader['cpu']:.1f} s CPU")
    path = write_results("transform_bench", {
        "inputs": inputs, "readers": readers, "trials": [dict(t, phases=phases(t), cpu_phases=phases(t, "cpu")) for t in trials],
        "figures": [figure(f"Transform on the sample, {t['variant']} ({clock}, one process)", phases(t, key)[TOTAL], "s")
                    for t in trials for clock, key in (("wall", "seconds"), ("CPU", "cpu"))]})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
