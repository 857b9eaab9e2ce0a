"""User-editable pipeline code: features, preprocessing, model, trainer, custom components.

The project uses one Keras: tf_keras (Keras 2). tf.Transform 1.16 and
tensorflow-model-optimization need it, and TensorFlow 2.16 would otherwise hand
out Keras 3 as ``tf.keras``. The switch must be set before TensorFlow resolves
``tf.keras``; every code path (CLI, tests, TFX executors loading
``components.*`` by module path, Beam workers) imports this package first.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
