"""Shared by the benchmarks: where results go, the figure format, and the latest pipeline outputs.

Every benchmark's JSON carries a ``figures`` list in one format, which `python -m bench.run_all`
collects into one table:

    {"name": "int8 TFLite, smaller than float32 TFLite", "value": 2.2, "unit": "x",
     "target": 3.5, "better": "higher", "met": false}

``target`` is null when the figure has none (then ``met`` is null too).
"""
import contextlib
import json
import math
import os
import platform
import time
from typing import Optional

from pipeline.config import PROJECT_ROOT, load_config
from tfxp.files import write_atomically

RESULTS_DIR = os.path.join(PROJECT_ROOT, "bench", "results")


def write_results(name: str, results: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    payload = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.node(),
               "cpus": os.cpu_count(), **results}
    write_atomically(path, json.dumps(payload, indent=2))
    return path


BETTER = ("lower", "higher")


def target_met(value, target, better: str) -> Optional[bool]:
    """Whether ``value`` meets ``target`` (at most it when lower is better, at least it when higher is);
    None when there is no target or no value."""
    if better not in BETTER:
        raise ValueError(f"better must be one of {BETTER}, got {better!r}")
    if target is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value <= target if better == "lower" else value >= target


def figure(name: str, value, unit: str, target=None, better: str = "lower") -> dict:
    """One figure of a benchmark, as the summary table shows it."""
    value = None if value is None else float(value)
    return {"name": name, "value": value, "unit": unit, "target": target, "better": better,
            "met": target_met(value, target, better)}


def kill_tree(process) -> None:
    """Stops a subprocess.Popen and every process it started (a model server in its own session too)."""
    import psutil

    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for child in [process] + tree:
        with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
            child.kill()
    process.wait()


def latest_artifacts():
    """Latest Trainer model and Transform outputs of the default pipeline (run `make run` first)."""
    from pipeline import run_summary

    try:
        return run_summary.latest_pipeline_outputs(load_config())
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
