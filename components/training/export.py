"""What the Trainer exports into its Model artifact: one SavedModel, written once.

``Format-Serving/`` (TFX's serving model dir) has three signatures:

* ``serving_default`` takes serialized ``tf.Example`` with RAW features and returns
  ``{"outputs": the model's output}`` (the task's head: P(label) for binary, one probability per
  class for multi-class, the value for regression). It parses them with the raw feature spec and
  applies the tf.Transform graph, so serving and training transform features with the very same
  graph.
* ``transform_features`` returns the transformed features, label included: TFMA reads the label
  through it.
* ``serving_transformed`` takes the TRANSFORMED features (``<feature>_xf``, ``[batch, 1]`` each)
  and returns ``{"outputs": ...}``: the bare model, which the TFLite branch converts (tf.Transform's
  vocabulary ops are not TFLite builtins, and this signature does not reach them).

``Format-TransformedQAT/``, when quantization-aware training is on, holds the QAT-trained copy
with ``serving_transformed`` only.

The SavedModel's root is a plain ``tf.Module`` that tracks the model's variables and resources
and the tf.Transform graph, not the Keras objects, and its functions are traced without autograph
unless model.py asks for it (USE_AUTOGRAPH). Saving the Keras model instead serializes every
layer's call functions and autograph transpiles Keras' code: on the sample the two exports that
way took 20 s, this one about 1.5 s. Every reader calls the signatures (TF Serving, ``tfxp serve``,
TFMA, the InfraValidator, the TFLite converter); none loads a Keras model from it.
"""
from __future__ import annotations

import logging
import os
from typing import Dict

import tensorflow as tf

from components.core.user_code import UserCode
from components.training.inputs import to_model_inputs
from tfxp import contract

log = logging.getLogger(__name__)

QAT_MODEL_DIR = "Format-TransformedQAT"
SIGNATURE, TRANSFORM_SIGNATURE, TRANSFORMED_SIGNATURE = (contract.SIGNATURE, contract.TRANSFORM_SIGNATURE,
                                                         contract.TRANSFORMED_SIGNATURE)
OUTPUT_KEY = contract.OUTPUTS


def transformed_model_dir(model_uri: str, qat: bool = False) -> str:
    """The SavedModel of a Model artifact whose TRANSFORMED_SIGNATURE the TFLite branch converts."""
    if qat:
        return os.path.join(model_uri, QAT_MODEL_DIR)
    from tfx.utils import path_utils

    return path_utils.serving_model_path(model_uri)


def serving_raw_feature_spec(user: UserCode, tf_transform_output) -> Dict[str, tf.io.VarLenFeature]:
    """The raw feature spec without what describes the outcome: clients do not send it."""
    spec = dict(tf_transform_output.raw_feature_spec())
    for key in user.label_source_names:
        spec.pop(key, None)
    return spec


def _saved_root(model) -> tf.Module:
    """A tf.Module that owns what ``model``'s functions capture: its variables (not the optimizer's),
    and any other resource of its layers (e.g. a lookup layer's table)."""
    root = tf.Module()
    root.model_variables = list(model.variables)
    root.model_resources = [obj for obj in tf.train.TrackableView(model).descendants()
                            if isinstance(obj, tf.saved_model.experimental.TrackableResource)]
    return root


def _serve_transformed(model, autograph: bool):
    specs = {name: tf.TensorSpec([None, 1], tensor.dtype, name=name)
             for name, tensor in zip(model.input_names, model.inputs)}

    @tf.function(input_signature=[specs], autograph=autograph)
    def serve_transformed(features):
        return {OUTPUT_KEY: model(features)}

    return serve_transformed


def export_model(model, tf_transform_output, user: UserCode, export_dir: str, *, autograph: bool = False) -> None:
    """Saves the serving SavedModel (all three signatures) into ``export_dir``."""
    transform_layer = tf_transform_output.transform_features_layer()
    serving_spec = serving_raw_feature_spec(user, tf_transform_output)
    full_spec = tf_transform_output.raw_feature_spec()
    examples = tf.TensorSpec([None], tf.string, name=contract.EXAMPLES)

    @tf.function(input_signature=[examples], autograph=autograph)
    def serve_tf_examples(serialized):
        transformed = transform_layer(tf.io.parse_example(serialized, serving_spec))
        return {OUTPUT_KEY: model(to_model_inputs(user, transformed))}

    @tf.function(input_signature=[examples], autograph=autograph)
    def transform_features(serialized):
        return transform_layer(tf.io.parse_example(serialized, full_spec))

    root = _saved_root(model)
    # What the Keras layer itself tracks (tf.Transform 1.16): the loaded transform graph with its
    # tables, vocabulary assets and initializers. Tracking the layer would serialize it as Keras (~6 s).
    root.transform_graph = transform_layer._saved_model_loader_tracked_dict  # pylint: disable=protected-access
    tf.saved_model.save(root, export_dir, signatures={
        SIGNATURE: serve_tf_examples,
        TRANSFORM_SIGNATURE: transform_features,
        TRANSFORMED_SIGNATURE: _serve_transformed(model, autograph),
    })
    log.info("exported the model to %s (signatures %s, %s, %s)", export_dir, SIGNATURE, TRANSFORM_SIGNATURE,
             TRANSFORMED_SIGNATURE)


def export_transformed_model(model, export_dir: str, *, autograph: bool = False) -> None:
    """Saves a model with TRANSFORMED_SIGNATURE only (the quantization-aware copy, for the TFLite branch)."""
    tf.saved_model.save(_saved_root(model), export_dir,
                        signatures={TRANSFORMED_SIGNATURE: _serve_transformed(model, autograph)})
    log.info("exported the transformed-input model to %s", export_dir)
