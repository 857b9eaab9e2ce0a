"""Houses: what is the price?"""
from components.core import (BUCKETIZED, BYTES, CATEGORICAL, FLOAT, INT64, LABEL_SOURCE, NUMERIC, VOCABULARY,
                             Feature, Regression)

FEATURES = [
    Feature("area", FLOAT, NUMERIC),
    Feature("rooms", INT64, NUMERIC),
    Feature("year_built", FLOAT, BUCKETIZED, num_buckets=4),
    Feature("floor", INT64, CATEGORICAL, num_buckets=10),
    Feature("district", BYTES, VOCABULARY, vocab_size=20),
    Feature("price", FLOAT, LABEL_SOURCE),
]

TASK = Regression(label="price")

SLICE_FEATURES = ["district"]
