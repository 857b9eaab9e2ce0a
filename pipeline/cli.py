"""`tfxp`: the project's command line.

    tfxp init      a new package of your own from a CSV: features inferred, config, data, schema
    tfxp data      CSV -> sharded TFRecords of tf.train.Example
    tfxp schema    infer a starting schema from the TFRecords, fitted to your feature list
    tfxp run       run the whole pipeline locally (LocalDagRunner on Beam)
    tfxp dev       the edit loop: run once, then rerun what each save of your files affects, model served
    tfxp runs      the recent runs: what changed, the gate metric, blessed or not, the pushed version
    tfxp infer     score rows without a label (CSV or TFRecords) with the blessed model: TFX's BulkInferrer
    tfxp compile   compile it for Kubeflow Pipelines (KFP v2 PipelineSpec YAML)
    tfxp upload    copy the TFRecords `tfxp data` wrote to the Kubeflow config's data_root (gs://...)
    tfxp submit    compile and submit a run to a Kubeflow Pipelines host, or a schedule (--schedule CRON)
    tfxp report    one HTML page about a run: data, training, evaluation, TFLite, push, timings
    tfxp drift     skew of served requests (or any data) against the training data, or drift between windows
    tfxp diagnose-input   is training input-bound or compute-bound? (after a run)
    tfxp serve / predict / inspect   serve the pushed model (TF Serving's APIs), query it, describe it
    tfxp log-sink  receive KServe's payload-logger events, write them as request logs (PredictionLog TFRecords)
    tfxp serving-config   models.config, batching and monitoring files for TF Serving; deploy files
    tfxp release   canary VERSION | promote | rollback: move the labels in models.config
"""
from __future__ import annotations

import argparse
import os
import logging
import sys
import traceback
import warnings

import pipeline  # noqa: F401  (one Keras, before TensorFlow)
from tfxp.errors import BAD_INPUT, TfxpError


def _add_config_args(parser: argparse.ArgumentParser, default_file: str = "local.yaml") -> None:
    from pipeline.config import CONFIG_DIR
    parser.add_argument("--config", default=os.path.join(CONFIG_DIR, default_file),
                        help=f"YAML run config (default: pipeline/configs/{default_file})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set training.train_steps=200 (repeatable)")


def _load(args):
    from pipeline.config import load_config
    return load_config(args.config, args.overrides)


def cmd_init(args) -> int:
    from pipeline import init_package

    result = init_package.init_package(args.name, args.csv, args.label, parent=args.dir,
                                       output_root=args.output_root)
    print(init_package.describe(result))
    return 0


def cmd_data(args) -> int:
    from data import synth, tfrecords

    csv_path, output = args.csv, args.output
    cfg = _load(args)
    csv_path = csv_path or cfg.resolved_source_csv
    if csv_path is None:
        raise tfrecords.DataError(f"no CSV to convert: pass --csv, or set source_csv in {args.config}")
    features = cfg.user_code.features
    if args.write_csv and not args.scale:
        raise tfrecords.DataError("--write-csv writes synthetic rows: give their number with --scale N")
    if args.scale and args.write_csv:
        table = synth.synthesize(csv_path, args.scale, features, seed=args.seed)
        path = synth.write_csv(table, args.write_csv)
        print(f"wrote {table.num_rows} synthetic rows resampled from {csv_path} (seed {args.seed}) to {path}")
        return 0
    output = output or cfg.resolved_data_root
    convert = dict(features=features, shards=args.shards, compression=args.compression,
                   eval_percent=args.eval_percent, key_column=args.key_column)
    if args.scale:
        result = synth.convert_synthetic(csv_path, args.scale, output, seed=args.seed, **convert)
    else:
        result = tfrecords.convert_csv(csv_path, output, **convert)
    rate = result.total_rows / max(result.seconds, 1e-9)
    print(f"wrote {result.rows['train']} train and {result.rows['eval']} eval examples "
          f"({args.shards} shards per split, compression {args.compression}) to {result.output_dir} "
          f"in {result.seconds:.1f} s ({rate:,.0f} rows/s)")
    return 0


def cmd_schema(args) -> int:
    from pipeline import schema_tool

    cfg = _load(args)
    output = args.output or cfg.resolved_schema_path
    if output is None:
        raise schema_tool.SchemaError(f"where to? pass --output, or set schema_path in {args.config}")
    schema = schema_tool.infer_schema(cfg.resolved_data_root, cfg.user_code)
    path = schema_tool.write_schema(schema, output, cfg.resolved_data_root)
    print(f"wrote a schema of {len(schema.feature)} features inferred from {cfg.resolved_data_root} to {path}; "
          f"curate it, then set schema_path: {path}")
    return 0


