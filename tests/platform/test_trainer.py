"""run_fn and its input pipeline, for each task, on a real tf.Transform output of synthetic rows."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from components.core.task import BinaryClassification, MulticlassClassification, Regression
from components.training import inputs, trainer
from tests.support.examples import read_examples


def _tft_output(workspace, package):
    import tensorflow_transform as tft
    return tft.TFTransformOutput(workspace.transformed(package)["transform_output"])


@pytest.mark.beam
def test_input_batches_have_one_column_per_model_input_and_the_task_s_label(workspace, package):
    user = workspace.user(package)
    dataset = inputs.make_input_dataset(workspace.transformed(package)["files"]["train"],
                                        _tft_output(workspace, package), user, batch_size=32)
    features, label = next(iter(dataset))
    assert set(features) == {f.transformed_name for f in user.model_features}
    assert all(tuple(v.shape) == (32, 1) for v in features.values())
    assert tuple(label.shape) == (32,)
    if isinstance(user.task, Regression):
        assert label.dtype == tf.float32
    else:
        assert label.dtype == tf.int64
        assert set(np.unique(label.numpy())) <= set(range(max(2, user.task.output_units)))


@pytest.mark.beam
def test_a_finite_read_yields_every_example_once(workspace):
    transformed = workspace.transformed("synth_binary")
    dataset = inputs.make_input_dataset(transformed["files"]["eval"], _tft_output(workspace, "synth_binary"),
                                        workspace.user("synth_binary"), batch_size=16, shuffle=False, num_epochs=1)
    assert sum(int(label.shape[0]) for _, label in dataset) == len(transformed["rows"]["eval"])


def _rows(dataset):
    rows = []
    for features, label in dataset:
        columns = [features[n].numpy().reshape(-1) for n in sorted(features)] + [label.numpy().reshape(-1)]
        rows.extend(tuple(np.round(values, 5)) for values in zip(*columns))
    return sorted(rows)


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.beam
def test_the_shuffled_pipeline_yields_the_same_examples_as_a_sequential_read(workspace, cache):
    transformed, user = workspace.transformed("synth_binary"), workspace.user("synth_binary")
    tft_output = _tft_output(workspace, "synth_binary")
    pattern = transformed["files"]["train"]
    shuffled = inputs.make_input_dataset(pattern, tft_output, user, 32, num_epochs=1, cache=cache)
    sequential = inputs.make_input_dataset(pattern, tft_output, user, 32, shuffle=False, num_epochs=1)
    assert _rows(shuffled) == _rows(sequential)
    first = next(iter(inputs.make_input_dataset(pattern, tft_output, user, 64, num_epochs=1)))[0]
    plain = next(iter(inputs.make_input_dataset(pattern, tft_output, user, 64, shuffle=False, num_epochs=1)))[0]
    assert not np.array_equal(first["income_xf"].numpy(), plain["income_xf"].numpy())


@pytest.mark.beam
def test_missing_files_are_a_clear_error(workspace, tmp_path):
    with pytest.raises(FileNotFoundError, match="no transformed example files"):
        inputs.make_input_dataset(str(tmp_path / "nothing*"), _tft_output(workspace, "synth_binary"),
                                  workspace.user("synth_binary"), 8)


@pytest.mark.beam
def test_a_preprocessing_fn_without_the_label_is_a_clear_error(workspace):
    user = dataclasses.replace(workspace.user("synth_binary"), task=BinaryClassification(label="churned"))
    with pytest.raises(ValueError, match="preprocessing_fn outputs no 'churned_xf', the label of TASK"):
        inputs.check_label(user, _tft_output(workspace, "synth_binary"))


def _raw_eval(workspace, package, count):
    files = tf.io.gfile.glob(workspace.tfrecords(package)["patterns"]["eval"])
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]


@pytest.mark.beam
@pytest.mark.training
def test_run_fn_exports_one_saved_model_with_the_three_signatures(workspace, package):
    trained = workspace.trained(package)
    saved_models = sorted(d for d, _, files in os.walk(trained["root"]) if "saved_model.pb" in files)
    assert saved_models == [trained["serving"], trained["qat"]]  # the QAT copy: the workspace trains with QAT on
    loaded = tf.saved_model.load(trained["serving"])
    assert set(loaded.signatures) == {"serving_default", "transform_features", "serving_transformed"}


@pytest.mark.beam
@pytest.mark.training
def test_the_saved_model_holds_no_keras_objects_only_variables_functions_and_the_transform_graph(workspace):
    """Readers call its signatures; saving the Keras objects would trace every layer (seconds) for nothing."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(workspace.trained("synth_binary")["serving"], "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    identifiers = {node.user_object.identifier for node in saved_model.meta_graphs[0].object_graph_def.nodes
                   if node.WhichOneof("kind") == "user_object"}
    assert identifiers and not [i for i in identifiers if "keras" in i], identifiers


