"""The whole pipeline on the sample data under each local Beam preset, side by side in one run.

Each preset runs `tfxp run --force` into its own fresh output folder (no cache), on the same
TFRecords, one after the other. Prints the wall times and their ratio; writes
bench/results/beam_presets.json.

    python -m bench.beam_presets [--train-steps N]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from bench.common import figure, write_results
from pipeline.config import load_config

PRESETS = ["in_memory", "multi_processing"]


def figures_of(presets: dict, ratio: float) -> list:
    return [figure("whole pipeline wall time, multi_processing / in_memory", ratio, "x"),
            *(figure(f"whole pipeline wall time, {name}", r["wall_seconds"], "s") for name, r in presets.items())]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-steps", type=int, default=load_config().training.train_steps)
    args = parser.parse_args(argv)
    cfg = load_config()
    from pipeline.local_runner import ensure_data
    ensure_data(cfg)
    results = {}
    with tempfile.TemporaryDirectory(prefix="beam-bench-") as tmp:
        for preset in PRESETS:
            output_root = os.path.join(tmp, preset)
            command = [sys.executable, "-m", "pipeline.cli", "run", "--force", "--no-data",
                       "--set", f"beam_preset={preset}", "--set", f"output_root={output_root}",
                       "--set", f"training.train_steps={args.train_steps}"]
            print(f"running the pipeline with beam_preset={preset} ...", flush=True)
            start = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True,
                                  env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
            seconds = time.monotonic() - start
            if done.returncode != 0:
                raise SystemExit(f"{preset} failed:\n{done.stderr[-3000:]}")
            results[preset] = {"wall_seconds": seconds}
            print(f"  {preset}: {seconds:.1f} s", flush=True)
    ratio = results["multi_processing"]["wall_seconds"] / results["in_memory"]["wall_seconds"]
    faster = "in_memory" if ratio > 1 else "multi_processing"
    print(f"multi_processing / in_memory wall time: {ratio:.2f} -> {faster} is faster on this data and machine")
    path = write_results("beam_presets", {"train_steps": args.train_steps, "presets": results,
                                          "ratio_multi_processing_over_in_memory": ratio, "faster": faster,
                                          "figures": figures_of(results, ratio)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
