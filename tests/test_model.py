import numpy as np

from components import features as F
from components import model as model_lib


def _cardinalities():
    return {F.transformed_name(f.name): 7 for f in F.model_features() if f.kind != F.NUMERIC}


def _batch(n=16):
    rng = np.random.default_rng(0)
    batch = {}
    for f in F.model_features():
        name = F.transformed_name(f.name)
        if f.kind == F.NUMERIC:
            batch[name] = rng.normal(size=(n, 1)).astype("float32")
        else:
            batch[name] = rng.integers(0, 7, size=(n, 1)).astype("int64")
    return batch, rng.integers(0, 2, size=(n,)).astype("int64")


def test_model_has_one_input_per_model_feature():
    model = model_lib.build_model(_cardinalities())
    assert set(model.input_names) == {F.transformed_name(f.name) for f in F.model_features()}


def test_model_trains_a_step_and_outputs_probabilities():
    model = model_lib.build_model(_cardinalities())
    x, y = _batch()
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (16, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_to_model_inputs_shapes_rank_one_features_to_columns():
    import tensorflow as tf
    transformed = {F.transformed_name(f.name): tf.zeros([4], tf.int64) for f in F.model_features()}
    transformed[F.TRANSFORMED_LABEL_KEY] = tf.zeros([4], tf.int64)
    inputs = model_lib.to_model_inputs(transformed)
    assert F.TRANSFORMED_LABEL_KEY not in inputs
    assert all(tuple(v.shape) == (4, 1) for v in inputs.values())
    assert inputs["fare_xf"].dtype == tf.float32
