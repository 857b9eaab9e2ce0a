"""`tfxp`: the project's command line.

    tfxp data   CSV -> sharded TFRecords of tf.train.Example
    tfxp run    run the whole pipeline locally (LocalDagRunner on Beam)
"""
from __future__ import annotations

import argparse
import logging
import sys

import pipeline  # noqa: F401  (one Keras, before TensorFlow)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None,
                        help="YAML run config (default: pipeline/configs/local.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train_steps=200 (repeatable)")


def _load(args):
    from pipeline.config import load_config
    return load_config(args.config, args.overrides)


def cmd_data(args) -> int:
    from data import tfrecords

    csv_path = args.csv
    output = args.output
    if csv_path is None or output is None:
        cfg = _load(args)
        csv_path = csv_path or cfg.resolved_source_csv
        output = output or cfg.resolved_data_root
    result = tfrecords.convert_csv(csv_path, output, shards=args.shards, compression=args.compression,
                                   eval_percent=args.eval_percent, key_column=args.key_column)
    print(f"wrote {result.rows['train']} train and {result.rows['eval']} eval examples "
          f"({args.shards} shards per split, compression {args.compression}) to {result.output_dir}")
    return 0


def cmd_run(args) -> int:
    from pipeline import local_runner

    cfg = _load(args)
    return local_runner.run(cfg, force=args.force, prepare_data=not args.no_data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfxp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="show TFX/Beam debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="convert a CSV into sharded TFRecords of tf.train.Example")
    p.add_argument("--csv", default=None, help="input CSV (default: the config's source_csv)")
    p.add_argument("--output", default=None, help="output folder (default: the config's data_root)")
    p.add_argument("--shards", type=int, default=4, help="files per split (default 4)")
    p.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    p.add_argument("--eval-percent", type=int, default=33, help="share of rows in eval (default 33)")
    p.add_argument("--key-column", default=None,
                   help="column whose value decides the split (default: the whole row)")
    _add_config_args(p)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("run", help="run the whole pipeline locally and print a prediction of the pushed model")
    _add_config_args(p)
    p.add_argument("--force", action="store_true",
                   help="re-execute every component (ignore the cache)")
    p.add_argument("--no-data", action="store_true",
                   help="do not write the sample TFRecords when data_root is missing")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    from components.anomalies_gate import AnomaliesFoundError
    from data.tfrecords import DataError
    from pipeline.config import ConfigError
    try:
        return args.func(args)
    except (DataError, ConfigError) as e:
        print(f"tfxp {args.command}: error: {e}", file=sys.stderr)
        return 2
    except AnomaliesFoundError as e:
        print(f"tfxp {args.command}: stopped: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
