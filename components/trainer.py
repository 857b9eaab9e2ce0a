"""TFX Trainer module: ``run_fn`` is the entry point the Trainer calls.

It reads the Transform output (gzip'd TFRecords of transformed examples), trains
the model from ``components/model.py`` under the configured tf.distribute
strategy, and exports a SavedModel with two signatures:

* ``serving_default``: serialized ``tf.Example`` with RAW features -> probability.
  It parses them with the raw feature spec and applies the tf.Transform graph,
  so serving and training transform features with the very same graph.
* ``transform_features``: serialized raw ``tf.Example`` -> transformed features
  (label included); TFMA uses it to get the label.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Union

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components import features as F
from components import model as model_lib
from components import strategy as strategy_lib

log = logging.getLogger(__name__)

SHUFFLE_BUFFER = 10_000
DEFAULTS = {"strategy": "mirrored", "batch_size": 64, "learning_rate": 0.001,
            "quantization_aware_training": False, "qat_steps": 200,
            "cpu_devices": 0, "input_cache": True, "num_workers": 2, "num_parameter_servers": 1, "worker_timeout_seconds": 1800}

# Beside Format-Serving in the Model artifact: the bare Keras model over TRANSFORMED features
# (what the TFLite branch converts: tf.Transform's ops are not TFLite builtins), and its
# quantization-aware-trained twin when enabled.
TRANSFORMED_MODEL_DIR = "Format-Transformed"
QAT_MODEL_DIR = "Format-TransformedQAT"


def _expand_patterns(file_pattern: Union[str, List[str]]) -> List[str]:
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"no transformed example files match {patterns}")
    return files


def make_input_dataset(file_pattern, tf_transform_output, batch_size: int, *,
                       shuffle: bool = True, num_epochs=None, cache: bool = False) -> tf.data.Dataset:
    """(model inputs, label) batches from gzip'd TFRecords of transformed examples.

    Shards are read in parallel (interleave, in non-deterministic order when shuffling);
    ``cache`` keeps the decompressed records in memory after the first pass (for data that
    fits); records are shuffled, batched, then parsed per batch (vectorized
    ``parse_example``, much cheaper than per record); ``prefetch`` overlaps input and training.
    """
    files = _expand_patterns(file_pattern)
    feature_spec = tf_transform_output.transformed_feature_spec()
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files))
    dataset = dataset.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER)
    # Training repeats forever, so its batches are always full; a finite read keeps every example.
    dataset = dataset.repeat(num_epochs).batch(batch_size)
    # Across workers, shard by record: Transform may write fewer files than there are workers.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, feature_spec)
        label = parsed.pop(F.TRANSFORMED_LABEL_KEY)
        return model_lib.to_model_inputs(parsed), label

    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def serving_raw_feature_spec(tf_transform_output) -> Dict[str, tf.io.VarLenFeature]:
    spec = dict(tf_transform_output.raw_feature_spec())
    for key in F.LABEL_SOURCE_KEYS:
        spec.pop(key, None)
    return spec


def export_serving_model(model, tf_transform_output, export_dir: str) -> None:
    """Saves ``model`` with the serving_default and transform_features signatures.

    Attaches the tf.Transform layer to ``model`` (so it is saved with it): call it last.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()  # tracked, so it is saved
    serving_spec = serving_raw_feature_spec(tf_transform_output)
    full_spec = tf_transform_output.raw_feature_spec()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(serialized):
        transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
        return {"outputs": model(model_lib.to_model_inputs(transformed))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, full_spec))

    tf.saved_model.save(model, export_dir, signatures={
        "serving_default": serve_tf_examples,
        "transform_features": transform_features,
    })
    log.info("exported the serving model to %s", export_dir)


def export_transformed_model(model, export_dir: str) -> None:
    """Saves the bare model: serving_default takes the transformed features, [batch, 1] each."""
    specs = {name: tf.TensorSpec([None, 1], tensor.dtype, name=name)
             for name, tensor in zip(model.input_names, model.inputs)}

    @tf.function(input_signature=[specs])
    def serve_transformed(features):
        return {"outputs": model(features)}

    tf.saved_model.save(model, export_dir, signatures={"serving_default": serve_transformed})


