"""Tuning without a search: the wiring (Tuner -> Trainer, or the latest best from MLMD), the Tuner's cache key,
the search space checked before any trial, and which values the Trainer builds its model with."""
import json

import pytest

from components.core.user_code import UserCodeError, load_user_code
from components.training import hyperparameters as hp_lib
from components.training.inputs import ModelInput
from components.training.tuning_options import TuningOptions
from pipeline import code_fingerprint
from pipeline.config import load_config
from pipeline.pipeline import TUNER_FN, create_pipeline
from tests.support.tuning import model_source, write_package
from tfxp import nodes

# Each line of a search space sets learning_rate, units and activation (tests/support/tuning.py).
PLAIN = model_source('''
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    units = hp.Int("units", 4, 16, default=8)
    activation = hp.Choice("activation", ["relu", "tanh"])
''')
NO_LEARNING_RATE = model_source('''
    units = hp.Int("units", 4, 16, default=8)
    learning_rate, activation = 0.01, "relu"
''')
LEGACY = model_source('''
    units, activation = 8, "relu"
''', argument="learning_rate=0.001")
UNDECLARED_GET = model_source('''
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, default=1e-3)
    units = hp.get("units")
    activation = "relu"
''')
NOTHING_TO_TUNE = model_source('''
    learning_rate = hp.Fixed("learning_rate", 1e-3)
    units, activation = 8, "relu"
''')


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    parent = tmp_path_factory.mktemp("packages")
    for name, model in [("hp_plain", PLAIN), ("hp_no_learning_rate", NO_LEARNING_RATE), ("hp_legacy", LEGACY),
                        ("hp_undeclared_get", UNDECLARED_GET), ("hp_nothing_to_tune", NOTHING_TO_TUNE)]:
        write_package(parent, name, model)
    return parent


def _model_inputs(package):
    return [ModelInput(f.transformed_name, "float32") if f.kind == "numeric" else
            ModelInput(f.transformed_name, "int64", 7) for f in load_user_code(package).model_features]


def _components(*overrides):
    return {c.id: c for c in create_pipeline(load_config(overrides=list(overrides))).components}


def _producer(component, key):
    channel = component.inputs[key]
    return channel.producer_component_id, channel.output_key


# -- the wiring ------------------------------------------------------------------------------------------------------

def test_tuning_is_off_by_default_and_the_trainer_takes_no_hyperparameters():
    components = _components()
    assert nodes.TUNER not in components and nodes.HYPERPARAMETERS_RESOLVER not in components
    assert "hyperparameters" not in components[nodes.TRAINER].inputs


def test_with_tuning_on_the_tuner_searches_transform_s_output_and_feeds_its_best_to_the_trainer():
    components = _components("tuning.enabled=true", "tuning.steps_per_trial=120")
    tuner = components[nodes.TUNER]
    assert {key: _producer(tuner, key)[0] for key in tuner.inputs} == {
        "examples": nodes.TRANSFORM, "transform_graph": nodes.TRANSFORM, "schema": nodes.SCHEMA_GEN}
    assert _producer(components[nodes.TRAINER], "hyperparameters") == (nodes.TUNER, "best_hyperparameters")
    assert tuner.exec_properties["tuner_fn"] == TUNER_FN
    assert json.loads(tuner.exec_properties["train_args"]) == {"num_steps": 120}
    assert json.loads(tuner.exec_properties["eval_args"]) == {"num_steps": load_config().training.eval_steps}
    assert nodes.HYPERPARAMETERS_RESOLVER not in components


def test_reuse_best_with_tuning_off_hands_the_trainer_the_latest_best_hyperparameters():
    from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy

    components = _components("tuning.reuse_best=true")
    resolver = components[nodes.HYPERPARAMETERS_RESOLVER]
    assert resolver.exec_properties["resolver_class"] is LatestArtifactStrategy
    assert resolver.inputs["hyperparameters"].type_name == "HyperParameters"
    assert _producer(components[nodes.TRAINER], "hyperparameters") == (nodes.HYPERPARAMETERS_RESOLVER,
                                                                       "hyperparameters")
    assert nodes.TUNER not in components
    # With tuning on, the Tuner's own best: reuse_best does not apply.
    both = _components("tuning.reuse_best=true", "tuning.enabled=true")
    assert nodes.HYPERPARAMETERS_RESOLVER not in both and _producer(both[nodes.TRAINER], "hyperparameters")[0] == \
        nodes.TUNER


