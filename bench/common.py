"""Shared by the benchmarks: where results go, and the latest pipeline outputs to measure."""
import json
import os
import platform
import time

from pipeline.config import PROJECT_ROOT, load_config

RESULTS_DIR = os.path.join(PROJECT_ROOT, "bench", "results")


def write_results(name: str, results: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    payload = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.node(),
               "cpus": os.cpu_count(), **results}
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(path + ".tmp", path)
    return path


def latest_artifacts():
    """Latest Trainer model and Transform outputs of the default pipeline (run `make run` first)."""
    from pipeline import run_summary

    try:
        return run_summary.latest_pipeline_outputs(load_config())
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