def cmd_run(args) -> int:
    from pipeline import local_runner

    cfg = _load(args)
    return local_runner.run(cfg, force=args.force, prepare_data=not args.no_data, verbose=args.verbose,
                            report=not args.no_report)


def cmd_infer(args) -> int:
    from pipeline import infer_command

    data = args.data if "://" in args.data else os.path.abspath(args.data)  # relative to here, not the project
    args.overrides = list(args.overrides) + [f"inference.data={data}"]
    return infer_command.infer(_load(args), show=args.show, verbose=args.verbose)


def cmd_dev(args) -> int:
    _load(args)  # a bad config fails in one line before TensorFlow is imported
    from pipeline import dev

    return dev.run_loop(args.config, args.overrides, grpc_port=args.port, rest_port=args.rest_api_port,
                        once=args.once)


def cmd_runs(args) -> int:
    from pipeline import history

    cfg = _load(args)
    records = history.read_records(cfg.resolved_metadata_path, cfg.pipeline_name)
    if not records:
        print(f"no run of pipeline {cfg.pipeline_name!r} in {cfg.resolved_metadata_path} yet")
        return 0
    print(f"the last {min(args.last, len(records))} of {len(records)} runs of {cfg.pipeline_name!r}, oldest first:")
    print(history.format_history(records, args.last))
    return 0


def cmd_upload(args) -> int:
    from pipeline import data_upload
    from pipeline.config import CONFIG_DIR, load_config

    cfg = _load(args)
    source = args.source or load_config(os.path.join(CONFIG_DIR, "local.yaml")).resolved_data_root
    source = source if "://" in source else os.path.abspath(source)  # relative to here, not the project
    print(data_upload.upload(source, cfg.resolved_data_root, delete=args.delete).describe())
    return 0


def cmd_compile(args) -> int:
    from pipeline import kubeflow_runner

    cfg = _load(args)
    path = kubeflow_runner.compile_pipeline(cfg, args.output or kubeflow_runner.default_package_path(cfg))
    print(f"compiled {cfg.pipeline_name!r} for Kubeflow (image {cfg.image}, pipeline root "
          f"{cfg.resolved_pipeline_root}) to {path}")
    return 0


def cmd_submit(args) -> int:
    from pipeline import kubeflow_runner, kubeflow_schedule

    cfg = _load(args)
    if args.schedule is not None:
        if args.run_name is not None:
            raise kubeflow_schedule.ScheduleError("--run-name names a one-off run; a schedule's name is "
                                                  "--schedule-name")
        made = kubeflow_schedule.schedule(
            cfg, args.host, args.schedule, package_path=args.package, experiment=args.experiment,
            name=args.schedule_name, max_concurrency=args.max_concurrency, catchup=not args.no_catchup,
            replace=args.replace, params=args.param)
        print(made.describe())
        return 0
    given = [flag for flag, value in [("--schedule-name", args.schedule_name), ("--no-catchup", args.no_catchup),
                                      ("--replace", args.replace), ("--max-concurrency", args.max_concurrency != 1)]
             if value]
    if given:
        raise kubeflow_schedule.ScheduleError(f"{', '.join(given)}: only with --schedule CRON")
    run_id = kubeflow_runner.submit(cfg, args.host, experiment=args.experiment, package_path=args.package,
                                    run_name=args.run_name, params=args.param)
    print(f"submitted run {run_id} to {args.host}")
    return 0


def cmd_diagnose_input(args) -> int:
    from pipeline import diagnose_input, run_summary

    cfg = _load(args)
    found = run_summary.latest_pipeline_outputs(cfg)
    print(f"measuring the latest Transform output: {found['transformed_examples']}", flush=True)
    print(diagnose_input.format_diagnosis(diagnose_input.diagnose(
        found["transformed_examples"], found["transform_graph"], cfg.user_code,
        args.batch_size or cfg.training.batch_size)))
    return 0


def cmd_report(args) -> int:
    from pipeline import report

    cfg = _load(args)
    run_id = args.run or report.latest_run_id(cfg)
    path = os.path.abspath(report.write_report(cfg, run_id, args.output))
    print(f"wrote the report of run {run_id} to {path} (file://{path})")
    return 0


