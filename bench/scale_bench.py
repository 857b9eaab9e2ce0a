"""The whole pipeline at growing data sizes: wall time per component and peak memory per size.

For each size, one after the other: the data (the sample itself at 15,002 rows; larger sizes are
synthetic rows resampled from it by `tfxp data --scale N`, for load tests only), then `tfxp run` with
the config of `make run`, except the training budget: ``training.train_epochs=1`` (one pass over the
train split), so that training grows with the data as every other component does (the default 1000
steps would see 6% of a million rows). Each run has a fresh output root (no cache).

Memory is the resident set size (RSS) of the whole process tree (`tfxp run` and every process it
starts), summed and sampled every 0.5 s with psutil: pages shared between processes count once per
process, so it over-states what the machine needs. A component's peak is the highest sample taken
while it ran (with another component beside it, both count).

Targets: peak memory at 1M rows <= 8 GB; time(1M) / time(100k) <= 10 (the data grows 10x).
The 1M-row step takes about 19 minutes on 2 cores (the whole benchmark about 26): --no-million (or
BENCH_MILLION=0 for make bench) leaves it out. Writes bench/results/scale.json.

    python -m bench.scale_bench [--sizes 15002,100000] [--no-million] [--keep DIR]
"""
import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Dict, List

from bench.common import figure, kill_tree, write_results
from bench.pipeline_bench import RunFailed, breakdown, component_times, format_component_table, tfxp
from pipeline.config import PROJECT_ROOT, load_config

SAMPLE_ROWS = 15_002
DEFAULT_SIZES = [SAMPLE_ROWS, 100_000]
MILLION = 1_000_000
MEMORY_TARGET_BYTES = 8 * 2 ** 30
GROWTH_TARGET = 10.0
SAMPLE_SECONDS = 0.5
RUN_TIMEOUT_SECONDS = 3 * 3600


