"""What the Trainer exports into its Model artifact.

* ``Format-Serving/`` (TFX's serving model dir): ``serving_default`` takes serialized
  ``tf.Example`` with RAW features and returns ``{"outputs": the model's output}`` (the task's
  head: P(label) for binary, one probability per class for multi-class, the value for
  regression). It parses them with the raw feature spec and applies the tf.Transform graph, so
  serving and training transform features with the very same graph. ``transform_features``
  returns the transformed features, label included: TFMA reads the label through it.
* ``Format-Transformed/``: the bare Keras model over the TRANSFORMED features (what the TFLite
  branch converts: tf.Transform's vocabulary ops are not TFLite builtins), and
  ``Format-TransformedQAT/``, its quantization-aware-trained twin when enabled.
"""
from __future__ import annotations

import logging
import os
from typing import Dict

import tensorflow as tf

from components.core.user_code import UserCode
from components.training.inputs import to_model_inputs

log = logging.getLogger(__name__)

TRANSFORMED_MODEL_DIR = "Format-Transformed"
QAT_MODEL_DIR = "Format-TransformedQAT"
SIGNATURE = "serving_default"
OUTPUT_KEY = "outputs"


def transformed_model_dir(model_uri: str, qat: bool = False) -> str:
    return os.path.join(model_uri, QAT_MODEL_DIR if qat else TRANSFORMED_MODEL_DIR)


def serving_raw_feature_spec(user: UserCode, tf_transform_output) -> Dict[str, tf.io.VarLenFeature]:
    """The raw feature spec without what describes the outcome: clients do not send it."""
    spec = dict(tf_transform_output.raw_feature_spec())
    for key in user.label_source_names:
        spec.pop(key, None)
    return spec


def export_serving_model(model, tf_transform_output, user: UserCode, export_dir: str) -> None:
    """Saves ``model`` with the serving_default and transform_features signatures.

    Attaches the tf.Transform layer to ``model`` (so it is saved with it): call it last.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()  # tracked, so it is saved
    serving_spec = serving_raw_feature_spec(user, tf_transform_output)
    full_spec = tf_transform_output.raw_feature_spec()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(serialized):
        transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
        return {OUTPUT_KEY: model(to_model_inputs(user, transformed))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, full_spec))

    tf.saved_model.save(model, export_dir, signatures={
        SIGNATURE: serve_tf_examples,
        "transform_features": transform_features,
    })
    log.info("exported the serving model to %s", export_dir)


def export_transformed_model(model, export_dir: str) -> None:
    """Saves the bare model: serving_default takes the transformed features, [batch, 1] each."""
    specs = {name: tf.TensorSpec([None, 1], tensor.dtype, name=name)
             for name, tensor in zip(model.input_names, model.inputs)}

    @tf.function(input_signature=[specs])
    def serve_transformed(features):
        return {OUTPUT_KEY: model(features)}

    tf.saved_model.save(model, export_dir, signatures={SIGNATURE: serve_transformed})