def cmd_drift(args) -> int:
    from pipeline.drift import check
    from pipeline.run_log import quiet_libraries

    cfg = _load(args)
    with quiet_libraries():
        result = check.check(cfg, args.data or cfg.request_log_prefix, args.reference, args.output,
                             args.model_version)
    print(f"compared {result.current.describe()}")
    print(f"{result.summary()} ({result.seconds:.1f} s)")
    print(f"wrote the page to {os.path.abspath(result.page)} (file://{os.path.abspath(result.page)})")
    if result.crossed:
        raise check.DriftFoundError(f"{len(result.crossed)} feature(s) crossed their threshold: "
                                    f"{', '.join(r.feature for r in result.crossed)} (see the page)")
    return 0


def cmd_serving_config(args) -> int:
    from serving import release

    cfg = _load(args)
    paths, state = release.write_serving_config(cfg.serving_target, reset=args.reset)
    print(f"wrote {len(paths)} file(s) to {cfg.serving_config_dir} (models.config: {state.describe()}):")
    for path in paths:
        print(f"  {path}")
    return 0


def cmd_release(args) -> int:
    from serving import release

    cfg = _load(args)
    if args.action == "canary" and args.version is None:
        raise release.ReleaseError("tfxp release canary needs the VERSION to roll out (a pushed version dir)")
    if args.action != "canary" and args.version is not None:
        raise release.ReleaseError(f"tfxp release {args.action} takes no VERSION")
    state = release.release(cfg.serving_target, args.action, args.version, args.server, args.timeout)
    print(f"{release.model_config_path(cfg.serving_target)}: {state.describe()} (servers polling it pick this up within "
          f"--model_config_file_poll_wait_seconds)")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, failing as every tfxp error does: one line, exit 2 (its usage block only with --help)."""

    def error(self, message: str):
        self.exit(BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tfxp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the full log (TFX, Beam, TensorFlow's C++ log as TF_CPP_MIN_LOG_LEVEL says, "
                             "libraries' warnings) on the terminal and tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="start a new package of your own from a CSV: features.py inferred from the "
                                    "data, preprocessing.py, model.py, a config, the TFRecords and a schema")
    p.add_argument("name", help="the package's name (a new Python identifier), also the pipeline's name")
    p.add_argument("--csv", required=True, help="the data: a CSV with a header line")
    p.add_argument("--label", required=True, help="the CSV column to predict (its values decide the task)")
    p.add_argument("--dir", default=None, metavar="PARENT",
                   help="where the package folder goes (default: the project root, importable from anywhere)")
    p.add_argument("--output-root", default="runs",
                   help="the config's output_root; the TFRecords go into OUTPUT_ROOT/data/NAME (default: runs)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("data", help="convert a CSV into sharded TFRecords of tf.train.Example")
    p.add_argument("--csv", default=None, help="input CSV (default: the config's source_csv)")
    p.add_argument("--output", default=None, help="output folder (default: the config's data_root)")
    p.add_argument("--shards", type=int, default=4, help="files per split (default 4)")
    p.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    p.add_argument("--eval-percent", type=int, default=33, help="share of rows in eval (default 33)")
    p.add_argument("--key-column", default=None,
                   help="column whose value decides the split (default: the whole row)")
    p.add_argument("--scale", type=int, default=None, metavar="N",
                   help="load tests only: write N synthetic rows resampled from the CSV, numeric columns "
                        "jittered (not real data)")
    p.add_argument("--seed", type=int, default=0, help="--scale: the random seed (same seed, same rows)")
    p.add_argument("--write-csv", default=None, metavar="PATH",
                   help="--scale: write the synthetic rows as a CSV at PATH instead of TFRecords")
    _add_config_args(p)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("schema", help="infer a starting schema from data_root, fitted to your feature list")
    p.add_argument("--output", default=None, help="schema file to write (default: the config's schema_path)")
    _add_config_args(p)
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", help="run the whole pipeline locally and print a prediction of the pushed model")
    _add_config_args(p)
    p.add_argument("--force", action="store_true",
                   help="re-execute every component (ignore the cache)")
    p.add_argument("--no-data", action="store_true",
                   help="do not convert source_csv when data_root has no TFRecords")
    p.add_argument("--no-report", action="store_true", help="do not write the run report (tfxp report) at the end")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("infer", help="score rows without a label with the pipeline's blessed model (BulkInferrer): "
                                     "PredictionLogs and a CSV of the rows with their predictions",
                       description="Runs the pipeline with its batch scoring branch on for --data (what is unchanged "
                                   "stays cached, so usually only the branch executes), then prints where the "
                                   "PredictionLog TFRecords and the CSV are, and the CSV's first rows. Nothing is "
                                   "scored, exit 1, when the Evaluator did not bless the model.")
    p.add_argument("--data", required=True, metavar="PATH",
                   help="the rows: a CSV file with a header (the model's features; no label needed), a TFRecord "
                        "file of tf.train.Example, or a folder of them")
    p.add_argument("--show", type=int, default=5, metavar="N", help="print the CSV's first N rows (default 5)")
    _add_config_args(p)
    p.set_defaults(func=cmd_infer)

    from serving.options import GRPC_PORT, REST_PORT
    p = sub.add_parser("dev", help="the edit loop: run, then rerun on every save of your files, the model served",
                       description="Runs the pipeline (cache on), keeps the pushed model served, then reruns on "
                                   "every save of your package's files, the schema or the config: only what the "
                                   "edit affects executes. Ctrl-C stops it.")
    _add_config_args(p)
    p.add_argument("--port", type=int, default=GRPC_PORT, help=f"gRPC port of the served model (default {GRPC_PORT})")
    p.add_argument("--rest_api_port", type=int, default=REST_PORT,
                   help=f"REST port of the served model (default {REST_PORT})")
    p.add_argument("--once", action="store_true", help="one iteration, then stop (no watching)")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("runs", help="the recent runs of the pipeline: what changed, the gate metric, what was pushed")
    _add_config_args(p)
    p.add_argument("--last", type=int, default=10, help="how many runs (default 10; 0: all)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("upload", help="copy the TFRecords `tfxp data` wrote to the Kubeflow config's data_root "
                                      "(gs://...), each file whole or not at all",
                       description="Copies FOLDER/train/* and FOLDER/eval/* to data_root/train/ and data_root/eval/ "
                                   "through TensorFlow's file system (gs://, s3://, a local path); skips files already "
                                   "there with the same size and not older.")
    _add_config_args(p, "kubeflow.yaml")
    p.add_argument("--from", dest="source", default=None, metavar="FOLDER",
                   help="what tfxp data wrote (default: the data_root of pipeline/configs/local.yaml)")
    p.add_argument("--delete", action="store_true",
                   help="remove files in data_root's train/ and eval/ that FOLDER does not have (ImportExampleGen "
                        "would read them too; without it the upload refuses)")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines (KFP v2 YAML)")
    _add_config_args(p, "kubeflow.yaml")
    p.add_argument("--output", default=None, help="YAML path (default: runs/kubeflow/<pipeline_name>.yaml)")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("submit", help="compile and submit a run to Kubeflow Pipelines")
    _add_config_args(p, "kubeflow.yaml")
    p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    p.add_argument("--experiment", default=None, help="experiment name (created if missing)")
    p.add_argument("--package", default=None, help="submit this compiled YAML instead of compiling")
    p.add_argument("--run-name", default=None)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a run parameter's value for this run (or every scheduled run): data_root, train_steps, "
                        "eval_steps, gate_threshold; the others keep the config's values compiled as defaults")
    p.add_argument("--schedule", default=None, metavar="CRON",
                   help="instead of one run, a recurring run on KFP's cron (6 fields, seconds first, UTC), e.g. "
                        "'0 0 3 * * *' for 03:00 every day; the package is uploaded as a pipeline version named "
                        "after its content")
    p.add_argument("--schedule-name", default=None,
                   help="--schedule: the recurring run's name (default: the pipeline's)")
    p.add_argument("--max-concurrency", type=int, default=1, metavar="N",
                   help="--schedule: at most N of its runs at a time (1-10, default 1)")
    p.add_argument("--no-catchup", action="store_true",
                   help="--schedule: after a pause run only the latest missed interval (KFP's default, kept here: "
                        "catch up on each)")
    p.add_argument("--replace", action="store_true",
                   help="--schedule: replace a recurring run of the same name that has other settings")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("report", help="one self-contained HTML page about a pipeline run (default: the newest)")
    p.add_argument("--run", default=None, metavar="RUN_ID",
                   help="the pipeline run to report (default: the newest; ids are MLMD's pipeline_run names)")
    p.add_argument("--output", default=None, metavar="PATH",
                   help="the HTML file to write (default: <output_root>/reports/<pipeline>/<run id>.html)")
    _add_config_args(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("drift", help="skew of served requests (or any data) against the training data, or drift "
                                     "between two windows; exit 3 when a threshold is crossed",
                       description="TFDV statistics of --data compared with the training statistics of the served "
                                   "model's run (or with --reference) by the schema's skew/drift comparators; "
                                   "writes one HTML page. Exit 0: within every threshold; 3: some crossed; "
                                   "2: bad input.")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="request logs (a filename_prefix or a directory), TFRecords of tf.Example, or a .csv file "
                        "(default: the request logs of the config's serving.request_log)")
    p.add_argument("--reference", default=None, metavar="PATH",
                   help="an earlier window of the same kinds (drift); default: the training data (skew)")
    p.add_argument("--model-version", type=int, default=None, dest="model_version", metavar="N",
                   help="whose training data to compare with (default: the version the logs name most, else "
                        "the newest pushed)")
    p.add_argument("--output", default=None, metavar="PATH",
                   help="the HTML page to write (default: <output_root>/drift/<pipeline>/<UTC time>.html)")
    _add_config_args(p)
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("diagnose-input", help="measure input pipeline vs training throughput (after a run)")
    _add_config_args(p)
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's batch_size")
    p.set_defaults(func=cmd_diagnose_input)

    from pipeline import predict_command
    from serving import inspect, server
    p = sub.add_parser("serve", help="serve the pushed model with TF Serving's REST and gRPC APIs",
                       description="Flags are tensorflow_model_server's (see docs/serving.md). Without "
                                   "--model_base_path or --model_config_file it serves the config's pushed "
                                   "model: serving_model/<pipeline_name>/ as model <pipeline_name>.")
    server.add_serve_arguments(p)
    _add_config_args(p)
    p.set_defaults(func=cmd_serve)

    from serving import log_sink
    p = sub.add_parser("log-sink", help="receive KServe's payload-logger CloudEvents and write them as request logs",
                       description="On KServe, where the real tensorflow/serving cannot log requests: the "
                                   "InferenceService's logger sends each request and response here, and they are "
                                   "written as PredictionLog TFRecords under --filename_prefix (docs/deployment.md).")
    log_sink.add_log_sink_arguments(p)
    p.set_defaults(func=log_sink.run_log_sink)

    p = sub.add_parser("predict", help="send raw rows (JSON lines or CSV) to a served model, print predictions")
    predict_command.add_predict_arguments(p)
    _add_config_args(p)
    p.set_defaults(func=predict_command.run_predict)

    p = sub.add_parser("serving-config", help="write models.config, batching and monitoring files for TF Serving")
    p.add_argument("--reset", action="store_true",
                   help="rewrite models.config too (stable = the newest pushed version), dropping its labels")
    _add_config_args(p)
    p.set_defaults(func=cmd_serving_config)

    p = sub.add_parser("release", help="canary VERSION | promote | rollback: move the labels in models.config")
    p.add_argument("action", choices=["canary", "promote", "rollback"])
    p.add_argument("version", nargs="?", type=int, default=None, help="canary: the pushed version to roll out")
    p.add_argument("--server", action="append", default=[], metavar="HOST:PORT",
                   help="a server's REST address (repeatable): canary waits until each has loaded the version")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for each server (default 300)")
    _add_config_args(p)
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("inspect", help="describe a SavedModel, a model base dir or a pushed TFLite folder")
    inspect.add_inspect_arguments(p)
    p.set_defaults(func=inspect.run_inspect)
    return parser


def cmd_serve(args) -> int:
    from serving import server

    if not args.model_base_path and not args.model_config_file:
        cfg = _load(args)
        args.model_name, args.model_base_path = cfg.pipeline_name, cfg.serving_model_dir
        server.set_request_log_defaults(args, cfg.request_log_server_flags)  # serving.request_log, unless flags say
    return server.run_serve(args)



def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the subcommand they were given to
        parser.exit(BAD_INPUT, f"tfxp {args.command}: error: unrecognized arguments: {' '.join(unknown)} "
                               f"(see tfxp {args.command} --help)\n")
    if not args.verbose:  # the libraries' start-up chatter (CUDA probes, CPU features, Python versions)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except TfxpError as e:  # each error class carries its exit code (tfxp/errors.py)
        return _fail(args, e.outcome, e, e.exit_code)
    except FileNotFoundError as e:
        return _fail(args, "error", e, BAD_INPUT)


def _fail(args, what: str, error: Exception, code: int) -> int:
    """One line on stderr; the traceback too with --verbose."""
    if args.verbose:
        traceback.print_exception(type(error), error, error.__traceback__)
    print(f"tfxp {args.command}: {what}: {error}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