def train_quantization_aware(model, train_ds, steps: int, learning_rate: float):
    """Fine-tunes a quantization-aware copy of the trained model (tfmot, fake-quant on Dense layers).

    tfmot's default scheme does not cover Embedding, so only the Dense layers are annotated;
    the int8 conversion calibrates the rest with representative examples.
    """
    import tensorflow_model_optimization as tfmot

    quantize = tfmot.quantization.keras

    def annotate(layer):
        if isinstance(layer, keras.layers.Dense):
            return quantize.quantize_annotate_layer(layer)
        return layer

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    qat_model = quantize.quantize_apply(annotated)
    model_lib.compile_model(qat_model, learning_rate)
    qat_model.fit(train_ds, epochs=1, steps_per_epoch=steps, verbose=2)
    return qat_model


def train_and_export(job: Dict[str, Any], strategy, export_dir: str, *, is_chief: bool = True) -> None:
    """Trains under ``strategy`` and exports into ``export_dir`` (a Format-Serving folder).

    ``job``: train_files, eval_files, transform_output, model_run_dir, train_steps, eval_steps
    and ``config`` (the Trainer's custom_config with DEFAULTS filled in).
    """
    config = job["config"]
    tf_transform_output = tft.TFTransformOutput(job["transform_output"])
    per_replica = int(config["batch_size"])
    global_batch = per_replica * strategy.num_replicas_in_sync
    log.info("batch size: %d per replica x %d replica(s) = %d global", per_replica,
             strategy.num_replicas_in_sync, global_batch)
    with strategy.scope():
        model = model_lib.build_model(model_lib.feature_cardinalities(tf_transform_output),
                                      float(config["learning_rate"]))
    callbacks = [keras.callbacks.TensorBoard(log_dir=job["model_run_dir"])] if is_chief else []
    if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        # The coordinator hands each worker a dataset it builds itself (DatasetCreator).
        def dataset_fn(input_context):
            return make_input_dataset(job["train_files"], tf_transform_output,
                                      input_context.get_per_replica_batch_size(global_batch))

        train_ds = keras.utils.experimental.DatasetCreator(dataset_fn)
        model.fit(train_ds, epochs=1, steps_per_epoch=job["train_steps"], verbose=2, callbacks=callbacks)
    else:
        train_ds = make_input_dataset(job["train_files"], tf_transform_output, global_batch,
                                      cache=bool(config["input_cache"]))
        eval_ds = make_input_dataset(job["eval_files"], tf_transform_output, global_batch, shuffle=False)
        model.fit(train_ds, epochs=1, steps_per_epoch=job["train_steps"], validation_data=eval_ds,
                  validation_steps=job["eval_steps"], verbose=2, callbacks=callbacks)
    model_root = os.path.dirname(export_dir)
    # QAT clones the model, so it runs before export_serving_model attaches the tf.Transform layer.
    if config["quantization_aware_training"] and not isinstance(train_ds, keras.utils.experimental.DatasetCreator):
        log.info("quantization-aware training: %d steps", int(config["qat_steps"]))
        with strategy.scope():
            qat_model = train_quantization_aware(model, train_ds, int(config["qat_steps"]),
                                                 float(config["learning_rate"]))
        export_transformed_model(qat_model, os.path.join(model_root, QAT_MODEL_DIR))
    export_transformed_model(model, os.path.join(model_root, TRANSFORMED_MODEL_DIR))
    export_serving_model(model, tf_transform_output, export_dir)


def job_from_fn_args(fn_args) -> Dict[str, Any]:
    return {
        "train_files": list(fn_args.train_files), "eval_files": list(fn_args.eval_files),
        "transform_output": fn_args.transform_output, "model_run_dir": fn_args.model_run_dir,
        "serving_model_dir": fn_args.serving_model_dir, "train_steps": int(fn_args.train_steps),
        "eval_steps": int(fn_args.eval_steps or 1),
        "config": {**DEFAULTS, **(fn_args.custom_config or {})},
    }


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (``Trainer(run_fn='components.trainer.run_fn')``)."""
    job = job_from_fn_args(fn_args)
    config = job["config"]
    strategy_lib.validate(config["strategy"])
    if strategy_lib.needs_own_processes(config):
        from components import distributed
        distributed.train_in_worker_processes(job)
        return
    strategy = strategy_lib.build_strategy(config["strategy"])
    train_and_export(job, strategy, fn_args.serving_model_dir)
