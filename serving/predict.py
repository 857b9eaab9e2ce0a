"""Find pushed model versions and call their signatures on raw tf.Examples."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

import numpy as np
from tfxp import contract
from tfxp.saved_model import SAVED_MODEL_PB


def _is_complete(version_dir: str, marker_suffix: str) -> bool:
    import tensorflow as tf

    if marker_suffix == SAVED_MODEL_PB:  # Pusher copies saved_model.pb last
        return tf.io.gfile.exists(os.path.join(version_dir, marker_suffix))
    return any(name.endswith(marker_suffix) for name in tf.io.gfile.listdir(version_dir))


def model_versions(serving_model_dir: str, marker_suffix: str = SAVED_MODEL_PB) -> List[str]:
    """Version directories Pusher wrote under serving_model/<name>/, oldest first.

    Only complete versions count: ones holding a file ending in ``marker_suffix``
    (``saved_model.pb`` for SavedModels, ``.tflite`` for the TFLite pushes). Any tf.io.gfile path.
    """
    import tensorflow as tf

    if not tf.io.gfile.isdir(serving_model_dir):
        return []
    names = [d.rstrip("/") for d in tf.io.gfile.listdir(serving_model_dir)]
    versions = [d for d in names if d.isdigit() and _is_complete(os.path.join(serving_model_dir, d), marker_suffix)]
    return [os.path.join(serving_model_dir, d) for d in sorted(versions, key=int)]


def latest_version(serving_model_dir: str, marker_suffix: str = SAVED_MODEL_PB) -> Optional[str]:
    versions = model_versions(serving_model_dir, marker_suffix)
    return versions[-1] if versions else None


def load_model(model):
    """``model``: a SavedModel directory, or one already loaded (so that several calls load it once)."""
    import tensorflow as tf

    return tf.saved_model.load(model) if isinstance(model, str) else model


def predict_serialized(model, serialized_examples: Sequence[bytes]) -> np.ndarray:
    """The model's outputs from its serving_default signature: [N, output units] (the task's head)."""
    import tensorflow as tf

    serve = load_model(model).signatures[contract.SIGNATURE]
    outputs = serve(examples=tf.constant(list(serialized_examples)))[contract.OUTPUTS].numpy()
    return outputs.reshape(len(serialized_examples), -1)


def labels_of(model, serialized_examples: Sequence[bytes], label_key: str) -> np.ndarray:
    """The label of each example as the model's own tf.Transform graph computes it (transform_features)."""
    import tensorflow as tf

    transform = load_model(model).signatures["transform_features"]
    return transform(examples=tf.constant(list(serialized_examples)))[label_key].numpy().reshape(-1)


def first_raw_examples(data_root: str, split: str = "eval", count: int = 1) -> List[bytes]:
    """The first ``count`` serialized tf.Examples of a split written by ``tfxp data``."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(data_root, split, "*")))
    if not files:
        raise FileNotFoundError(f"no TFRecord files under {os.path.join(data_root, split)}")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    dataset = tf.data.TFRecordDataset(files, compression_type=compression).take(count)
    return [record.numpy() for record in dataset]


def describe_example(serialized: bytes, names: Sequence[str]) -> str:
    """'name=value, ...' for the named features present in a serialized tf.Example."""
    import tensorflow as tf

    feature = tf.train.Example.FromString(serialized).features.feature
    parts = []
    for name in names:
        if name in feature and feature[name].WhichOneof("kind"):
            values = getattr(feature[name], feature[name].WhichOneof("kind")).value
            if not values:
                continue
            value = values[0]
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif isinstance(value, float):
                value = round(value, 2)
            parts.append(f"{name}={value}")
    return ", ".join(parts)
