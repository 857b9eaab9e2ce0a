"""Every model input by its kind; the label is the 0/1 column as it is."""
import tensorflow as tf

from components.core import transforms

from . import features


def preprocessing_fn(inputs):
    outputs = transforms.transform_by_kind(inputs, features.FEATURES)
    outputs[features.TASK.label_key] = tf.cast(transforms.fill_missing(inputs["defaulted"], 0), tf.int64)
    return outputs
