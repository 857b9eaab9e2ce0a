"""The training input pipeline, and the model's inputs as the data scientist's build_model sees them.

One pipeline serves training, evaluation, `tfxp diagnose-input` (which measures it stage by stage
through ``stop_after``), the TFLite calibration and evaluation, and the benchmarks.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from components.core.feature import BUCKETIZED, CATEGORICAL, NUMERIC, VOCABULARY
from components.core.transforms import NUM_OOV_BUCKETS
from components.core.user_code import UserCode, UserCodeError

SHUFFLE_BUFFER = 10_000
# Stages of make_input_dataset, in order; stop_after= one of them returns the pipeline up to it.
STAGES = ("read", "shuffle", "parse", "prefetch")


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """One model input: a transformed feature, [batch, 1]."""
    name: str                        # <feature>_xf
    dtype: str                       # "float32" (a number) or "int64" (an id)
    cardinality: Optional[int] = None  # ids: how many distinct ids there can be


def model_inputs(user: UserCode, tf_transform_output) -> List[ModelInput]:
    """What build_model gets: one entry per model feature, with id ranges from the Transform output."""
    inputs = []
    for feature in user.model_features:
        if feature.kind == NUMERIC:
            inputs.append(ModelInput(feature.transformed_name, "float32"))
            continue
        if feature.kind == VOCABULARY:
            cardinality = tf_transform_output.vocabulary_size_by_name(feature.name) + NUM_OOV_BUCKETS
        elif feature.kind in (BUCKETIZED, CATEGORICAL):
            cardinality = feature.num_buckets + 1  # + the missing/out-of-range id
        else:
            raise ValueError(f"feature {feature.name!r}: kind {feature.kind} is not a model input")
        inputs.append(ModelInput(feature.transformed_name, "int64", cardinality))
    return inputs


def to_model_inputs(user: UserCode, transformed: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Selects the model's inputs from transformed features and shapes them [batch, 1]."""
    inputs = {}
    for feature in user.model_features:
        value = transformed[feature.transformed_name]
        if value.shape.rank == 1:
            value = tf.expand_dims(value, -1)
        inputs[feature.transformed_name] = tf.cast(value, tf.float32) if feature.kind == NUMERIC else value
    return inputs


def expand_patterns(file_pattern: Union[str, Sequence[str]]) -> List[str]:
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"no transformed example files match {patterns}")
    return files


# Decompressed / gzip'd bytes of transformed tf.Examples: 9.7 on the sample's at a million rows.
GZIP_RATIO_ESTIMATE = 10


def cache_fits(file_pattern, max_mb: int) -> Tuple[bool, int]:
    """(whether the files' records, decompressed, fit in ``max_mb``; their estimated bytes)."""
    estimate = GZIP_RATIO_ESTIMATE * sum(tf.io.gfile.stat(f).length for f in expand_patterns(file_pattern))
    return estimate <= max_mb * 2 ** 20, estimate


def count_records(file_pattern) -> int:
    """How many records the gzip'd TFRecord files hold (one read, shards in parallel)."""
    files = expand_patterns(file_pattern)
    dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE)
    sizes = dataset.batch(8192).map(lambda batch: tf.shape(batch, out_type=tf.int64)[0])
    return int(sizes.reduce(tf.constant(0, tf.int64), lambda total, n: total + n))


def check_label(user: UserCode, tf_transform_output) -> None:
    """preprocessing_fn must output the label the task names: say so clearly when it does not."""
    spec = tf_transform_output.transformed_feature_spec()
    if user.task.label_key not in spec:
        raise UserCodeError(f"{user.file('preprocessing')}: preprocessing_fn outputs no {user.task.label_key!r}, the "
                         f"label of TASK ({user.task.describe()}); it outputs {', '.join(sorted(spec))}")


def make_input_dataset(file_pattern, tf_transform_output, user: UserCode, batch_size: int, *,
                       shuffle: bool = True, num_epochs=None, cache: bool = False,
                       stop_after: Optional[str] = None) -> tf.data.Dataset:
    """(model inputs, label) batches from gzip'd TFRecords of transformed examples.

    read:     shards read in parallel (interleave; non-deterministic order when shuffling), then
              ``cache`` keeps the decompressed records in memory after the first pass
    shuffle:  records shuffled (when ``shuffle``)
    parse:    repeated, batched, then parsed per batch (vectorized ``parse_example``, much cheaper
              than per record)
    prefetch: overlaps input and training
    ``stop_after`` a stage returns the pipeline up to it; before ``parse``, batches of serialized
    records (for measuring the stages alone).
    """
    if stop_after is not None and stop_after not in STAGES:
        raise ValueError(f"stop_after must be one of {', '.join(STAGES)}, got {stop_after!r}")
    files = expand_patterns(file_pattern)
    feature_spec = tf_transform_output.transformed_feature_spec()
    label_key = user.task.label_key
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files))
    dataset = dataset.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if cache:
        dataset = dataset.cache()
    if stop_after != "read" and shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER)
    # Training repeats forever, so its batches are always full; a finite read keeps every example.
    dataset = dataset.repeat(num_epochs).batch(batch_size)
    if stop_after in ("read", "shuffle"):
        return dataset
    # Across workers, shard by record: Transform may write fewer files than there are workers.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, feature_spec)
        label = parsed.pop(label_key)
        return to_model_inputs(user, parsed), label

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if stop_after == "parse":
        return dataset
    return dataset.prefetch(tf.data.AUTOTUNE)


def read_transformed_examples(pattern, tf_transform_output, user: UserCode,
                              limit: int = -1) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """({input name: [N, 1] array}, labels [N]): the first ``limit`` (or all) examples, in file order."""
    dataset = make_input_dataset(pattern, tf_transform_output, user, batch_size=1024, shuffle=False, num_epochs=1)
    features: Dict[str, List[np.ndarray]] = {}
    labels = []
    remaining = limit
    for batch, label in dataset:
        if remaining == 0:
            break
        take = label.shape[0] if remaining < 0 else min(remaining, label.shape[0])
        for name, value in batch.items():
            features.setdefault(name, []).append(value.numpy()[:take])
        labels.append(label.numpy()[:take])
        remaining = remaining - take if remaining > 0 else remaining
    if not labels:
        raise ValueError(f"no transformed examples match {pattern}")
    return {k: np.concatenate(v) for k, v in features.items()}, np.concatenate(labels)
