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

    cfg = load_config()
    found = {}
    for node, key in [("Trainer", "model"), ("Transform", "transform_graph"),
                      ("Transform", "transformed_examples")]:
        uri = run_summary.latest_output_uri(cfg.resolved_metadata_path, cfg.pipeline_name, node, key) \
            if os.path.exists(cfg.resolved_metadata_path) else None
        if uri is None:
            raise SystemExit(f"no {node} output found in {cfg.resolved_metadata_path}: run `make run` first")
        found[key] = uri
    return found
