"""`tfxp predict`: raw rows -> the data scientist's features -> serialized tf.Examples -> the model server
-> one line per row in the task's words.

Raw rows (JSON lines, or CSV with a header) are typed by the user package's feature list into
serialized ``tf.train.Example``s with the data tool's own parsing (``data.tfrecords.make_example``),
sent in batches through ``serving.client`` (REST or gRPC, TF Serving's API), and each answer is
described by the package's task (``task.describe_prediction``). The pipeline's part: it reads the
config for the model's name and the user package; the client knows neither.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from typing import Callable, Collection, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from components.core.feature import Feature
from serving.client import (DEFAULT_BATCH_SIZE, DEFAULT_RETRIES, DEFAULT_SIGNATURE, DEFAULT_TIMEOUT_SECONDS,
                            PROTOCOLS, ClientError, ModelSpec, connect)
from tfxp.contract import DEFAULT_PORTS

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv")
EXTENSION_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}

# -- rows -> serialized tf.Examples ---------------------------------------------------------------

Rows = Iterator[Tuple[int, Mapping[str, object]]]
ColumnCheck = Callable[[Iterable[str], str], None]


def input_format(path: str, fmt: Optional[str] = None) -> str:
    """``fmt`` if given, else the one ``path``'s extension names."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ClientError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    if path == "-":
        raise ClientError("reading rows from stdin: say how they are written with --format jsonl or --format csv")
    extension = os.path.splitext(path)[1].lower()
    if extension not in EXTENSION_FORMATS:
        raise ClientError(f"{path}: cannot tell the format from the extension {extension or '(none)'!r}; "
                          f"use .jsonl/.json or .csv, or pass --format jsonl|csv")
    return EXTENSION_FORMATS[extension]


def read_examples(path: str, features: Sequence[Feature], *, not_sent: Collection[str] = (),
                  fmt: Optional[str] = None, warn: Callable[[str], None] = log.warning) -> List[bytes]:
    """Serialized tf.Examples, one per row of ``path`` (``-``: stdin), typed by ``features``.

    JSON lines hold one object per line (numbers, strings, lists of them, null); CSV has a header.
    A null, empty or missing value is an absent feature. Columns in ``not_sent`` (the label's
    sources) are accepted and left out; a column not in ``features`` is reported once through
    ``warn`` and ignored. Every row is checked before any is sent: a bad one raises ClientError
    naming the file, line and column.
    """
    from data.tfrecords import DataError, make_example

    fmt = input_format(path, fmt)
    source = "<stdin>" if path == "-" else path
    known = {f.name for f in features}
    not_sent = set(not_sent)
    sent = [f for f in features if f.name not in not_sent]
    warned: set = set()

    def check_columns(names: Iterable[str], where: str) -> None:
        for name in names:
            if name not in known and name not in warned:
                warned.add(name)
                warn(f"{where}: column {name!r} is not in the feature list; ignored")

    try:
        with _open_text(path) as f:
            rows = _csv_rows(f, source, check_columns) if fmt == "csv" else _jsonl_rows(f, source, check_columns)
            examples = [make_example(values, sent, f"{source}, line {line}").SerializeToString()
                        for line, values in rows]
    except DataError as e:
        raise ClientError(str(e)) from None
    except UnicodeDecodeError as e:
        raise ClientError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not examples:
        raise ClientError(f"{source}: no rows to predict")
    return examples


def _open_text(path: str):
    if path == "-":
        return contextlib.nullcontext(sys.stdin)
    try:
        return open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise ClientError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ClientError(f"{path}: is a directory, expected a .jsonl or .csv file") from None


def _jsonl_rows(f, source: str, check_columns: ColumnCheck) -> Rows:
    for line, text in enumerate(f, start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise ClientError(f"{source}, line {line}: not valid JSON ({e.msg} at character {e.colno}); "
                              f"expected one JSON object per line") from None
        if not isinstance(row, dict):
            raise ClientError(f"{source}, line {line}: expected a JSON object of column: value, "
                              f"got {type(row).__name__} {text.strip()[:40]}")
        check_columns(row, f"{source}, line {line}")
        yield line, row


def _csv_rows(f, source: str, check_columns: ColumnCheck) -> Rows:
    from data.tfrecords import read_csv_rows

    header_checked = False
    for line, cells, index in read_csv_rows(f, source):
        if not header_checked:
            check_columns(index, f"{source}, line 1 (header)")
            header_checked = True
        yield line, {name: cells[i] for name, i in index.items()}


# -- tfxp predict -----------------------------------------------------------------------------------

def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``tfxp predict`` (the caller adds --config/--set, read for the defaults)."""
    parser.add_argument("input", metavar="INPUT",
                        help="rows to predict: JSON lines (.jsonl/.json, one object per line) or CSV with a "
                             "header (.csv); - reads stdin (then give --format)")
    parser.add_argument("--format", choices=FORMATS, default=None, help="input format (default: from the extension)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="rest", help="TF Serving API (default rest)")
    parser.add_argument("--host", default="127.0.0.1", help="server host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"server port (default {DEFAULT_PORTS['rest']} for rest, "
                             f"{DEFAULT_PORTS['grpc']} for grpc)")
    parser.add_argument("--model", default=None, help="model name (default: the config's pipeline_name)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, default=None,
                       help="model version (default: the latest the server has loaded)")
    which.add_argument("--label", default=None, help="version label, e.g. stable or canary")
    parser.add_argument("--signature", default=DEFAULT_SIGNATURE, help=f"signature (default {DEFAULT_SIGNATURE})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS,
                        help=f"seconds per request (default {DEFAULT_TIMEOUT_SECONDS:g})")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                        help=f"retries when the server is unavailable, with exponential backoff "
                             f"(default {DEFAULT_RETRIES})")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"rows per request (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--package", default=None,
                        help="user package whose FEATURES type the columns (default: the config's user_package)")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON object per row: {"row": i, "outputs": [...]}')


def run_predict(args: argparse.Namespace) -> int:
    """``tfxp predict``: prints one prediction per input row (rows numbered from 1); returns 0.

    Raises ClientError for bad input or flags, ServingRequestError (ServingUnavailable) when
    the server fails; the config's errors are ConfigError, the user package's UserCodeError.
    """
    from components.core.user_code import load_user_code

    model, package = args.model, args.package
    if model is None or package is None:
        from pipeline.config import load_config
        cfg = load_config(getattr(args, "config", None), getattr(args, "overrides", ()))
        model, package = model or cfg.pipeline_name, package or cfg.user_package
    user = load_user_code(package)
    spec = ModelSpec(model, version=args.version, label=args.label, signature_name=args.signature)
    examples = read_examples(args.input, user.features, not_sent=user.label_source_names, fmt=args.format,
                             warn=lambda message: print(f"tfxp predict: warning: {message}", file=sys.stderr))
    row = 0
    with connect(args.protocol, args.host, args.port, spec, timeout=args.timeout, retries=args.retries) as client:
        for outputs in client.predict_batches(examples, args.batch_size):
            for output in outputs:
                row += 1
                if args.json:
                    print(json.dumps({"row": row, "outputs": [float(str(v)) for v in output]}))
                else:
                    print(f"row {row}: {user.task.describe_prediction(output)}")
            sys.stdout.flush()
    return 0
