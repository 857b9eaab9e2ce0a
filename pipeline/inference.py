"""Batch scoring: rows without a label, scored by the pipeline's blessed model through TFX's BulkInferrer.

The config's ``inference.data`` turns the branch on (pipeline/pipeline.py ``_batch_scoring``); `tfxp infer
--data PATH` (pipeline/infer_command.py) is a run with it set to PATH, which executes only the branch when
nothing else changed. What ``inference.data`` may name:

    a CSV file (.csv)      converted before the run like training data (data/unlabelled.py: typed by your
                           feature list, every row in order, no label needed) into
                           <output_root>/inference_data/<pipeline>/<digest>/rows.tfrecord.gz, the digest of the
                           CSV and the feature list: an unchanged CSV is not converted again, the branch stays cached
    a TFRecord file of tf.Example, or a folder of them   read as they are (on Kubeflow: on the bucket)

Before any work each is checked: the file exists; a CSV's header names every feature the model reads; every
record of a TFRecord file is readable, the first is a tf.train.Example, and each feature the model reads
appears in the first records. A failure is one line naming the file and what was expected (exit 2).

Nothing here imports TensorFlow at module level: the pipeline's wiring imports it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Dict, List, Optional

from tfxp import nodes
from tfxp.errors import TfxpError
from tfxp.files import is_remote

log = logging.getLogger(__name__)

ROWS_SPLIT = "rows"            # the branch's ImportExampleGen's one split
STAGED_FILE = "rows.tfrecord.gz"
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz")
_FEATURE_CHECK_RECORDS = 1000  # the first records of the first file: every feature the model reads is in one
EXPECTED = "a CSV file with a header line, a TFRecord file of tf.train.Example, or a folder of them"


class ScoringInputError(ValueError, TfxpError):
    """The rows to score cannot be used: one line naming the file and what was expected."""


@dataclasses.dataclass(frozen=True)
class RowsToScore:
    """Where the branch's ImportExampleGen reads: ``base`` (its input_base) and its one split's file pattern."""
    base: str
    pattern: str


def is_csv(path: str) -> bool:
    return path.lower().endswith(".csv")


def rows_to_score(path: str) -> RowsToScore:
    """What the branch reads of ``path``, told by its name only (`tfxp compile` must not touch a gs:// bucket):
    a TFRecord file by its extension, otherwise a folder of them. A CSV is converted before a local run
    (stage_rows); a compiled pipeline cannot do that."""
    if is_csv(path):
        from pipeline.config import ConfigError
        raise ConfigError(f"inference.data {path}: a compiled pipeline reads TFRecords of tf.train.Example, not a "
                          f"CSV (tfxp infer --data {os.path.basename(path)} converts one locally: copy the "
                          f"{STAGED_FILE} it writes under output_root/inference_data/ to the bucket)")
    if path.endswith(_TFRECORD_SUFFIXES):
        return RowsToScore(os.path.dirname(path.rstrip("/")), os.path.basename(path))
    return RowsToScore(path.rstrip("/"), "*")


# -- the rows, checked and staged before a local run ----------------------------------------------------

_STAGED: Dict[tuple, RowsToScore] = {}  # a run stages before its lock, then builds the pipeline: check once


def stage_rows(cfg) -> RowsToScore:
    """The rows of ``cfg.inference.data`` checked (a CSV converted into TFRecords under output_root), or
    ScoringInputError / DataError naming the file. Remote data is the pipeline's to read."""
    path = cfg.resolved_inference_data
    if is_remote(path):
        return rows_to_score(path)
    if not os.path.exists(path):
        raise ScoringInputError(f"{path}: no such file or folder (inference.data, tfxp infer --data: expected "
                                f"{EXPECTED})")
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(path, name) for name in os.listdir(path) if os.path.isfile(os.path.join(path, name)))
    user = cfg.user_code
    key = (path, tuple((f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files), repr(user.features),
           cfg.resolved_output_root, cfg.pipeline_name)
    if key not in _STAGED:
        _STAGED[key] = _stage(cfg, path, files, user)
    return _STAGED[key]


def _stage(cfg, path: str, files: List[str], user) -> RowsToScore:
    needed = [f.name for f in user.model_features]
    if os.path.isfile(path) and is_csv(path):
        return _convert_csv(cfg, path, user, needed)
    if not files:
        raise ScoringInputError(f"{path}: an empty folder (inference.data: expected {EXPECTED})")
    for file in files:
        check_tfrecord_file(file, needed)
    return rows_to_score(path) if os.path.isdir(path) else RowsToScore(os.path.dirname(path), os.path.basename(path))


def _convert_csv(cfg, path: str, user, needed: List[str]) -> RowsToScore:
    from data.unlabelled import convert_rows_to_score

    digest = hashlib.sha256(repr(user.features).encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    folder = os.path.join(cfg.resolved_output_root, "inference_data", cfg.pipeline_name, digest.hexdigest()[:16])
    if not os.path.exists(os.path.join(folder, STAGED_FILE)):  # it logs what it wrote
        convert_rows_to_score(path, os.path.join(folder, STAGED_FILE), features=user.features, required=needed)
    return RowsToScore(folder, STAGED_FILE)


def check_tfrecord_file(path: str, needed: List[str]) -> int:
    """Every record readable, the first a tf.train.Example, and each of ``needed`` in one of the first records."""
    import tensorflow as tf

    from pipeline.input_check import InputError, check_file

    try:
        count = check_file(path)
    except InputError as e:
        raise ScoringInputError(f"{e} (inference.data: expected {EXPECTED})") from None
    compression = "GZIP" if path.endswith(".gz") else ""
    seen = set()
    for record in tf.data.TFRecordDataset(path, compression_type=compression).take(_FEATURE_CHECK_RECORDS):
        seen.update(tf.train.Example.FromString(record.numpy()).features.feature.keys())
    missing = [name for name in needed if name not in seen]
    if missing:
        raise ScoringInputError(f"{path}: no feature {', '.join(map(repr, missing))} in its first "
                                f"{min(count, _FEATURE_CHECK_RECORDS)} records; the model reads them (expected "
                                f"tf.train.Examples of your feature list)")
    return count


# -- what the branch did -------------------------------------------------------------------------------

def scored_rows(cfg) -> Optional[dict]:
    """The newest summary of the branch (components/custom/predictions_csv.py: scored, rows, prediction_logs,
    csv, columns), or None when it has not run."""
    from components.custom.predictions_csv import SUMMARY_FILE
    from pipeline import run_summary

    if not os.path.exists(cfg.resolved_metadata_path):
        return None
    uri = run_summary.latest_output_uri(cfg.resolved_metadata_path, cfg.pipeline_name, nodes.PREDICTIONS_CSV,
                                        "scored_rows")
    if uri is None or not os.path.exists(os.path.join(uri, SUMMARY_FILE)):
        return None
    with open(os.path.join(uri, SUMMARY_FILE)) as f:
        return json.load(f)


def describe_scoring(cfg, summary: Optional[dict]) -> List[str]:
    """What `tfxp run` and `tfxp infer` print about the branch."""
    from pipeline import run_summary
    from pipeline.evaluation import describe_gate

    data = cfg.resolved_inference_data
    if summary is None:
        return [f"Batch scoring of {data}: the branch did not run."]
    if not summary["scored"]:
        why = run_summary.why_not_pushed(
            run_summary.blessing_of(cfg.resolved_metadata_path, cfg.pipeline_name, nodes.EVALUATOR), None,
            describe_gate(cfg), cfg.resolved_pipeline_root) or "the Evaluator did not bless it"
        return [f"Batch scoring of {data}: nothing scored. BulkInferrer scores only a model the Evaluator blessed, "
                f"and this run's model is not: {why}."]
    return [f"Batch scoring of {data}: {summary['rows']} rows scored by this run's blessed model (TFX's BulkInferrer).",
            f"  PredictionLogs (gzip'd TFRecords of tensorflow.serving.PredictionLog): "
            f"{summary['prediction_logs']}/prediction_logs-*.gz",
            f"  CSV of the rows and their predictions: {summary['csv']}"]
