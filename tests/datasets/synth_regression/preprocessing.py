"""Every model input by its kind; the label is the price as it is."""
from components.core import transforms

from . import features


def preprocessing_fn(inputs):
    outputs = transforms.transform_by_kind(inputs, features.FEATURES)
    outputs[features.TASK.label_key] = transforms.fill_missing(transforms.as_float(inputs["price"]), 0.0)
    return outputs
