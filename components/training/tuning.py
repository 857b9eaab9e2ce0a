"""TFX Tuner module: ``tuner_fn`` is the entry point the Tuner calls
(``Tuner(tuner_fn="components.training.tuning.tuner_fn")``); the data scientist writes no tuner code.

It builds what the Trainer builds (the input pipeline, the strategy, the user's model through
hyperparameters.py) and a KerasTuner tuner over the search space model.py declares, whose objective is the
task's gate metric on the eval split, in its direction (``val_accuracy``, max; ``val_mae``, min). TFX's
executor (components/custom/tuner.py) runs its search and writes the best hyperparameters.

KerasTuner 1.4 takes its Keras from ``import keras``: with Keras 3 installed that is Keras 3, whatever
TF_USE_LEGACY_KERAS says, and its tuners refuse a tf_keras model (``isinstance(model, keras.Model)``) and
pass Keras 3 callbacks to ``fit``, which tf_keras cannot call. ``TfKerasTuner`` keeps KerasTuner's oracles,
search loop and bookkeeping and replaces the two places that touch Keras: building a trial's model (a tf_keras
model, tf_keras's session cleared) and running it (tf_keras callbacks; the metrics of the best epoch returned
as a dict, which KerasTuner takes from any Keras).

A trial that fails (e.g. a model that does not build or train with some values) fails alone, as one line
naming model.py's line and the trial's values; before any trial, model.py is built once with its defaults, so
a search space that cannot work (an undeclared ``hp.get``, a model that does not compile) fails at once.
"""
from __future__ import annotations

import gc
import logging
import os
import time
from typing import Dict, List, Optional

import keras_tuner as kt
from keras_tuner.src.distribute import utils as dist_utils
import numpy as np
from keras_tuner.engine.hyperparameters import Fixed
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.tuner.component import TunerFnResult

from components.core.user_code import UserCode, UserCodeError, load_user_code
from components.training import hyperparameters as hp_lib
from components.training import inputs, strategy as strategy_lib
from components.training.trainer import apply_autograph_choice, epoch_plan, use_input_cache
from components.training.tuning_options import TunerJobConfig, TuningOptions

log = logging.getLogger(__name__)

# KerasTuner's project folder inside the Tuner's working directory (its oracle, trials and checkpoints).
PROJECT_NAME = "search"
HYPERBAND_FACTOR = 3


class TrialFailed(kt.errors.FailedTrialError):
    """One trial's failure, as one line (KerasTuner marks the trial FAILED and goes on with the next)."""


class FatalSearchError(UserCodeError, kt.errors.FatalError):
    """A mistake every trial would make: KerasTuner stops the search, and the Tuner fails with this line."""


def objective_for(user: UserCode, metric_name: str) -> kt.Objective:
    """The task's metric on the eval split, in its direction: what the Evaluator gates on."""
    metric = user.task.metric(metric_name)
    return kt.Objective(f"val_{metric.name}", "max" if metric.higher_is_better else "min")


def best_epoch_metrics(history: Dict[str, List[float]], objective: kt.Objective, user: UserCode) -> Dict[str, float]:
    """The metrics of the epoch with the best objective (a NaN objective, when every epoch's is NaN)."""
    values = history.get(objective.name)
    if not values:
        logged = ", ".join(history) or "nothing"
        raise FatalSearchError(f"{user.file('model')}: the model logs no {objective.name!r} (the Tuner's objective, "
                               f"the evaluation's gate metric on the eval split; it logs {logged}): compile it with "
                               f"metrics=task.keras_metrics()")
    scores = np.asarray(values, dtype=float)
    if np.isnan(scores).all():
        best = len(scores) - 1
    else:
        best = int(np.nanargmax(scores) if objective.direction == "max" else np.nanargmin(scores))
    return {name: float(series[best]) for name, series in history.items() if len(series) > best}


class UserHyperModel(kt.HyperModel):
    """model.py's build_model as a KerasTuner HyperModel: each trial's tf_keras model, and its fit."""

    def __init__(self, user: UserCode, model_inputs, objective: kt.Objective):
        super().__init__(name="build_model")
        self.user, self.model_inputs, self.objective = user, model_inputs, objective

    def build(self, hp):
        model = hp_lib.call_build_model(self.user, self.model_inputs, hp)
        apply_autograph_choice(model, self.user)
        return model

    def fit(self, hp, model, *args, **kwargs):
        history = model.fit(*args, **kwargs)
        return best_epoch_metrics(history.history, self.objective, self.user)


