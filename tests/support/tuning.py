"""User packages for the tuning tests: synth_binary's features and preprocessing (so the session workspace's
Transform output serves them), and a model.py of the test's own, as a data scientist would write it."""
from __future__ import annotations

import os
import sys
import textwrap

from components.core.user_code import load_user_code

# A small model for synth_binary's inputs; SEARCH_SPACE declares its hyperparameters (and may use them).
MODEL_TEMPLATE = '''
"""{doc}"""
import tensorflow as tf
import tf_keras as keras

USE_AUTOGRAPH = False


def build_model(inputs, task, {argument}):
{search_space}
    keras_inputs = {{s.name: keras.Input(shape=(1,), name=s.name, dtype=s.dtype) for s in inputs}}
    encoded = [keras.layers.Flatten()(keras.layers.Embedding(s.cardinality, 4)(keras_inputs[s.name]))
               if s.cardinality else keras_inputs[s.name] for s in inputs]
    x = keras.layers.Concatenate()(encoded)
    x = keras.layers.Dense(units, activation=activation, name="hidden")(x)
{after_hidden}
    model = keras.Model(keras_inputs, task.output_layer()(x))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=task.loss(), metrics=task.keras_metrics())
    return model
'''


def model_source(search_space: str, *, argument: str = "hp", after_hidden: str = "", doc: str = "A test model.",
                 extra: str = "") -> str:
    """model.py with ``search_space`` (lines that set learning_rate, units and activation) at the top of
    build_model, ``after_hidden`` (lines on ``x``) after its hidden layer and ``extra`` at module level."""
    return (MODEL_TEMPLATE.format(doc=doc, argument=argument,
                                  search_space=textwrap.indent(textwrap.dedent(search_space).strip(), "    "),
                                  after_hidden=textwrap.indent(textwrap.dedent(after_hidden).strip(), "    "))
            + textwrap.dedent(extra))


def write_package(parent, name: str, model: str) -> str:
    """A user package ``name`` under ``parent`` (on sys.path from now on): synth_binary's features and
    preprocessing, and ``model`` as model.py. Returns its folder."""
    package = os.path.join(str(parent), name)
    os.makedirs(package)
    files = {"__init__.py": "",
             "features.py": "from synth_binary.features import FEATURES, SLICE_FEATURES, TASK  # noqa: F401\n",
             "preprocessing.py": "from synth_binary.preprocessing import preprocessing_fn  # noqa: F401\n",
             "model.py": model}
    for file_name, text in files.items():
        with open(os.path.join(package, file_name), "w") as f:
            f.write(text)
    if str(parent) not in sys.path:
        sys.path.insert(0, str(parent))
    load_user_code.cache_clear()
    return package


def _inputs(transformed) -> dict:
    from tfx.types import standard_artifacts

    from components.custom.tuner import make_artifact

    return {"examples": [make_artifact(standard_artifacts.Examples, transformed["examples_uri"],
                                   split_names='["train", "eval"]')],
            "transform_graph": [make_artifact(standard_artifacts.TransformGraph, transformed["transform_output"])]}


def run_tuner(transformed, package: str, directory: str, tuning, training, *, steps_per_trial: int,
              eval_steps: int, objective_metric: str = "accuracy") -> dict:
    """Our Tuner's executor, as the pipeline configures it, on a Transform output: {output key: its folder}."""
    from components.custom.tuner import run_executor
    from components.training.tuning_options import tuner_custom_config
    from pipeline.pipeline import TUNER_FN
    from tests.support.marks import require

    require("training", "runs a search of training trials")
    return run_executor(transformed["examples_uri"], transformed["transform_output"], directory,
                        tuner_custom_config(tuning, training, package, objective_metric, "test"),
                        tuner_fn=TUNER_FN, train_steps=steps_per_trial, eval_steps=eval_steps)


def run_trainer(transformed, package: str, directory: str, best_hyperparameters: str, training, *,
                train_steps: int, eval_steps: int) -> dict:
    """TFX's Trainer executor with our run_fn and, as its ``hyperparameters`` input, the folder the Tuner wrote."""
    from tfx.components.trainer.executor import GenericExecutor
    from tfx.proto import trainer_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import json_utils, proto_utils

    from components.custom.tuner import make_artifact
    from components.training.options import trainer_custom_config
    from pipeline.pipeline import RUN_FN

    inputs = dict(_inputs(transformed),
                  hyperparameters=[make_artifact(standard_artifacts.HyperParameters, best_hyperparameters)])
    outputs = {"model": os.path.join(directory, "model"), "model_run": os.path.join(directory, "model_run")}
    output_dict = {"model": [make_artifact(standard_artifacts.Model, outputs["model"])],
                   "model_run": [make_artifact(standard_artifacts.ModelRun, outputs["model_run"])]}
    exec_properties = {
        "run_fn": RUN_FN,
        "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(num_steps=train_steps)),
        "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(num_steps=eval_steps)),
        "custom_config": json_utils.dumps(trainer_custom_config(training, package, 0, "test"))}
    context = GenericExecutor.Context(tmp_dir=os.path.join(directory, "tmp"), unique_id="2")
    GenericExecutor(context).Do(inputs, output_dict, exec_properties)
    return outputs