def _tuner_config(*overrides):
    return _components("tuning.enabled=true", *overrides)[nodes.TUNER].exec_properties["custom_config"]


def test_the_search_s_objective_is_the_evaluation_s_gate_metric():
    assert json.loads(_tuner_config())["objective_metric"] == "accuracy"
    assert json.loads(_tuner_config("evaluation.gate_metric=auc"))["objective_metric"] == "auc"


def test_the_tuner_s_cache_key_changes_with_what_the_search_uses_only():
    base = _tuner_config()
    for unrelated in ("training.train_steps=7", "training.num_workers=3", "tuning.reuse_best=true",
                      "evaluation.threshold=0.5"):
        assert _tuner_config(unrelated) == base, unrelated
    for used in ("tuning.max_trials=3", "tuning.steps_per_trial=50", "training.batch_size=16",
                 "training.learning_rate=0.01", "tuning.algorithm=hyperband"):
        assert _tuner_config(used) != base, used


def test_an_edit_to_model_py_s_search_space_changes_the_tuner_s_fingerprint_and_not_transform_s(tmp_path):
    directory = write_package(tmp_path, "hp_edited", PLAIN)
    tuner, transform = code_fingerprint.tuner_fingerprint("hp_edited"), code_fingerprint.transform_fingerprint(
        "hp_edited")
    assert code_fingerprint.tuner_fingerprint("hp_edited") == tuner  # nothing changed: the Tuner is cached
    with open(f"{directory}/model.py", "w") as f:
        f.write(PLAIN.replace('hp.Int("units", 4, 16', 'hp.Int("units", 4, 64'))
    assert code_fingerprint.tuner_fingerprint("hp_edited") != tuner
    assert code_fingerprint.transform_fingerprint("hp_edited") == transform


# -- the values a model is built with ----------------------------------------------------------------------------

def _hidden_units(model):
    return model.get_layer("hidden").units


def test_with_nothing_given_the_model_gets_model_py_s_defaults(packages):
    model, values = hp_lib.build_for_training(load_user_code("hp_plain"), _model_inputs("hp_plain"))
    assert values == {"learning_rate": 1e-3, "units": 8, "activation": "relu"}
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-3) and _hidden_units(model) == 8


def test_the_sample_s_defaults_are_its_learning_rate_and_hidden_units():
    model, values = hp_lib.build_for_training(load_user_code("synth_binary"), _model_inputs("synth_binary"))
    assert values == {"learning_rate": 1e-3, "width": 1.0}
    assert [model.get_layer(f"hidden_{i}").units for i in (0, 1)] == [64, 32]


def test_given_values_win_over_the_defaults_and_training_learning_rate_over_both(packages):
    user, inputs = load_user_code("hp_plain"), _model_inputs("hp_plain")
    given = {"learning_rate": 0.005, "units": 12, "activation": "tanh", "tuner/epochs": 3}
    model, values = hp_lib.build_for_training(user, inputs, given)
    assert values == {"learning_rate": 0.005, "units": 12, "activation": "tanh"}  # KerasTuner's tuner/ keys left out
    assert _hidden_units(model) == 12 and float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.005)
    model, values = hp_lib.build_for_training(user, inputs, given, learning_rate=0.02)
    assert values["learning_rate"] == 0.02 and float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.02)


def test_a_given_name_that_build_model_does_not_declare_is_one_line_naming_model_py(packages):
    user = load_user_code("hp_plain")
    with pytest.raises(UserCodeError, match=r"hp_plain/model.py: the hyperparameters given to the Trainer name "
                                            r"'dropout', which build_model does not declare \(it declares "
                                            r"activation, learning_rate, units\)"):
        hp_lib.build_for_training(user, _model_inputs("hp_plain"), {"dropout": 0.1, "units": 8})


def test_training_learning_rate_for_a_model_without_that_hyperparameter_is_one_line(packages):
    with pytest.raises(UserCodeError, match=r"hp_no_learning_rate/model.py: training.learning_rate is set \(0.01\) "
                                            r"but build_model declares no 'learning_rate' hyperparameter"):
        hp_lib.build_for_training(load_user_code("hp_no_learning_rate"), _model_inputs("hp_no_learning_rate"),
                                  learning_rate=0.01)


