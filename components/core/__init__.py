"""Platform: the vocabulary the data scientist's files use. Read it; you should not need to edit it.

    from components.core import Feature, FLOAT, INT64, BYTES, NUMERIC, ..., BinaryClassification

feature.py    Feature, dtypes, kinds                 (no TensorFlow)
task.py       BinaryClassification, MulticlassClassification, Regression: what follows from the task
transforms.py tf.Transform building blocks for preprocessing_fn (imports TensorFlow)
user_code.py  finds and checks the data scientist's package
"""
from components.core.feature import (  # noqa: F401
    BUCKETIZED, BYTES, CATEGORICAL, ENCODING_BASE64, ENCODING_UTF8, FLOAT, INT64, LABEL_SOURCE, NUMERIC, UNUSED,
    VOCABULARY, Feature, transformed_name)
from components.core.task import BinaryClassification, MulticlassClassification, Regression  # noqa: F401
