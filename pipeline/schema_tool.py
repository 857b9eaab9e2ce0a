"""`tfxp schema`: a starting schema for your data, inferred by TFDV and fitted to the feature list.

    tfxp schema --config my.yaml --output my_package/schema.pbtxt

Statistics over every split of ``data_root`` (so a value seen only in eval is not an anomaly),
TFDV's ``infer_schema`` without fixed shapes (any feature may be absent: preprocessing fills it),
the label's source columns kept out of the SERVING environment (clients do not send them), and
every declared feature checked to be there with the declared type. Curate the result (value
ranges, required presence) before relying on it: it describes the data you have, not the data
you should accept. Every serving feature also gets TFDV's skew and drift comparators (what `tfxp drift`
checks), with thresholds fitted to the distance between 1,000 train and 1,000 eval examples.
"""
from __future__ import annotations

import itertools
import logging
import os
import time

from components.core.feature import BYTES, FLOAT, INT64
from components.core.user_code import UserCode
from tfxp.errors import TfxpError
from tfxp.files import write_atomically

log = logging.getLogger(__name__)

TRAINING, SERVING = "TRAINING", "SERVING"
CALIBRATION_EXAMPLES = 1000   # per split: the window size `tfxp drift`'s starting thresholds are fitted to


class SchemaError(ValueError, TfxpError):
    pass


def infer_schema(data_root: str, user: UserCode):
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    pattern = os.path.join(data_root, "*", "*")
    log.info("computing statistics over %s", pattern)
    statistics = tfdv.generate_statistics_from_tfrecord(data_location=pattern)
    schema = tfdv.infer_schema(statistics, infer_feature_shape=False)
    expected_type = {INT64: schema_pb2.INT, FLOAT: schema_pb2.FLOAT, BYTES: schema_pb2.BYTES}
    inferred = {f.name: f for f in schema.feature}
    for feature in user.features:
        if feature.name not in inferred:
            raise SchemaError(f"{pattern}: feature {feature.name!r} of {user.file('features')} never occurs "
                              f"in the data")
        if inferred[feature.name].type != expected_type[feature.dtype]:
            raise SchemaError(f"{pattern}: feature {feature.name!r} is stored as "
                              f"{schema_pb2.FeatureType.Name(inferred[feature.name].type)}, but "
                              f"{user.file('features')} declares {feature.dtype}")
    schema.default_environment[:] = [TRAINING, SERVING]
    for name in user.label_source_names:
        inferred[name].not_in_environment.append(SERVING)
    add_drift_thresholds(schema, data_root)
    return schema


def add_drift_thresholds(schema, data_root: str, examples: int = CALIBRATION_EXAMPLES) -> None:
    """TFDV's skew and drift comparators on every serving feature, with thresholds fitted to the distance
    between the first ``examples`` of the train and of the eval split (pipeline/drift/compare.py)."""
    import glob

    from pipeline.drift import compare
    from tfxp import request_logs

    samples = [list(itertools.islice(request_logs.read_records(sorted(glob.glob(os.path.join(data_root, split, "*")))),
                                     examples)) for split in ("train", "eval")]
    fitted = None
    if min(len(sample) for sample in samples) >= 100:
        log.info("fitting drift thresholds on %d train and %d eval examples", *map(len, samples))
        fitted = compare.calibrate(schema, *samples)
    compare.add_starting_thresholds(schema, fitted)


def write_schema(schema, output_path: str, data_root: str) -> str:
    """Writes the schema as text, with a header saying where it came from; atomically."""
    from google.protobuf import text_format

    header = (f"# Inferred by `tfxp schema` from {data_root} on {time.strftime('%Y-%m-%d')}.\n"
              f"# Curate it: value ranges (int_domain, float_domain), required presence, known values.\n\n")
    output_path = os.path.abspath(output_path)
    write_atomically(output_path, header + text_format.MessageToString(schema))
    return output_path
