"""Customers: which segment (bronze, silver, gold)? The label is a string column."""
from components.core import (BUCKETIZED, BYTES, CATEGORICAL, FLOAT, INT64, LABEL_SOURCE, NUMERIC, VOCABULARY,
                             Feature, MulticlassClassification)

FEATURES = [
    Feature("spend", FLOAT, NUMERIC),
    Feature("visits", INT64, NUMERIC),
    Feature("tenure", FLOAT, BUCKETIZED, num_buckets=5),
    Feature("channel", INT64, CATEGORICAL, num_buckets=4),
    Feature("region", BYTES, VOCABULARY, vocab_size=20),
    Feature("segment", BYTES, LABEL_SOURCE),
]

TASK = MulticlassClassification(label="segment", class_names=("bronze", "silver", "gold"))

SLICE_FEATURES = ["region"]
