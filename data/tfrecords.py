"""Convert a CSV into sharded TFRecord files of tf.train.Example.

Output layout (what ImportExampleGen reads as pre-split input)::

    <out>/train/data-00000-of-00004.tfrecord.gz
    <out>/eval/data-00000-of-00004.tfrecord.gz

* Columns are typed from the feature list (``FEATURES`` of the user's features.py): int64 / float / bytes.
* An empty cell becomes an absent feature, never a sentinel number.
* ``make_example`` (raw values -> tf.train.Example) is shared with ``tfxp predict``
  (serving/client.py), which also takes JSON numbers, strings and lists.
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
import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, TextIO, Tuple, Union

from components.core import feature as features_lib
from tfxp.errors import TfxpError

log = logging.getLogger(__name__)

SPLITS = ("train", "eval")
COMPRESSIONS = {"gzip": ("GZIP", ".tfrecord.gz"), "none": ("", ".tfrecord")}
# zlib level 1: a third of level 6's CPU (TF's default) for files ~20% larger, on the sample. The
# files are read once per run (by ImportExampleGen), so converting fast matters more than bytes.
GZIP_LEVEL = 1
_INT64_MIN, _INT64_MAX = -2 ** 63, 2 ** 63 - 1


class DataError(ValueError, TfxpError):
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


def split_and_shard(row_hashes, eval_percent: int, shards: int):
    """The rule, for one row's hash or an array of them: (in eval?, its shard within its split). A row
    hash is the first 8 bytes of the md5 of the row's key, little-endian: stable across processes."""
    return row_hashes % 100 < eval_percent, (row_hashes // 100) % shards


def _shown(value) -> str:
    """A raw value as an error message quotes it: CSV text in quotes, JSON values as JSON."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_int(value) -> Optional[int]:
    """A whole number from text ("12", "12.0") or a JSON number; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:  # "12.0" is a whole number written as a float
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _as_float(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
        return None


def parse_value(feature: features_lib.Feature, value: Union[str, int, float], where: str) -> Union[int, float, bytes]:
    """One raw value of ``feature`` from a CSV cell's text or a JSON number or string.

    Returns what the tf.train.Example stores; raises DataError naming ``where`` and what was expected.
    """
    if feature.dtype == features_lib.INT64:
        number = _as_int(value)
        if number is None:
            raise DataError(f"{where}: expected an integer (int64), got {_shown(value)}")
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise DataError(f"{where}: expected an integer (int64), got {_shown(value)}, out of the int64 range")
        return number
    if feature.dtype == features_lib.FLOAT:
        number = _as_float(value)
        if number is None:
            raise DataError(f"{where}: expected a number (float), got {_shown(value)}")
        return number
    if not isinstance(value, str):
        raise DataError(f"{where}: expected a string (bytes), got {_shown(value)}")
    if feature.encoding == features_lib.ENCODING_BASE64:
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise DataError(f"{where}: expected base64-encoded bytes, got {_shown(value[:40])}") from None
    return value.encode("utf-8")


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, (str, list)) and len(value) == 0)


def make_example(values: Mapping[str, Any], features: Sequence[features_lib.Feature], where: str):
    """A tf.train.Example of ``features`` from raw ``values`` (name -> CSV cell text, or a JSON
    number, string or list of them), built without TensorFlow (tfxp.wire: ``tfxp predict`` stays light).

    A name missing from ``values``, or mapped to None, "" or [], is an absent feature (never a
    sentinel). Errors name ``where`` (e.g. "data.csv, line 3") and the column.
    """
    from tfxp import wire

    example = wire.Example()
    for feat in features:
        value = values.get(feat.name)
        if _is_missing(value):
            continue
        column = f"{where}, column {feat.name!r}"
        parsed = [parse_value(feat, item, column) for item in (value if isinstance(value, list) else [value])]
        feature = example.features.feature[feat.name]
        if feat.dtype == features_lib.INT64:
            feature.int64_list.value.extend(parsed)
        elif feat.dtype == features_lib.FLOAT:
            feature.float_list.value.extend(parsed)
        else:
            feature.bytes_list.value.extend(parsed)
    return example