@pytest.mark.beam
@pytest.mark.training
def test_serving_transformed_takes_the_transformed_features_and_agrees_with_serving_default(workspace, package):
    user = workspace.user(package)
    loaded = tf.saved_model.load(workspace.trained(package)["serving"])
    serve_transformed = loaded.signatures["serving_transformed"]
    specs = serve_transformed.structured_input_signature[1]
    assert {name: tuple(spec.shape) for name, spec in specs.items()} == {
        f.transformed_name: (None, 1) for f in user.model_features}
    raw = tf.constant(_raw_eval(workspace, package, 8))
    transformed = inputs.to_model_inputs(user, loaded.signatures["transform_features"](examples=raw))
    np.testing.assert_allclose(serve_transformed(**transformed)["outputs"].numpy(),
                               loaded.signatures["serving_default"](examples=raw)["outputs"].numpy(), rtol=1e-6)


@pytest.mark.beam
@pytest.mark.training
def test_serving_default_takes_raw_examples_and_returns_the_task_s_output(workspace, package):
    task = workspace.user(package).task
    serve = tf.saved_model.load(workspace.trained(package)["serving"]).signatures["serving_default"]
    out = serve(examples=tf.constant(_raw_eval(workspace, package, 8)))["outputs"].numpy()
    assert out.shape == (8, task.output_units)
    if isinstance(task, BinaryClassification):
        assert ((out >= 0) & (out <= 1)).all()
    elif isinstance(task, MulticlassClassification):
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    else:
        assert np.isfinite(out).all()


@pytest.mark.beam
@pytest.mark.training
def test_serving_default_accepts_an_example_without_the_label_or_any_optional_feature(workspace, package):
    user = workspace.user(package)
    first_input = user.model_features[0]
    example = tf.train.Example()
    example.features.feature[first_input.name].float_list.value.append(1.5)
    serve = tf.saved_model.load(workspace.trained(package)["serving"]).signatures["serving_default"]
    out = serve(examples=tf.constant([example.SerializeToString()]))["outputs"].numpy()
    assert out.shape == (1, user.task.output_units) and np.isfinite(out).all()


@pytest.mark.beam
@pytest.mark.training
def test_transform_features_gives_the_label_preprocessing_derives(workspace, package):
    user = workspace.user(package)
    raw = _raw_eval(workspace, package, 6)
    out = tf.saved_model.load(workspace.trained(package)["serving"]).signatures["transform_features"](
        examples=tf.constant(raw))
    labels = out[user.task.label_key].numpy().reshape(-1)
    column = [r[user.task.label][0] for r in read_examples(workspace.tfrecords(package)["patterns"]["eval"])[:6]]
    if isinstance(user.task, MulticlassClassification):
        column = [user.task.class_names.index(v.decode()) for v in column]
    np.testing.assert_allclose(labels, column, rtol=1e-6)