def test_a_build_model_that_takes_learning_rate_still_gets_training_learning_rate(packages):
    user, inputs = load_user_code("hp_legacy"), _model_inputs("hp_legacy")
    assert hp_lib.build_for_training(user, inputs)[1] == {"learning_rate": 0.001}
    model, values = hp_lib.build_for_training(user, inputs, learning_rate=0.02)
    assert values == {"learning_rate": 0.02} and float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.02)
    with pytest.raises(UserCodeError, match="hp_legacy/model.py: the Trainer was given hyperparameters "
                                            r"\(units=8\) but build_model takes no hp argument"):
        hp_lib.build_for_training(user, inputs, {"units": 8})


def test_values_that_do_not_build_are_one_line_naming_model_py_s_line_and_the_values(packages):
    with pytest.raises(UserCodeError, match=r"hp_plain/model.py, line \d+: build_model fails with "
                                            r"activation=sigmoidal, learning_rate=0.001, units=8 \(the hyperparameters"
                                            r" given to the Trainer\): ValueError: Unknown activation function "
                                            r"'sigmoidal'"):
        hp_lib.build_for_training(load_user_code("hp_plain"), _model_inputs("hp_plain"), {"activation": "sigmoidal"})


# -- the search space, checked before any trial --------------------------------------------------------------------

def test_the_objective_is_the_gate_metric_in_its_direction():
    from components.training.tuning import objective_for

    binary = objective_for(load_user_code("synth_binary"), "accuracy")
    regression = objective_for(load_user_code("synth_regression"), "mae")
    assert (binary.name, binary.direction, regression.name, regression.direction) == (
        "val_accuracy", "max", "val_mae", "min")


@pytest.mark.parametrize("package, message", [
    ("hp_legacy", r"hp_legacy/model.py: build_model\(inputs, task, learning_rate\) declares no search space: "
                  r"tuning needs build_model\(inputs, task, hp\)"),
    ("hp_undeclared_get", r"hp_undeclared_get/model.py, line \d+: build_model fails with learning_rate=0.001 "
                          r"\(model.py's defaults\): KeyError: 'units does not exist.'"),
    ("hp_nothing_to_tune", r"hp_nothing_to_tune/model.py: build_model declares nothing to tune"),
])
def test_a_search_space_that_cannot_work_fails_before_any_trial_in_one_line(packages, package, message):
    from components.training.tuning import check_search_space

    with pytest.raises(UserCodeError, match=message):
        check_search_space(load_user_code(package), _model_inputs(package), None)


def test_training_learning_rate_stays_fixed_in_the_search(packages):
    from components.training.tuning import check_search_space

    assert check_search_space(load_user_code("hp_plain"), _model_inputs("hp_plain"), None) is None
    fixed = check_search_space(load_user_code("hp_plain"), _model_inputs("hp_plain"), 0.02)
    assert fixed.values == {"learning_rate": 0.02} and type(fixed.space[0]).__name__ == "Fixed"


def test_reuse_best_resolves_the_latest_best_hyperparameters_of_the_pipeline_from_mlmd(tmp_path):
    """TFX's own orchestration (the local runner's launches) of the resolver pipeline.py wires, in front of a
    stand-in for the Trainer: nothing before any tuning, then the latest of two Tuner runs' bests."""
    from tfx.orchestration import metadata
    from tfx.orchestration.pipeline import Pipeline

    from pipeline import pipeline as pipeline_lib
    from pipeline.parallel_runner import ParallelLocalDagRunner
    from tests.support.tuning_components import BestHyperparametersWriter, HyperparametersReader

    connection = metadata.sqlite_metadata_connection_config(str(tmp_path / "metadata.db"))
    record = str(tmp_path / "handed.json")

    def run(*components):
        ParallelLocalDagRunner(2).run(Pipeline(pipeline_name="tuned", pipeline_root=str(tmp_path / "root"),
                                               components=list(components), enable_cache=False,
                                               metadata_connection_config=connection))

    def trainer_run():
        [resolver], channel = pipeline_lib._tuning(load_config(overrides=["tuning.reuse_best=true"]), None, None)
        run(resolver, HyperparametersReader(record=record, hyperparameters=channel))
        with open(record) as f:
            return json.load(f)

    assert trainer_run() is None  # no tuning yet: model.py's defaults
    for learning_rate in (0.01, 0.02):
        run(BestHyperparametersWriter(learning_rate=learning_rate).with_id(nodes.TUNER))
    assert trainer_run() == {"learning_rate": 0.02}


