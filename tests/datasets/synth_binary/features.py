"""Loans: did the borrower default? Every feature kind and dtype the platform knows, once."""
from components.core import (BUCKETIZED, BYTES, CATEGORICAL, ENCODING_BASE64, FLOAT, INT64, LABEL_SOURCE, NUMERIC,
                             UNUSED, VOCABULARY, BinaryClassification, Feature)

FEATURES = [
    Feature("income", FLOAT, NUMERIC),
    Feature("age", INT64, NUMERIC),
    Feature("latitude", FLOAT, BUCKETIZED, num_buckets=4),
    Feature("weekday", INT64, CATEGORICAL, num_buckets=7),
    Feature("city", BYTES, VOCABULARY, vocab_size=20),
    Feature("branch_id", INT64, VOCABULARY, vocab_size=20),
    Feature("record_id", INT64, UNUSED),
    Feature("signature", BYTES, UNUSED, encoding=ENCODING_BASE64),
    Feature("defaulted", INT64, LABEL_SOURCE),
]

TASK = BinaryClassification(label="defaulted")

SLICE_FEATURES = ["weekday"]
