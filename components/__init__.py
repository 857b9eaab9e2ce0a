"""The data scientist's files, and the platform that runs them.

Yours (edit these for your data):
    features.py       the feature list, the label and the task (what to predict)
    preprocessing.py  preprocessing_fn: raw features -> model inputs and the label (tf.Transform)
    model.py          build_model: the Keras model, and its hyperparameters (the Tuner's search space)
Platform (subpackages; you should not need to edit them):
    core/      the vocabulary your files use: Feature, tasks, transforms
    training/  the Trainer's run_fn: input pipeline, strategies, export, local worker processes
    custom/    custom TFX components: validation gate, baseline, TFLite converter and evaluator

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
    # "<module>.<Class>" with one dot: expose them here, lazily, so importing `components` stays cheap.
    if name == "DataValidationVerdict":
        from components.custom.anomalies_gate import DataValidationVerdict
        return DataValidationVerdict
    if name == "TFLiteModel":
        from components.custom.tflite_converter import TFLiteModel
        return TFLiteModel
    if name == "ScoredRows":
        from components.custom.predictions_csv import ScoredRows
        return ScoredRows
    raise AttributeError(f"module 'components' has no attribute {name!r}")
