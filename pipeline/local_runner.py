"""Runs the pipeline locally: LocalDagRunner on Beam's DirectRunner (`tfxp run`)."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time

from pipeline.config import PipelineConfig

log = logging.getLogger(__name__)


def stage_schema(cfg: PipelineConfig) -> str:
    """Copies the curated schema to a content-addressed path under the pipeline root.

    ImportSchemaGen's cache key is the file's path, not its content; staging by
    content hash makes an edited schema re-import (and re-run what depends on it)
    while an unchanged one stays cached.
    """
    src = cfg.resolved_schema_path
    if not os.path.exists(src):
        raise FileNotFoundError(f"schema_path {src} does not exist (set schema_path: null to infer one)")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    dst_dir = os.path.join(cfg.resolved_pipeline_root, "curated_schema", digest)
    dst = os.path.join(dst_dir, "schema.pbtxt")
    if not os.path.exists(dst):
        os.makedirs(dst_dir, exist_ok=True)
        tmp = dst + ".tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    return dst


def has_tfrecords(data_root: str) -> bool:
    return all(os.path.isdir(os.path.join(data_root, s)) and os.listdir(os.path.join(data_root, s))
               for s in ("train", "eval"))


def ensure_data(cfg: PipelineConfig) -> None:
    """Writes TFRecords from ``cfg.source_csv`` when ``data_root`` has none (and one is configured)."""
    root = cfg.resolved_data_root
    if "://" in root or has_tfrecords(root):
        return
    if cfg.source_csv is None:
        raise FileNotFoundError(f"data_root {root} has no TFRecords (train/*, eval/*): write them with "
                                f"`tfxp data --csv YOUR.csv --output {root}`, or set source_csv in the config")
    from data import tfrecords
    log.info("no TFRecords under %s yet: converting %s", root, cfg.resolved_source_csv)
    tfrecords.convert_csv(cfg.resolved_source_csv, root, features=cfg.user_code.features, shards=cfg.shards)


def execute(cfg: PipelineConfig) -> None:
    """Builds and runs the pipeline with LocalDagRunner; raises if a component fails."""
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    os.makedirs(os.path.dirname(cfg.resolved_metadata_path), exist_ok=True)
    schema_file = stage_schema(cfg) if cfg.schema_path else None
    tfx_pipeline = create_pipeline(
        cfg, schema_file=schema_file,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            cfg.resolved_metadata_path))
    tfx.orchestration.LocalDagRunner().run(tfx_pipeline)


def print_tflite_report(cfg: PipelineConfig) -> None:
    """The TFLite evaluator's table (per variant: size, metrics, drop, latency, blessed) and the lite push."""
    import json

    from components.custom.tflite_evaluator import REPORT_FILE, format_report
    from pipeline import run_summary
    from serving import predict

    uri = run_summary.latest_output_uri(cfg.resolved_metadata_path, cfg.pipeline_name, "tflite_evaluator", "blessing")
    if uri is None or not os.path.exists(os.path.join(uri, REPORT_FILE)):
        print("TFLite branch: no evaluation in this run.")
        return
    with open(os.path.join(uri, REPORT_FILE)) as f:
        print(format_report(json.load(f)))
    latest_lite = predict.latest_version(cfg.lite_serving_model_dir, marker_suffix=".tflite")
    print(f"Pushed TFLite models: {latest_lite}" if latest_lite else
          f"No TFLite model has been pushed to {cfg.lite_serving_model_dir}.")


def run(cfg: PipelineConfig, *, force: bool = False, prepare_data: bool = True) -> int:
    """`tfxp run`: data if missing, the whole pipeline, then where the served model is and a prediction."""
    from absl import logging as absl_logging

    from pipeline import run_summary
    from serving import predict

    absl_logging.set_verbosity(absl_logging.INFO)
    if force:
        cfg.enable_cache = False
        log.info("--force: every component re-executes (cache disabled for this run)")
    if prepare_data:
        ensure_data(cfg)
    before = set(predict.model_versions(cfg.serving_model_dir))
    start = time.monotonic()
    log.info("running pipeline %r (pipeline root %s)", cfg.pipeline_name, cfg.resolved_pipeline_root)
    try:
        execute(cfg)
    finally:
        print(f"\nComponents in this run of {cfg.pipeline_name!r}:\n"
              + run_summary.format_states(run_summary.latest_run_states(cfg.resolved_metadata_path,
                                                                        cfg.pipeline_name)))
    elapsed = time.monotonic() - start
    latest = predict.latest_version(cfg.serving_model_dir)
    print(f"Pipeline {cfg.pipeline_name!r} finished in {elapsed:.1f}s.")
    why = why_not_pushed(cfg)
    if latest is None:
        print(f"No model has been pushed to {cfg.serving_model_dir}: {why or 'the Pusher did not push'}.")
        return 1
    if latest not in before:
        print(f"Pushed model: {latest} (it carries warmup requests: the requests the InfraValidator sent)")
    else:
        print(f"No new version was pushed ({why or 'components cached'}); the served model is still: {latest}")
    if cfg.tflite.enabled:
        print_tflite_report(cfg)
    print(describe_a_prediction(cfg, latest))
    print(f"Serve it: tfxp serve (TF Serving's REST API on 127.0.0.1:8501 and gRPC on 127.0.0.1:8500, model "
          f"{cfg.pipeline_name!r}); query it: tfxp predict ROWS.csv. Both take the --config of tfxp run.")
    return 0


def why_not_pushed(cfg: PipelineConfig) -> str:
    """Why this run's candidate was not pushed, from the blessings of the Evaluator and InfraValidator."""
    from pipeline import run_summary
    from pipeline.evaluation import describe_gate

    reasons = []
    evaluation = run_summary.blessing_of(cfg.resolved_metadata_path, cfg.pipeline_name, "evaluator")
    if evaluation is not None and not evaluation[0]:
        reasons.append(f"the Evaluator did not bless it (its gate: {describe_gate(cfg)}; see the evaluator "
                       f"output under {cfg.resolved_pipeline_root})")
    infra = run_summary.blessing_of(cfg.resolved_metadata_path, cfg.pipeline_name, "infra_validator")
    if infra is not None and not infra[0]:
        reasons.append(f"the InfraValidator did not bless it: a model server could not serve it ({infra[1]})")
    return "; ".join(reasons)


def describe_a_prediction(cfg: PipelineConfig, model_dir: str) -> str:
    """The served model on the first raw eval example, in the task's words, beside the example's label."""
    from serving import predict

    user = cfg.user_code
    example = predict.first_raw_examples(cfg.resolved_data_root, "eval", 1)[0]
    model = predict.load_model(model_dir)
    outputs = predict.predict_serialized(model, [example])
    label = predict.labels_of(model, [example], user.task.label_key)
    shown = [f.name for f in user.model_features][:5] + user.label_source_names
    return (f"Prediction of the served model on the first raw eval example ({predict.describe_example(example, shown)}): "
            f"{user.task.describe_prediction(outputs[0])} (its label: {user.task.describe_label(label)})")
