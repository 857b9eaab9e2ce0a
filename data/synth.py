"""Synthetic data at scale, for load tests and benchmarks only: not real data.

``tfxp data --scale N`` resamples N rows (with replacement) from the source CSV and jitters the
numeric columns the feature list declares as measurements (kinds numeric and bucketized, and a float
label source such as the sample's tips; an int64 label source is a class and is kept): each value moves by Gaussian noise of ``jitter`` x the column's standard deviation, clipped
to the column's observed range, whole numbers stay whole, zeros stay zero (a zero tip or a zero
distance means something) and empty cells stay empty. Categorical, vocabulary and unused columns are
copied as they are. The same seed gives the same rows, on any machine.

The result has the sample's marginal distributions, not new information: a model trained on it
learns nothing the sample does not hold. Use it to measure how time and memory grow with the data.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

from components.core import feature as features_lib
from data import tfrecords
from tfxp.files import atomic_path



def is_jittered(feature: features_lib.Feature) -> bool:
    if feature.kind == features_lib.LABEL_SOURCE:
        return feature.dtype == features_lib.FLOAT
    return feature.kind in (features_lib.NUMERIC, features_lib.BUCKETIZED) and feature.dtype != features_lib.BYTES


def synthesize(csv_path: str, rows: int, features: Sequence[features_lib.Feature], *, seed: int = 0,
               jitter: float = 0.05):
    """A pyarrow Table of ``rows`` string columns (null = empty cell), resampled from ``csv_path``."""
    import numpy as np
    import pyarrow as pa

    if rows < 1:
        raise tfrecords.DataError(f"--scale must be at least 1 row, got {rows}")
    source = tfrecords.csv_source(csv_path, features)
    table = pa.Table.from_batches(list(source.batches))
    if table.num_rows == 0:
        raise tfrecords.DataError(f"{csv_path}: no data rows after the header line")
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, table.num_rows, size=rows)
    out = table.take(pa.array(picked))
    for feature in features:
        if not is_jittered(feature):
            continue
        column = table.column(feature.name).combine_chunks()
        values = tfrecords.typed_column(feature, column, source.where, 0, pa.float64()).cast(pa.float64())
        values = values.to_numpy(zero_copy_only=False)  # nulls become nan
        if np.all(np.isnan(values)):
            continue
        low, high, std = np.nanmin(values), np.nanmax(values), np.nanstd(values)
        base = values[picked]
        moved = np.clip(base + rng.normal(0.0, jitter * std, size=rows), low, high)
        moved = np.where(base == 0, 0.0, moved)
        if feature.dtype == features_lib.INT64:
            text = pa.array(np.round(np.nan_to_num(moved)).astype(np.int64), mask=np.isnan(base)).cast(pa.string())
        else:
            text = pa.array(np.round(moved, 6), mask=np.isnan(base)).cast(pa.string())
        out = out.set_column(out.schema.get_field_index(feature.name), feature.name, text)
    return out


def write_csv(table, path: str) -> str:
    """Writes the table as a CSV (empty cells for nulls), atomically."""
    from pyarrow import csv as pa_csv

    path = os.path.abspath(path)
    with atomic_path(path) as tmp:
        pa_csv.write_csv(table, tmp)
    return path


def convert_synthetic(csv_path: str, rows: int, output_dir: str, *, features, seed: int = 0,
                      jitter: float = 0.05, chunk_rows: int = 65536, **convert_args) -> tfrecords.ConversionResult:
    """synthesize() straight into sharded TFRecords (no CSV in between)."""
    table = synthesize(csv_path, rows, features, seed=seed, jitter=jitter)
    name = f"{csv_path} resampled to {rows} rows (seed {seed})"
    source = tfrecords.Source(name, table.column_names, iter(table.to_batches(max_chunksize=chunk_rows)),
                               lambda row: f"{name}, row {row + 1}")
    return tfrecords.convert_source(source, output_dir, features=features, **convert_args)
