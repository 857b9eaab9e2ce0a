"""Checks the TFRecords under ``data_root`` before the pipeline spends minutes on them.

A truncated shard, a corrupted record or a broken gzip stream otherwise ends a run deep inside
Beam, after a long traceback that never names the file. Reading every record once is cheap next to
the pipeline (the whole sample in well under a second: the count runs in TensorFlow's C++ reader),
and a file that passed is not read again until its size or modification time changes.
"""
from __future__ import annotations

import json
import logging
import re
import zlib
from typing import Dict, List

from tfxp.errors import TfxpError
from tfxp.files import write_atomically

log = logging.getLogger(__name__)

SPLITS = ("train", "eval")
# What ImportExampleGen's reader (Beam's ReadFromTFRecord, compression AUTO) decides by extension.
_OTHER_COMPRESSIONS = (".bz2", ".deflate", ".zst", ".lzma", ".xz")


class InputError(ValueError, TfxpError):
    """Unusable input data: one line naming the file, the record where known, and the cause."""


def split_files(data_root: str, what: str = "data_root") -> Dict[str, List[str]]:
    """{split: its files}, or InputError naming what is missing (ImportExampleGen reads ``<split>/*``);
    ``what``: the folder's name in the message."""
    import tensorflow as tf

    how = f"write them with `tfxp data --csv YOUR.csv --output {data_root}`"
    if not tf.io.gfile.isdir(data_root):
        raise InputError(f"{what} {data_root} does not exist: {how}")
    found = {}
    for split in SPLITS:
        files = sorted(f for f in tf.io.gfile.glob(f"{data_root.rstrip('/')}/{split}/*")
                       if not tf.io.gfile.isdir(f))
        if not files:
            raise InputError(f"{what} {data_root} has no TFRecords in {split}/ (expected "
                             f"{'train/* and eval/*' if not found else split + '/*'}): {how}")
        found[split] = files
    return found


def _compression(path: str):
    if path.endswith(".gz"):
        return "GZIP"
    if path.endswith(_OTHER_COMPRESSIONS):
        return None  # read by Beam, not by TensorFlow's reader: left to the pipeline
    return ""


def _gzip_problem(path: str) -> str:
    """Why ``path`` is not a whole gzip stream, or '' when it is (decompressed in 1 MiB steps)."""
    import tensorflow as tf

    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with tf.io.gfile.GFile(path, "rb") as f:
        chunk = f.read(1 << 20)
        if not chunk.startswith(b"\x1f\x8b"):
            return ("it is named .gz but is not gzip-compressed (ImportExampleGen decompresses by the "
                    ".gz extension: rename it or compress it)")
        try:
            while chunk:
                inflater.decompress(chunk)
                while inflater.unused_data:  # concatenated gzip members are valid gzip
                    rest, inflater = inflater.unused_data, zlib.decompressobj(16 + zlib.MAX_WBITS)
                    inflater.decompress(rest)
                chunk = f.read(1 << 20)
        except zlib.error as e:
            return f"the gzip stream is damaged (zlib: {str(e).split(': ', 1)[-1]})"
    if not inflater.eof:
        return "the gzip stream ends early (the file is truncated: was a copy interrupted?)"
    return ""


def _describe(error: Exception, path: str, compression: str) -> str:
    message = str(error)
    if compression == "GZIP":
        gzip_problem = _gzip_problem(path)
        if gzip_problem:
            return gzip_problem
    if "truncated record" in message:
        return "the file ends in the middle of a record (truncated: was a copy interrupted?)"
    if "Is this even a TFRecord" in message:
        return "it is not a TFRecord file"
    if "corrupted record" in message:
        return "corrupted record (its checksum does not match: the bytes were damaged)"
    return re.sub(r"\s+", " ", message.split("[Op:")[0].split("}}")[-1]).strip()


def check_file(path: str) -> int:
    """Reads every record of ``path``; returns how many, or InputError naming the file and record."""
    import tensorflow as tf

    compression = _compression(path)
    if compression is None:
        return -1
    dataset = tf.data.TFRecordDataset(path, compression_type=compression, buffer_size=1 << 20)
    count = 0
    try:
        for batch in dataset.batch(4096):
            if count == 0:
                _check_example(path, batch[0].numpy())
            count += int(batch.shape[0])
    except tf.errors.OpError as e:
        bad = count + _readable_prefix(dataset.skip(count))
        raise InputError(f"{path}: record {bad + 1} (after {bad} readable): {_describe(e, path, compression)}") from None
    if count == 0:
        raise InputError(f"{path}: holds no records (an empty shard: remove it or re-create the data)")
    # TensorFlow's reader stops without an error when a truncated gzip stream happens to end between
    # records: only the stream itself says it ended early.
    problem = _gzip_problem(path) if compression == "GZIP" else ""
    if problem:
        raise InputError(f"{path}: after record {count}: {problem}")
    return count


def _readable_prefix(dataset) -> int:
    """How many records of ``dataset`` read before the first error."""
    import tensorflow as tf

    n = 0
    try:
        for _ in dataset:
            n += 1
    except tf.errors.OpError:
        pass
    return n


def _check_example(path: str, record: bytes) -> None:
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        tf.train.Example.FromString(record)
    except DecodeError:
        raise InputError(f"{path}: record 1 is not a serialized tf.train.Example "
                         f"(the pipeline reads TFRecords of tf.train.Example)") from None


def check_data_root(data_root: str, stamp_path: str) -> Dict[str, int]:
    """Checks every file of every split; files unchanged since the last check (``stamp_path``) are skipped.

    Returns {split: records read} (files skipped count as their earlier count).
    """
    import tensorflow as tf

    stamps = _read_stamps(stamp_path)
    checked: Dict[str, list] = {}
    counts = {}
    for split, files in split_files(data_root).items():
        counts[split] = 0
        for path in files:
            stat = tf.io.gfile.stat(path)
            key = [stat.length, stat.mtime_nsec]
            previous = stamps.get(path)
            if previous is not None and previous[:2] == key:
                n = previous[2]
            else:
                n = check_file(path)
            checked[path] = key + [n]
            counts[split] += max(n, 0)
    if checked != stamps:
        _write_stamps(stamp_path, checked)
    return counts


def _read_stamps(path: str) -> Dict[str, list]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_stamps(path: str, stamps: Dict[str, list]) -> None:

    write_atomically(path, json.dumps(stamps))

