"""YOURS: what the data is and what to predict (Chicago taxi trips: did the rider tip well?).

Everything else derives from this file: `tfxp data` types CSV columns from FEATURES, the default
preprocessing transforms each feature by its kind, the model gets one input per model feature,
the serving signature parses the raw features listed here, and TASK decides the model's head
and loss, the Evaluator's metrics and gate, the TFLite checks and how predictions are printed.

To add a feature: add one Feature(...) line below and its entry in the schema
(pipeline/schema/schema.pbtxt; `tfxp schema` writes a starting one from your data).
"""
from components.core import (BYTES, BUCKETIZED, CATEGORICAL, FLOAT, INT64, LABEL_SOURCE, NUMERIC, UNUSED,
                             VOCABULARY, BinaryClassification, Feature)

FEATURES = [
    Feature("trip_miles", FLOAT, NUMERIC),
    Feature("fare", FLOAT, NUMERIC),
    Feature("trip_seconds", INT64, NUMERIC),
    Feature("pickup_latitude", FLOAT, BUCKETIZED, num_buckets=10),
    Feature("pickup_longitude", FLOAT, BUCKETIZED, num_buckets=10),
    Feature("dropoff_latitude", FLOAT, BUCKETIZED, num_buckets=10),
    Feature("dropoff_longitude", FLOAT, BUCKETIZED, num_buckets=10),
    Feature("trip_start_hour", INT64, CATEGORICAL, num_buckets=24),
    Feature("trip_start_day", INT64, CATEGORICAL, num_buckets=8),
    Feature("trip_start_month", INT64, CATEGORICAL, num_buckets=13),
    Feature("pickup_community_area", INT64, CATEGORICAL, num_buckets=78),
    Feature("dropoff_community_area", INT64, CATEGORICAL, num_buckets=78),
    # Present in 1 of the 15,002 sample rows: kept in the data, not worth a model input.
    Feature("pickup_census_tract", INT64, UNUSED),
    Feature("dropoff_census_tract", INT64, VOCABULARY, vocab_size=2000),
    Feature("payment_type", BYTES, VOCABULARY, vocab_size=100),
    Feature("company", BYTES, VOCABULARY, vocab_size=100),
    Feature("trip_start_timestamp", INT64, UNUSED),
    # The outcome: the label is derived from it in preprocessing.py; clients do not send it.
    Feature("tips", FLOAT, LABEL_SOURCE),
]

# What to predict. preprocessing.py derives it: tips > 20% of the fare.
TASK = BinaryClassification(label="big_tipper")

# The Evaluator reports metrics per value of these features too (the config may name others).
SLICE_FEATURES = ["trip_start_hour"]