def read_csv_rows(f: TextIO, source: str,
                  required: Sequence[str] = ()) -> Iterator[Tuple[int, List[str], Dict[str, int]]]:
    """Yields (line number, cells, {column: index}) for each data row of the CSV text ``f``.

    ``source`` names it in errors. The header must name every column in ``required``, and each
    row must have as many cells as the header; blank lines are skipped.
    """
    reader = csv.reader(f)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{source}: the file is empty (expected a header line naming the columns)") from None
    _check_header(header, required, source)
    index = {name: i for i, name in enumerate(header)}
    for cells in reader:
        line = reader.line_num
        if not cells:
            continue
        if len(cells) != len(header):
            raise DataError(f"{source}, line {line}: expected {len(header)} cells as in the header, got {len(cells)}")
        yield line, cells, index


def _read_rows(csv_path: str, features: Sequence[features_lib.Feature]) -> Iterator[tuple]:
    """Yields (line_number, cells, {column: index}) for each data row; every feature's column is required
    (csv_source has checked that the file exists)."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        yield from read_csv_rows(f, csv_path, [feat.name for feat in features])


# -- the vectorized converter ---------------------------------------------------------------------
# pyarrow.csv parses the text in blocks on all cores; each column is typed by one Arrow cast (a
# column Arrow cannot cast, e.g. "12.0" in an int64 column or base64 bytes, goes value by value
# through parse_value, the same rules as tfxp predict); tfx-bsl's RecordBatchToExamplesEncoder (the
# encoder TFX's CsvExampleGen uses) serializes the tf.train.Examples in C++. A row's empty cells
# must be absent features, and the encoder writes a null as an empty feature, so rows are encoded
# in groups that share the same empty columns, with those columns left out.

BLOCK_BYTES = 4 << 20  # CSV bytes per batch (~20k rows of the sample): bounded memory, steady progress


@dataclasses.dataclass
class Source:
    """Batches of all-string columns (a null is an empty cell), and how errors name a row."""
    name: str
    header: List[str]
    batches: Iterator[Any]  # pyarrow.RecordBatch
    where: Any  # row index (from 0, over all batches) -> "file, line N"


def _check_header(header: Sequence[str], required: Sequence[str], source: str,
                  why: str = "the feature list declares them") -> None:
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(
            f"{source}, line 1 (header): missing column(s) {', '.join(missing)}; "
            f"{why}. Header has: {', '.join(header)}")


def _line_of(csv_path: str, row: int) -> int:
    """The line number of data row ``row`` (from 0): only asked once, on an error."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        seen = 0
        for cells in reader:
            if cells:
                if seen == row:
                    return reader.line_num
                seen += 1
    return -1


def _locate_parse_error(csv_path: str, features, error: Exception) -> DataError:
    """pyarrow's parse errors name no line: the row-by-row reader finds and names the bad one."""
    try:
        for _ in _read_rows(csv_path, features):
            pass
    except DataError as located:
        return located
    except UnicodeDecodeError as bad:
        return DataError(f"{csv_path}: not UTF-8 text ({bad.reason}: byte {bad.object[bad.start]:#x})")
    return DataError(f"{csv_path}: {str(error).splitlines()[0]}")


def csv_source(csv_path: str, features: Sequence[features_lib.Feature], block_bytes: int = BLOCK_BYTES,
               required: Optional[Sequence[str]] = None, why: str = "the feature list declares them") -> Source:
    """The CSV's rows in batches; the header must name every column of ``required`` (default: every feature)."""
    import pyarrow as pa
    from pyarrow import csv as pa_csv

    if not os.path.exists(csv_path):
        raise DataError(f"{csv_path}: file not found")
    with open(csv_path, "rb") as f:
        first_line = f.readline()
    try:
        header = next(csv.reader([first_line.decode("utf-8")]), None)
    except UnicodeDecodeError as bad:
        raise DataError(f"{csv_path}, line 1 (header): not UTF-8 text ({bad.reason})") from None
    if not header:
        raise DataError(f"{csv_path}: the file is empty (expected a header line naming the columns)")
    _check_header(header, [feat.name for feat in features] if required is None else required, csv_path, why)
    try:
        reader = pa_csv.open_csv(
            csv_path,
            read_options=pa_csv.ReadOptions(block_size=block_bytes),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header}, null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=True))
    except pa.ArrowInvalid as error:
        raise _locate_parse_error(csv_path, features, error) from None

    def batches():
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as error:
                raise _locate_parse_error(csv_path, features, error) from None
            if batch.num_rows:
                yield batch

    return Source(csv_path, header, batches(), lambda row: f"{csv_path}, line {_line_of(csv_path, row)}")