class SaveBestEpoch(keras.callbacks.Callback):
    """KerasTuner's SaveBestEpoch for tf_keras: the weights of the best epoch so far (Hyperband continues a
    promoted trial from them). TensorFlow's checkpoint format, which tf.io.gfile writes anywhere (gs://)."""

    def __init__(self, objective: kt.Objective, filepath: str):
        super().__init__()
        self.objective, self.filepath = objective, filepath
        self.best = float("-inf") if objective.direction == "max" else float("inf")

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.objective.name)
        if value is None or self.objective.better_than(value, self.best):
            if value is not None:
                self.best = value
            self.model.save_weights(self.filepath)


class TfKerasTuner(kt.Tuner):
    """KerasTuner's Tuner for the user's tf_keras model (see the module docstring); the algorithms below mix it
    into KerasTuner's own tuner classes, so each keeps its oracle and its own run_trial steps."""

    needs_checkpoints = False  # only Hyperband reads a trial's weights back

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trial_seconds: Dict[str, float] = {}

    def _try_build(self, hp):
        keras.backend.clear_session()  # tf_keras's (KerasTuner clears Keras 3's)
        gc.collect()
        return self._build_hypermodel(hp)

    def _get_checkpoint_fname(self, trial_id):
        return os.path.join(self.get_trial_dir(trial_id), "checkpoint")  # TF format, not Keras 3's .weights.h5

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        callbacks = list(fit_kwargs.pop("callbacks", []))
        if self.needs_checkpoints:
            callbacks.append(SaveBestEpoch(self.oracle.objective, self._get_checkpoint_fname(trial.trial_id)))
        start = time.perf_counter()
        try:
            return [self._build_and_fit_model(trial, *fit_args, **dict(fit_kwargs, callbacks=callbacks))
                    for _ in range(self.executions_per_trial)]
        except kt.errors.FatalError:
            raise
        except UserCodeError as e:  # build_model raised: the line names model.py's line and the values
            raise TrialFailed(str(e)) from e
        except Exception as e:
            values = hp_lib.describe(trial.hyperparameters.values)
            raise TrialFailed(f"{hp_lib.where_in(self.hypermodel.user, e)}: training with {values} failed: "
                              f"{hp_lib.error_line(e)}") from e
        finally:
            self.trial_seconds[trial.trial_id] = time.perf_counter() - start


class RandomSearch(kt.RandomSearch, TfKerasTuner):
    pass


class BayesianOptimization(kt.BayesianOptimization, TfKerasTuner):
    pass


class Hyperband(kt.Hyperband, TfKerasTuner):
    needs_checkpoints = True


def make_tuner(options: TuningOptions, hypermodel: UserHyperModel, objective: kt.Objective, *, directory: str,
               epochs: int, fixed=None, distribution_strategy=None, overwrite: bool = True) -> TfKerasTuner:
    """The configured algorithm's tuner. ``epochs``: a trial's (hyperband: its longest trials'); ``fixed``:
    HyperParameters the search must not change (training.learning_rate); ``overwrite``: start from an empty project
    folder (False for a distributed-mode worker: the workers share theirs)."""
    common = dict(hypermodel=hypermodel, objective=objective, seed=options.seed, hyperparameters=fixed,
                  max_retries_per_trial=0,  # the same values fail the same way again
                  max_consecutive_failed_trials=options.max_consecutive_failed_trials,
                  executions_per_trial=options.executions_per_trial, distribution_strategy=distribution_strategy,
                  directory=directory, project_name=PROJECT_NAME, overwrite=overwrite)
    if options.algorithm == "random":
        return RandomSearch(max_trials=options.max_trials, **common)
    if options.algorithm == "bayesian":
        return BayesianOptimization(max_trials=options.max_trials, **common)
    tuner = Hyperband(max_epochs=epochs, factor=HYPERBAND_FACTOR, **common)
    tuner.oracle.max_trials = options.max_trials  # Hyperband plans its own number of trials: cap it
    return tuner


