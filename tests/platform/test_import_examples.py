"""ImportExampleGen's copying executor: the same records, splits and artifact properties as TFX's."""
import gzip
import json
import os

import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.custom import import_examples
from data import tfrecords
from tests.support import synthetic
from components.core.user_code import load_user_code

USER = load_user_code("synth_binary")


def _records(pattern):
    out = []
    for path in sorted(tf.io.gfile.glob(pattern)):
        out += [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    return out


def _run(data_root, output_uri, output_config=None):
    examples = standard_artifacts.Examples()
    examples.uri = str(output_uri)
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="train", pattern="train/*"),
                                                 example_gen_pb2.Input.Split(name="eval", pattern="eval/*")])
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: str(data_root),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config or example_gen_pb2.Output()),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    import_examples.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    return examples


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_the_splits_hold_the_input_records_gzipd_with_tfxs_artifact_properties(tmp_path, compression):
    csv_path = synthetic.write_csv(tmp_path / "in.csv", USER, 300)
    data = tfrecords.convert_csv(str(csv_path), str(tmp_path / "data"), features=USER.features, shards=3,
                                 compression=compression)
    examples = _run(tmp_path / "data", tmp_path / "out")
    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "eval"]
    assert examples.get_string_custom_property("file_format") == "tfrecords_gzip"
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    for split in ("train", "eval"):
        copied = sorted(os.listdir(tmp_path / "out" / f"Split-{split}"))
        assert len(copied) == 3 and all(name.endswith(".gz") for name in copied)
        with gzip.open(tmp_path / "out" / f"Split-{split}" / copied[0]) as f:
            f.read(1)  # a real gzip stream, whatever the input's compression
        original = []
        for path in data.files[split]:
            original += [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP" if compression == "gzip" else "")]
        assert _records(str(tmp_path / "out" / f"Split-{split}" / "*")) == original
        assert len(original) == data.rows[split]


@pytest.mark.beam
def test_a_re_splitting_output_config_goes_to_tfxs_beam_executor(tmp_path):
    csv_path = synthetic.write_csv(tmp_path / "in.csv", USER, 120)
    tfrecords.convert_csv(str(csv_path), str(tmp_path / "data"), features=USER.features, shards=1)
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="a", hash_buckets=1),
        example_gen_pb2.SplitConfig.Split(name="b", hash_buckets=1)]))
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern="*/*")])
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    import_examples.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, {
        standard_component_specs.INPUT_BASE_KEY: str(tmp_path / "data"),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE})
    assert artifact_utils.decode_split_names(examples.split_names) == ["a", "b"]
    assert len(_records(str(tmp_path / "out" / "Split-a" / "*"))) + \
        len(_records(str(tmp_path / "out" / "Split-b" / "*"))) == 120


def test_one_split_without_a_re_splitting_output_config_is_copied_too(tmp_path):
    """The batch scoring branch's rows: one split of their own, copied in their order, no Beam."""
    csv_path = synthetic.write_csv(tmp_path / "in.csv", USER, 90)
    data = tfrecords.convert_csv(str(csv_path), str(tmp_path / "data"), features=USER.features, shards=2)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="rows", pattern="train/*")])
    import_examples.Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, {
        standard_component_specs.INPUT_BASE_KEY: str(tmp_path / "data"),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Output()),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE})
    assert artifact_utils.decode_split_names(examples.split_names) == ["rows"]
    assert sorted(os.listdir(tmp_path / "out" / "Split-rows")) == [os.path.basename(f) for f in data.files["train"]]
    assert _records(str(tmp_path / "out" / "Split-rows" / "*")) == _records(str(tmp_path / "data" / "train" / "*"))


def test_a_split_without_files_names_its_pattern(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "eval").mkdir()
    with pytest.raises(RuntimeError, match="no files match split 'train'.*train/\\*"):
        _run(tmp_path / "data", tmp_path / "out")


def test_the_pipeline_uses_it_under_the_name_importexamplegen(tmp_path):
    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    cfg = load_config(overrides=[f"output_root={tmp_path}"])
    [example_gen] = [c for c in create_pipeline(cfg).components if c.id == "ImportExampleGen"]
    assert isinstance(example_gen, import_examples.CopyingImportExampleGen)
    assert json.loads(example_gen.exec_properties["input_config"])["splits"][0]["pattern"] == "train/*"
