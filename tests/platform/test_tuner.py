"""The Tuner for real: our executor runs tuner_fn's search on synth_binary's Transform output, with a search
space where one learning rate clearly wins and some values do not build; TFX's Trainer executor then trains
with the best hyperparameters it wrote. Small trials (a few dozen steps of 32 examples)."""
import json
import os

import pytest

from components.core.user_code import UserCodeError
from components.custom.tuner import TRIALS_FILE, read_trials
from components.training.options import TrainingOptions
from components.training.tuning_options import TuningOptions
from tests.support.marks import uses
from tests.support.tuning import model_source, run_trainer, run_tuner, write_package

# A learning rate that learns nothing in 60 steps, one that learns; an activation with a typo.
WINNER = model_source('''
    learning_rate = hp.Choice("learning_rate", [1e-6, 3e-2])
    activation = hp.Choice("activation", ["relu", "relu_typo"])
    units = 8
''')
WINNING_RATE = 3e-2
# Builds for any values; fails in the first training step.
FAILS_IN_TRAINING = model_source('''
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    activation, units = "relu", 4
''', after_hidden="x = FailsInTraining()(x)", extra='''

class FailsInTraining(keras.layers.Layer):
    def call(self, x, training=None):
        if training:
            raise ValueError("this layer cannot train")
        return x
''')
HYPERBAND = model_source('''
    learning_rate = hp.Choice("learning_rate", [1e-3, 3e-2])
    units = hp.Choice("units", [4, 8])
    activation = "relu"
''')
TRAINING = TrainingOptions(batch_size=32)
STEPS, EVAL_STEPS = 60, 10  # 10 epochs of 6 steps, each validated on the whole eval split (~300 rows)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    parent = tmp_path_factory.mktemp("packages")
    for name, model in [("tune_winner", WINNER), ("tune_failing", FAILS_IN_TRAINING), ("tune_hyperband", HYPERBAND)]:
        write_package(parent, name, model)
    return str(parent)


@pytest.fixture(scope="module")
@uses("beam", "training")
def searched(workspace, packages, tmp_path_factory):
    """A Bayesian search over the four combinations (its first trials are random, none drawn twice)."""
    directory = str(tmp_path_factory.mktemp("tuner"))
    options = TuningOptions(enabled=True, algorithm="bayesian", max_trials=4, seed=1)
    return run_tuner(workspace.transformed("synth_binary"), "tune_winner", directory, options, TRAINING,
                     steps_per_trial=STEPS, eval_steps=EVAL_STEPS)


def _best(searched):
    with open(os.path.join(searched["best_hyperparameters"], "best_hyperparameters.txt")) as f:
        return json.load(f)["values"]


def test_the_tuner_picks_the_learning_rate_that_clearly_wins(searched):
    assert _best(searched) == {"learning_rate": WINNING_RATE, "activation": "relu"}


def test_a_trial_whose_values_do_not_build_fails_alone_in_one_line_naming_model_py(searched, packages):
    trials = read_trials(searched["tuner_results"])
    assert trials["objective"] == {"name": "val_accuracy", "direction": "max"}
    by_status = {}
    for trial in trials["trials"]:
        by_status.setdefault(trial["status"], []).append(trial)
    assert len(by_status["FAILED"]) == 2 and len(by_status["COMPLETED"]) == 2
    model_file = os.path.join(packages, "tune_winner", "model.py")
    for trial in by_status["FAILED"]:
        assert trial["hyperparameters"]["activation"] == "relu_typo" and trial["score"] is None
        assert trial["error"].startswith(f"{model_file}, line ")
        assert "build_model fails with" in trial["error"] and "activation=relu_typo" in trial["error"]
        assert "\n" not in trial["error"]
    scores = {t["hyperparameters"]["learning_rate"]: t["score"] for t in by_status["COMPLETED"]}
    assert scores[WINNING_RATE] > scores[1e-6] + 0.1
    best = next(t for t in trials["trials"] if t["trial_id"] == trials["best_trial_id"])
    assert best["hyperparameters"]["learning_rate"] == WINNING_RATE and best["seconds"] > 0
    assert trials["search_seconds"] >= sum(t["seconds"] for t in trials["trials"])
    # TFX's own record beside ours: the completed trials.
    with open(os.path.join(searched["tuner_results"], "tuner_results.json")) as f:
        assert len(json.load(f)) == 2