def tree_rss(process) -> int:
    """RSS of a process and all its descendants, in bytes."""
    import psutil

    total = 0
    try:
        root = psutil.Process(process.pid)
        members = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def sampled_run(label: str, command: List[str], log_path: str) -> Dict:
    """Runs ``command`` (output in ``log_path``), sampling the tree's RSS; wall seconds, start/end and samples."""
    print(f"  {label} ... (log: {os.path.relpath(log_path, PROJECT_ROOT)})", flush=True)
    samples = []  # (epoch seconds, bytes)
    with open(log_path, "w") as log:
        log.write(" ".join(command) + "\n\n")
        log.flush()
        start_epoch, start = time.time(), time.monotonic()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        done = threading.Event()

        def sample():
            while not done.wait(SAMPLE_SECONDS):
                samples.append((time.time(), tree_rss(process)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            code = process.wait(timeout=RUN_TIMEOUT_SECONDS)
        except BaseException:
            kill_tree(process)
            raise
        finally:
            done.set()
            sampler.join()
        seconds, end_epoch = time.monotonic() - start, time.time()
    if code != 0:
        with open(log_path) as f:
            raise RunFailed(f"{label} failed (exit {code}); the end of {log_path}:\n{f.read()[-3000:]}")
    peak = max((b for _, b in samples), default=0)
    print(f"    {seconds:.1f} s, peak memory {peak / 2 ** 30:.2f} GB", flush=True)
    return {"wall_seconds": seconds, "start_epoch": start_epoch, "end_epoch": end_epoch, "samples": samples,
            "peak_bytes": peak}


def make_data(cfg, rows: int, directory: str) -> Dict:
    """The sample's rows as they are, or ``rows`` synthetic rows; conversion seconds and rate."""
    from data import synth, tfrecords

    features, source = cfg.user_code.features, cfg.resolved_source_csv
    if rows == SAMPLE_ROWS:
        result = tfrecords.convert_csv(source, directory, features=features, shards=cfg.shards)
        if result.total_rows != SAMPLE_ROWS:
            raise RunFailed(f"{source} has {result.total_rows} rows, not the sample's {SAMPLE_ROWS}")
    else:
        result = synth.convert_synthetic(source, rows, directory, features=features, shards=cfg.shards)
    return {"rows": result.rows, "convert_seconds": result.seconds}


def run_size(cfg, rows: int, tmp: str, logs: str, preset: str = None) -> Dict:
    data_root = os.path.join(tmp, f"data-{rows}")
    output_root = os.path.join(tmp, f"run-{rows}")
    print(f"{rows:,} rows", flush=True)
    data = make_data(cfg, rows, data_root)
    print(f"  data: {data['rows']} in {data['convert_seconds']:.1f} s", flush=True)
    overrides = [f"data_root={data_root}", f"output_root={output_root}", "training.train_epochs=1"]
    overrides += [f"beam_preset={preset}"] if preset else []
    command = tfxp() + ["run", "--no-data"] + [arg for o in overrides for arg in ("--set", o)]
    run = sampled_run(f"tfxp run, {rows:,} rows", command, os.path.join(logs, f"scale-{rows}.log"))
    components = component_times(load_config(overrides=overrides).resolved_metadata_path, cfg.pipeline_name)
    for c in components:
        during = [b for t, b in run["samples"] if c["start_epoch"] <= t <= c["end_epoch"]]
        c["peak_bytes"] = max(during, default=0)
    result = breakdown(run, components)
    result.update(rows=rows, data=data, peak_bytes=run["peak_bytes"])
    for entry, c in zip(result["components"], components):
        entry["peak_bytes"] = c["peak_bytes"]
    if os.environ.get("BENCH_KEEP_OUTPUTS") != "1":
        shutil.rmtree(output_root, ignore_errors=True)
        shutil.rmtree(data_root, ignore_errors=True)
    return result


def format_memory_rows(results: Dict[str, Dict]) -> str:
    lines = []
    for label, run in results.items():
        parts = ", ".join(f"{c['component']} {c['peak_bytes'] / 2 ** 30:.2f}" for c in run["components"])
        lines.append(f"peak GB per component, {label}: {parts}")
    return "\n".join(lines)


def figures_of(runs: Dict[int, Dict]) -> list:
    figures = []
    for rows, run in runs.items():
        figures.append(figure(f"whole pipeline at {rows:,} rows: wall time", run["wall_seconds"], "s"))
        target = MEMORY_TARGET_BYTES / 2 ** 30 if rows == MILLION else None
        figures.append(figure(f"whole pipeline at {rows:,} rows: peak memory (process tree RSS)",
                              run["peak_bytes"] / 2 ** 30, "GB", target, "lower"))
    sizes = sorted(runs)
    for small, large in zip(sizes, sizes[1:]):
        target = GROWTH_TARGET if (small, large) == (100_000, MILLION) else None
        figures.append(figure(f"time({large:,} rows) / time({small:,} rows) ({large / small:.1f}x the rows)",
                              runs[large]["wall_seconds"] / runs[small]["wall_seconds"], "x", target, "lower"))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated row counts (15002 is the sample itself)")
    parser.add_argument("--no-million", dest="million", action="store_false",
                        default=os.environ.get("BENCH_MILLION", "1") != "0",
                        help="leave out the 1,000,000-row run (about 19 minutes on 2 cores)")
    parser.add_argument("--keep", metavar="DIR", help="run in DIR and keep the outputs")
    parser.add_argument("--preset", default=None, help="beam_preset for every run (default: the config's)")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s} | ({MILLION} if args.million else set()))
    cfg = load_config()
    tmp = args.keep or tempfile.mkdtemp(prefix="scale-bench-")
    logs = os.path.join(PROJECT_ROOT, "bench", "results", "logs")
    os.makedirs(logs, exist_ok=True)
    if args.keep:
        os.environ["BENCH_KEEP_OUTPUTS"] = "1"
    runs = {}
    try:
        for rows in sizes:
            runs[rows] = run_size(cfg, rows, tmp, logs, args.preset)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    labels = {f"{rows:,} rows": run for rows, run in runs.items()}
    print(format_component_table(labels))
    print(format_memory_rows(labels))
    figures = figures_of(runs)
    for f in figures:
        print(f"{f['name']}: {f['value']:.2f} {f['unit']}" + (f" (target {f['target']})" if f["target"] else ""))
    path = write_results("scale", {"sizes": sizes, "training_budget": "training.train_epochs=1",
                                   "beam_preset": args.preset or cfg.beam_preset,
                                   "runs": {str(rows): run for rows, run in runs.items()}, "figures": figures})
    print(f"wrote {path}")


if __name__ == "__main__":
    try:
        main()
    except RunFailed as e:
        raise SystemExit(str(e)) from None
