"""A model that trains, evaluates and loads but cannot answer in a model server is not pushed, and
`tfxp run` says why (e2e: a whole pipeline run).

The defect is a classic: the model reads a file, at prediction time, by a path relative to the
working directory of the job that trained it. Training and the Evaluator (in the pipeline's
process) find it; a model server runs elsewhere (here: `tfxp serve` in an empty directory) and
does not. Only the InfraValidator can catch it.
"""
import os
import textwrap

import pytest

from serving import predict
from tests.conftest import write_csv_slice
from tests.support.sample_run import tfxp_run, write_config

pytestmark = pytest.mark.e2e

NEEDED_FILE = "output_scale.txt"

BROKEN_PACKAGE = {
    "__init__.py": "",
    "features.py": "from components.features import *  # noqa: F401,F403  (the sample's features and task)\n",
    "preprocessing.py": "from components.preprocessing import preprocessing_fn  # noqa: F401\n",
    "model.py": textwrap.dedent(f'''
        """The sample's model, with an output scale read from a file relative to the working directory."""
        import tensorflow as tf
        import tf_keras as keras

        from components.model import USE_AUTOGRAPH, compile_model  # noqa: F401
        from components.model import build_model as build_sample_model


        class ScaledByALocalFile(keras.layers.Layer):
            def call(self, x):
                scale = tf.strings.to_number(tf.strings.strip(tf.io.read_file("{NEEDED_FILE}")))
                return x * scale


        def build_model(inputs, task, hp):
            sample = build_sample_model(inputs, task, hp)
            model = keras.Model(sample.inputs, ScaledByALocalFile()(sample.output))
            compile_model(model, task, hp.get("learning_rate"))
            return model
        '''),
}


def test_a_model_that_loads_but_cannot_answer_in_a_server_is_not_pushed_and_the_run_says_why(tmp_path):
    package = tmp_path / "code" / "serves_nowhere"
    package.mkdir(parents=True)
    for name, text in BROKEN_PACKAGE.items():
        (package / name).write_text(text)
    config_path = write_config(tmp_path, write_csv_slice(tmp_path / "slice.csv", 1000), name="serves_nowhere",
                               user_package="serves_nowhere", tflite={"enabled": False},
                               serving={"infra_validation": {"tries": 1}})
    (tmp_path / NEEDED_FILE).write_text("1.0\n")  # beside the pipeline's working directory only

    result = tfxp_run(config_path, pythonpath=str(tmp_path / "code"))

    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    executed = result.stdout.split("executed:")[1].splitlines()[0]
    assert "Trainer" in executed and "evaluator" in executed and "infra_validator" in executed
    assert predict.model_versions(str(tmp_path / "runs" / "serving_model" / "serves_nowhere")) == []
    why = next(line for line in result.stdout.splitlines() if line.startswith("No model has been pushed"))
    print(why)
    assert "the InfraValidator did not bless it: a model server could not serve it" in why
    assert "the server could not answer a request" in why and NEEDED_FILE in why
    assert "Evaluator" not in why  # the Evaluator blessed it