def test_the_trainer_given_the_best_hyperparameters_builds_its_model_with_them(workspace, searched, tmp_path):
    import tensorflow as tf

    trained = run_trainer(workspace.transformed("synth_binary"), "tune_winner", str(tmp_path),
                          searched["best_hyperparameters"], TRAINING, train_steps=6, eval_steps=2)
    with open(os.path.join(trained["model_run"], "hyperparameters.json")) as f:
        record = json.load(f)
    assert record["given"] == {"learning_rate": WINNING_RATE, "activation": "relu"}
    assert record["values"] == record["given"]
    assert record["optimizer_learning_rate"] == pytest.approx(WINNING_RATE)
    assert tf.saved_model.load(os.path.join(trained["model"], "Format-Serving")).signatures["serving_default"]


@pytest.mark.beam
@pytest.mark.training
def test_when_every_trial_fails_the_tuner_fails_in_one_line_and_writes_no_best(workspace, packages, tmp_path):
    options = TuningOptions(enabled=True, algorithm="random", max_trials=3, max_consecutive_failed_trials=2, seed=0)
    with pytest.raises(UserCodeError) as raised:
        run_tuner(workspace.transformed("synth_binary"), "tune_failing", str(tmp_path), options, TRAINING,
                  steps_per_trial=6, eval_steps=2)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("tuning: all 2 trial(s) failed; the search stops after 2 in a row "
                              "(tuning.max_consecutive_failed_trials); trial 0: ")
    model_file = os.path.join(packages, "tune_failing", "model.py")
    assert f"{model_file}, line " in message and "training with learning_rate=" in message
    assert message.endswith("failed: ValueError: this layer cannot train (in layer 'fails_in_training')")
    assert not os.listdir(tmp_path / "best_hyperparameters") and not os.path.exists(
        tmp_path / "tuner_results" / TRIALS_FILE)


@pytest.mark.beam
@pytest.mark.training
def test_hyperband_continues_a_promoted_trial_from_its_best_epoch_s_weights(workspace, packages, tmp_path):
    """3 steps per trial: 3 epochs at most; Hyperband's first bracket runs 3 one-epoch trials, then continues
    the best for 2 more epochs from its checkpoint (tf_keras weights in TensorFlow's format)."""
    options = TuningOptions(enabled=True, algorithm="hyperband", max_trials=4, seed=0)
    outputs = run_tuner(workspace.transformed("synth_binary"), "tune_hyperband", str(tmp_path), options, TRAINING,
                        steps_per_trial=3, eval_steps=2)
    trials = read_trials(outputs["tuner_results"])["trials"]
    assert [t["status"] for t in trials] == ["COMPLETED"] * 4
    promoted = [t for t in trials if t["hyperband"]["initial_epoch"] > 0]
    assert len(promoted) == 1 and promoted[0]["hyperband"]["epochs"] == 3
    assert promoted[0]["hyperband"]["trial_id"] in {t["trial_id"] for t in trials}


@pytest.mark.beam
@pytest.mark.training
def test_two_workers_share_one_oracle_and_together_finish_the_planned_trials(workspace, packages, tmp_path):
    """KerasTuner's distributed mode: a chief oracle over gRPC on loopback, two worker processes."""
    options = TuningOptions(enabled=True, algorithm="random", max_trials=4, seed=0, workers=2)
    outputs = run_tuner(workspace.transformed("synth_binary"), "tune_hyperband", str(tmp_path), options, TRAINING,
                        steps_per_trial=30, eval_steps=2)
    record = read_trials(outputs["tuner_results"])
    trials = record["trials"]
    assert record["workers"] == 2 and len(trials) == 4
    assert len({t["trial_id"] for t in trials}) == 4 and {t["status"] for t in trials} == {"COMPLETED"}
    assert {t["worker"] for t in trials} == {"tuner0", "tuner1"}  # each worker ran at least one trial
    assert all(t["seconds"] > 0 for t in trials)
    best = next(t for t in trials if t["trial_id"] == record["best_trial_id"])
    assert best["score"] == max(t["score"] for t in trials)
    assert os.listdir(outputs["best_hyperparameters"]) == ["best_hyperparameters.txt"]
    assert _best(outputs) == best["hyperparameters"]
    logs = sorted(os.listdir(os.path.join(outputs["tuner_results"], "workers")))
    assert logs == ["chief.log", "tuner0.log", "tuner1.log"]
