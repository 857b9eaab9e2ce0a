"""Convert a CSV into sharded TFRecord files of tf.train.Example.

Output layout (what ImportExampleGen reads as pre-split input)::

    <out>/train/data-00000-of-00004.tfrecord.gz
    <out>/eval/data-00000-of-00004.tfrecord.gz

* Columns are typed from the feature list (``FEATURES`` of the user's features.py): int64 / float / bytes.
* An empty cell becomes an absent feature, never a sentinel number.
* The split (and the shard) is decided by a stable hash of a row key (the
  ``key_column``, or the whole raw CSV row), so the same row always lands in the
  same split, whatever the row order or the machine.
* Everything is written into a temporary sibling directory that is renamed
  into place at the end: a failed conversion leaves no output behind.
"""
from __future__ import annotations

import base64
import binascii
import csv
import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Sequence

from components.core import feature as features_lib

log = logging.getLogger(__name__)

SPLITS = ("train", "eval")
COMPRESSIONS = {"gzip": ("GZIP", ".tfrecord.gz"), "none": ("", ".tfrecord")}


class DataError(ValueError):
    """Bad input: the message names the file, line and column."""


@dataclasses.dataclass
class ConversionResult:
    output_dir: str
    rows: Dict[str, int]
    files: Dict[str, List[str]]
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _row_hash(key: str) -> int:
    # md5 is stable across processes and Python versions (unlike hash()).
    return int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:8], "little")


def split_for(key: str, eval_percent: int) -> str:
    return "eval" if _row_hash(key) % 100 < eval_percent else "train"


def shard_for(key: str, num_shards: int) -> int:
    return (_row_hash(key) // 100) % num_shards


def _parse_cell(feature: features_lib.Feature, cell: str, where: str):
    import tensorflow as tf

    if feature.dtype == features_lib.INT64:
        try:
            value = int(cell)
        except ValueError:
            try:  # "12.0" is a whole number written as a float
                as_float = float(cell)
            except ValueError:
                as_float = None
            if as_float is None or not as_float.is_integer():
                raise DataError(f"{where}: expected an integer (int64), got {cell!r}") from None
            value = int(as_float)
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    if feature.dtype == features_lib.FLOAT:
        try:
            value = float(cell)
        except ValueError:
            raise DataError(f"{where}: expected a number (float), got {cell!r}") from None
        return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    if feature.encoding == features_lib.ENCODING_BASE64:
        try:
            raw = base64.b64decode(cell, validate=True)
        except binascii.Error:
            raise DataError(f"{where}: expected base64-encoded bytes, got {cell[:40]!r}") from None
    else:
        raw = cell.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))


def _read_rows(csv_path: str, features: Sequence[features_lib.Feature]) -> Iterator[tuple]:
    """Yields (line_number, raw_line_key, {column: cell}) for each data row."""
    if not os.path.exists(csv_path):
        raise DataError(f"{csv_path}: file not found")
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{csv_path}: the file is empty (expected a header line naming the columns)") from None
        missing = [feat.name for feat in features if feat.name not in header]
        if missing:
            raise DataError(
                f"{csv_path}, line 1 (header): missing column(s) {', '.join(missing)}; "
                f"the feature list declares them. Header has: {', '.join(header)}")
        index = {name: i for i, name in enumerate(header)}
        for cells in reader:
            line = reader.line_num
            if not cells:
                continue
            if len(cells) != len(header):
                raise DataError(
                    f"{csv_path}, line {line}: expected {len(header)} cells as in the header, got {len(cells)}")
            yield line, cells, index


def _to_example(csv_path, line, cells, index, features):
    import tensorflow as tf

    feature_map = {}
    for feat in features:
        cell = cells[index[feat.name]]
        if cell == "":
            continue  # missing value -> absent feature
        where = f"{csv_path}, line {line}, column {feat.name!r}"
        feature_map[feat.name] = _parse_cell(feat, cell, where)
    return tf.train.Example(features=tf.train.Features(feature=feature_map))


def convert_csv(
    csv_path: str,
    output_dir: str,
    *,
    features: Sequence[features_lib.Feature],
    shards: int = 4,
    compression: str = "gzip",
    eval_percent: int = 33,
    key_column: Optional[str] = None,
    progress_every_seconds: float = 5.0,
) -> ConversionResult:
    """Converts ``csv_path`` into ``output_dir/{train,eval}/`` shards, atomically."""
    import tensorflow as tf

    features = list(features)
    if shards < 1:
        raise DataError(f"--shards must be at least 1, got {shards}")
    if compression not in COMPRESSIONS:
        raise DataError(f"--compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    if not 0 < eval_percent < 100:
        raise DataError(f"--eval-percent must be between 1 and 99, got {eval_percent}")
    if key_column and key_column not in {f.name for f in features}:
        raise DataError(f"--key-column {key_column!r} is not a declared feature")
    tf_compression, suffix = COMPRESSIONS[compression]

    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_dir, 0o777 & ~umask)  # mkdtemp makes it private; the output should not be
    start = time.monotonic()
    rows = {s: 0 for s in SPLITS}
    files = {s: [os.path.join(s, f"data-{i:05d}-of-{shards:05d}{suffix}") for i in range(shards)] for s in SPLITS}
    writers = {}
    try:
        options = tf.io.TFRecordOptions(compression_type=tf_compression)
        for split in SPLITS:
            os.makedirs(os.path.join(tmp_dir, split))
            writers[split] = [tf.io.TFRecordWriter(os.path.join(tmp_dir, p), options) for p in files[split]]
        last_report = start
        for line, cells, index in _read_rows(csv_path, features):
            example = _to_example(csv_path, line, cells, index, features)
            key = cells[index[key_column]] if key_column else ",".join(cells)
            split = split_for(key, eval_percent)
            writers[split][shard_for(key, shards)].write(example.SerializeToString())
            rows[split] += 1
            now = time.monotonic()
            if now - last_report >= progress_every_seconds:
                done = sum(rows.values())
                log.info("converted %d rows (%.0f rows/s)", done, done / (now - start))
                last_report = now
        if sum(rows.values()) == 0:
            raise DataError(f"{csv_path}: no data rows after the header line")
        for split_writers in writers.values():
            for w in split_writers:
                w.close()
        writers = {}
        _replace_dir(tmp_dir, output_dir)
    except BaseException:
        for split_writers in writers.values():
            for w in split_writers:
                w.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    seconds = time.monotonic() - start
    total = sum(rows.values())
    log.info("wrote %d rows (train %d, eval %d) into %d shards per split under %s in %.1fs (%.0f rows/s)",
             total, rows["train"], rows["eval"], shards, output_dir, seconds, total / max(seconds, 1e-9))
    return ConversionResult(output_dir, rows, {s: [os.path.join(output_dir, p) for p in files[s]] for s in SPLITS},
                            seconds)


def _replace_dir(src: str, dst: str) -> None:
    """Moves ``src`` to ``dst``; an existing ``dst`` is swapped out, then removed."""
    if os.path.exists(dst):
        old = dst + f".old-{os.getpid()}"
        os.rename(dst, old)
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(src, dst)


def read_examples(pattern: str, compression: str = "auto") -> List[dict]:
    """Reads TFRecords of tf.Example back into python dicts (for tests and inspection)."""
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
