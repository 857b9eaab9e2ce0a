"""`tfxp schema`: a starting schema for your data, inferred by TFDV and fitted to the feature list.

    tfxp schema --config my.yaml --output my_package/schema.pbtxt

Statistics over every split of ``data_root`` (so a value seen only in eval is not an anomaly),
TFDV's ``infer_schema`` without fixed shapes (any feature may be absent: preprocessing fills it),
the label's source columns kept out of the SERVING environment (clients do not send them), and
every declared feature checked to be there with the declared type. Curate the result (value
ranges, required presence) before relying on it: it describes the data you have, not the data
you should accept.
"""
from __future__ import annotations

import logging
import os
import time

from components.core.feature import BYTES, FLOAT, INT64
from components.core.user_code import UserCode
from tfxp.errors import TfxpError
from tfxp.files import write_atomically

log = logging.getLogger(__name__)

TRAINING, SERVING = "TRAINING", "SERVING"


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
    return schema


def write_schema(schema, output_path: str, data_root: str) -> str:
    """Writes the schema as text, with a header saying where it came from; atomically."""
    from google.protobuf import text_format

    header = (f"# Inferred by `tfxp schema` from {data_root} on {time.strftime('%Y-%m-%d')}.\n"
              f"# Curate it: value ranges (int_domain, float_domain), required presence, known values.\n\n")
    output_path = os.path.abspath(output_path)
    write_atomically(output_path, header + text_format.MessageToString(schema))
    return output_path
