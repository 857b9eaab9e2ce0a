"""The sample's model.py (which the test datasets reuse) for each task: inputs, head, one training step."""
import numpy as np
import pytest
import tensorflow as tf
from keras_tuner import HyperParameters

from components import model as model_lib
from components.core.user_code import load_user_code
from components.training.inputs import ModelInput, to_model_inputs


def _inputs(user):
    return [ModelInput(f.transformed_name, "float32") if f.kind == "numeric" else
            ModelInput(f.transformed_name, "int64", 7) for f in user.model_features]


def _batch(user, n=16):
    rng = np.random.default_rng(0)
    batch = {spec.name: (rng.normal(size=(n, 1)).astype("float32") if spec.cardinality is None
                         else rng.integers(0, 7, size=(n, 1)).astype("int64")) for spec in _inputs(user)}
    units = user.task.output_units
    labels = rng.normal(size=n).astype("float32") if user.task.LABEL_DTYPE == "float32" else \
        rng.integers(0, max(2, units), size=n).astype("int64")
    return batch, labels


def test_the_model_has_one_input_per_model_feature_and_the_task_s_head(package):
    user = load_user_code(package)
    model = model_lib.build_model(_inputs(user), user.task, HyperParameters())
    assert set(model.input_names) == {f.transformed_name for f in user.model_features}
    assert model.output_shape == (None, user.task.output_units)
    assert type(model.loss).__name__ == type(user.task.loss()).__name__


@pytest.mark.training
def test_the_model_trains_a_step(package):
    user = load_user_code(package)
    model = model_lib.build_model(_inputs(user), user.task, HyperParameters())
    x, y = _batch(user)
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and set(logs) == {"loss", *user.task.metric_names}
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_to_model_inputs_shapes_rank_one_features_to_columns():
    user = load_user_code("synth_binary")
    transformed = {f.transformed_name: tf.zeros([4], tf.int64) for f in user.model_features}
    transformed[user.task.label_key] = tf.zeros([4], tf.int64)
    inputs = to_model_inputs(user, transformed)
    assert user.task.label_key not in inputs
    assert all(tuple(v.shape) == (4, 1) for v in inputs.values())
    assert inputs["income_xf"].dtype == tf.float32 and inputs["city_xf"].dtype == tf.int64
