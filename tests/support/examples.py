"""TFRecords of tf.Example read back into Python dicts, to check what the data tool and the pipeline wrote."""
from __future__ import annotations

from typing import List

from data.tfrecords import COMPRESSIONS


def read_examples(pattern: str, compression: str = "auto") -> List[dict]:
    """Every record of the files matching ``pattern``: {feature: [values]} (gzip by the .gz suffix, or given)."""
    import tensorflow as tf

    paths = sorted(tf.io.gfile.glob(pattern))
    out = []
    for path in paths:
        comp = compression
        if comp == "auto":
            comp = "gzip" if path.endswith(".gz") else "none"
        for record in tf.data.TFRecordDataset(path, compression_type=COMPRESSIONS[comp][0]):
            example = tf.train.Example.FromString(record.numpy())
            row = {}
            for name, feat in example.features.feature.items():
                kind = feat.WhichOneof("kind")
                row[name] = list(getattr(feat, kind).value)
            out.append(row)
    return out