def typed_column(feature: features_lib.Feature, column, where, first_row: int, float_type=None):
    """The column's values as Arrow int64 / float32 (the Example's FloatList; or ``float_type``) /
    binary (nulls stay null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    float_type = float_type or pa.float32()
    try:
        if feature.dtype == features_lib.INT64:
            return pc.cast(column, pa.int64())
        if feature.dtype == features_lib.FLOAT:
            return pc.cast(pc.cast(column, pa.float64()), float_type, safe=False)
        if feature.encoding != features_lib.ENCODING_BASE64:
            return column.cast(pa.binary())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # a value Arrow does not read: every value goes through parse_value (which names it)
    values = []
    for i, text in enumerate(column.to_pylist()):
        if text is None:
            values.append(None)
            continue
        try:
            values.append(parse_value(feature, text, ""))
        except DataError:
            parse_value(feature, text, f"{where(first_row + i)}, column {feature.name!r}")
            raise
    arrow_type = {features_lib.INT64: pa.int64(), features_lib.FLOAT: float_type}.get(feature.dtype, pa.binary())
    return pa.array(values, arrow_type)


def _row_hashes(batch, key_column: Optional[str]):
    """The row hash (split_and_shard) of each row's key: the key column's cell, or the raw cells joined by ","."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if key_column:
        keys = pc.fill_null(batch.column(key_column), "")
    else:
        keys = pc.binary_join_element_wise(*batch.columns, ",", null_handling="replace", null_replacement="")
    keys = keys.cast(pa.large_binary())  # int64 offsets, read straight from Arrow's buffers
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset:keys.offset + len(keys) + 1].tolist()
    data = memoryview(keys.buffers()[2] or b"")
    md5 = hashlib.md5
    digests = b"".join([md5(data[a:b]).digest()[:8] for a, b in zip(offsets, offsets[1:])])
    return np.frombuffer(digests, dtype="<u8")


def _null_groups(columns: Dict[str, Any]):
    """(group of each row, one null pattern per group): rows in a group have the same empty columns."""
    import numpy as np

    nulls = np.stack([columns[n].is_null().to_numpy(zero_copy_only=False) for n in columns], axis=1)
    if nulls.shape[1] <= 62:  # one int64 code per row: a 1-d unique is ~50x faster than unique(axis=0)
        codes = nulls.astype(np.int64) @ (np.int64(1) << np.arange(nulls.shape[1], dtype=np.int64))
        codes, first, group_of = np.unique(codes, return_index=True, return_inverse=True)
        return group_of.reshape(-1), nulls[first]
    patterns, group_of = np.unique(nulls, axis=0, return_inverse=True)
    return group_of.reshape(-1), patterns


def encode_rows(columns: Dict[str, Any], num_rows: int, encoder, pool):
    """Serialized tf.train.Examples, one per row, without the row's null (empty) features. Groups are
    encoded on all cores (the encoder releases the GIL)."""
    import numpy as np
    import pyarrow as pa

    names = list(columns)
    group_of, patterns = _null_groups(columns)
    out = np.empty(num_rows, dtype=object)

    def encode(group):
        rows = np.nonzero(group_of == group)[0]
        present = [n for n, null in zip(names, patterns[group]) if not null]
        if not present:
            out[rows] = b""  # an Example with no features
            return
        take = pa.array(rows)
        offsets = pa.array(np.arange(len(rows) + 1, dtype=np.int64))
        lists = [pa.LargeListArray.from_arrays(offsets, columns[n].take(take)) for n in present]
        out[rows] = encoder.encode(pa.RecordBatch.from_arrays(lists, present))

    list(pool.map(encode, range(len(patterns))))
    return out


