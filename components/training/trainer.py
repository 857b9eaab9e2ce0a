"""TFX Trainer module: ``run_fn`` is the entry point the Trainer calls
(``Trainer(run_fn="components.training.trainer.run_fn")``).

It reads the Transform output (gzip'd TFRecords of transformed examples), builds the data
scientist's model (``<user_package>.model.build_model``) for their TASK under the configured
tf.distribute strategy, with the hyperparameter values handed to the Trainer (the Tuner's best) or
model.py's defaults (hyperparameters.py), trains it, and exports it (see export.py). Strategies that need
processes of their own are handed to launcher.py, which starts worker.py processes that run
``train_and_export``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from typing import Any, Dict, List, Optional

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.core.user_code import UserCode, load_user_code
from components.training import export, hyperparameters as hyperparameters_lib, inputs, strategy as strategy_lib
from components.training.options import TrainerJobConfig
from tfxp import files

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainerJob:
    """One training job, as the Trainer hands it to run_fn (JSON-serializable for worker processes)."""
    train_files: List[str]
    eval_files: List[str]
    transform_output: str
    model_run_dir: str
    serving_model_dir: str
    train_steps: int
    eval_steps: int
    custom_config: Dict[str, Any]
    # Hyperparameter values handed to the Trainer (TFX's ``hyperparameters`` input: the Tuner's best), or None.
    hyperparameters: Optional[Dict[str, Any]] = None

    @classmethod
    def from_fn_args(cls, fn_args) -> "TrainerJob":
        given = fn_args.hyperparameters  # a KerasTuner HyperParameters config: {"space": [...], "values": {...}}
        return cls(train_files=list(fn_args.train_files), eval_files=list(fn_args.eval_files),
                   transform_output=fn_args.transform_output, model_run_dir=fn_args.model_run_dir,
                   serving_model_dir=fn_args.serving_model_dir, train_steps=int(fn_args.train_steps),
                   eval_steps=int(fn_args.eval_steps or 1), custom_config=dict(fn_args.custom_config or {}),
                   hyperparameters=dict(given["values"]) if given else None)

    @property
    def config(self) -> TrainerJobConfig:
        return TrainerJobConfig.from_custom_config(self.custom_config)


def uses_autograph(user: UserCode) -> bool:
    """model.py's USE_AUTOGRAPH: whether the model's functions (steps, exported signatures) need autograph."""
    return bool(getattr(user.model_module(), "USE_AUTOGRAPH", False))


def apply_autograph_choice(model: keras.Model, user: UserCode) -> None:
    """Unless model.py sets USE_AUTOGRAPH, traces the model's step functions without autograph."""
    if uses_autograph(user):
        return
    for name in ("train_step", "test_step", "predict_step"):
        setattr(model, name, tf.autograph.experimental.do_not_convert(getattr(model, name)))


def build_user_model(user: UserCode, model_inputs, hyperparameters: Optional[Dict[str, Any]] = None,
                     learning_rate: Optional[float] = None) -> keras.Model:
    """The user's compiled model with those hyperparameter values (None: model.py's defaults); see
    components/training/hyperparameters.py for which value wins."""
    return build_user_model_and_values(user, model_inputs, hyperparameters, learning_rate)[0]


def build_user_model_and_values(user: UserCode, model_inputs, hyperparameters=None, learning_rate=None):
    """(model, the hyperparameter values it was built with)."""
    model, values = hyperparameters_lib.build_for_training(user, model_inputs, hyperparameters, learning_rate)
    apply_autograph_choice(model, user)
    return model, values


# What the Trainer writes beside its TensorBoard logs: the hyperparameters its model was built with.
HYPERPARAMETERS_FILE = "hyperparameters.json"


def optimizer_learning_rate(model: keras.Model) -> Optional[float]:
    """The compiled optimizer's learning rate (None for a schedule)."""
    try:
        return float(keras.backend.get_value(model.optimizer.learning_rate))
    except (TypeError, ValueError, AttributeError):
        return None


def write_hyperparameters(model_run_dir: str, given: Optional[Dict[str, Any]], values: Dict[str, Any],
                          model: keras.Model) -> None:
    """<model_run_dir>/hyperparameters.json: the values handed to the Trainer (null: none, model.py's defaults),
    the values the model was built with, and its optimizer's learning rate."""
    record = {"given": hyperparameters_lib.model_values(given) if given else None, "values": values,
              "optimizer_learning_rate": optimizer_learning_rate(model)}
    files.write_atomically(os.path.join(model_run_dir, HYPERPARAMETERS_FILE), json.dumps(record, indent=1) + "\n")


def compile_like(model: keras.Model, original: keras.Model, user: UserCode) -> None:
    """Compiles a copy of ``original`` (the QAT model) with its optimizer settings and loss."""
    optimizer = type(original.optimizer).from_config(original.optimizer.get_config())
    model.compile(optimizer=optimizer, loss=original.loss, metrics=user.task.keras_metrics())
    apply_autograph_choice(model, user)


# Training is cut into this many Keras epochs (fewer when train_steps has no such divisor), each
# ending in a validation on eval_steps / epochs batches: the same steps in all, and a curve of
# CURVE_POINTS points in the TensorBoard logs (the run report plots them) instead of one point.
CURVE_POINTS = 10


def epoch_plan(train_steps: int, eval_steps: int):
    """(epochs, steps per epoch, validation steps per epoch): exactly train_steps training steps."""
    epochs = max(d for d in range(1, min(CURVE_POINTS, train_steps) + 1) if train_steps % d == 0)
    return epochs, train_steps // epochs, max(1, eval_steps // epochs)