@pytest.mark.beam
@pytest.mark.training
def test_the_model_learns_better_than_the_majority_or_the_mean(workspace, package):
    """Trained briefly on learnable synthetic data, the model beats the trivial prediction."""
    from serving import predict
    task = workspace.user(package).task
    raw = _raw_eval(workspace, package, 300)
    model_dir = workspace.trained(package)["serving"]
    outputs, labels = predict.predict_serialized(model_dir, raw), predict.labels_of(model_dir, raw, task.label_key)
    metrics = task.compute_metrics(labels, outputs)
    if isinstance(task, Regression):
        assert metrics["mae"] < np.mean(np.abs(labels - labels.mean()))
    else:
        majority = np.bincount(labels.astype(int)).max() / len(labels)
        assert metrics["accuracy"] > majority + 0.1


def test_build_model_must_compile_the_model(workspace, tmp_path, monkeypatch):
    import tf_keras as keras
    model = keras.Sequential([keras.layers.Dense(1)])
    model.build((None, 1))

    class NotCompiling:
        @staticmethod
        def build_model(model_inputs, task, learning_rate):
            return model

    user = workspace.user("synth_binary")
    monkeypatch.setattr(type(user), "model_module", lambda self: NotCompiling)
    with pytest.raises(ValueError, match="build_model must compile the model"):
        trainer.build_user_model(user, [])


def test_training_is_cut_into_epochs_that_validate_for_the_curves_with_the_same_steps_in_all():
    from components.training.trainer import epoch_plan
    assert epoch_plan(1000, 100) == (10, 100, 10)   # 10 validations of 10 batches: a 10-point curve
    assert epoch_plan(60, 10) == (10, 6, 1)
    assert epoch_plan(7, 3) == (7, 1, 1)
    assert epoch_plan(13, 5) == (1, 13, 5)          # a prime step count: one epoch, exactly 13 steps


@pytest.mark.beam
def test_an_epoch_budget_becomes_the_steps_of_that_many_passes_over_the_train_split(workspace):
    transformed = workspace.transformed("synth_binary")
    train_rows = len(transformed["rows"]["train"])
    assert inputs.count_records(transformed["files"]["train"]) == train_rows

    def job(**training):
        return trainer.TrainerJob(train_files=[transformed["files"]["train"]], eval_files=[], transform_output="",
                                  model_run_dir="", serving_model_dir="", train_steps=1000, eval_steps=10,
                                  custom_config={"training": training, "user_package": "synth_binary"})

    assert trainer.training_steps(job(), 64) == 1000                       # no epochs: train_steps decides
    assert trainer.training_steps(job(train_epochs=1), 64) == -(-train_rows // 64)
    assert trainer.training_steps(job(train_epochs=2.5), 32) == -(-int(2.5 * train_rows) // 32)


@pytest.mark.beam
def test_the_input_cache_is_used_only_when_the_decompressed_train_split_fits(workspace):
    from components.training.options import TrainingOptions

    pattern = workspace.transformed("synth_binary")["files"]["train"]
    fits, estimate = inputs.cache_fits(pattern, 1)
    gz_bytes = sum(tf.io.gfile.stat(f).length for f in inputs.expand_patterns(pattern))
    assert estimate == inputs.GZIP_RATIO_ESTIMATE * gz_bytes and fits == (estimate <= 2 ** 20)
    assert trainer.use_input_cache(pattern, TrainingOptions(input_cache_max_mb=estimate // 2 ** 20 + 1))
    assert not trainer.use_input_cache(pattern, TrainingOptions(input_cache=False))
    assert not trainer.use_input_cache(pattern, TrainingOptions(input_cache_max_mb=0))  # over the limit: no cache


def test_the_trainer_s_times_name_each_phase_and_the_first_epoch_apart_from_the_rest():
    times = trainer.TrainerTimes()
    times.seconds = {"model": 0.5, "fit": 12.0, "export": 1.5}
    times.epochs = [6.0, 1.0, 2.0]
    assert times.describe() == "model 0.5 s, fit 12.0 s (3 epoch(s): the first 6.0 s, then 1.50 s each), export 1.5 s"
