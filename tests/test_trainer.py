"""run_fn and its input pipeline, on a real tf.Transform output of real rows."""
import numpy as np
import pytest
import tensorflow as tf

from components import features as F
from components import trainer
from data.tfrecords import read_examples


@pytest.fixture(scope="module")
def tft_output(transformed):
    import tensorflow_transform as tft
    return tft.TFTransformOutput(transformed["transform_output"])


def test_input_pipeline_yields_batches_of_the_right_shapes(transformed, tft_output):
    dataset = trainer.make_input_dataset(transformed["files"]["train"], tft_output, batch_size=32)
    features, label = next(iter(dataset))
    assert set(features) == {F.transformed_name(f.name) for f in F.model_features()}
    assert all(tuple(v.shape) == (32, 1) for v in features.values())
    assert tuple(label.shape) == (32,)
    assert set(np.unique(label.numpy())) <= {0, 1}


def test_eval_input_pipeline_reads_every_example_once(transformed, tft_output):
    dataset = trainer.make_input_dataset(transformed["files"]["eval"], tft_output, batch_size=16,
                                         shuffle=False, num_epochs=1)
    count = sum(int(label.shape[0]) for _, label in dataset)
    assert count == len(transformed["rows"]["eval"])


def test_missing_files_are_a_clear_error(tft_output, tmp_path):
    with pytest.raises(FileNotFoundError, match="no transformed example files"):
        trainer.make_input_dataset(str(tmp_path / "nothing*"), tft_output, 8)


@pytest.fixture(scope="module")
def exported(trained_model):
    return trained_model["serving"]


def test_run_fn_exports_both_signatures(exported):
    loaded = tf.saved_model.load(exported)
    assert {"serving_default", "transform_features"} <= set(loaded.signatures)


def test_serving_default_takes_raw_examples_and_returns_probabilities(exported, transformed):
    raw = [ex for ex in tf.data.TFRecordDataset(tf.io.gfile.glob(transformed["raw"]["eval"]),
                                                compression_type="GZIP").take(8)]
    out = tf.saved_model.load(exported).signatures["serving_default"](examples=tf.stack(raw))["outputs"]
    assert out.shape == (8, 1)
    assert ((out.numpy() >= 0) & (out.numpy() <= 1)).all()


def test_serving_default_accepts_an_example_without_the_label_or_any_optional_feature(exported):
    example = tf.train.Example()
    example.features.feature["fare"].float_list.value.append(12.5)
    out = tf.saved_model.load(exported).signatures["serving_default"](
        examples=tf.constant([example.SerializeToString()]))["outputs"].numpy()
    assert 0 <= out[0, 0] <= 1


def test_transform_features_signature_returns_the_label(exported, transformed):
    raw = [ex for ex in tf.data.TFRecordDataset(tf.io.gfile.glob(transformed["raw"]["eval"]),
                                                compression_type="GZIP").take(4)]
    out = tf.saved_model.load(exported).signatures["transform_features"](examples=tf.stack(raw))
    assert F.TRANSFORMED_LABEL_KEY in out
    # The same raw rows, labelled by hand: tips > 20% of fare.
    rows = read_examples(transformed["raw"]["eval"])[:4]
    expected = [int(r.get("tips", [0])[0] > 0.2 * r.get("fare", [0])[0]) for r in rows]
    assert out[F.TRANSFORMED_LABEL_KEY].numpy().reshape(-1).tolist() == expected


def test_unknown_strategy_fails_before_training():
    from components.strategy import build_strategy
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        build_strategy("nope")
