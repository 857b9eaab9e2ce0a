"""The whole pipeline on the sample data under each local Beam preset, side by side in one run.

Each preset runs `tfxp run --force` into its own fresh output folder (no cache), on the same
TFRecords, one after the other: in_memory and multi_processing (Beam's DirectRunner), portable
(Beam's portable job service with an EXTERNAL SDK worker pool: the path Flink and Spark take; its
wall time includes starting and stopping those services). Prints the wall times and their ratios to
in_memory; writes bench/results/beam_presets.json.

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

PRESETS = ["in_memory", "multi_processing", "portable"]
BASELINE = "in_memory"


def ratios_of(presets: dict) -> dict:
    """Each preset's whole-pipeline wall time over in_memory's."""
    return {name: r["wall_seconds"] / presets[BASELINE]["wall_seconds"] for name, r in presets.items()
            if name != BASELINE}


def figures_of(presets: dict) -> list:
    return [*(figure(f"whole pipeline wall time, {name} / {BASELINE}", ratio, "x")
              for name, ratio in ratios_of(presets).items()),
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
    ratios = ratios_of(results)
    for name, ratio in ratios.items():
        print(f"{name} / {BASELINE} wall time: {ratio:.2f}")
    fastest = min(results, key=lambda name: results[name]["wall_seconds"])
    print(f"{fastest} is the fastest on this data and machine")
    path = write_results("beam_presets", {"train_steps": args.train_steps, "presets": results,
                                          **{f"ratio_{name}_over_{BASELINE}": r for name, r in ratios.items()},
                                          "fastest": fastest, "figures": figures_of(results)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
