"""User-editable pipeline code: features, preprocessing, model, trainer, custom components.

The project uses one Keras: tf_keras (Keras 2). tf.Transform 1.16 and
tensorflow-model-optimization need it, and TensorFlow 2.16 would otherwise hand
out Keras 3 as ``tf.keras``. The switch must be set before TensorFlow resolves
``tf.keras``; every code path (CLI, tests, TFX executors loading
``components.*`` by module path, Beam workers) imports this package first.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def __getattr__(name):
    # Custom TFX artifact types are imported by their type name on Kubeflow, which must be
    # "<module>.<Class>": expose them here, lazily, so importing `components` stays cheap.
    if name == "DataValidationVerdict":
        from components.anomalies_gate import DataValidationVerdict
        return DataValidationVerdict
    if name == "TFLiteModel":
        from components.tflite_converter import TFLiteModel
        return TFLiteModel
    raise AttributeError(f"module 'components' has no attribute {name!r}")
