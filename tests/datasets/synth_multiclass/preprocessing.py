"""Every model input by its kind; the label: the segment's name -> its class id."""
from components.core import transforms

from . import features


def preprocessing_fn(inputs):
    outputs = transforms.transform_by_kind(inputs, features.FEATURES)
    outputs[features.TASK.label_key] = transforms.class_index(inputs["segment"], features.TASK.class_names)
    return outputs