def _write_shards(writers, records, targets, pool):
    """Appends records[i] to writers[targets[i]], keeping the row order within a shard, in the
    background: returns the futures (one per writer) to wait for before the next batch's writes."""
    import numpy as np

    def write(index):
        writer = writers[index]
        for record in records[np.nonzero(targets == index)[0]]:
            writer.write(record)

    return [pool.submit(write, index) for index in range(len(writers))]


def convert_source(source: Source, output_dir: str, *, features: Sequence[features_lib.Feature], shards: int = 4,
             compression: str = "gzip", eval_percent: int = 33, key_column: Optional[str] = None,
             progress_every_seconds: float = 5.0) -> ConversionResult:
    """Converts the source's rows into ``output_dir/{train,eval}/`` shards, atomically."""
    import concurrent.futures

    import numpy as np
    import tensorflow as tf
    from tfx_bsl.coders import example_coder

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
    writers = []  # train shards, then eval shards
    encoder = example_coder.RecordBatchToExamplesEncoder()
    try:
        options = tf.io.TFRecordOptions(compression_type=tf_compression,
                                        compression_level=GZIP_LEVEL if tf_compression else None)
        for split in SPLITS:
            os.makedirs(os.path.join(tmp_dir, split))
            writers += [tf.io.TFRecordWriter(os.path.join(tmp_dir, p), options) for p in files[split]]
        last_report, done = start, 0
        cores = os.cpu_count() or 1
        writing = []  # the previous batch's writes, done while this batch is parsed and encoded
        with concurrent.futures.ThreadPoolExecutor(cores) as pool, \
                concurrent.futures.ThreadPoolExecutor(min(cores, len(writers))) as write_pool:
            for batch in source.batches:
                columns = {f.name: typed_column(f, batch.column(f.name), source.where, done) for f in features}
                records = encode_rows(columns, batch.num_rows, encoder, pool)
                hashes = _row_hashes(batch, key_column)
                is_eval, shard = split_and_shard(hashes, eval_percent, shards)
                targets = is_eval.astype(np.int64) * shards + shard.astype(np.int64)
                for future in writing:
                    future.result()
                writing = _write_shards(writers, records, targets, write_pool)
                rows["eval"] += int(is_eval.sum())
                rows["train"] += batch.num_rows - int(is_eval.sum())
                done += batch.num_rows
                now = time.monotonic()
                if now - last_report >= progress_every_seconds:
                    log.info("converted %d rows (%.0f rows/s)", done, done / (now - start))
                    last_report = now
            for future in writing:
                future.result()
        if done == 0:
            raise DataError(f"{source.name}: no data rows after the header line")
        for w in writers:
            w.close()
        writers = []
        _replace_dir(tmp_dir, output_dir)
    except BaseException:
        for w in writers:
            w.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    seconds = time.monotonic() - start
    total = sum(rows.values())
    log.info("wrote %d rows (train %d, eval %d) into %d shards per split under %s in %.1fs (%.0f rows/s)",
             total, rows["train"], rows["eval"], shards, output_dir, seconds, total / max(seconds, 1e-9))
    return ConversionResult(output_dir, rows, {s: [os.path.join(output_dir, p) for p in files[s]] for s in SPLITS},
                            seconds)


def convert_csv(csv_path: str, output_dir: str, *, features: Sequence[features_lib.Feature],
                **options) -> ConversionResult:
    """Converts ``csv_path`` into ``output_dir/{train,eval}/`` shards, atomically. ``options``:
    shards, compression, eval_percent, key_column, progress_every_seconds (see convert_source)."""
    return convert_source(csv_source(csv_path, features), output_dir, features=features, **options)


def _replace_dir(src: str, dst: str) -> None:
    """Moves ``src`` to ``dst``; an existing ``dst`` is swapped out, then removed."""
    if os.path.exists(dst):
        old = dst + f".old-{os.getpid()}"
        os.rename(dst, old)
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(src, dst)
