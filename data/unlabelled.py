"""Unlabelled rows to score: a CSV -> one gzip'd TFRecord file of tf.train.Example, in the CSV's order.

What the batch scoring branch reads (pipeline/inference.py, `tfxp infer`). The same typing as training
data (``data.tfrecords``: by the feature list, an empty cell is an absent feature), but no split, no
label column needed, and the columns the feature list does not declare are kept as text.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

from components.core import feature as feature_lib
from data import tfrecords

log = logging.getLogger(__name__)


def convert_rows_to_score(csv_path: str, output_file: str, *, features: Sequence[feature_lib.Feature],
                          required: Sequence[str]) -> int:
    """Every row of ``csv_path``, in order, into one gzip'd TFRecord file of tf.train.Example (atomically), for
    scoring: no split, no label needed. The header must name the ``required`` columns (what the model
    reads); declared features are typed by the feature list, as for training data, and any other column is
    kept as text (bytes) so that the scored rows give it back (e.g. an id; the model reads only its
    features). Returns how many rows were written."""
    import concurrent.futures

    source = tfrecords.csv_source(csv_path, features, required=required, why="the model reads them")
    import tensorflow as tf  # after the header's check: a bad file fails in a blink
    from tfx_bsl.coders import example_coder

    declared = feature_lib.by_name(features)
    typed = [declared.get(name) or feature_lib.Feature(name, feature_lib.BYTES, feature_lib.UNUSED)
             for name in source.header]
    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    tmp = f"{output_file}.tmp-{os.getpid()}"
    encoder = example_coder.RecordBatchToExamplesEncoder()
    done = 0
    try:
        options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=tfrecords.GZIP_LEVEL)
        with tf.io.TFRecordWriter(tmp, options) as writer, \
                concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            for batch in source.batches:
                columns = {f.name: tfrecords.typed_column(f, batch.column(f.name), source.where, done) for f in typed}
                for record in tfrecords.encode_rows(columns, batch.num_rows, encoder, pool):
                    writer.write(record)
                done += batch.num_rows
        if done == 0:
            raise tfrecords.DataError(f"{source.name}: no data rows after the header line")
        os.replace(tmp, output_file)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    log.info("wrote %d rows of %s to score into %s", done, csv_path, output_file)
    return done
