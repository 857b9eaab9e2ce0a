"""Builds what the platform tests run on, for any user package, in this process, once per session:
synthetic TFRecords (the data tool), a real tf.Transform output (its Beam implementation, as
Transform runs it), and a model trained by run_fn as the Trainer calls it."""
from __future__ import annotations

import importlib
import os
from typing import Dict

from components.core.user_code import UserCode, load_user_code
from tests.support.marks import require

ROWS = 900
TRAIN_STEPS = 150


def raw_feature_spec(user: UserCode) -> Dict:
    """Every feature VarLen (no fixed shape): what a curated schema says, from the feature list alone."""
    import tensorflow as tf

    dtypes = {"int64": tf.int64, "float": tf.float32, "bytes": tf.string}
    return {f.name: tf.io.VarLenFeature(dtypes[f.dtype]) for f in user.features}


def raw_metadata(user: UserCode):
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    return dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_feature_spec(user)))


def to_instances(examples, user: UserCode):
    """read_examples() rows -> tf.Transform instance dicts (an absent VarLen feature -> [])."""
    names = [f.name for f in user.features]
    return [{name: row.get(name, []) for name in names} for row in examples]


def make_tfrecords(user: UserCode, directory: str, rows: int = ROWS, seed: int = 0, shards: int = 2) -> Dict:
    from data import tfrecords
    from tests.support import synthetic

    os.makedirs(directory, exist_ok=True)
    csv_path = synthetic.write_csv(os.path.join(directory, "data.csv"), user, rows, seed)
    result = tfrecords.convert_csv(csv_path, os.path.join(directory, "tfrecords"), features=user.features,
                                   shards=shards)
    return {"csv": csv_path, "root": result.output_dir, "rows": result.rows,
            "patterns": {s: os.path.join(result.output_dir, s, "*") for s in ("train", "eval")}}


def transform(user: UserCode, patterns: Dict[str, str], directory: str) -> Dict:
    """Runs the user's preprocessing_fn with tf.Transform's Beam implementation and writes what the
    Transform component writes: transform_fn/ + transformed_metadata/ (+ the raw metadata) and gzip'd
    transformed examples per split."""
    require("beam", "runs tf.Transform's Beam pipeline")
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import metadata_io

    from tests.support.examples import read_examples

    preprocessing_fn = importlib.import_module(f"{user.package}.preprocessing").preprocessing_fn
    metadata = raw_metadata(user)
    raw = {s: to_instances(read_examples(p), user) for s, p in patterns.items()}
    graph_dir = os.path.join(directory, "transform_graph")
    with tft_beam.Context(temp_dir=os.path.join(directory, "tmp"), force_tf_compat_v1=False):
        transform_fn = (raw["train"], metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
        transformed_rows = {}
        for split in ("train", "eval"):
            rows, transformed_metadata = ((raw[split], metadata), transform_fn) | tft_beam.TransformDataset()
            transformed_rows[split] = rows
        _ = transform_fn | tft_beam.WriteTransformFn(graph_dir)
    metadata_io.write_metadata(metadata, os.path.join(graph_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    coder = tft.coders.ExampleProtoCoder(transformed_metadata.schema)
    files = {}
    for split, rows in transformed_rows.items():
        split_dir = os.path.join(directory, "transformed", f"Split-{split}")
        os.makedirs(split_dir)
        with tf.io.TFRecordWriter(os.path.join(split_dir, "data.tfrecord.gz"),
                                  tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
            for row in rows:
                writer.write(coder.encode(row))
        files[split] = os.path.join(split_dir, "*")
    return {"transform_output": graph_dir, "files": files, "rows": transformed_rows,
            "examples_uri": os.path.join(directory, "transformed")}


def fn_args(user: UserCode, transformed: Dict, directory: str, train_steps: int = TRAIN_STEPS,
            qat_steps: int = 0, **options):
    """FnArgs as the Trainer builds them, with the custom_config the pipeline builds."""
    from tfx.components.trainer.fn_args_utils import FnArgs

    from components.training.options import TrainingOptions, trainer_custom_config

    training = TrainingOptions(**{"batch_size": 16, **options})
    return FnArgs(
        train_files=[transformed["files"]["train"]], eval_files=[transformed["files"]["eval"]],
        transform_output=transformed["transform_output"],
        serving_model_dir=os.path.join(directory, "model", "Format-Serving"),
        model_run_dir=os.path.join(directory, "run"), train_steps=train_steps, eval_steps=2,
        custom_config=trainer_custom_config(training, user.package, qat_steps, code_fingerprint="test"))


def train(user: UserCode, transformed: Dict, directory: str, **kwargs) -> Dict:
    require("training", "trains a model with the Trainer's run_fn")
    from components.training import export, trainer

    args = fn_args(user, transformed, directory, **kwargs)
    trainer.run_fn(args)
    root = os.path.dirname(args.serving_model_dir)
    return {"root": root, "serving": args.serving_model_dir, "run": args.model_run_dir,
            "transformed": export.transformed_model_dir(root), "qat": export.transformed_model_dir(root, qat=True)}


class Workspace:
    """Session cache: each user package's data, Transform output and trained model, built on first use."""

    def __init__(self, root: str):
        self.root = root
        self._cache: Dict = {}

    def _once(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def user(self, package: str) -> UserCode:
        return load_user_code(package)

    def tfrecords(self, package: str) -> Dict:
        return self._once(("tfrecords", package), lambda: make_tfrecords(
            self.user(package), os.path.join(self.root, package, "data")))

    def transformed(self, package: str) -> Dict:
        require("beam", "uses tf.Transform's output (a Beam pipeline; workspace.transformed)")
        return self._once(("transformed", package), lambda: transform(
            self.user(package), self.tfrecords(package)["patterns"], os.path.join(self.root, package, "transform")))

    def trained(self, package: str) -> Dict:
        """run_fn on the transformed data, with quantization-aware fine-tuning on (the TFLite tests use it)."""
        require("training", "uses a model trained by run_fn (workspace.trained)")
        require("beam", "uses tf.Transform's output (a Beam pipeline; workspace.trained)")
        return self._once(("trained", package), lambda: train(
            self.user(package), self.transformed(package), os.path.join(self.root, package, "trainer"),
            qat_steps=20))