def training_steps(job: TrainerJob, global_batch: int) -> int:
    """train_steps, or the steps of training.train_epochs passes over the train split."""
    epochs = job.config.options.train_epochs
    if not epochs:
        return job.train_steps
    examples = inputs.count_records(job.train_files)
    steps = max(1, math.ceil(float(epochs) * examples / global_batch))
    log.info("training for %g epoch(s) of %d train examples in batches of %d: %d steps", epochs, examples,
             global_batch, steps)
    return steps


def use_input_cache(train_files, options) -> bool:
    """training.input_cache, when the decompressed train split fits training.input_cache_max_mb."""
    if not options.input_cache:
        return False
    fits, estimate = inputs.cache_fits(train_files, options.input_cache_max_mb)
    log.info("input cache %s: the train split's records take about %d MB decompressed (limit %d MB, "
             "training.input_cache_max_mb)", "on" if fits else "off, every epoch reads the files",
             estimate // 2 ** 20, options.input_cache_max_mb)
    return fits


class TrainerTimes(keras.callbacks.Callback):
    """Seconds of each phase of train_and_export and of each Keras epoch (logged, and read by
    bench/trainer_bench.py): where a Trainer's time goes, at no cost."""

    def __init__(self):
        super().__init__()
        self.seconds: Dict[str, float] = {}
        self.epochs: List[float] = []
        self._epoch_start = 0.0

    @contextlib.contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(time.perf_counter() - self._epoch_start)

    def describe(self) -> str:
        parts = []
        for name, seconds in self.seconds.items():
            text = f"{name} {seconds:.1f} s"
            if name == "fit" and self.epochs:
                rest = self.epochs[1:]
                text += (f" ({len(self.epochs)} epoch(s): the first {self.epochs[0]:.1f} s"
                         + (f", then {sum(rest) / len(rest):.2f} s each)" if rest else ")"))
            parts.append(text)
        return ", ".join(parts)


def train_and_export(job: TrainerJob, strategy, export_dir: str, *, is_chief: bool = True) -> TrainerTimes:
    """Trains under ``strategy`` and exports into ``export_dir`` (a Format-Serving folder; QAT's model beside it)."""
    config = job.config
    options = config.options
    user = load_user_code(config.user_package)
    tf_transform_output = tft.TFTransformOutput(job.transform_output)
    inputs.check_label(user, tf_transform_output)
    per_replica = options.batch_size
    global_batch = per_replica * strategy.num_replicas_in_sync
    log.info("training a model for %s; batch size: %d per replica x %d replica(s) = %d global",
             user.task.describe(), per_replica, strategy.num_replicas_in_sync, global_batch)
    times = TrainerTimes()
    with times.phase("model"), strategy.scope():
        model, values = build_user_model_and_values(user, inputs.model_inputs(user, tf_transform_output),
                                                    job.hyperparameters, options.learning_rate)
    log.info("hyperparameters: %s (%s)", hyperparameters_lib.describe(values),
             "given to the Trainer" if job.hyperparameters else "model.py's defaults")
    if is_chief:
        write_hyperparameters(job.model_run_dir, job.hyperparameters, values, model)
    callbacks = [times] + ([keras.callbacks.TensorBoard(log_dir=job.model_run_dir)] if is_chief else [])
    epochs, steps_per_epoch, validation_steps = epoch_plan(training_steps(job, global_batch), job.eval_steps)
    log.info("training %d steps: %d epoch(s) of %d, each validated on %d batch(es)", epochs * steps_per_epoch,
             epochs, steps_per_epoch, validation_steps)
    if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        # The coordinator hands each worker a dataset it builds itself (DatasetCreator).
        def dataset_fn(input_context):
            return inputs.make_input_dataset(job.train_files, tf_transform_output, user,
                                             input_context.get_per_replica_batch_size(global_batch))

        train_ds = keras.utils.experimental.DatasetCreator(dataset_fn)
        with times.phase("fit"):
            model.fit(train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=2, callbacks=callbacks)
    else:
        with times.phase("inputs"):
            train_ds = inputs.make_input_dataset(job.train_files, tf_transform_output, user, global_batch,
                                                 cache=use_input_cache(job.train_files, options))
            eval_ds = inputs.make_input_dataset(job.eval_files, tf_transform_output, user, global_batch,
                                                shuffle=False)
        with times.phase("fit"):
            model.fit(train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=eval_ds,
                      validation_steps=validation_steps, verbose=2, callbacks=callbacks)
    autograph = uses_autograph(user)
    with times.phase("export"):
        export.export_model(model, tf_transform_output, user, export_dir, autograph=autograph)
    if config.qat_steps > 0:  # (the config rejects QAT with parameter_server)
        from components.training.qat import train_quantization_aware

        log.info("quantization-aware training: %d steps", config.qat_steps)
        with times.phase("qat"):
            with strategy.scope():
                qat_model = train_quantization_aware(model, train_ds, config.qat_steps,
                                                     lambda copy: compile_like(copy, model, user))
            model_uri = os.path.dirname(export_dir.rstrip("/"))
            export.export_transformed_model(qat_model, export.transformed_model_dir(model_uri, qat=True),
                                            autograph=autograph)
    log.info("Trainer times: %s", times.describe())
    return times


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    job = TrainerJob.from_fn_args(fn_args)
    options = job.config.options
    strategy_lib.validate(options.strategy)
    if options.needs_own_processes:
        from components.training import launcher

        launcher.train_in_worker_processes(job)
        return
    strategy = strategy_lib.build_strategy(options.strategy)
    train_and_export(job, strategy, job.serving_model_dir)