def check_search_space(user: UserCode, model_inputs, learning_rate: Optional[float]):
    """Builds model.py's model once with its defaults (a search space that cannot work fails here, before any
    trial) and returns the HyperParameters the search must keep fixed (None: none)."""
    kind = hp_lib.signature_kind(user)
    if kind != "hp":
        arguments = "inputs, task, learning_rate" if kind == "learning_rate" else "inputs, task"
        raise UserCodeError(f"{user.file('model')}: build_model({arguments}) declares no search space: tuning needs "
                            f"build_model(inputs, task, hp) declaring hyperparameters (hp.Float, hp.Int, hp.Choice; "
                            f"docs/tuning.md)")
    hp = hp_lib.new_hyperparameters(learning_rate=learning_rate)
    keras.backend.clear_session()
    hp_lib.call_build_model(user, model_inputs, hp, what=" (model.py's defaults)")
    hp_lib.check_declared(user, hp, {}, learning_rate)
    fixed_names = {hp_lib.LEARNING_RATE} if learning_rate is not None else set()
    tunable = [p.name for p in hp.space if not isinstance(p, Fixed) and p.name not in fixed_names]
    if not tunable:
        besides = " besides learning_rate, fixed by training.learning_rate" if learning_rate is not None else ""
        raise UserCodeError(f"{user.file('model')}: build_model declares nothing to tune (no hp.Float, hp.Int or "
                            f"hp.Choice{besides})")
    log.info("search space of %s: %s (defaults: %s)", user.file("model"), ", ".join(tunable),
             hp_lib.describe(hp.values))
    if learning_rate is None:
        return None
    fixed = kt.HyperParameters()
    fixed.Fixed(hp_lib.LEARNING_RATE, float(learning_rate))
    return fixed


def is_distributed_worker() -> bool:
    """This process is a worker of KerasTuner's distributed mode (KERASTUNER_TUNER_ID other than the chief)."""
    return dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()


def trial_strategy(training):
    """The Trainer's strategy for the trials, when it runs in this process; otherwise the default one."""
    name = training.strategy
    if training.needs_own_processes:
        log.info("tuning trials run in the Tuner's process with strategy auto: training.strategy %s needs "
                 "processes of its own", name)
        name = "auto"
    return strategy_lib.build_strategy(name)


def tuner_fn(fn_args) -> TunerFnResult:
    """TFX Tuner entry point: the tuner over model.py's search space, and what its trials fit on."""
    job = TunerJobConfig.from_custom_config(fn_args.custom_config)
    user = load_user_code(job.user_package)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    inputs.check_label(user, tf_transform_output)
    model_inputs = inputs.model_inputs(user, tf_transform_output)
    fixed = check_search_space(user, model_inputs, job.training.learning_rate)
    objective = objective_for(user, job.objective_metric)
    strategy = trial_strategy(job.training)
    global_batch = job.training.batch_size * strategy.num_replicas_in_sync
    eval_steps = int(fn_args.eval_steps or 1)
    epochs, steps_per_epoch, _ = epoch_plan(int(fn_args.train_steps), eval_steps)
    tuner = make_tuner(job.options, UserHyperModel(user, model_inputs, objective), objective,
                       directory=fn_args.working_dir, epochs=epochs, fixed=fixed, distribution_strategy=strategy,
                       overwrite=not is_distributed_worker())
    train_ds = inputs.make_input_dataset(fn_args.train_files, tf_transform_output, user, global_batch,
                                         cache=use_input_cache(fn_args.train_files, job.training))
    # Every epoch of every trial validates on the same batches: the first eval_steps of the eval split.
    eval_ds = inputs.make_input_dataset(fn_args.eval_files, tf_transform_output, user, global_batch, shuffle=False,
                                        num_epochs=1).take(eval_steps).cache()
    log.info("tuning: %s, at most %d trial(s) of %d steps in %d epoch(s), objective %s (%s)", job.options.algorithm,
             job.options.max_trials, int(fn_args.train_steps), epochs, objective.name, objective.direction)
    return TunerFnResult(tuner=tuner, fit_kwargs={"x": train_ds, "validation_data": eval_ds, "epochs": epochs,
                                                  "steps_per_epoch": steps_per_epoch, "verbose": 2})