def test_a_trial_scores_its_best_epoch_and_a_model_that_logs_no_objective_stops_the_search(packages):
    import keras_tuner as kt

    from components.training.tuning import FatalSearchError, best_epoch_metrics

    user, accuracy = load_user_code("hp_plain"), kt.Objective("val_accuracy", "max")
    history = {"loss": [0.7, 0.5, 0.6], "val_accuracy": [0.6, float("nan"), 0.8]}
    assert best_epoch_metrics(history, accuracy, user) == {"loss": 0.6, "val_accuracy": 0.8}
    assert best_epoch_metrics({"val_mae": [3.0, 2.0, 2.5]}, kt.Objective("val_mae", "min"), user) == {"val_mae": 2.0}
    with pytest.raises(FatalSearchError, match=r"hp_plain/model.py: the model logs no 'val_accuracy' \(the Tuner's "
                                               r"objective.*it logs loss, val_auc\): compile it with "
                                               r"metrics=task.keras_metrics\(\)"):
        best_epoch_metrics({"loss": [0.7], "val_auc": [0.8]}, accuracy, user)


def test_a_failed_trial_is_said_in_its_last_traceback_line_or_as_a_diverged_score():
    import keras_tuner as kt
    from keras_tuner.engine.trial import Trial

    from components.custom.tuner import failure_line

    hp = kt.HyperParameters()
    hp.values.update({"learning_rate": 0.5, "tuner/epochs": 2})
    failed = Trial(hp, trial_id="3", status="FAILED")
    failed.message = ("Traceback (most recent call last):\n  ...\nValueError: x\n\nThe above exception ...\n"
                      "components.training.tuning.TrialFailed: /p/model.py, line 9: training with learning_rate=0.5 "
                      "failed: ValueError: x\n")
    assert failure_line(failed, "/p/model.py", "val_accuracy") == (
        "/p/model.py, line 9: training with learning_rate=0.5 failed: ValueError: x")
    failed.message = None  # KerasTuner fails a trial whose score is NaN without an error
    assert failure_line(failed, "/p/model.py", "val_accuracy") == (
        "/p/model.py: training with learning_rate=0.5 gave no val_accuracy (NaN: it diverged)")


def test_each_distributed_process_gets_kerastuner_s_variables_for_its_role():
    from components.custom.tuner_processes import role_environment, worker_names

    assert worker_names(2) == ["tuner0", "tuner1"]
    env = role_environment({"PATH": "/bin"}, "tuner1", 5123)
    assert env == {"PATH": "/bin", "KERASTUNER_TUNER_ID": "tuner1", "KERASTUNER_ORACLE_IP": "127.0.0.1",
                   "KERASTUNER_ORACLE_PORT": "5123"}


def test_a_tuning_worker_that_dies_fails_the_search_in_one_line_naming_it_and_its_log_s_last_line(tmp_path):
    import subprocess
    import sys

    from components.custom import tuner_processes
    from components.training import launcher

    scripts = {"chief": "import time; time.sleep(60)", "tuner0": "import time; time.sleep(60)",
               "tuner1": "print('training...', flush=True); raise SystemExit('ValueError: this trial cannot train')"}
    processes, logs = {}, {}
    try:
        for name, script in scripts.items():
            logs[name] = str(tmp_path / f"{name}.log")
            with open(logs[name], "w") as log_file:
                processes[name] = subprocess.Popen([sys.executable, "-c", script], stdout=log_file,
                                                   stderr=subprocess.STDOUT)
        with pytest.raises(launcher.WorkerFailedError) as raised:
            tuner_processes.watch(processes, logs, "gs://b/tuner_results/workers", timeout=30)
    finally:
        launcher.stop_processes(list(processes.values()))
    assert str(raised.value) == (f"tuning worker tuner1 (pid {processes['tuner1'].pid}) exited with code 1; stopped "
                                 f"the others. Its log (gs://b/tuner_results/workers/tuner1.log) ends: "
                                 f"ValueError: this trial cannot train")
    assert all(p.poll() is not None for p in processes.values())


def test_tuning_workers_below_one_is_one_line_naming_the_key():
    with pytest.raises(ValueError, match=r"^tuning.workers must be at least 1, got 0$"):
        TuningOptions(workers=0).check()
