"""The Keras model (tf_keras, see components/__init__.py).

Inputs are the transformed features, one ``[batch, 1]`` input per model feature:
floats for numeric features, integer ids for the rest (each id feature gets a small
embedding). Edit ``build_model`` to change the architecture; the trainer, the
serving signature and the input pipeline do not need to change.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf
import tf_keras as keras

from components import features as F
from components.preprocessing import NUM_OOV_BUCKETS

HIDDEN_UNITS = (64, 32)

# Autograph transpiles every Keras function the train step touches (~600 of them)
# in pure Python: about 20 s per training process on these 2-core machines, versus
# about 1 s with it off. The model has no Python control flow on tensor values, so
# build_model skips it. Set True if you add a layer that needs it (`if tensor > 0:`).
USE_AUTOGRAPH = False


def feature_cardinalities(tf_transform_output) -> Dict[str, int]:
    """Number of distinct ids for each id-valued transformed feature."""
    sizes = {}
    for feature in F.model_features():
        name = F.transformed_name(feature.name)
        if feature.kind == F.VOCABULARY:
            sizes[name] = tf_transform_output.vocabulary_size_by_name(feature.name) + NUM_OOV_BUCKETS
        elif feature.kind == F.BUCKETIZED:
            sizes[name] = feature.num_buckets + 1
        elif feature.kind == F.CATEGORICAL:
            sizes[name] = feature.num_buckets + 1  # + the missing/out-of-range id
    return sizes


def to_model_inputs(transformed: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Selects the model's inputs from transformed features and shapes them [batch, 1]."""
    inputs = {}
    for feature in F.model_features():
        name = F.transformed_name(feature.name)
        value = transformed[name]
        if value.shape.rank == 1:
            value = tf.expand_dims(value, -1)
        inputs[name] = tf.cast(value, tf.float32) if feature.kind == F.NUMERIC else value
    return inputs


def embedding_dim(cardinality: int) -> int:
    return max(2, min(8, int(round(cardinality ** 0.25 * 2))))


def build_model(cardinalities: Dict[str, int], learning_rate: float = 0.001) -> keras.Model:
    """Builds and compiles the model. Call inside ``strategy.scope()``."""
    inputs, encoded = {}, []
    for feature in F.model_features():
        name = F.transformed_name(feature.name)
        if feature.kind == F.NUMERIC:
            inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.float32)
            encoded.append(inputs[name])
        else:
            inputs[name] = keras.Input(shape=(1,), name=name, dtype=tf.int64)
            size = cardinalities[name]
            embedded = keras.layers.Embedding(size, embedding_dim(size), name=f"{name}_embedding")(inputs[name])
            encoded.append(keras.layers.Flatten(name=f"{name}_flat")(embedded))
    x = keras.layers.Concatenate(name="features")(encoded)
    for i, units in enumerate(HIDDEN_UNITS):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(x)
    output = keras.layers.Dense(1, activation="sigmoid", name="big_tipper_probability")(x)
    model = keras.Model(inputs=inputs, outputs=output)
    compile_model(model, learning_rate)
    return model


def compile_model(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
    if not USE_AUTOGRAPH:
        skip_autograph(model)


def skip_autograph(model: keras.Model) -> None:
    """Traces the model's step functions without autograph (see USE_AUTOGRAPH)."""
    for name in ("train_step", "test_step", "predict_step"):
        setattr(model, name, tf.autograph.experimental.do_not_convert(getattr(model, name)))
