"""YOURS: the Keras model (tf_keras, see components/__init__.py).

build_model gets one entry per model input (the transformed features: a float32 value for
numeric features, an int64 id with its number of distinct ids for the others), the TASK
from features.py, whose default head (sigmoid, softmax or linear) and loss it uses, and ``hp``:
KerasTuner's HyperParameters. Each ``hp.Float``/``hp.Int``/``hp.Choice`` below declares one
hyperparameter with its range (what the Tuner searches, with `tuning.enabled: true`) and returns
its value: the default with tuning off, the Tuner's best when it ran (docs/tuning.md). Change the
architecture, the head, the loss or the search space here; the trainer, the serving signature and
the input pipeline do not need to change.
"""
from typing import Sequence

import tf_keras as keras

HIDDEN_UNITS = (64, 32)

# Autograph transpiles every Keras function the train step touches (~600 of them)
# in pure Python: about 20 s per training process on these 2-core machines, versus
# about 1 s with it off. The model has no Python control flow on tensor values, so
# the trainer skips it. Set True if you add a layer that needs it (`if tensor > 0:`).
USE_AUTOGRAPH = False


def embedding_dim(cardinality: int) -> int:
    return max(2, min(8, int(round(cardinality ** 0.25 * 2))))


def build_model(inputs: Sequence, task, hp) -> keras.Model:
    """``inputs``: ModelInput(name, dtype, cardinality) per model input. Called inside the strategy's scope."""
    # The search space: each line a hyperparameter, its range and its value with tuning off.
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    width = hp.Choice("width", [0.5, 1.0, 2.0], default=1.0)  # the hidden layers' units: HIDDEN_UNITS x width
    keras_inputs, encoded = {}, []
    for spec in inputs:
        keras_inputs[spec.name] = keras.Input(shape=(1,), name=spec.name, dtype=spec.dtype)
        if spec.cardinality is None:  # a number
            encoded.append(keras_inputs[spec.name])
        else:  # an id: a small embedding
            embedded = keras.layers.Embedding(spec.cardinality, embedding_dim(spec.cardinality),
                                              name=f"{spec.name}_embedding")(keras_inputs[spec.name])
            encoded.append(keras.layers.Flatten(name=f"{spec.name}_flat")(embedded))
    x = keras.layers.Concatenate(name="features")(encoded) if len(encoded) > 1 else encoded[0]
    for i, units in enumerate(HIDDEN_UNITS):
        x = keras.layers.Dense(max(1, round(units * width)), activation="relu", name=f"hidden_{i}")(x)
    outputs = task.output_layer()(x)  # the task's default head
    model = keras.Model(inputs=keras_inputs, outputs=outputs)
    compile_model(model, task, learning_rate)
    return model


def compile_model(model: keras.Model, task, learning_rate: float) -> None:
    """The optimizer, the task's loss and its metrics (the quantization-aware copy reuses them)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=task.loss(), metrics=task.keras_metrics())

