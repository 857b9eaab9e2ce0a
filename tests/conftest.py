"""Shared fixtures: slices of the real sample data and a real tf.Transform output."""
import csv
import os

import pytest

import components  # noqa: F401  (one Keras, before TensorFlow)
from data import SAMPLE_CSV


def write_csv_slice(path, rows: int, start: int = 0):
    with open(SAMPLE_CSV, newline="") as src, open(path, "w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            if i >= start + rows:
                break
            if i >= start:
                writer.writerow(row)
    return str(path)


@pytest.fixture(scope="session")
def curated_schema():
    import tensorflow_data_validation as tfdv
    from pipeline.config import PipelineConfig
    return tfdv.load_schema_text(PipelineConfig().resolved_schema_path)


@pytest.fixture(scope="session")
def sample_tfrecords(tmp_path_factory):
    """600 real rows converted by the data tool: {split: pattern}."""
    from data import tfrecords
    tmp = tmp_path_factory.mktemp("sample")
    csv_path = write_csv_slice(tmp / "slice.csv", 600)
    result = tfrecords.convert_csv(csv_path, str(tmp / "tfrecords"), shards=2)
    return {s: os.path.join(result.output_dir, s, "*") for s in ("train", "eval")}


def to_instance_dicts(examples, feature_spec):
    """read_examples() rows -> tf.Transform instance dicts (absent VarLen feature -> [])."""
    out = []
    for row in examples:
        out.append({name: row.get(name, []) for name in feature_spec})
    return out


@pytest.fixture(scope="session")
def transformed(tmp_path_factory, sample_tfrecords, curated_schema):
    """Runs the real preprocessing_fn with tf.Transform's Beam implementation on the slice.

    Writes what Transform writes: transform_fn/ + transformed_metadata/ and gzip'd
    transformed examples per split. Returns a dict of paths.
    """
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from components.preprocessing import preprocessing_fn
    from data.tfrecords import read_examples

    out = tmp_path_factory.mktemp("transform")
    spec = schema_utils.schema_as_feature_spec(curated_schema).feature_spec
    metadata = dataset_metadata.DatasetMetadata(curated_schema)
    raw = {s: to_instance_dicts(read_examples(p), spec) for s, p in sample_tfrecords.items()}
    with tft_beam.Context(temp_dir=str(out / "tmp"), force_tf_compat_v1=False):
        transform_fn = (raw["train"], metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
        transformed_data = {}
        for split in ("train", "eval"):
            data, transformed_metadata = ((raw[split], metadata), transform_fn) | tft_beam.TransformDataset()
            transformed_data[split] = data
        _ = transform_fn | tft_beam.WriteTransformFn(str(out / "transform_graph"))
    # Transform also keeps the raw metadata beside the graph (TFTransformOutput.raw_feature_spec).
    metadata_io.write_metadata(metadata, str(out / "transform_graph" / tft.TFTransformOutput.RAW_METADATA_DIR))
    coder = tft.coders.ExampleProtoCoder(transformed_metadata.schema)
    files = {}
    for split, rows in transformed_data.items():
        path = out / "transformed" / f"Split-{split}" / "data.tfrecord.gz"
        path.parent.mkdir(parents=True)
        with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions(compression_type="GZIP")) as w:
            for row in rows:
                w.write(coder.encode(row))
        files[split] = str(path.parent / "*")
    return {"transform_output": str(out / "transform_graph"), "files": files, "raw": sample_tfrecords,
            "rows": transformed_data}


@pytest.fixture(scope="session")
def trained_model(transformed, tmp_path_factory):
    """run_fn, as the Trainer calls it, on the transformed slice, with quantization-aware training on."""
    from tfx.components.trainer.fn_args_utils import FnArgs

    from components import trainer

    out = tmp_path_factory.mktemp("trainer") / "model"
    fn_args = FnArgs(
        train_files=[transformed["files"]["train"]], eval_files=[transformed["files"]["eval"]],
        transform_output=transformed["transform_output"], serving_model_dir=str(out / "Format-Serving"),
        model_run_dir=str(out.parent / "run"), train_steps=60, eval_steps=2,
        custom_config={"strategy": "mirrored", "batch_size": 16, "quantization_aware_training": True,
                       "qat_steps": 20})
    trainer.run_fn(fn_args)
    return {"root": str(out), "serving": str(out / "Format-Serving"),
            "transformed": str(out / trainer.TRANSFORMED_MODEL_DIR), "qat": str(out / trainer.QAT_MODEL_DIR)}
