"""Input pipeline and training throughput, side by side in one run (after `make run`).

1. Input examples/s on the latest transformed training examples: our pipeline (cached, as
   training uses it, and uncached) vs TFX's `tf_dataset_factory` vs the raw TFRecord read (the
   practical ceiling).
2. Training examples/s with the real model: one_device vs mirrored over 2 logical CPUs, each in
   a fresh process (the CPU split must precede TensorFlow's initialization).
3. Compression: the sample written by the data tool gzip vs uncompressed: file size ratio and
   raw input examples/s ratio (read + parse of raw tf.Examples).
Writes bench/results/input.json.

    python -m bench.input_bench
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import components  # noqa: F401
from bench.common import figure, latest_artifacts, write_results
from pipeline.config import load_config

TRAIN_STEPS = 150
ROUNDS = 3


def train_throughput(strategy: str, cpu_devices: int, batch_size: int) -> dict:
    """Runs in a fresh process: examples/s of Model.fit under the strategy, after a warm-up."""
    import tensorflow_transform as tft

    from components.training import inputs, strategy as strategy_lib
    from components.training.trainer import build_user_model

    found = latest_artifacts()
    user = load_config().user_code
    tft_output = tft.TFTransformOutput(found["transform_graph"])
    strategy = strategy_lib.build_strategy(strategy, cpu_devices=cpu_devices)
    global_batch = batch_size * strategy.num_replicas_in_sync
    dataset = inputs.make_input_dataset(os.path.join(found["transformed_examples"], "Split-train", "*"),
                                        tft_output, user, global_batch, cache=True)
    with strategy.scope():
        model = build_user_model(user, inputs.model_inputs(user, tft_output))
    model.fit(dataset, epochs=1, steps_per_epoch=10, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=TRAIN_STEPS, verbose=0)
    seconds = time.perf_counter() - start
    return {"replicas": strategy.num_replicas_in_sync, "global_batch": global_batch,
            "examples_per_second": TRAIN_STEPS * global_batch / seconds}


def raw_read_examples_per_second(root: str, batch_size: int) -> float:
    import tensorflow as tf

    import tensorflow_data_validation as tfdv
    from tensorflow_transform.tf_metadata import schema_utils

    from pipeline.diagnose_input import examples_per_second

    spec = schema_utils.schema_as_feature_spec(tfdv.load_schema_text(load_config().resolved_schema_path)).feature_spec
    files = sorted(tf.io.gfile.glob(os.path.join(root, "train", "*")))
    compression = "GZIP" if files[0].endswith(".gz") else ""

    def make():
        return (tf.data.Dataset.from_tensor_slices(files)
                .interleave(lambda p: tf.data.TFRecordDataset(p, compression_type=compression),
                            cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
                .repeat().batch(batch_size)
                .map(lambda s: (tf.io.parse_example(s, spec), tf.zeros([tf.shape(s)[0]])),
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))

    return examples_per_second(make)


def figures_of(results: dict) -> list:
    return [
        figure("input examples/s, ours (cached) / tf_dataset_factory", results["ours_over_tf_dataset_factory"], "x",
               results["target_ours_over_tf_dataset_factory"], "higher"),
        figure("input examples/s, ours (uncached) / tf_dataset_factory",
               results["ours_uncached_over_tf_dataset_factory"], "x", better="higher"),
        figure("input examples/s, ours (cached) / raw read", results["ours_over_raw_read"], "x", better="higher"),
        figure("input examples/s, ours (cached)", results["input_examples_per_second"]["ours_cached"], "examples/s",
               better="higher"),
        figure("training examples/s, mirrored (2 logical CPUs) / one_device",
               results["mirrored_2_cpus_over_one_device"], "x", better="higher"),
        figure("bytes, uncompressed / gzip TFRecords", results["size_ratio_none_over_gzip"], "x"),
        figure("raw input examples/s, uncompressed / gzip", results["input_speed_ratio_none_over_gzip"], "x",
               better="higher"),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-worker", nargs=2, metavar=("STRATEGY", "CPU_DEVICES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    batch_size = load_config().training.batch_size
    if args.train_worker:
        print(json.dumps(train_throughput(args.train_worker[0], int(args.train_worker[1]), batch_size)))
        return

    from data import tfrecords
    from pipeline import diagnose_input

    found = latest_artifacts()
    print("1. input pipeline vs tf_dataset_factory vs raw read ...", flush=True)
    d = diagnose_input.diagnose(found["transformed_examples"], found["transform_graph"], load_config().user_code,
                                batch_size)
    stages = d["stages_examples_per_second"]
    ours, ours_uncached = stages["+cache (full pipeline)"], stages["+prefetch (full pipeline)"]
    factory, raw = d["tf_dataset_factory_examples_per_second"], stages["read"]
    print(diagnose_input.format_diagnosis(d))

    print("2. training: one_device vs mirrored over 2 logical CPUs (fresh processes) ...", flush=True)
    training = {}
    for name, strategy, cpus in [("one_device", "one_device", 0), ("mirrored_2_cpus", "mirrored", 2)]:
        out = subprocess.run([sys.executable, "-m", "bench.input_bench", "--train-worker", strategy, str(cpus)],
                             capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if out.returncode != 0:
            raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
        training[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"   {name}: {training[name]['examples_per_second']:,.0f} examples/s "
              f"({training[name]['replicas']} replica(s), global batch {training[name]['global_batch']})")

    print("3. compression: gzip vs none ...", flush=True)
    compression = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config()
        for mode in ("gzip", "none"):
            root = os.path.join(tmp, mode)
            tfrecords.convert_csv(cfg.resolved_source_csv, root, features=cfg.user_code.features, shards=cfg.shards,
                                  compression=mode)
            size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(root) for f in fs)
            compression[mode] = {"bytes": size, "raw_input_examples_per_second": 0.0}
        for _ in range(ROUNDS):  # alternate, keep the best of each: the same noise for both
            for mode in ("gzip", "none"):
                eps = raw_read_examples_per_second(os.path.join(tmp, mode), batch_size)
                compression[mode]["raw_input_examples_per_second"] = max(
                    compression[mode]["raw_input_examples_per_second"], eps)

    results = {
        "input_examples_per_second": {"ours_cached": ours, "ours_uncached": ours_uncached,
                                      "tf_dataset_factory": factory, "raw_read": raw},
        "ours_over_tf_dataset_factory": ours / factory, "ours_uncached_over_tf_dataset_factory": ours_uncached / factory,
        "ours_over_raw_read": ours / raw, "diagnosis": d,
        "training": training,
        "mirrored_2_cpus_over_one_device": training["mirrored_2_cpus"]["examples_per_second"]
        / training["one_device"]["examples_per_second"],
        "compression": compression,
        "size_ratio_none_over_gzip": compression["none"]["bytes"] / compression["gzip"]["bytes"],
        "input_speed_ratio_none_over_gzip": compression["none"]["raw_input_examples_per_second"]
        / compression["gzip"]["raw_input_examples_per_second"],
        "target_ours_over_tf_dataset_factory": 3.0,
    }
    results["figures"] = figures_of(results)
    print("\nsummary")
    print(f"  ours (cached) / tf_dataset_factory: {results['ours_over_tf_dataset_factory']:.2f}x "
          f"(uncached {results['ours_uncached_over_tf_dataset_factory']:.2f}x; target 3x); "
          f"ours / raw read: {results['ours_over_raw_read']:.2f}")
    print(f"  mirrored(2 logical CPUs) / one_device training examples/s: "
          f"{results['mirrored_2_cpus_over_one_device']:.2f}")
    print(f"  uncompressed / gzip: {results['size_ratio_none_over_gzip']:.2f}x the bytes, "
          f"{results['input_speed_ratio_none_over_gzip']:.2f}x the raw input examples/s")
    print(f"wrote {write_results('input', results)}")


if __name__ == "__main__":
    main()
